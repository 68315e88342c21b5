//! qmail-send's address rewriting (todo → local/remote): envnoathost, percenthack, locals and
//! virtualdomains, as qmail-send's rewrite() does. Maps are case-insensitive; on duplicate keys
//! the last line wins.

use std::collections::{HashMap, HashSet};

use crate::control::{Control, ControlError};

/// The routing controls, reread on SIGHUP (locals, virtualdomains).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub envnoathost: String,
    pub percenthack: HashSet<String>,
    pub locals: HashSet<String>,
    pub vdoms: HashMap<String, String>,
}

/// Where a recipient goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Local(Vec<u8>),
    Remote(Vec<u8>),
}

impl Routes {
    /// Read locals (default: me) and virtualdomains.
    pub fn load_locals(
        c: &Control,
        me: Option<&str>,
    ) -> Result<(HashSet<String>, HashMap<String, String>), ControlError> {
        let locals = match c.lines("locals")? {
            Some(l) => l.into_iter().map(|s| s.to_ascii_lowercase()).collect(),
            None => me.map(|m| m.to_ascii_lowercase()).into_iter().collect(),
        };
        let mut vdoms = HashMap::new();
        for l in c.lines_or_empty("virtualdomains")? {
            if let Some((k, v)) = l.split_once(':') {
                vdoms.insert(k.to_ascii_lowercase(), v.to_string());
            }
        }
        Ok((locals, vdoms))
    }

    pub fn load(c: &Control) -> Result<Routes, ControlError> {
        let me = c.me()?;
        let envnoathost = c.line_or("envnoathost", me.as_deref().unwrap_or("envnoathost"))?;
        let percenthack = c
            .lines_or_empty("percenthack")?
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let (locals, vdoms) = Self::load_locals(c, me.as_deref())?;
        Ok(Routes {
            envnoathost,
            percenthack,
            locals,
            vdoms,
        })
    }

    fn lc(b: &[u8]) -> String {
        String::from_utf8_lossy(b).to_ascii_lowercase()
    }

    /// The virtualdomains prepend for `addr` (full address, domain, `.suffix`es, then the empty
    /// key), `None` when nothing matches.
    pub fn vdom_prepend(&self, addr: &[u8]) -> Option<&str> {
        let at = addr.iter().rposition(|&b| b == b'@')?;
        if let Some(p) = self.vdoms.get(&Self::lc(addr)) {
            return Some(p);
        }
        let dom = &addr[at + 1..];
        if let Some(p) = self.vdoms.get(&Self::lc(dom)) {
            return Some(p);
        }
        for (i, &c) in dom.iter().enumerate() {
            if c == b'.'
                && let Some(p) = self.vdoms.get(&Self::lc(&dom[i..]))
            {
                return Some(p);
            }
        }
        self.vdoms.get("").map(String::as_str)
    }

    /// Rewrite one envelope recipient.
    pub fn rewrite(&self, recip: &[u8]) -> Route {
        let mut addr = recip.to_vec();
        if !addr.contains(&b'@') {
            addr.push(b'@');
            addr.extend_from_slice(self.envnoathost.as_bytes());
        }
        loop {
            let at = addr.iter().rposition(|&b| b == b'@').unwrap_or(0);
            if !self.percenthack.contains(&Self::lc(&addr[at + 1..])) {
                break;
            }
            let Some(pct) = addr[..at].iter().rposition(|&b| b == b'%') else {
                break;
            };
            addr.truncate(at);
            addr[pct] = b'@';
        }
        let at = addr.iter().rposition(|&b| b == b'@').unwrap_or(0);
        if self.locals.contains(&Self::lc(&addr[at + 1..])) {
            return Route::Local(addr);
        }
        match self.vdom_prepend(&addr) {
            Some(p) if !p.is_empty() => {
                let mut v = p.as_bytes().to_vec();
                v.push(b'-');
                v.extend_from_slice(&addr);
                Route::Local(v)
            }
            _ => Route::Remote(addr),
        }
    }

    /// Undo the virtualdomains prepend for an address shown in a bounce.
    pub fn strip_prepend(&self, local_addr: &[u8]) -> Vec<u8> {
        if let Some(p) = self.vdom_prepend(local_addr)
            && !p.is_empty()
        {
            let mut pre = p.as_bytes().to_vec();
            pre.push(b'-');
            if local_addr.len() > pre.len() && local_addr[..pre.len()].eq_ignore_ascii_case(&pre) {
                return local_addr[pre.len()..].to_vec();
            }
        }
        local_addr.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_like_qmail_send() {
        let mut r = Routes {
            envnoathost: "example.org".into(),
            ..Default::default()
        };
        r.locals.insert("example.org".into());
        r.percenthack.insert("relay.org".into());
        r.vdoms.insert("virt.org".into(), "joe".into());
        r.vdoms.insert(".sub.org".into(), "sub".into());
        r.vdoms.insert("nolocal.virt2.org".into(), "".into());
        assert_eq!(r.rewrite(b"bob"), Route::Local(b"bob@example.org".to_vec()));
        assert_eq!(
            r.rewrite(b"bob@Example.ORG"),
            Route::Local(b"bob@Example.ORG".to_vec())
        );
        assert_eq!(
            r.rewrite(b"u%h.com@relay.org"),
            Route::Remote(b"u@h.com".to_vec())
        );
        assert_eq!(
            r.rewrite(b"a@virt.org"),
            Route::Local(b"joe-a@virt.org".to_vec())
        );
        assert_eq!(
            r.rewrite(b"a@x.sub.org"),
            Route::Local(b"sub-a@x.sub.org".to_vec())
        );
        assert_eq!(
            r.rewrite(b"a@else.net"),
            Route::Remote(b"a@else.net".to_vec())
        );
        assert_eq!(r.strip_prepend(b"joe-a@virt.org"), b"a@virt.org");
        r.vdoms.insert("".into(), "alias-outgoing".into());
        assert_eq!(
            r.rewrite(b"a@else.net"),
            Route::Local(b"alias-outgoing-a@else.net".to_vec())
        );
        assert_eq!(
            r.rewrite(b"x@nolocal.virt2.org"),
            Route::Remote(b"x@nolocal.virt2.org".to_vec())
        );
    }
}
