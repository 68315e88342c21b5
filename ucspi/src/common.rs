//! Helpers shared by the programs: option parsing in getopt style, errno texts in ucspi-tcp's
//! words, address formatting, reverse/forward DNS through libc, the ident (RFC 1413) client and
//! the connection environment.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// getopt(3)-style parsing: `spec` lists option letters, a letter followed by `:` takes an
/// argument. Options may be bundled (`-RHl0`); parsing stops at `--` or the first non-option.
/// Returns the options in order and the remaining arguments, or the offending letter.
/// Parsed options (letter, argument or "") and the remaining arguments.
pub type Parsed = (Vec<(char, String)>, Vec<String>);

pub fn getopt(args: &[String], spec: &str) -> Result<Parsed, char> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            let pos = spec.find(c).filter(|_| c != ':').ok_or(c)?;
            let takes = spec[pos + c.len_utf8()..].starts_with(':');
            if takes {
                let rest: String = chars[j + 1..].iter().collect();
                if !rest.is_empty() {
                    out.push((c, rest));
                } else {
                    i += 1;
                    let v = args.get(i).ok_or(c)?;
                    out.push((c, v.clone()));
                }
                j = chars.len();
            } else {
                out.push((c, String::new()));
                j += 1;
            }
        }
        i += 1;
    }
    Ok((out, args[i.min(args.len())..].to_vec()))
}

/// An error in the words ucspi-tcp prints ("file does not exist", "address already used", …).
pub fn errtext(e: &io::Error) -> String {
    let known = match e.raw_os_error() {
        Some(libc::ENOENT) => Some("file does not exist"),
        Some(libc::EACCES) => Some("access denied"),
        Some(libc::EPERM) => Some("permission denied"),
        Some(libc::EADDRINUSE) => Some("address already used"),
        Some(libc::EADDRNOTAVAIL) => Some("address not available"),
        Some(libc::ECONNREFUSED) => Some("connection refused"),
        Some(libc::ETIMEDOUT) => Some("timed out"),
        Some(libc::ENOMEM) => Some("out of memory"),
        Some(libc::EAGAIN) => Some("temporary failure"),
        Some(libc::EISDIR) => Some("is a directory"),
        Some(libc::ENOTDIR) => Some("not a directory"),
        Some(libc::EEXIST) => Some("file already exists"),
        Some(libc::EXDEV) => Some("cross-device link"),
        Some(libc::EMFILE) => Some("too many open files"),
        Some(libc::EPIPE) => Some("broken pipe"),
        _ => None,
    };
    match known {
        Some(t) => t.to_string(),
        None => {
            let s = e.to_string();
            // "Permission denied (os error 13)" → "permission denied"
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
    }
}

/// Replace the characters ucspi-tcp will not log (below 33, above 126, `:` and `%`) by `?`.
pub fn safe(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if !(33..=126).contains(&b) || b == b':' || b == b'%' {
                '?'
            } else {
                b as char
            }
        })
        .collect()
}

/// An address with IPv4-mapped IPv6 shown as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The name of an address by a reverse lookup (getnameinfo with NI_NAMEREQD: no numeric
/// fallback), `None` when there is none.
pub fn reverse_name(ip: IpAddr) -> Option<String> {
    let sa: socket2::SockAddr = SocketAddr::new(ip, 0).into();
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `sa.as_ptr()` points to a sockaddr of `sa.len()` valid bytes owned by `sa`, which
    // outlives the call; `host` is a writable buffer whose exact length is passed; the service
    // buffer is null with length 0, which getnameinfo allows. getnameinfo writes at most
    // `host.len()` bytes including the terminating NUL and keeps no pointer after returning.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast::<libc::sockaddr>(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    let bytes: Vec<u8> = host
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    // Lower case, as ucspi-tcp's DNS code prints names, so `=host` rules match.
    let name = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Whether `name` resolves (forward) to `ip`: the paranoid (-p) double-reverse check.
pub fn forward_confirms(name: &str, ip: IpAddr) -> bool {
    match (name, 0u16).to_socket_addrs() {
        Ok(addrs) => addrs.map(|a| canonical(a.ip())).any(|a| a == ip),
        Err(_) => false,
    }
}

/// Ask the client's ident server (RFC 1413, port 113) who owns the connection; `timeout`
/// bounds the whole exchange. `None` on any failure.
pub fn ident(local: SocketAddr, remote: SocketAddr, timeout: Duration) -> Option<String> {
    let start = Instant::now();
    let domain = socket2::Domain::for_address(remote);
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::new(local.ip(), 0).into()).ok()?;
    s.connect_timeout(&SocketAddr::new(remote.ip(), 113).into(), timeout)
        .ok()?;
    let mut st: std::net::TcpStream = s.into();
    let left = |start: Instant| {
        timeout
            .checked_sub(start.elapsed())
            .filter(|d| !d.is_zero())
    };
    st.set_write_timeout(left(start)).ok()?;
    st.write_all(format!("{} , {}\r\n", remote.port(), local.port()).as_bytes())
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        st.set_read_timeout(Some(left(start)?)).ok()?;
        let n = st.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next()?.trim_end_matches('\r');
    let parts: Vec<&str> = line.splitn(4, ':').collect();
    if parts.len() != 4 || parts[1].trim() != "USERID" {
        return None;
    }
    let info = parts[3].trim_start().to_string();
    (!info.is_empty()).then_some(info)
}

