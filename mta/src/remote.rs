//! `qmail-remote HOST SENDER RECIP…`: deliver the message on fd 0 to HOST by SMTP.
//!
//! Protocol with qmail-rspawn (qmail.md §1.3): qmail-remote always exits 0 and writes, on
//! fd 1, one report per recipient it got an answer for — `r` (accepted), `h` (permanent
//! rejection), `s` (temporary rejection), followed by text — and then one message report
//! starting with `K` (delivered), `Z` (temporary failure) or `D` (permanent failure). Every
//! report ends with a NUL byte. The texts are qmail's.
//!
//! Routing: `control/smtproutes` (`domain:relay[:port]`, tried for the host, each `.suffix`, and
//! the empty domain; an empty relay means "use MX"), else the host's MX list (equal preferences
//! in random order) or, without MX, its A/AAAA records. A relay is resolved by A/AAAA only and
//! skips the "I am an MX" check. `[1.2.3.4]` (or a bare IP) is used literally. If one of our
//! own addresses is among the exchangers only strictly better preferences are tried. Addresses
//! that timed out repeatedly are skipped for a while (see [`crate::tcpto`]). Without a relay,
//! each recipient's domain is replaced by its canonical name when it is a CNAME (as qmail
//! does; "CNAME lookup failed temporarily" when that lookup fails), and several recipients go
//! in one SMTP transaction.
//!
//! Controls: `helohost` (default `me`; one of them is required), `timeoutconnect` (60),
//! `timeoutremote` (1200), `smtproutes`. DNS servers: see [`dns`] (`$RQMAIL_RESOLVER`).
//!
//! Where we differ from qmail on purpose:
//! * IPv6: AAAA records and `[IPv6 literal]` relays are used (qmail is IPv4 only); a relay
//!   written `[addr]` may contain colons, e.g. `example.com:[::1]:2525`.
//! * `domain::PORT` in smtproutes (empty relay with a port) means "MX lookup as usual, but
//!   connect to PORT"; qmail treats it as an unresolvable empty host name.
//! * A message whose last line lacks its newline is refused before connecting (when fd 0 is a
//!   regular file) instead of after DATA; the text is qmail's.
//! * `timeoutremote` bounds a whole SMTP reply, not each read, and a reply longer than 64 KiB
//!   is a temporary failure ("reply was too long"); a reply that is not `DDD text` is a
//!   temporary failure ("malformed") whatever the digits would say — qmail reads such replies
//!   forever or misreads garbage as a code.
//! * An envelope address containing CR or LF is never put on the wire: the recipient gets a
//!   temporary `s` report (the sender: a `Z` message report) with a text saying so.
//! * A non-numeric timeout or port in a control file is "Unable to read control files"
//!   instead of being read as 0.

pub mod dns;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use crate::control::Control;
use crate::tcpto::Tcpto;
use dns::{Dns, DnsFail, Target};

/// Most reply text kept for a report (qmail's HUGESMTPTEXT).
const MAX_TEXT: usize = 5000;
/// Longest SMTP reply we read before giving up.
const MAX_REPLY: usize = 64 * 1024;

const TEMP_CONTROL: &str = "ZUnable to read control files. (#4.3.0)\n";
const TEMP_OSERR: &str = "ZSystem resources temporarily unavailable. (#4.3.0)\n";
const TEMP_NOCONN: &str = "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n";
const TEMP_READ: &str = "ZUnable to read message. (#4.3.0)\n";
const TEMP_DNSCANON: &str = "ZCNAME lookup failed temporarily. (#4.4.3)\n";
const TEMP_DNS: &str = "ZSorry, I couldn't find any host by that name. (#4.1.2)\n";
const PERM_PARTIAL: &str = "DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n";
const PERM_USAGE: &str = "DI (qmail-remote) was invoked improperly. (#5.3.5)\n";
const PERM_NOMX: &str = "DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n";
const PERM_AMBIGMX: &str = "DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n";
const TEMP_BADSENDER: &str =
    "ZSorry, the sender address contains a line break, which SMTP cannot carry. (#4.1.7)\n";
const SOFT_BADRCPT: &str =
    "Sorry, the recipient address contains a line break, which SMTP cannot carry. (#4.1.3)\n";
const TEMP_ALLBAD: &str =
    "ZSorry, every recipient address contains a line break; nothing to send. (#4.1.3)\n";

