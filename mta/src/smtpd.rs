//! qmail-smtpd: receive mail over SMTP on fd 0/1 (normally under tcpserver) and hand it to
//! qmail-queue (or `$QMAILQUEUE`).
//!
//! The dialogue follows qmail-smtpd 1.03/notqmail: same verbs, same reply texts, the same
//! Received line, the same address parsing (source routes stripped, quotes and backslashes
//! removed, `box@[our IP]` rewritten to `box@localiphost`), badmailfrom (exact or `@domain`,
//! checked at RCPT), rcpthosts + morercpthosts.cdb, RELAYCLIENT (its value appended to every
//! recipient), databytes (control file, overridden by `$DATABYTES`), timeoutsmtpd, the
//! hop limit (100 Received/Delivered-To lines → 554), the bare-LF 451 refusal, and
//! qmail-queue's exit codes mapped to 451/554 replies.
//!
//! Deliberate differences from qmail:
//! * **No open relay by default.** qmail accepts every recipient when `control/rcpthosts` is
//!   missing; we then refuse every recipient that has a domain (553, the rcpthosts text) and
//!   say why on stderr. Recipients without `@` (they get `envnoathost`, a local domain) pass.
//! * Without RELAYCLIENT, recipients whose local part contains `%`, `!` or `@` (after quotes
//!   are removed, e.g. `"a@b"@ours`) are refused with the same 553: they are the classic
//!   relay tricks (percent hack, bang paths) that qmail-smtpd would accept for a later
//!   rewrite. Every refusal is logged on stderr.
//! * EHLO also advertises `SIZE` (RFC 1870, the databytes limit, 0 = none), and a `SIZE=`
//!   parameter of MAIL larger than databytes is refused at once with qmail's 552 text.
//! * Command lines are kept up to 64 KiB (the rest is read and thrown away, so a 1 MB line
//!   costs no memory; an over-long MAIL/RCPT gets qmail's 555), and at most 20,000
//!   recipients are taken per message ("452 too many recipients (#4.5.3)").
//! * Replies are flushed whenever the server would wait for input, which includes qmail's
//!   explicit flush points.

pub mod netio;

use std::collections::HashSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::control::Control;
use crate::qq::{QueueClient, QueueResult};
use netio::{NetError, NetIo};

/// Longest command line kept (the rest is discarded).
pub const MAX_LINE: usize = 65536;
/// qmail's limit on an address.
pub const MAX_ADDR: usize = 900;
/// Most recipients accepted for one message.
pub const MAX_RCPTS: usize = 20_000;
/// qmail's hop limit.
pub const MAX_HOPS: usize = 100;

/// The help text of notqmail (the transcripts' version).
pub const HELP_TEXT: &str = "214 notqmail home page: https://notqmail.org\r\n";

/// Everything read from the control files and the environment at start.
pub struct Config {
    pub greeting: String,
    pub localiphost: String,
    /// `None`: control/rcpthosts is missing.
    pub rcpthosts: Option<HashSet<String>>,
    pub morercpthosts: Option<cdb2::CDB>,
    pub badmailfrom: HashSet<String>,
    pub databytes: u64,
    pub timeout: Duration,
    pub relayclient: Option<Vec<u8>>,
    pub remoteip: String,
    pub remotehost: String,
    pub remoteinfo: Option<String>,
    pub localhost: String,
    /// This host's IPv4 addresses, looked up the first time an address literal needs them.
    pub local_ips: std::cell::OnceCell<HashSet<Ipv4Addr>>,
}

fn env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| String::from_utf8_lossy(v.as_encoded_bytes()).into_owned())
}

/// The IPv4 addresses of this host's interfaces, plus 0.0.0.0 (as netqmail's ipme).
pub fn local_ipv4s() -> HashSet<Ipv4Addr> {
    let mut set = HashSet::new();
    set.insert(Ipv4Addr::UNSPECIFIED);
    set.insert(Ipv4Addr::LOCALHOST);
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                set.insert(sin.ip());
            }
        }
    }
    set
}