/// What a program learns about its connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub localhost: Option<String>,
    pub remotehost: Option<String>,
    pub remoteinfo: Option<String>,
}

impl ConnInfo {
    pub fn local_ip(&self) -> IpAddr {
        canonical(self.local.ip())
    }
    pub fn remote_ip(&self) -> IpAddr {
        canonical(self.remote.ip())
    }
    pub fn is_v6(&self) -> bool {
        self.remote_ip().is_ipv6()
    }

    /// The variables to set (`Some`) or remove (`None`), in ucspi-tcp's order.
    pub fn env(&self) -> Vec<(String, Option<String>)> {
        let mut prefixes = vec!["TCP"];
        let proto = if self.is_v6() {
            prefixes.push("TCP6");
            "TCP6"
        } else {
            "TCP"
        };
        let mut v = vec![("PROTO".to_string(), Some(proto.to_string()))];
        for p in prefixes {
            v.push((format!("{p}LOCALHOST"), self.localhost.clone()));
            v.push((format!("{p}LOCALIP"), Some(self.local_ip().to_string())));
            v.push((format!("{p}LOCALPORT"), Some(self.local.port().to_string())));
            v.push((format!("{p}REMOTEHOST"), self.remotehost.clone()));
            v.push((format!("{p}REMOTEIP"), Some(self.remote_ip().to_string())));
            v.push((
                format!("{p}REMOTEPORT"),
                Some(self.remote.port().to_string()),
            ));
            v.push((format!("{p}REMOTEINFO"), self.remoteinfo.clone()));
        }
        v
    }
}

/// Apply `(name, Some(value))` sets and `(name, None)` removals to the current environment,
/// giving the list for `execvpe`.
pub fn build_env(changes: &[(String, Option<String>)]) -> Vec<std::ffi::CString> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (k, v) in changes {
        env.retain(|(ek, _)| ek.as_encoded_bytes() != k.as_bytes());
        if let Some(v) = v {
            env.push((OsString::from(k), OsString::from(v)));
        }
    }
    env.into_iter()
        .filter_map(|(k, v)| {
            let mut b = k.into_encoded_bytes();
            b.push(b'=');
            b.extend_from_slice(v.as_encoded_bytes());
            std::ffi::CString::new(b).ok()
        })
        .collect()
}

/// Exec `argv` with PATH search and the given environment; returns only on failure.
pub fn exec(argv: &[String], env: &[std::ffi::CString]) -> io::Error {
    let args: Result<Vec<std::ffi::CString>, _> = argv
        .iter()
        .map(|a| std::ffi::CString::new(a.as_bytes()))
        .collect();
    let args = match args {
        Ok(a) if !a.is_empty() => a,
        _ => return io::Error::new(io::ErrorKind::InvalidInput, "bad program name"),
    };
    match nix::unistd::execvpe(&args[0], &args, env) {
        Ok(never) => match never {},
        Err(e) => io::Error::from(e),
    }
}