/// The program: reports on stdout, exit 0.
pub fn main() -> i32 {
    let args: Vec<Vec<u8>> = std::env::args_os()
        .skip(1)
        .map(|a| a.as_bytes().to_vec())
        .collect();
    let stdin = std::io::stdin();
    let meta = nix::sys::stat::fstat(0).ok();
    let mut input = stdin.lock();
    let out = run(
        &args,
        &mut input,
        meta.as_ref(),
        &Control::new(),
        &mut Tcpto::new(),
    );
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(&out);
    let _ = so.flush();
    0
}

/// One delivery: the complete output (recipient reports, then the message report).
pub fn run(
    args: &[Vec<u8>],
    msg: &mut dyn BufRead,
    meta: Option<&nix::sys::stat::FileStat>,
    ctl: &Control,
    tcpto: &mut Tcpto,
) -> Vec<u8> {
    let mut out = Vec::new();
    let fin = deliver(args, msg, meta, ctl, tcpto, &mut out);
    out.extend_from_slice(&fin);
    out.push(0);
    out
}

/// The settings qmail-remote reads from control/.
struct Settings {
    helohost: String,
    timeout: Duration,
    timeoutconnect: Duration,
    routes: HashMap<String, String>,
}

fn settings(ctl: &Control) -> Option<Settings> {
    let timeout = ctl.int_or("timeoutremote", 1200).ok()?.max(1);
    let timeoutconnect = ctl.int_or("timeoutconnect", 60).ok()?.max(1);
    let helohost = match ctl.line("helohost").ok()? {
        Some(h) if !h.is_empty() => h,
        _ => ctl.me().ok()??,
    };
    let mut routes = HashMap::new();
    for l in ctl.lines_or_empty("smtproutes").ok()? {
        let (k, v) = l.split_once(':').unwrap_or((l.as_str(), ""));
        // Last duplicate wins, lookups are case-insensitive.
        routes.insert(k.to_ascii_lowercase(), v.to_string());
    }
    Some(Settings {
        helohost,
        timeout: Duration::from_secs(timeout),
        timeoutconnect: Duration::from_secs(timeoutconnect),
        routes,
    })
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// MX lookup of the host itself, connecting to `port`.
    Mx { port: u16 },
    /// An artificial route from smtproutes.
    Relay { host: String, port: u16 },
}

/// Look `host` up in smtproutes: the host, then each `.suffix`, then the empty domain.
/// `None` for a malformed entry.
pub fn route(routes: &HashMap<String, String>, host: &str) -> Option<Route> {
    let h = host.to_ascii_lowercase();
    let b = h.as_bytes();
    let mut found = None;
    for i in 0..=b.len() {
        if (i == 0 || i == b.len() || b[i] == b'.')
            && let Some(v) = routes.get(&h[i..])
        {
            found = Some(v.as_str());
            break;
        }
    }
    let Some(v) = found else {
        return Some(Route::Mx { port: 25 });
    };
    let (relay, rest) = if v.starts_with('[') {
        match v.find(']') {
            Some(c) => (&v[..=c], &v[c + 1..]),
            None => return None,
        }
    } else {
        match v.find(':') {
            Some(c) => (&v[..c], &v[c..]),
            None => (v, ""),
        }
    };
    let port = match rest {
        "" => 25,
        r => r.strip_prefix(':')?.trim().parse::<u16>().ok()?,
    };
    if relay.is_empty() {
        Some(Route::Mx { port })
    } else {
        Some(Route::Relay {
            host: relay.to_string(),
            port,
        })
    }
}

/// An IP literal: `1.2.3.4`, `[1.2.3.4]`, `[::1]`, `[IPv6:::1]`.
pub fn literal(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let inner = host.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
        .unwrap_or(inner);
    inner.parse().ok()
}

/// qmail's quote(): the local part as RFC 821 wants it, quoting only when needed.
pub fn quote(local: &[u8]) -> Vec<u8> {
    fn ok(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"!#$%&'*+-./=?^_`{|}~".contains(&c)
    }
    let need = !local.is_empty()
        && (local.iter().any(|&c| !ok(c))
            || local[0] == b'.'
            || local[local.len() - 1] == b'.'
            || local.windows(2).any(|w| w == b".."));
    if !need {
        return local.to_vec();
    }
    let mut o = vec![b'"'];
    for &c in local {
        if matches!(c, b'\r' | b'\n' | b'"' | b'\\') {
            o.push(b'\\');
        }
        o.push(c);
    }
    o.push(b'"');
    o
}

