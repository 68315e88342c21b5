//! `tcp-env [-rR] [-t timeout] program…`: for inetd-style servers. Sets the same environment
//! as tcpserver (PROTO, TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT,
//! TCPREMOTEHOST, TCPREMOTEINFO) from the socket on fd 0, then execs the program.
//! -r (default) asks the client's ident server, -R does not; -t is the ident timeout (26 s).
//! When fd 0 is not a socket the environment is left alone (as qmail's tcp-env does).

use crate::common::{build_env, default_signals, errtext, exec, getopt};
use std::time::Duration;

pub fn main(args: &[String]) -> i32 {
    let usage = || {
        eprintln!("tcp-env: usage: tcp-env [ -rR ] [ -t timeout ] program");
        100
    };
    let Ok((flags, prog)) = getopt(args, "rRt:") else {
        return usage();
    };
    let mut remoteinfo = true;
    let mut timeout = 26u64;
    for (c, v) in flags {
        match c {
            'r' => remoteinfo = true,
            'R' => remoteinfo = false,
            't' => match v.parse() {
                Ok(n) => timeout = n,
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
    if prog.is_empty() {
        return usage();
    }
    let local = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(0);
    let remote = nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(0);
    let to_std = |s: nix::sys::socket::SockaddrStorage| -> Option<std::net::SocketAddr> {
        if let Some(a) = s.as_sockaddr_in() {
            Some(std::net::SocketAddr::V4((*a).into()))
        } else {
            s.as_sockaddr_in6()
                .map(|a| std::net::SocketAddr::V6((*a).into()))
        }
    };
    let mut changes = Vec::new();
    if let (Ok(l), Ok(r)) = (local, remote)
        && let (Some(l), Some(r)) = (to_std(l), to_std(r))
    {
        let ci = crate::tcpserver::conn_info(
            l,
            r,
            None,
            true,
            false,
            remoteinfo,
            Duration::from_secs(timeout),
        );
        changes = ci.env();
    }
    let env = build_env(&changes);
    default_signals();
    let e = exec(&prog, &env);
    eprintln!("tcp-env: fatal: unable to run {}: {}", prog[0], errtext(&e));
    111
}