impl Config {
    /// Is `ip` one of this host's addresses (or 0.0.0.0)?
    pub fn is_local_ip(&self, ip: Ipv4Addr) -> bool {
        self.local_ips.get_or_init(local_ipv4s).contains(&ip)
    }

    /// Read the controls of `ctl` and the tcpserver environment.
    pub fn load(ctl: &Control) -> Result<Config, String> {
        let e = |x: crate::control::ControlError| x.to_string();
        let me = ctl.me().map_err(e)?;
        let greeting = match ctl.line("smtpgreeting").map_err(e)? {
            Some(g) if !g.is_empty() => g,
            _ => me
                .clone()
                .ok_or_else(|| format!("{} is missing", ctl.path("me").display()))?,
        };
        let localiphost = match ctl.line("localiphost").map_err(e)? {
            Some(g) if !g.is_empty() => g,
            _ => me
                .clone()
                .ok_or_else(|| format!("{} is missing", ctl.path("me").display()))?,
        };
        let rcpthosts = ctl
            .lines("rcpthosts")
            .map_err(e)?
            .map(|l| l.into_iter().map(|h| h.to_ascii_lowercase()).collect());
        let mrh = ctl.path("morercpthosts.cdb");
        let morercpthosts = match cdb2::CDB::open(&mrh) {
            Ok(c) => Some(c),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(format!("unable to read {}: {err}", mrh.display())),
        };
        let badmailfrom = ctl
            .lines_or_empty("badmailfrom")
            .map_err(e)?
            .into_iter()
            .map(|l| l.to_ascii_lowercase())
            .collect();
        let mut databytes = ctl.int_or("databytes", 0).map_err(e)?;
        if let Some(d) = env("DATABYTES") {
            // Like qmail's scan_ulong: leading digits, anything else ends the number.
            let digits: String = d
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            databytes = digits.parse().unwrap_or(0);
        }
        let t = ctl.int_or("timeoutsmtpd", 1200).map_err(e)?;
        let timeout = Duration::from_secs(t.max(1));
        Ok(Config {
            greeting,
            localiphost,
            rcpthosts,
            morercpthosts,
            badmailfrom,
            databytes,
            timeout,
            relayclient: std::env::var_os("RELAYCLIENT").map(|v| v.as_encoded_bytes().to_vec()),
            remoteip: env("TCPREMOTEIP").unwrap_or_else(|| "unknown".into()),
            remotehost: env("TCPREMOTEHOST").unwrap_or_else(|| "unknown".into()),
            remoteinfo: env("TCPREMOTEINFO"),
            localhost: env("TCPLOCALHOST")
                .or_else(|| env("TCPLOCALIP"))
                .unwrap_or_else(|| "unknown".into()),
            local_ips: std::cell::OnceCell::new(),
        })
    }
}

