//! `tcpserver [opts] host port program…`: accept TCP connections and run `program` for each
//! one, in a forked child, with the socket on fd 0 and fd 1 and the ucspi environment
//! (PROTO, TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT, TCPREMOTEHOST,
//! TCPREMOTEINFO, and variables from the rules cdb).
//!
//! Options as ucspi-tcp 0.88: -c limit (40; further connections wait in the listen queue until a
//! child exits), -x rules.cdb, -X (missing cdb = allow), -B banner, -g gid, -u uid, -U ($GID,
//! $UID), -1 (print the port), -b backlog (20), -l localname, -h/-H (look up TCPREMOTEHOST or
//! not; -h is the default), -p/-P (paranoid double-reverse check; -P default), -r/-R (ident
//! for TCPREMOTEINFO or not; -r default), -t timeout (ident, 26 s), -d/-D (TCP_NODELAY off/on),
//! -o/-O (accepted, ignored), -q/-Q/-v (quiet / errors only, the default / verbose).
//! Additions: -4 and -6 choose the family for host `0`/`` (IPv4 by default; -6 listens on `::`,
//! which also takes IPv4 connections). Log lines (stderr, -v) are ucspi-tcp's, byte for byte.
//!
//! The process stays single-threaded. When a connection needs a name lookup or an ident query
//! (no -l, or -h, or -r), a banner (-B) or per-connection log lines (-v), the child is made with
//! fork(2) and does that work and the rules lookup before it execs the program, so a slow lookup
//! never holds up the accept loop. Otherwise (the usual `-H -R -l name` server) nothing can
//! block but the read of the rules cdb: the server looks the rules up itself and starts the
//! program with posix_spawn(3) (vfork-style: no copy of the server's memory), which makes each
//! connection cheaper. What the program gets (descriptors, environment, signal dispositions) and
//! what is logged are the same either way.

use crate::common::{
    ConnInfo, build_env, canonical, default_signals, errtext, exec, forward_confirms, getopt,
    ident, reverse_name, safe, spawn,
};
use crate::rules::{Rules, Verdict};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const USAGE: &str = "tcpserver: usage: tcpserver [ -146UXpPhHrRoOdDqQv ] [ -c limit ] [ -x rules.cdb ] [ -B banner ] [ -g gid ] [ -u uid ] [ -b backlog ] [ -l localname ] [ -t timeout ] host port program";

/// tcpserver's settings.
#[derive(Debug, Clone)]
pub struct Opts {
    pub limit: usize,
    pub backlog: i32,
    pub rules: Option<PathBuf>,
    pub allow_norules: bool,
    pub banner: String,
    pub gid: Option<u32>,
    pub uid: Option<u32>,
    pub print_port: bool,
    pub localname: Option<String>,
    pub remotehost: bool,
    pub paranoid: bool,
    pub remoteinfo: bool,
    pub timeout: u64,
    pub nodelay: bool,
    pub verbosity: u8,
    pub v6: Option<bool>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            limit: 40,
            backlog: 20,
            rules: None,
            allow_norules: false,
            banner: String::new(),
            gid: None,
            uid: None,
            print_port: false,
            localname: None,
            remotehost: true,
            paranoid: false,
            remoteinfo: true,
            timeout: 26,
            nodelay: false,
            verbosity: 1,
            v6: None,
        }
    }
}

/// Write one whole line to stderr with a single write, so lines of concurrent children never
/// interleave.
fn log(line: &str) {
    let mut b = Vec::with_capacity(line.len() + 1);
    b.extend_from_slice(line.as_bytes());
    b.push(b'\n');
    let _ = io::stderr().lock().write_all(&b);
}

fn fatal(msg: &str) -> i32 {
    log(&format!("tcpserver: fatal: {msg}"));
    111
}

fn usage(bad: Option<String>) -> i32 {
    if let Some(m) = bad {
        log(&format!("tcpserver: {m}"));
    }
    log(USAGE);
    100
}

fn num<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.parse().ok()
}

