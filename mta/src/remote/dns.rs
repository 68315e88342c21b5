//! DNS for qmail-remote: MX lists, A/AAAA lookups and CNAME canonicalisation, over
//! hickory-resolver on a current-thread tokio runtime.
//!
//! The name servers are `$RQMAIL_RESOLVER` when set (`IP` or `IP:PORT`, several separated by
//! commas or spaces — tests point it at a dnsmasq on a high port), else the `nameserver` lines of
//! `/etc/resolv.conf`, else 127.0.0.1. Names are always looked up as absolute names (no search
//! list) and `/etc/hosts` is not consulted, as qmail's `res_query` based lookups.
//!
//! Results follow qmail's dns.c classes: a hard failure (the name does not exist), a soft
//! failure (time-out, SERVFAIL, refused…), or a list that may be empty (the name exists but has
//! no record of that type).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsFail {
    /// The name does not exist (NXDOMAIN) or cannot be a domain name.
    Hard,
    /// Try again later: time-out, SERVFAIL, no name server reachable, …
    Soft(String),
}

/// One address to try, with the MX preference it came from (0 for A records and relays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ip: IpAddr,
    pub pref: u32,
}

/// Name servers from `$RQMAIL_RESOLVER`, `/etc/resolv.conf` or 127.0.0.1:53.
pub fn name_servers() -> Vec<SocketAddr> {
    if let Ok(v) = std::env::var("RQMAIL_RESOLVER") {
        let list: Vec<SocketAddr> = v
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .filter_map(parse_server)
            .collect();
        if !list.is_empty() {
            return list;
        }
    }
    let mut list = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/resolv.conf") {
        for line in text.lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some("nameserver")
                && let Some(ip) = w.next()
                && let Ok(ip) = ip.split('%').next().unwrap_or(ip).parse::<IpAddr>()
            {
                list.push(SocketAddr::new(ip, 53));
            }
        }
    }
    if list.is_empty() {
        list.push(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), 53));
    }
    list
}

fn parse_server(s: &str) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    s.trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// A blocking resolver: every call runs to completion on its own runtime.
pub struct Dns {
    rt: tokio::runtime::Runtime,
    resolver: TokioResolver,
}