/// Parse the argument of MAIL/RCPT as qmail's addrparse: the text inside `<…>` (or after
/// `:` up to a space), source route stripped, quotes and backslashes removed; a NUL ends it.
/// Returns `None` for an address over 900 bytes.
pub fn parse_addr(
    arg: &[u8],
    localiphost: &str,
    is_local_ip: &dyn Fn(Ipv4Addr) -> bool,
) -> Option<Vec<u8>> {
    let (mut rest, terminator) = match memchr::memchr(b'<', arg) {
        Some(i) => (&arg[i + 1..], b'>'),
        None => {
            let mut r = match memchr::memchr(b':', arg) {
                Some(i) => &arg[i + 1..],
                None => &arg[arg.len()..],
            };
            while r.first() == Some(&b' ') {
                r = &r[1..];
            }
            (r, b' ')
        }
    };
    if rest.first() == Some(&b'@') {
        rest = match memchr::memchr(b':', rest) {
            Some(i) => &rest[i + 1..],
            None => &rest[rest.len()..],
        };
    }
    let mut addr = Vec::with_capacity(rest.len().min(1024));
    let mut esc = false;
    let mut quoted = false;
    for &c in rest {
        if c == 0 {
            break;
        }
        if esc {
            addr.push(c);
            esc = false;
            continue;
        }
        if !quoted && c == terminator {
            break;
        }
        match c {
            b'\\' => esc = true,
            b'"' => quoted = !quoted,
            _ => addr.push(c),
        }
        if addr.len() > MAX_ADDR {
            return None;
        }
    }
    if let Some(at) = memchr::memrchr(b'@', &addr) {
        let host = &addr[at + 1..];
        if host.first() == Some(&b'[') && host.last() == Some(&b']') {
            let inner = &host[1..host.len() - 1];
            if let Some(ip) = std::str::from_utf8(inner)
                .ok()
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
                && is_local_ip(ip)
            {
                addr.truncate(at + 1);
                addr.extend_from_slice(localiphost.as_bytes());
            }
        }
    }
    if addr.len() > MAX_ADDR {
        return None;
    }
    Some(addr)
}

/// The ESMTP `SIZE=` parameter after the address, if any.
fn size_param(arg: &[u8]) -> Option<u64> {
    let after = match memchr::memchr(b'>', arg) {
        Some(i) => &arg[i + 1..],
        None => return None,
    };
    let text = String::from_utf8_lossy(after);
    text.split_ascii_whitespace().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.eq_ignore_ascii_case("size") {
            v.parse().ok()
        } else {
            None
        }
    })
}

/// Why a recipient is refused (None = accepted).
pub fn relay_refusal(cfg: &Config, addr: &[u8]) -> Option<String> {
    let at = memchr::memrchr(b'@', addr);
    let local = match at {
        Some(i) => &addr[..i],
        None => addr,
    };
    if local.iter().any(|c| matches!(c, b'%' | b'!' | b'@')) {
        return Some("its local part contains % ! or @ (a relay trick)".into());
    }
    let Some(at) = at else {
        return None; // no domain: envnoathost, a local domain
    };
    let Some(rh) = &cfg.rcpthosts else {
        return Some(
            "control/rcpthosts is missing, so no domain is accepted (qmail would relay for anyone)"
                .into(),
        );
    };
    let host = addr[at + 1..].to_ascii_lowercase();
    let host = String::from_utf8_lossy(&host).into_owned();
    let candidates: Vec<&str> = std::iter::once(host.as_str())
        .chain(host.match_indices('.').map(|(i, _)| &host[i..]))
        .collect();
    if candidates.iter().any(|c| rh.contains(*c)) {
        return None;
    }
    if let Some(cdb) = &cfg.morercpthosts {
        for c in &candidates {
            if let Some(Ok(_)) = cdb.get(c.as_bytes()) {
                return None;
            }
        }
    }
    Some("its domain is not in rcpthosts or morercpthosts".into())
}

fn badmailfrom(cfg: &Config, sender: &[u8]) -> bool {
    if cfg.badmailfrom.is_empty() {
        return false;
    }
    let s = String::from_utf8_lossy(sender).to_ascii_lowercase();
    if cfg.badmailfrom.contains(&s) {
        return true;
    }
    match s.rfind('@') {
        Some(i) => cfg.badmailfrom.contains(&s[i..]),
        None => false,
    }
}

/// qmail's received.c safe characters (notqmail 1.09 adds `[` and `]`).
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".@%+/=:[]-".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The Received line qmail-smtpd prepends.
pub fn received_line(cfg: &Config, helo: Option<&str>, now: SystemTime) -> String {
    let mut s = format!("Received: from {}", safe(&cfg.remotehost));
    if let Some(h) = helo {
        s.push_str(&format!(" (HELO {})", safe(h)));
    }
    s.push_str(" (");
    if let Some(info) = &cfg.remoteinfo {
        s.push_str(&safe(info));
        s.push('@');
    }
    s.push_str(&safe(&cfg.remoteip));
    s.push_str(&format!(
        ")\n  by {} with SMTP; {}\n",
        safe(&cfg.localhost),
        crate::util::date822fmt(now)
    ));
    s
}