/// Start `argv` as [`exec`] would run it from a forked child that first put `fd` on its
/// descriptors 0 and 1 and called [`default_signals`]: posix_spawn(3) (posix_spawnp(3), with
/// the same PATH search as execvp, when the name has no `/`), with the given environment.
/// The child is left for the caller to reap. Unlike execvp, posix_spawnp does not run a file
/// without `#!` through /bin/sh: that comes back as ENOEXEC.
pub fn spawn(argv: &[String], env: &[std::ffi::CString], fd: std::os::fd::RawFd) -> io::Result<()> {
    use std::ffi::CString;
    use std::mem::MaybeUninit;
    use std::ptr;
    let args: Result<Vec<CString>, _> = argv.iter().map(|a| CString::new(a.as_bytes())).collect();
    let args = match args {
        Ok(a) if !a.is_empty() => a,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad program name",
            ));
        }
    };
    let argp: Vec<*mut libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(ptr::null_mut()))
        .collect();
    let envp: Vec<*mut libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr() as *mut libc::c_char)
        .chain(std::iter::once(ptr::null_mut()))
        .collect();
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    };
    // SAFETY: the file-actions and attribute objects are initialised before use and destroyed
    // exactly once below; every pointer handed to posix_spawn (path, argv, envp: NUL-terminated
    // strings in null-terminated arrays) points into `args`, `argp`, `env` and `envp`, which
    // outlive the call; the sigsets are initialised by sigemptyset before sigaddset.
    // rt_sigaction with a null new action only reads the disposition into `k`, which is as
    // large as the kernel's x86-64/aarch64 struct (4 words). glibc's sigset_t is 128 bytes whose
    // first 8 bytes hold the bits of signals 1-64 (little-endian), so that word, read and written
    // unaligned, stays inside the value.
    unsafe {
        let mut fa = MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit();
        check(libc::posix_spawn_file_actions_init(fa.as_mut_ptr()))?;
        let mut fa = fa.assume_init();
        let mut at = MaybeUninit::<libc::posix_spawnattr_t>::uninit();
        if let Err(e) = check(libc::posix_spawnattr_init(at.as_mut_ptr())) {
            libc::posix_spawn_file_actions_destroy(&mut fa);
            return Err(e);
        }
        let mut at = at.assume_init();
        let mut def = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(def.as_mut_ptr());
        let mut def = def.assume_init();
        for sig in [libc::SIGPIPE, libc::SIGTERM, libc::SIGCHLD] {
            libc::sigaddset(&mut def, sig);
        }
        // glibc's spawn child sets its two internal signals (32 and 33) to SIG_IGN unless they
        // are in the default set, and an ignored signal stays ignored across exec; a forked
        // child passes on the server's own disposition (default, or ignored if we were started
        // with them ignored). sigaddset refuses these two, so their bits are set directly: the
        // first 64-bit word of a glibc sigset_t holds signals 1-64, bit N-1 for signal N.
        for sig in [32u32, 33] {
            let mut k = [0u64; 4]; // struct kernel_sigaction: handler, flags, restorer, mask
            let got = libc::syscall(
                libc::SYS_rt_sigaction,
                sig as libc::c_long,
                ptr::null::<u64>(),
                k.as_mut_ptr(),
                8 as libc::c_long,
            );
            if got == 0 && k[0] != libc::SIG_IGN as u64 {
                let w = &mut def as *mut libc::sigset_t as *mut u64;
                w.write_unaligned(w.read_unaligned() | 1u64 << (sig - 1));
            }
        }
        let mut pid: libc::pid_t = 0;
        let r = check(libc::posix_spawn_file_actions_adddup2(&mut fa, fd, 0))
            .and_then(|()| check(libc::posix_spawn_file_actions_adddup2(&mut fa, fd, 1)))
            .and_then(|()| check(libc::posix_spawnattr_setsigdefault(&mut at, &def)))
            .and_then(|()| {
                check(libc::posix_spawnattr_setflags(
                    &mut at,
                    libc::POSIX_SPAWN_SETSIGDEF as libc::c_short,
                ))
            })
            .and_then(|()| {
                let f = if argv[0].contains('/') {
                    libc::posix_spawn
                } else {
                    libc::posix_spawnp
                };
                check(f(
                    &mut pid,
                    args[0].as_ptr(),
                    &fa,
                    &at,
                    argp.as_ptr(),
                    envp.as_ptr(),
                ))
            });
        libc::posix_spawnattr_destroy(&mut at);
        libc::posix_spawn_file_actions_destroy(&mut fa);
        r
    }
}

/// Reset SIGPIPE, SIGTERM and SIGCHLD to their default actions before exec (Rust ignores
/// SIGPIPE, and an ignored signal stays ignored across exec).
pub fn default_signals() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    for s in [Signal::SIGPIPE, Signal::SIGTERM, Signal::SIGCHLD] {
        // SAFETY: installing SIG_DFL runs no handler code of ours, so no async-signal-safety
        // question arises; the previous handler is discarded, which is what we want.
        let _ = unsafe { signal(s, SigHandler::SigDfl) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn getopt_bundles_and_args() {
        let (o, r) = getopt(
            &v(&["-vRHl0", "-c", "5", "-x", "r.cdb", "0", "25", "prog", "-a"]),
            "vRHl:c:x:",
        )
        .unwrap();
        assert_eq!(
            o,
            vec![
                ('v', "".into()),
                ('R', "".into()),
                ('H', "".into()),
                ('l', "0".into()),
                ('c', "5".into()),
                ('x', "r.cdb".into())
            ]
        );
        assert_eq!(r, v(&["0", "25", "prog", "-a"]));
        assert_eq!(getopt(&v(&["-z"]), "v"), Err('z'));
        assert_eq!(getopt(&v(&["-c"]), "c:"), Err('c'));
    }

    #[test]
    fn safe_chars() {
        assert_eq!(safe("a:b%c d\u{7f}"), "a?b?c?d?");
    }
}