/// Parse the command line into options and (host, port, program…).
/// The error is the message to print before the usage line, if any.
pub fn parse_args(args: &[String]) -> Result<(Opts, Vec<String>), Option<String>> {
    let (flags, rest) = getopt(args, "146UXpPhHrRoOdDqQvc:x:B:g:u:b:l:t:")
        .map_err(|c| Some(format!("illegal option -- {c}")))?;
    let bad = |c: char, v: &str| Some(format!("-{c} needs a number, not {v:?}"));
    let mut o = Opts::default();
    for (c, v) in flags {
        match c {
            '1' => o.print_port = true,
            '4' => o.v6 = Some(false),
            '6' => o.v6 = Some(true),
            'U' => {
                let env_num = |n: &str| std::env::var(n).ok().and_then(|s| num::<u32>(&s));
                if let Some(g) = env_num("GID") {
                    o.gid = Some(g);
                }
                if let Some(u) = env_num("UID") {
                    o.uid = Some(u);
                }
            }
            'X' => o.allow_norules = true,
            'p' => o.paranoid = true,
            'P' => o.paranoid = false,
            'h' => o.remotehost = true,
            'H' => o.remotehost = false,
            'r' => o.remoteinfo = true,
            'R' => o.remoteinfo = false,
            'o' | 'O' => {}
            'd' => o.nodelay = false,
            'D' => o.nodelay = true,
            'q' => o.verbosity = 0,
            'Q' => o.verbosity = 1,
            'v' => o.verbosity = 2,
            'c' => {
                o.limit = num(&v)
                    .filter(|&n: &usize| n > 0)
                    .ok_or_else(|| Some(format!("-c needs a limit of 1 or more, not {v:?}")))?
            }
            'x' => o.rules = Some(PathBuf::from(v)),
            'B' => o.banner = v,
            'g' => o.gid = Some(num(&v).ok_or_else(|| bad('g', &v))?),
            'u' => o.uid = Some(num(&v).ok_or_else(|| bad('u', &v))?),
            'b' => o.backlog = num(&v).ok_or_else(|| bad('b', &v))?,
            'l' => o.localname = Some(v),
            't' => o.timeout = num(&v).ok_or_else(|| bad('t', &v))?,
            _ => return Err(Some(format!("illegal option -- {c}"))),
        }
    }
    if rest.len() < 3 {
        return Err(None);
    }
    Ok((o, rest))
}

/// The address to listen on.
fn listen_ip(host: &str, v6: Option<bool>) -> Result<IpAddr, String> {
    if host.is_empty() || host == "0" {
        return Ok(if v6 == Some(true) {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        });
    }
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(ip);
    }
    let addrs: Vec<IpAddr> = (host, 0u16)
        .to_socket_addrs()
        .map_err(|_| format!("no IP address for {host}"))?
        .map(|a| a.ip())
        .collect();
    let want6 = v6 == Some(true);
    addrs
        .iter()
        .find(|a| a.is_ipv6() == want6)
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("no IP address for {host}"))
}

/// A port number or a tcp service name from /etc/services.
pub fn port_number(port: &str) -> Option<u16> {
    if let Ok(n) = port.parse::<u16>() {
        return Some(n);
    }
    let text = std::fs::read_to_string("/etc/services").ok()?;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut f = line.split_whitespace();
        let (Some(name), Some(pp)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((p, proto)) = pp.split_once('/') else {
            continue;
        };
        if proto == "tcp" && (name == port || f.any(|alias| alias == port)) {
            return p.parse().ok();
        }
    }
    None
}

fn bind(ip: IpAddr, port: u16, backlog: i32) -> io::Result<socket2::Socket> {
    let addr = SocketAddr::new(ip, port);
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    if ip.is_ipv6() {
        // "::" takes IPv4 too (dual stack); a specific IPv6 address only IPv6.
        s.set_only_v6(!ip.is_unspecified())?;
    }
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s)
}

fn drop_privileges(o: &Opts) -> Result<(), String> {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    // As ucspi-tcp: id 0 means "not given".
    if let Some(g) = o.gid.filter(|&g| g != 0) {
        setgroups(&[Gid::from_raw(g)])
            .and_then(|_| setgid(Gid::from_raw(g)))
            .map_err(|e| format!("unable to set gid: {}", errtext(&e.into())))?;
    }
    if let Some(u) = o.uid.filter(|&u| u != 0) {
        setuid(Uid::from_raw(u))
            .map_err(|e| format!("unable to set uid: {}", errtext(&e.into())))?;
    }
    Ok(())
}