fn has_linebreak(a: &[u8]) -> bool {
    a.iter().any(|&c| c == b'\r' || c == b'\n')
}

/// Our own addresses (0.0.0.0 and :: included, as qmail's ipme).
fn ipme() -> Option<Vec<IpAddr>> {
    let mut v: Vec<IpAddr> = vec![
        IpAddr::from([0, 0, 0, 0]),
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    ];
    for ifa in nix::ifaddrs::getifaddrs().ok()? {
        if let Some(a) = ifa.address {
            if let Some(s4) = a.as_sockaddr_in() {
                v.push(IpAddr::V4(s4.ip()));
            } else if let Some(s6) = a.as_sockaddr_in6() {
                v.push(IpAddr::V6(s6.ip()));
            }
        }
    }
    Some(v)
}

fn deliver(
    args: &[Vec<u8>],
    msg: &mut dyn BufRead,
    meta: Option<&nix::sys::stat::FileStat>,
    ctl: &Control,
    tcpto: &mut Tcpto,
    out: &mut Vec<u8>,
) -> Vec<u8> {
    if args.len() < 3 {
        return PERM_USAGE.into();
    }
    let Some(set) = settings(ctl) else {
        return TEMP_CONTROL.into();
    };
    let host = String::from_utf8_lossy(&args[0]).into_owned();
    let Some(route) = route(&set.routes, &host) else {
        return TEMP_CONTROL.into();
    };
    let (host, port, relayed) = match route {
        Route::Mx { port } => (host, port, false),
        Route::Relay { host, port } => (host, port, true),
    };

    // A message without a final newline can never be sent; find out before connecting.
    if let Some(st) = meta
        && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
        && st.st_size > 0
    {
        let mut last = [0u8; 1];
        match nix::sys::uio::pread(std::io::stdin(), &mut last, st.st_size - 1) {
            Ok(1) if last[0] != b'\n' => return PERM_PARTIAL.into(),
            _ => {}
        }
    }

    if has_linebreak(&args[1]) {
        return TEMP_BADSENDER.into();
    }
    let mut dns: Option<Dns> = None;

    let sender = mangle(&args[1], None).0;
    let mut rcpts: Vec<Option<Vec<u8>>> = Vec::new();
    let mut all_aliases = true;
    let mut canon: HashMap<Vec<u8>, Option<String>> = HashMap::new();
    for r in &args[2..] {
        if has_linebreak(r) {
            rcpts.push(None);
            continue;
        }
        let (m, alias) = if relayed {
            mangle(r, None)
        } else {
            let Some(d) = get_dns(&mut dns) else {
                return TEMP_OSERR.into();
            };
            match mangle_cname(r, d, &mut canon) {
                Ok(x) => x,
                Err(()) => return TEMP_DNSCANON.into(),
            }
        };
        if !alias {
            all_aliases = false;
        }
        rcpts.push(Some(m));
    }
    if rcpts.iter().all(Option::is_none) {
        for _ in &rcpts {
            out.push(b's');
            out.extend_from_slice(SOFT_BADRCPT.as_bytes());
            out.push(0);
        }
        return TEMP_ALLBAD.into();
    }

    let Some(me) = ipme() else {
        return TEMP_OSERR.into();
    };

    let targets: Result<Vec<Target>, DnsFail> = match literal(&host) {
        Some(ip) => Ok(vec![Target { ip, pref: 0 }]),
        None => {
            let Some(d) = get_dns(&mut dns) else {
                return TEMP_OSERR.into();
            };
            if relayed {
                d.a_targets(&host)
            } else {
                let mut rng = rand::rng();
                d.mx_targets(&host, &mut rng)
            }
        }
    };
    let targets = match targets {
        Ok(t) => t,
        Err(DnsFail::Soft(_)) => return TEMP_DNS.into(),
        Err(DnsFail::Hard) => {
            return format!("DSorry, I couldn't find any host named {host}. (#5.1.2)\n").into();
        }
    };
    if targets.is_empty() {
        return PERM_NOMX.into();
    }

    let mut prefme = 100_000u32;
    for t in &targets {
        if me.contains(&t.ip) && t.pref < prefme {
            prefme = t.pref;
        }
    }
    if relayed {
        prefme = 300_000;
    }
    if all_aliases {
        prefme = 500_000;
    }
    if !targets.iter().any(|t| t.pref < prefme) {
        return PERM_AMBIGMX.into();
    }

    for t in targets.iter().filter(|t| t.pref < prefme) {
        if tcpto.is_dead(&t.ip) {
            continue;
        }
        let sa = SocketAddr::new(t.ip, port);
        match TcpStream::connect_timeout(&sa, set.timeoutconnect) {
            Ok(stream) => {
                tcpto.record(&t.ip, false);
                return match Smtp::new(stream, t.ip, set.timeout) {
                    Some(mut s) => s.session(&set.helohost, &sender, &rcpts, msg, out),
                    None => TEMP_OSERR.into(),
                };
            }
            Err(e) => {
                let timed_out = matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                );
                tcpto.record(&t.ip, timed_out);
            }
        }
    }
    TEMP_NOCONN.into()
}