/// Outcome of reading a message body.
enum Blast {
    Done { hops: usize, overflow: bool },
    BareLf,
}

/// One SMTP session.
pub struct Session {
    cfg: Config,
    io: NetIo,
    /// HELO argument when it differs from TCPREMOTEHOST.
    fakehelo: Option<String>,
    seenmail: bool,
    flagbarf: bool,
    mailfrom: Vec<u8>,
    rcpts: Vec<Vec<u8>>,
}

fn log(msg: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "qmail-smtpd: pid {}: {msg}",
        std::process::id()
    );
}

impl Session {
    pub fn new(cfg: Config) -> Session {
        let io = NetIo::stdio(cfg.timeout);
        Session {
            cfg,
            io,
            fakehelo: None,
            seenmail: false,
            flagbarf: false,
            mailfrom: Vec::new(),
            rcpts: Vec::new(),
        }
    }

    /// Run the dialogue; returns the exit code.
    pub fn run(&mut self) -> i32 {
        if self.cfg.rcpthosts.is_none() && self.cfg.relayclient.is_none() {
            log(
                "control/rcpthosts is missing: refusing every recipient with a domain (qmail would be an open relay)",
            );
        }
        let g = format!("220 {} ESMTP\r\n", self.cfg.greeting);
        self.io.out(g);
        match self.commands() {
            Ok(code) => code,
            Err(NetError::Timeout) => {
                self.io.out("451 timeout (#4.4.2)\r\n");
                let _ = self.io.flush();
                1
            }
            Err(_) => 1,
        }
    }

    fn commands(&mut self) -> Result<i32, NetError> {
        loop {
            let line = self.io.line(MAX_LINE)?;
            let text = &line.text;
            let (verb, arg) = match memchr::memchr(b' ', text) {
                Some(i) => {
                    let mut a = &text[i + 1..];
                    while a.first() == Some(&b' ') {
                        a = &a[1..];
                    }
                    (&text[..i], a.to_vec())
                }
                None => (&text[..], Vec::new()),
            };
            let verb = verb.to_ascii_lowercase();
            match verb.as_slice() {
                b"helo" => {
                    self.helo(&arg);
                    let r = format!("250 {}\r\n", self.cfg.greeting);
                    self.io.out(r);
                }
                b"ehlo" => {
                    self.helo(&arg);
                    let r = format!(
                        "250-{}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE {}\r\n",
                        self.cfg.greeting, self.cfg.databytes
                    );
                    self.io.out(r);
                }
                b"mail" => self.mail(&arg, line.overflow),
                b"rcpt" => self.rcpt(&arg, line.overflow),
                b"data" => {
                    if !self.data()? {
                        return Ok(1);
                    }
                }
                b"rset" => {
                    self.seenmail = false;
                    self.io.out("250 flushed\r\n");
                }
                b"noop" => self.io.out("250 ok\r\n"),
                b"vrfy" => self.io.out("252 send some mail, i'll try my best\r\n"),
                b"help" => self.io.out(HELP_TEXT),
                b"quit" => {
                    let r = format!("221 {}\r\n", self.cfg.greeting);
                    self.io.out(r);
                    self.io.flush()?;
                    return Ok(0);
                }
                _ => self.io.out("502 unimplemented (#5.5.1)\r\n"),
            }
        }
    }

    fn helo(&mut self, arg: &[u8]) {
        self.seenmail = false;
        let h = String::from_utf8_lossy(arg).into_owned();
        self.fakehelo = if h.eq_ignore_ascii_case(&self.cfg.remotehost) {
            None
        } else {
            Some(h)
        };
    }