/// Point fd 0 and fd 1 at /dev/null: the server itself never reads or writes them, and this
/// releases whatever the caller had there (as ucspi-tcp's close does).
fn null_stdio() {
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let fd = f.as_raw_fd();
        let _ = nix::unistd::dup2(fd, 0);
        let _ = nix::unistd::dup2(fd, 1);
    }
}

/// The program; returns the exit code (only on errors: the server runs until SIGTERM).
pub fn main(args: &[String]) -> i32 {
    let (o, rest) = match parse_args(args) {
        Ok(x) => x,
        Err(c) => return usage(c),
    };
    let (host, port, prog) = (&rest[0], &rest[1], rest[2..].to_vec());
    let ip = match listen_ip(host, o.v6) {
        Ok(ip) => ip,
        Err(m) => return fatal(&m),
    };
    let Some(portnum) = port_number(port) else {
        return fatal(&format!("unable to figure out port number for {port}"));
    };
    // Signals first, as ucspi-tcp does: a SIGTERM that arrives once we listen must end us
    // cleanly (exit 0), and no child exit may be missed.
    let signals = match Signals::register() {
        Ok(s) => s,
        Err(e) => return fatal(&format!("unable to catch signals: {}", errtext(&e))),
    };
    let listener = match bind(ip, portnum, o.backlog) {
        Ok(s) => s,
        Err(e) => return fatal(&format!("unable to bind: {}", errtext(&e))),
    };
    let local_port = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(portnum, |a| a.port());
    if o.print_port {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{local_port}");
        let _ = out.flush();
    }
    if let Err(m) = drop_privileges(&o) {
        return fatal(&m);
    }
    null_stdio();
    match serve(&o, listener, signals, &prog) {
        Ok(()) => 0,
        Err(e) => fatal(&errtext(&e)),
    }
}

struct Server<'a> {
    o: &'a Opts,
    children: usize,
}

impl Server<'_> {
    fn status(&self) {
        if self.o.verbosity >= 2 {
            log(&format!(
                "tcpserver: status: {}/{}",
                self.children, self.o.limit
            ));
        }
    }

    /// Reap every finished child, logging its raw wait status as ucspi-tcp does.
    fn reap(&mut self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        loop {
            let (pid, raw) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, (code & 0xff) << 8),
                Ok(WaitStatus::Signaled(pid, sig, core)) => {
                    (pid, sig as i32 | if core { 0x80 } else { 0 })
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if self.o.verbosity >= 2 {
                log(&format!("tcpserver: end {pid} status {raw}"));
            }
            self.children = self.children.saturating_sub(1);
            self.status();
        }
    }
}

/// SIGCHLD and SIGTERM wake the accept loop through a self-pipe; SIGTERM also sets a flag.
struct Signals {
    pipe: OwnedFd,
    term: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> io::Result<Signals> {
        let (sig_r, sig_w): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let sig_w2 = sig_w.try_clone()?;
        let term = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&term))?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, sig_w)?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, sig_w2)?;
        Ok(Signals { pipe: sig_r, term })
    }
}