/// The resolver, started on first use.
fn get_dns(slot: &mut Option<Dns>) -> Option<&Dns> {
    if slot.is_none() {
        *slot = Dns::new().ok();
    }
    slot.as_ref()
}

/// qmail's addrmangle without the CNAME step: quote the local part; an address without `@`
/// is copied as it is. Returns the address and qmail's "alias" flag (false here).
fn mangle(addr: &[u8], canon: Option<&str>) -> (Vec<u8>, bool) {
    let Some(at) = addr.iter().rposition(|&c| c == b'@') else {
        return (addr.to_vec(), false);
    };
    let mut o = quote(&addr[..at]);
    o.push(b'@');
    match canon {
        Some(c) => o.extend_from_slice(c.as_bytes()),
        None => o.extend_from_slice(&addr[at + 1..]),
    }
    (o, false)
}

/// addrmangle with the CNAME step: the domain is replaced by its canonical name. The flag is
/// true when the domain was an alias (or the address has no domain), as qmail's flagalias.
/// `cache` remembers each domain's answer for the other recipients.
fn mangle_cname(
    addr: &[u8],
    d: &Dns,
    cache: &mut HashMap<Vec<u8>, Option<String>>,
) -> Result<(Vec<u8>, bool), ()> {
    let Some(at) = addr.iter().rposition(|&c| c == b'@') else {
        return Ok((addr.to_vec(), true));
    };
    let key = addr[at + 1..].to_ascii_lowercase();
    let canon = match cache.get(&key) {
        Some(c) => c.clone(),
        None => {
            let domain = String::from_utf8_lossy(&addr[at + 1..]).into_owned();
            let c = match d.cname(&domain) {
                Ok(c) => c,
                Err(DnsFail::Hard) => None,
                Err(DnsFail::Soft(_)) => return Err(()),
            };
            cache.insert(key, c.clone());
            c
        }
    };
    let alias = canon.is_some();
    Ok((mangle(addr, canon.as_deref()).0, alias))
}

/// One SMTP connection.
struct Smtp {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
    partner: IpAddr,
    timeout: Duration,
    /// Text of the last reply, CRs removed.
    text: Vec<u8>,
    /// The final dot has been sent: a dead connection may mean a duplicate.
    critical: bool,
}

/// A final message report.
type Fin = Vec<u8>;

impl Smtp {
    fn new(stream: TcpStream, partner: IpAddr, timeout: Duration) -> Option<Smtp> {
        stream.set_write_timeout(Some(timeout)).ok()?;
        let _ = stream.set_nodelay(true);
        let w = BufWriter::with_capacity(16 * 1024, stream.try_clone().ok()?);
        Some(Smtp {
            r: BufReader::new(stream),
            w,
            partner,
            timeout,
            text: Vec::new(),
            critical: false,
        })
    }