    fn mail(&mut self, arg: &[u8], overflow: bool) {
        let parsed = if overflow {
            None
        } else {
            parse_addr(arg, &self.cfg.localiphost, &|ip| self.cfg.is_local_ip(ip))
        };
        let Some(addr) = parsed else {
            self.io.out("555 syntax error (#5.5.4)\r\n");
            return;
        };
        if self.cfg.databytes > 0
            && let Some(n) = size_param(arg)
            && n > self.cfg.databytes
        {
            self.io
                .out("552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n");
            return;
        }
        self.flagbarf = badmailfrom(&self.cfg, &addr);
        self.seenmail = true;
        self.mailfrom = addr;
        self.rcpts.clear();
        self.io.out("250 ok\r\n");
    }

    fn rcpt(&mut self, arg: &[u8], overflow: bool) {
        if !self.seenmail {
            self.io.out("503 MAIL first (#5.5.1)\r\n");
            return;
        }
        let parsed = if overflow {
            None
        } else {
            parse_addr(arg, &self.cfg.localiphost, &|ip| self.cfg.is_local_ip(ip))
        };
        let Some(mut addr) = parsed else {
            self.io.out("555 syntax error (#5.5.4)\r\n");
            return;
        };
        if self.flagbarf {
            log(&format!(
                "{}: sender <{}> is in badmailfrom",
                self.cfg.remoteip,
                String::from_utf8_lossy(&self.mailfrom)
            ));
            self.io
                .out("553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n");
            return;
        }
        if let Some(rc) = &self.cfg.relayclient {
            addr.extend_from_slice(rc);
        } else if let Some(why) = relay_refusal(&self.cfg, &addr) {
            log(&format!(
                "{}: refused relaying to <{}>: {why}",
                self.cfg.remoteip,
                String::from_utf8_lossy(&addr)
            ));
            self.io
                .out("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n");
            return;
        }
        if self.rcpts.len() >= MAX_RCPTS {
            self.io.out("452 too many recipients (#4.5.3)\r\n");
            return;
        }
        self.rcpts.push(addr);
        self.io.out("250 ok\r\n");
    }

    /// DATA; returns Ok(false) when the session must end (bare LF).
    fn data(&mut self) -> Result<bool, NetError> {
        if !self.seenmail {
            self.io.out("503 MAIL first (#5.5.1)\r\n");
            return Ok(true);
        }
        if self.rcpts.is_empty() {
            self.io.out("503 RCPT first (#5.5.1)\r\n");
            return Ok(true);
        }
        self.seenmail = false;
        let mut qq = match QueueClient::open() {
            Ok(q) => q,
            Err(e) => {
                log(&format!(
                    "cannot run {}: {e}",
                    crate::qq::qmail_queue_program().display()
                ));
                self.io.out("451 qqt failure (#4.3.0)\r\n");
                return Ok(true);
            }
        };
        let qp = qq.pid();
        self.io.out("354 go ahead\r\n");
        self.io.flush()?;
        let received = received_line(&self.cfg, self.fakehelo.as_deref(), SystemTime::now());
        let mut qq_ok = true;
        let outcome = match self.blast(&mut qq, &mut qq_ok, received.as_bytes()) {
            Ok(o) => o,
            Err(e) => {
                // The client vanished or timed out mid-DATA: queue nothing.
                qq.abort();
                return Err(e);
            }
        };
        match outcome {
            Blast::BareLf => {
                qq.abort();
                log(&format!(
                    "{}: bare LF in DATA, disconnecting",
                    self.cfg.remoteip
                ));
                self.io
                    .out("451 See https://cr.yp.to/docs/smtplf.html.\r\n");
                self.io.flush()?;
                Ok(false)
            }
            Blast::Done { hops, overflow } => {
                if hops >= MAX_HOPS {
                    qq.abort();
                    self.io
                        .out("554 too many hops, this message is looping (#5.4.6)\r\n");
                } else if overflow {
                    qq.abort();
                    self.io.out(
                        "552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n",
                    );
                } else {
                    let res = qq.finish(&self.mailfrom, &self.rcpts);
                    let res = match res {
                        QueueResult::Ok if !qq_ok => {
                            QueueResult::Temporary("qq write error or disk full (#4.3.0)".into())
                        }
                        r => r,
                    };
                    match res {
                        QueueResult::Ok => {
                            let t = SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .map(|d| d.as_secs())
                                .unwrap_or(0);
                            let r = format!("250 ok {t} qp {qp}\r\n");
                            self.io.out(r);
                        }
                        QueueResult::Temporary(t) => self.io.out(format!("451 {t}\r\n")),
                        QueueResult::Permanent(t) => self.io.out(format!("554 {t}\r\n")),
                    }
                }
                Ok(true)
            }
        }
    }