fn serve(o: &Opts, listener: socket2::Socket, signals: Signals, prog: &[String]) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    listener.set_nonblocking(true)?;
    let Signals { pipe: sig_r, term } = signals;

    let mut srv = Server { o, children: 0 };
    srv.status();
    loop {
        srv.reap();
        if term.load(Ordering::SeqCst) {
            std::process::exit(0);
        }
        let accepting = srv.children < o.limit;
        let mut fds = vec![PollFd::new(sig_r.as_fd(), PollFlags::POLLIN)];
        if accepting {
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let sig_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let conn_ready = accepting && fds[1].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        if sig_ready {
            let mut buf = [0u8; 64];
            while matches!(nix::unistd::read(sig_r.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
            continue;
        }
        if !conn_ready {
            continue;
        }
        let (conn, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(remote) = peer.as_socket() else {
            continue;
        };
        let mut conn = conn;
        if direct_spawn(o) {
            match spawn_conn(o, conn, remote, prog) {
                Spawned::Child => {
                    srv.children += 1;
                    continue;
                }
                Spawned::Dropped => continue,
                // A program posix_spawn cannot start but execvp can (a script without `#!`).
                Spawned::NeedsFork(c) => conn = c,
            }
        }
        srv.children += 1;
        srv.status();
        // SAFETY: this process is single-threaded (no thread is ever spawned by tcpserver;
        // signal-hook's pipe and flag registrations install plain handlers without threads), so
        // the child gets a consistent copy of every lock and allocator state and may run any
        // code until it execs or exits.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                drop(listener);
                drop(sig_r);
                child(o, conn, remote, prog)
            }
            Ok(nix::unistd::ForkResult::Parent { .. }) => drop(conn),
            Err(e) => {
                if o.verbosity >= 1 {
                    log(&format!(
                        "tcpserver: warning: dropping connection, unable to fork: {}",
                        errtext(&e.into())
                    ));
                }
                drop(conn);
                srv.children -= 1;
                srv.status();
            }
        }
    }
}

fn drop_conn(o: &Opts, msg: &str) -> ! {
    if o.verbosity >= 1 {
        log(&format!("tcpserver: warning: dropping connection, {msg}"));
    }
    std::process::exit(111)
}

/// The rule for this connection (the default when there are no rules), or why the
/// connection must be dropped.
fn lookup_rules(o: &Opts, ci: &ConnInfo) -> Result<Verdict, String> {
    let Some(path) = &o.rules else {
        return Ok(Verdict::default());
    };
    let unable = |e: &io::Error| format!("unable to read {}: {}", path.display(), errtext(e));
    match Rules::open(path) {
        Ok(r) => r
            .lookup(
                &ci.remote_ip().to_string(),
                ci.remotehost.as_deref(),
                ci.remoteinfo.as_deref(),
            )
            .map_err(|e| unable(&e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && o.allow_norules => Ok(Verdict::default()),
        Err(e) => Err(unable(&e)),
    }
}

/// The rule for this connection, in the forked child (exits 111 when the rules are unreadable).
fn check_rules(o: &Opts, ci: &ConnInfo) -> Verdict {
    lookup_rules(o, ci).unwrap_or_else(|m| drop_conn(o, &m))
}

/// Can connections be started without a forked tcpserver child? Only when the child would do
/// nothing that can block or that is visible: no name lookups (-l given, -H), no ident (-R),
/// no banner, no per-connection log lines (below -v).
fn direct_spawn(o: &Opts) -> bool {
    o.verbosity < 2
        && o.localname.is_some()
        && !o.remotehost
        && !o.remoteinfo
        && o.banner.is_empty()
}

/// What [`spawn_conn`] did with the connection.
enum Spawned {
    /// The program runs.
    Child,
    /// Denied by the rules, or the program could not be started: closed (and logged as the
    /// forked child would have).
    Dropped,
    /// posix_spawn refused the program with ENOEXEC: start it the fork-and-execvp way.
    NeedsFork(socket2::Socket),
}

/// The fork path's child work for a connection that needs no lookups (see [`direct_spawn`]),
/// done in the server, then the program started with posix_spawn.
fn spawn_conn(o: &Opts, conn: socket2::Socket, remote: SocketAddr, prog: &[String]) -> Spawned {
    let dropping = |msg: &str| {
        if o.verbosity >= 1 {
            log(&format!("tcpserver: warning: dropping connection, {msg}"));
        }
        Spawned::Dropped
    };
    if o.nodelay {
        let _ = conn.set_tcp_nodelay(true);
    }
    let local = match conn.local_addr().map(|a| a.as_socket()) {
        Ok(Some(a)) => a,
        Ok(None) => return dropping("unable to get local address: not an IP socket"),
        Err(e) => {
            return dropping(&format!("unable to get local address: {}", errtext(&e)));
        }
    };
    let ci = conn_info(
        local,
        remote,
        o.localname.clone(),
        false,
        o.paranoid,
        false,
        Duration::from_secs(o.timeout),
    );
    let verdict = match lookup_rules(o, &ci) {
        Ok(v) => v,
        Err(m) => return dropping(&m),
    };
    if verdict.deny {
        return Spawned::Dropped;
    }
    let mut changes = ci.env();
    changes.extend(verdict.env.into_iter().map(|(k, v)| (k, Some(v))));
    let env = build_env(&changes);
    match spawn(prog, &env, conn.as_raw_fd()) {
        Ok(()) => Spawned::Child,
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => Spawned::NeedsFork(conn),
        Err(e) => dropping(&format!("unable to run {}: {}", prog[0], errtext(&e))),
    }
}

/// Work out what the connection's program is told about it (shared with tcp-env).
pub fn conn_info(
    local: SocketAddr,
    remote: SocketAddr,
    localname: Option<String>,
    lookup_remote: bool,
    paranoid: bool,
    remoteinfo: bool,
    timeout: Duration,
) -> ConnInfo {
    let local = SocketAddr::new(canonical(local.ip()), local.port());
    let remote = SocketAddr::new(canonical(remote.ip()), remote.port());
    let localhost = localname.or_else(|| reverse_name(local.ip()));
    let remotehost = if lookup_remote {
        reverse_name(remote.ip()).filter(|n| !paranoid || forward_confirms(n, remote.ip()))
    } else {
        None
    };
    let remoteinfo = if remoteinfo {
        ident(local, remote, timeout)
    } else {
        None
    };
    ConnInfo {
        local,
        remote,
        localhost,
        remotehost,
        remoteinfo,
    }
}

/// The forked child: log, set up the environment, apply the rules, exec the program.
fn child(o: &Opts, conn: socket2::Socket, remote: SocketAddr, prog: &[String]) -> ! {
    default_signals();
    let pid = std::process::id();
    let remote_ip = canonical(remote.ip());
    if o.verbosity >= 2 {
        log(&format!("tcpserver: pid {pid} from {remote_ip}"));
    }
    if o.nodelay {
        let _ = conn.set_tcp_nodelay(true);
    }
    let mut stream: TcpStream = conn.into();
    if !o.banner.is_empty()
        && let Err(e) = stream.write_all(o.banner.as_bytes())
    {
        drop_conn(o, &format!("unable to print banner: {}", errtext(&e)));
    }
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(e) => drop_conn(o, &format!("unable to get local address: {}", errtext(&e))),
    };
    let ci = conn_info(
        local,
        remote,
        o.localname.clone(),
        o.remotehost,
        o.paranoid,
        o.remoteinfo,
        Duration::from_secs(o.timeout),
    );
    let verdict = check_rules(o, &ci);
    if o.verbosity >= 2 {
        let opt = |s: &Option<String>| s.as_deref().map(safe).unwrap_or_default();
        log(&format!(
            "tcpserver: {} {pid} {}:{}:{} {}:{}:{}:{}",
            if verdict.deny { "deny" } else { "ok" },
            opt(&ci.localhost),
            safe(&ci.local_ip().to_string()),
            ci.local.port(),
            opt(&ci.remotehost),
            safe(&ci.remote_ip().to_string()),
            opt(&ci.remoteinfo),
            ci.remote.port()
        ));
    }
    if verdict.deny {
        std::process::exit(100);
    }
    let mut changes = ci.env();
    changes.extend(verdict.env.into_iter().map(|(k, v)| (k, Some(v))));
    let env = build_env(&changes);
    let fd = stream.as_raw_fd();
    if nix::unistd::dup2(fd, 0).is_err() || nix::unistd::dup2(fd, 1).is_err() {
        drop_conn(o, "unable to set up descriptors");
    }
    if fd > 1 {
        drop(stream);
    } else {
        std::mem::forget(stream);
    }
    let e = exec(prog, &env);
    drop_conn(o, &format!("unable to run {}: {}", prog[0], errtext(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let a: Vec<String> = [
            "-vRHl0", "-c", "5", "-x", "r.cdb", "-B", "hi", "0", "smtp", "prog",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (o, rest) = parse_args(&a).unwrap();
        assert_eq!(o.verbosity, 2);
        assert!(!o.remoteinfo && !o.remotehost);
        assert_eq!(o.localname.as_deref(), Some("0"));
        assert_eq!(o.limit, 5);
        assert_eq!(o.banner, "hi");
        assert_eq!(rest, ["0", "smtp", "prog"]);
        assert!(parse_args(&["-c".into(), "0".into()]).is_err());
        assert!(parse_args(&["0".into(), "1".into()]).is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port_number("2525"), Some(2525));
        assert_eq!(port_number("no-such-service-x"), None);
    }
}