    fn dup(&self) -> &'static str {
        if self.critical {
            "Possible duplicate! "
        } else {
            ""
        }
    }

    /// The connection died (read or write failure, EOF or time-out).
    fn dropped(&self) -> Fin {
        format!(
            "ZConnected to {} but connection died. {}(#4.4.2)\n",
            self.partner,
            self.dup()
        )
        .into()
    }

    fn said(&self, o: &mut Vec<u8>) {
        if !self.text.is_empty() {
            o.extend_from_slice(b"Remote host said: ");
            o.extend(self.text.iter().map(|&c| if c == 0 { b'?' } else { c }));
        }
    }

    /// Send QUIT without waiting, then build "PREPEND IP APPEND.\n" + the last reply.
    fn quit(&mut self, prepend: &str, append: &str) -> Fin {
        let _ = self.w.write_all(b"QUIT\r\n").and_then(|_| self.w.flush());
        let mut o = format!("{prepend}{}{append}.\n", self.partner).into_bytes();
        self.said(&mut o);
        o
    }

    fn send(&mut self, data: &[u8]) -> Result<(), Fin> {
        self.w
            .write_all(data)
            .and_then(|_| self.w.flush())
            .map_err(|_| self.dropped())
    }

    fn byte(&mut self, deadline: Instant) -> Result<u8, Fin> {
        loop {
            if let Some(&c) = self.r.buffer().first() {
                self.r.consume(1);
                return Ok(c);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.dropped());
            }
            if self.r.get_ref().set_read_timeout(Some(left)).is_err() {
                return Err(self.dropped());
            }
            match self.r.fill_buf() {
                Ok([]) => return Err(self.dropped()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(self.dropped()),
            }
        }
    }

    /// Read one reply; its code, or a final report when the reply is unusable.
    fn code(&mut self) -> Result<u16, Fin> {
        self.text.clear();
        let deadline = Instant::now() + self.timeout;
        let mut total = 0usize;
        let mut code = None;
        loop {
            let mut line = Vec::new();
            loop {
                let c = self.byte(deadline)?;
                total += 1;
                if total > MAX_REPLY {
                    let _ = self.quit("", "");
                    return Err(format!(
                        "ZConnected to {} but its SMTP reply was too long. {}(#4.4.2)\n",
                        self.partner,
                        self.dup()
                    )
                    .into());
                }
                if c == b'\n' {
                    break;
                }
                if c != b'\r' {
                    line.push(c);
                }
            }
            let room = MAX_TEXT.saturating_sub(self.text.len());
            self.text.extend_from_slice(&line[..line.len().min(room)]);
            if self.text.len() < MAX_TEXT {
                self.text.push(b'\n');
            }
            let valid = line.len() >= 3
                && line[..3].iter().all(u8::is_ascii_digit)
                && matches!(line.get(3), None | Some(b' ') | Some(b'-'));
            if !valid {
                let head = format!(
                    "ZConnected to {} but its SMTP reply was malformed. {}(#4.4.2)\n",
                    self.partner,
                    self.dup()
                );
                let _ = self.quit("", "");
                let mut o = head.into_bytes();
                self.said(&mut o);
                return Err(o);
            }
            let this = u16::from(line[0] - b'0') * 100
                + u16::from(line[1] - b'0') * 10
                + u16::from(line[2] - b'0');
            let c = *code.get_or_insert(this);
            if line.get(3) != Some(&b'-') {
                return Ok(c);
            }
        }
    }

    fn session(
        &mut self,
        helohost: &str,
        sender: &[u8],
        rcpts: &[Option<Vec<u8>>],
        msg: &mut dyn BufRead,
        out: &mut Vec<u8>,
    ) -> Fin {
        match self.talk(helohost, sender, rcpts, msg, out) {
            Ok(f) | Err(f) => f,
        }
    }

    fn talk(
        &mut self,
        helohost: &str,
        sender: &[u8],
        rcpts: &[Option<Vec<u8>>],
        msg: &mut dyn BufRead,
        out: &mut Vec<u8>,
    ) -> Result<Fin, Fin> {
        if self.code()? != 220 {
            return Ok(self.quit("ZConnected to ", " but greeting failed"));
        }
        self.send(format!("HELO {helohost}\r\n").as_bytes())?;
        if self.code()? != 250 {
            return Ok(self.quit("ZConnected to ", " but my name was rejected"));
        }
        let mut cmd = b"MAIL FROM:<".to_vec();
        cmd.extend_from_slice(sender);
        cmd.extend_from_slice(b">\r\n");
        self.send(&cmd)?;
        let code = self.code()?;
        if code >= 500 {
            return Ok(self.quit("DConnected to ", " but sender was rejected"));
        }
        if code >= 400 {
            return Ok(self.quit("ZConnected to ", " but sender was rejected"));
        }
        let mut bother = false;
        for r in rcpts {
            let Some(r) = r else {
                out.push(b's');
                out.extend_from_slice(SOFT_BADRCPT.as_bytes());
                out.push(0);
                continue;
            };
            let mut cmd = b"RCPT TO:<".to_vec();
            cmd.extend_from_slice(r);
            cmd.extend_from_slice(b">\r\n");
            self.send(&cmd)?;
            let code = self.code()?;
            if code >= 400 {
                out.push(if code >= 500 { b'h' } else { b's' });
                out.extend_from_slice(
                    format!("{} does not like recipient.\n", self.partner).as_bytes(),
                );
                self.said(out);
                self.text.clear();
                out.push(0);
            } else {
                out.extend_from_slice(b"r\0");
                bother = true;
            }
        }
        if !bother {
            return Ok(self.quit("DGiving up on ", ""));
        }
        self.send(b"DATA\r\n")?;
        let code = self.code()?;
        if code >= 500 {
            return Ok(self.quit("D", " failed on DATA command"));
        }
        if code >= 400 {
            return Ok(self.quit("Z", " failed on DATA command"));
        }
        self.blast(msg)?;
        let code = self.code()?;
        if code >= 500 {
            return Ok(self.quit("D", " failed after I sent the message"));
        }
        if code >= 400 {
            return Ok(self.quit("Z", " failed after I sent the message"));
        }
        Ok(self.quit("K", " accepted message"))
    }

    /// Send the message: CRLF line ends, leading dots doubled, then the final dot.
    fn blast(&mut self, msg: &mut dyn BufRead) -> Result<(), Fin> {
        let mut line = Vec::with_capacity(1024);
        loop {
            line.clear();
            match read_line(msg, &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(TEMP_READ.into()),
            }
            if line.last() != Some(&b'\n') {
                return Err(PERM_PARTIAL.into());
            }
            line.pop();
            let w = &mut self.w;
            let r = (|| {
                if line.first() == Some(&b'.') {
                    w.write_all(b".")?;
                }
                w.write_all(&line)?;
                w.write_all(b"\r\n")
            })();
            if r.is_err() {
                return Err(self.dropped());
            }
        }
        self.critical = true;
        self.send(b".\r\n")
    }
}