    /// Read the message up to CRLF.CRLF, undo dot-stuffing and CRLF, count hops and bytes,
    /// and write it after `received` (our Received line, not counted) to qmail-queue in
    /// 64 KiB chunks: a small message goes in one write.
    fn blast(
        &mut self,
        qq: &mut QueueClient,
        qq_ok: &mut bool,
        received: &[u8],
    ) -> Result<Blast, NetError> {
        let limit = self.cfg.databytes;
        let mut stored: u64 = 0;
        let mut overflow = false;
        let mut buf: Vec<u8> = Vec::with_capacity(65536 + received.len());
        buf.extend_from_slice(received);
        // Header scanning (on the raw input, like qmail).
        let mut in_header = true;
        let mut pos: usize = 0;
        let mut maybe_received = true;
        let mut maybe_delivered = true;
        let mut maybe_end = true;
        let mut hops = 0usize;
        let mut state = 1u8;
        loop {
            let ch = self.io.byte()?;
            if in_header {
                if pos < 9 {
                    if ch.to_ascii_lowercase() != b"delivered"[pos] {
                        maybe_delivered = false;
                    }
                    if maybe_delivered && pos == 8 {
                        hops += 1;
                    }
                    if pos < 8 {
                        if ch.to_ascii_lowercase() != b"received"[pos] {
                            maybe_received = false;
                        }
                        if maybe_received && pos == 7 {
                            hops += 1;
                        }
                    }
                    if pos < 2 {
                        if ch != b"\r\n"[pos] {
                            maybe_end = false;
                        }
                        if maybe_end && pos == 1 {
                            in_header = false;
                        }
                    }
                }
                pos += 1;
                if ch == b'\n' {
                    pos = 0;
                    maybe_received = true;
                    maybe_delivered = true;
                    maybe_end = true;
                }
            }
            let mut emit: [u8; 3] = [0; 3];
            let mut n = 0usize;
            match state {
                0 => {
                    if ch == b'\n' {
                        return Ok(Blast::BareLf);
                    }
                    if ch == b'\r' {
                        state = 4;
                        continue;
                    }
                }
                1 => {
                    if ch == b'\n' {
                        return Ok(Blast::BareLf);
                    }
                    if ch == b'.' {
                        state = 2;
                        continue;
                    }
                    if ch == b'\r' {
                        state = 4;
                        continue;
                    }
                    state = 0;
                }
                2 => {
                    if ch == b'\n' {
                        return Ok(Blast::BareLf);
                    }
                    if ch == b'\r' {
                        state = 3;
                        continue;
                    }
                    state = 0;
                }
                3 => {
                    if ch == b'\n' {
                        break;
                    }
                    emit[0] = b'.';
                    emit[1] = b'\r';
                    n = 2;
                    if ch == b'\r' {
                        state = 4;
                        Self::put(&emit[..n], &mut buf, &mut stored, limit, &mut overflow);
                        continue;
                    }
                    state = 0;
                }
                _ => {
                    // after CR
                    if ch == b'\n' {
                        state = 1;
                    } else if ch != b'\r' {
                        emit[n] = b'\r';
                        n += 1;
                        state = 0;
                    }
                }
            }
            emit[n] = ch;
            n += 1;
            Self::put(&emit[..n], &mut buf, &mut stored, limit, &mut overflow);
            if buf.len() >= 65536 {
                if *qq_ok && !overflow && qq.write_all(&buf).is_err() {
                    *qq_ok = false;
                }
                buf.clear();
            }
        }
        if *qq_ok && !overflow && !buf.is_empty() && qq.write_all(&buf).is_err() {
            *qq_ok = false;
        }
        Ok(Blast::Done { hops, overflow })
    }