impl Dns {
    pub fn new() -> Result<Dns, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("cannot start the DNS runtime: {e}"))?;
        let servers = name_servers();
        let configs = servers
            .iter()
            .map(|sa| {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_parts(None, vec![], configs);
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Never;
        opts.timeout = Duration::from_secs(5);
        opts.attempts = 2;
        opts.ndots = 0;
        opts.cache_size = 0;
        opts.try_tcp_on_error = true;
        let resolver = rt.block_on(async {
            Resolver::builder_with_config(config, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
        });
        let resolver = resolver.map_err(|e| format!("cannot set up the resolver: {e}"))?;
        Ok(Dns { rt, resolver })
    }

    fn lookup(&self, name: &str, rt: RecordType) -> Result<Vec<RData>, DnsFail> {
        let fqdn = absolute(name).ok_or(DnsFail::Hard)?;
        let res = self
            .rt
            .block_on(async { self.resolver.lookup(fqdn, rt).await });
        match res {
            Ok(l) => Ok(l
                .answers()
                .iter()
                .filter(|r| r.record_type() == rt)
                .map(|r| r.data.clone())
                .collect()),
            Err(e) => classify(e),
        }
    }

    /// A and AAAA addresses of `name` (A first). Hard only when the name does not exist.
    pub fn ips(&self, name: &str) -> Result<Vec<IpAddr>, DnsFail> {
        let mut out = Vec::new();
        let a = self.lookup(name, RecordType::A);
        match &a {
            Ok(v) => out.extend(v.iter().filter_map(|d| match d {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })),
            Err(DnsFail::Hard) => return Err(DnsFail::Hard),
            Err(DnsFail::Soft(_)) => {}
        }
        let aaaa = self.lookup(name, RecordType::AAAA);
        match &aaaa {
            Ok(v) => out.extend(v.iter().filter_map(|d| match d {
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Err(DnsFail::Hard) if out.is_empty() && a.is_ok() => return Err(DnsFail::Hard),
            _ => {}
        }
        if out.is_empty() {
            // Any soft failure with nothing found is soft.
            for r in [a, aaaa] {
                if let Err(DnsFail::Soft(s)) = r {
                    return Err(DnsFail::Soft(s));
                }
            }
        }
        Ok(out)
    }

    /// MX records of `name` as (preference, exchange) pairs.
    pub fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, DnsFail> {
        Ok(self
            .lookup(name, RecordType::MX)?
            .into_iter()
            .filter_map(|d| match d {
                RData::MX(mx) => Some((mx.preference, relative(&mx.exchange))),
                _ => None,
            })
            .collect())
    }

    /// The canonical name of `name`, following CNAME records (at most 10). `Ok(None)` when
    /// `name` is not an alias; a loop or an over-long chain is also `Ok(None)` ("not our
    /// problem", as qmail says).
    pub fn cname(&self, name: &str) -> Result<Option<String>, DnsFail> {
        let mut cur = name.to_string();
        let mut changed = false;
        for _ in 0..10 {
            let next = match self.lookup(&cur, RecordType::CNAME) {
                Ok(v) => v.into_iter().find_map(|d| match d {
                    RData::CNAME(c) => Some(relative(&c.0)),
                    _ => None,
                }),
                Err(DnsFail::Hard) => None,
                Err(e) => return Err(e),
            };
            match next {
                Some(n) => {
                    cur = n;
                    changed = true;
                }
                None => return Ok(changed.then_some(cur)),
            }
        }
        Ok(None)
    }

    /// qmail's dns_mxip: the MX list of `host` in preference order (equal preferences in
    /// random order), each exchanger's addresses, or the host's own addresses when it has no
    /// MX. `Ok` may be empty (no usable exchanger); `Soft` when nothing was found and some
    /// lookup failed temporarily.
    pub fn mx_targets(&self, host: &str, rng: &mut impl rand::Rng) -> Result<Vec<Target>, DnsFail> {
        let mxs = match self.mx(host) {
            Err(DnsFail::Hard) => return self.a_targets(host),
            Err(e) => return Err(e),
            Ok(v) if v.is_empty() => return self.a_targets(host),
            Ok(v) => v,
        };
        let ordered = order_mx(mxs, rng);
        let mut out = Vec::new();
        let mut soft = None;
        for (pref, name) in ordered {
            if name.is_empty() {
                // A null MX ("."): the domain accepts no mail.
                continue;
            }
            match self.ips(&name) {
                Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                    ip,
                    pref: u32::from(pref),
                })),
                Err(DnsFail::Soft(s)) => soft = Some(s),
                Err(DnsFail::Hard) => {}
            }
        }
        match soft {
            Some(s) if out.is_empty() => Err(DnsFail::Soft(s)),
            _ => Ok(out),
        }
    }

    /// The addresses of `host` at preference 0 (a relay, or a host without MX).
    pub fn a_targets(&self, host: &str) -> Result<Vec<Target>, DnsFail> {
        Ok(self
            .ips(host)?
            .into_iter()
            .map(|ip| Target { ip, pref: 0 })
            .collect())
    }
}

/// Sort MX records by preference; records of equal preference are shuffled.
pub fn order_mx(mut mxs: Vec<(u16, String)>, rng: &mut impl rand::Rng) -> Vec<(u16, String)> {
    use rand::seq::SliceRandom;
    mxs.shuffle(rng);
    // A stable sort keeps the shuffled order among equal preferences.
    mxs.sort_by_key(|(p, _)| *p);
    mxs
}

/// `host` as an absolute DNS name, `None` if it cannot be one.
fn absolute(host: &str) -> Option<Name> {
    if host.is_empty() || host.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    let s = if host.ends_with('.') {
        host.to_string()
    } else {
        format!("{host}.")
    };
    Name::from_ascii(s).ok()
}

/// A name as text without the trailing dot ("" for the root).
fn relative(n: &Name) -> String {
    let s = n.to_ascii();
    s.strip_suffix('.').unwrap_or(&s).to_string()
}

fn classify<T>(e: NetError) -> Result<Vec<T>, DnsFail> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            if nr.response_code == ResponseCode::NXDomain {
                Err(DnsFail::Hard)
            } else {
                Ok(Vec::new())
            }
        }
        NetError::Proto(p) => Err(DnsFail::Soft(p.to_string())),
        other => Err(DnsFail::Soft(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_order_is_by_preference_with_ties_shuffled() {
        let mut rng = rand::rng();
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..200 {
            let v = order_mx(
                vec![
                    (20, "c".into()),
                    (10, "a".into()),
                    (10, "b".into()),
                    (5, "z".into()),
                ],
                &mut rng,
            );
            assert_eq!(v[0].1, "z");
            assert_eq!(v[3].1, "c");
            seen_first.insert(v[1].1.clone());
        }
        assert_eq!(
            seen_first.len(),
            2,
            "equal preferences must come in both orders"
        );
    }

    #[test]
    fn server_parsing() {
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("10.0.0.1"),
            Some("10.0.0.1:53".parse().unwrap())
        );
        assert_eq!(parse_server("[::1]:53"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_server("bogus"), None);
    }

    #[test]
    fn names() {
        assert!(absolute("example.com").is_some());
        assert!(absolute("bad name").is_none());
        assert!(absolute("").is_none());
    }
}