fn read_line(msg: &mut dyn BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        match msg.read_until(b'\n', line) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(lines: &[&str]) -> HashMap<String, String> {
        lines
            .iter()
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.to_ascii_lowercase(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn smtproutes_lookup() {
        let r = routes(&[
            "example.net:127.0.0.1:2527",
            ".sub.example.org:relay.example.org",
            "plain.example.org:",
            "mxport.example.org::2626",
            "v6.example:[::1]:2525",
            ":smarthost.example:587",
        ]);
        assert_eq!(
            route(&r, "Example.NET"),
            Some(Route::Relay {
                host: "127.0.0.1".into(),
                port: 2527
            })
        );
        assert_eq!(
            route(&r, "a.sub.example.org"),
            Some(Route::Relay {
                host: "relay.example.org".into(),
                port: 25
            })
        );
        assert_eq!(route(&r, "plain.example.org"), Some(Route::Mx { port: 25 }));
        assert_eq!(
            route(&r, "mxport.example.org"),
            Some(Route::Mx { port: 2626 })
        );
        assert_eq!(
            route(&r, "v6.example"),
            Some(Route::Relay {
                host: "[::1]".into(),
                port: 2525
            })
        );
        assert_eq!(
            route(&r, "elsewhere.example"),
            Some(Route::Relay {
                host: "smarthost.example".into(),
                port: 587
            })
        );
        assert_eq!(route(&routes(&["x:h:notaport"]), "x"), None);
        assert_eq!(route(&HashMap::new(), "x"), Some(Route::Mx { port: 25 }));
    }

    #[test]
    fn literals() {
        assert_eq!(literal("[127.0.0.1]"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(literal("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(literal("[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal("example.com"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(b"joe.user"), b"joe.user");
        assert_eq!(quote(b"joe user"), b"\"joe user\"");
        assert_eq!(quote(b".joe"), b"\".joe\"");
        assert_eq!(quote(b"a..b"), b"\"a..b\"");
        assert_eq!(quote(b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(quote(b""), b"");
        assert_eq!(mangle(b"a b@x.org", None).0, b"\"a b\"@x.org");
        assert_eq!(mangle(b"", None).0, b"");
    }
}