    fn put(bytes: &[u8], buf: &mut Vec<u8>, stored: &mut u64, limit: u64, overflow: &mut bool) {
        *stored += bytes.len() as u64;
        if limit > 0 && *stored > limit {
            *overflow = true;
        }
        if !*overflow {
            buf.extend_from_slice(bytes);
        }
    }
}

/// The qmail-smtpd program: exit code.
pub fn main() -> i32 {
    let ctl = Control::new();
    let cfg = match Config::load(&ctl) {
        Ok(c) => c,
        Err(e) => {
            log(&e);
            let mut io = NetIo::stdio(Duration::from_secs(60));
            io.out("421 unable to read controls (#4.3.0)\r\n");
            let _ = io.flush();
            return 1;
        }
    };
    let mut s = Session::new(cfg);
    s.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips() -> HashSet<Ipv4Addr> {
        [Ipv4Addr::new(127, 0, 0, 1)].into_iter().collect()
    }

    #[test]
    fn addresses_parse_like_qmail() {
        let p = |s: &str| {
            parse_addr(s.as_bytes(), "mail.example.org", &|ip| ips().contains(&ip))
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(p("FROM:<a@b>").unwrap(), "a@b");
        assert_eq!(p("FROM: <a@b> SIZE=10").unwrap(), "a@b");
        assert_eq!(p("TO:a@b junk").unwrap(), "a@b");
        assert_eq!(p("TO:<@x,@y:a@b>").unwrap(), "a@b");
        assert_eq!(p("TO:<\"a b\\>\"@c>").unwrap(), "a b>@c");
        assert_eq!(p("TO:<bob@[127.0.0.1]>").unwrap(), "bob@mail.example.org");
        assert_eq!(p("TO:<bob@[10.9.9.9]>").unwrap(), "bob@[10.9.9.9]");
        assert_eq!(p("FROM:<>").unwrap(), "");
        assert!(p(&format!("TO:<{}@x>", "a".repeat(901))).is_none());
    }

    #[test]
    fn size_parameter() {
        assert_eq!(size_param(b"FROM:<a@b> SIZE=123 BODY=8BITMIME"), Some(123));
        assert_eq!(size_param(b"FROM:<a@b>"), None);
    }

    #[test]
    fn received_line_form() {
        let cfg = Config {
            greeting: "g".into(),
            localiphost: "l".into(),
            rcpthosts: None,
            morercpthosts: None,
            badmailfrom: HashSet::new(),
            databytes: 0,
            timeout: Duration::from_secs(1),
            relayclient: None,
            remoteip: "192.0.2.9".into(),
            remotehost: "client.example.net".into(),
            remoteinfo: Some("joe x".into()),
            localhost: "mail.example.org".into(),
            local_ips: std::cell::OnceCell::new(),
        };
        let t = UNIX_EPOCH + Duration::from_secs(1_795_563_080);
        assert_eq!(
            received_line(&cfg, Some("fake<helo>"), t),
            "Received: from client.example.net (HELO fake?helo?) (joe?x@192.0.2.9)\n  by mail.example.org with SMTP; 24 Nov 2026 23:31:20 -0000\n"
        );
    }
}
