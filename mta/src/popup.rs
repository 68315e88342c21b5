//! qmail-popup HOSTNAME SUBPROGRAM…: the authorization half of POP3.
//!
//! It greets with `+OK <PID.UNIXTIME@HOSTNAME>` (the bracketed part is the APOP timestamp),
//! takes USER/PASS or APOP, and then runs SUBPROGRAM (normally `checkpassword qmail-pop3d
//! Maildir`) with the network on fd 0/1 and, on fd 3, a pipe carrying
//! `user\0password\0timestamp\0`. A crash of the subprogram is reported as
//! `-ERR aack, child crashed`, a non-zero exit as `-ERR authorization failed` (no hint about
//! which part was wrong); either way the connection ends: one attempt per connection, as in
//! qmail. Idle timeout: 20 minutes.
//!
//! Differences from qmail, on purpose: `CAPA` is answered before authorization (TOP, UIDL,
//! USER, SASL PLAIN), and `AUTH PLAIN` (RFC 5034, with or without an initial response) is
//! taken as another way to give user and password. Clients such as curl prefer SASL to APOP
//! and APOP to USER/PASS; since passwords are stored hashed, APOP cannot succeed, and with
//! one attempt per connection such a client could never log in without AUTH PLAIN.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::smtpd::netio::{NetError, NetIo};

/// Longest POP3 command line kept.
pub const MAX_LINE: usize = 1024;

/// Split a POP3 command line into lower-cased verb and argument (leading spaces skipped).
pub fn split_command(text: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match memchr::memchr(b' ', text) {
        Some(i) => {
            let mut a = &text[i + 1..];
            while a.first() == Some(&b' ') {
                a = &a[1..];
            }
            (text[..i].to_ascii_lowercase(), a.to_vec())
        }
        None => (text.to_ascii_lowercase(), Vec::new()),
    }
}

/// Decode base64 (RFC 4648, padding optional); None on bad input.
pub fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut pad = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// SASL PLAIN (RFC 4616): `authzid\0authcid\0password`, base64. Returns (user, password);
/// an authorization identity other than the user is refused.
pub fn sasl_plain(b64: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let raw = base64_decode(b64)?;
    let mut parts = raw.splitn(3, |&b| b == 0);
    let authz = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    if user.is_empty() || pass.is_empty() || (!authz.is_empty() && authz != user) {
        return None;
    }
    Some((user.to_vec(), pass.to_vec()))
}

fn usage() -> i32 {
    let _ = writeln!(
        std::io::stderr(),
        "qmail-popup: usage: qmail-popup hostname subprogram [args...]"
    );
    2
}

/// Run the subprogram with fd 3 carrying the credentials; returns the reply to print when it
/// failed (None = success, the subprogram did the talking).
fn do_auth(args: &[String], user: &[u8], pass: &mut [u8], stamp: &str) -> Option<&'static str> {
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(_) => return Some("-ERR unable to create pipe\r\n"),
    };
    // Make sure the write end is not fd 3, then put the read end on fd 3 without
    // close-on-exec so the child inherits it.
    let w: OwnedFd = if w.as_raw_fd() == 3 {
        // dup: the lowest free fd, above 3 since 3 is still taken; then release 3.
        let c = w.try_clone();
        drop(w);
        match c {
            Ok(c) => c,
            Err(_) => return Some("-ERR unable to create pipe\r\n"),
        }
    } else {
        w
    };
    let fd3_ok = if r.as_raw_fd() == 3 {
        nix::fcntl::fcntl(
            3,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .is_ok()
    } else {
        nix::unistd::dup2(r.as_raw_fd(), 3).is_ok()
    };
    if !fd3_ok {
        return Some("-ERR unable to create pipe\r\n");
    }
    crate::smtpd::netio::restore_blocking();
    let spawned = Command::new(&args[0]).args(&args[1..]).spawn();
    // Our copy of fd 3 (unless it is `r` itself, which drops below).
    if r.as_raw_fd() != 3 {
        let _ = nix::unistd::close(3);
    }
    drop(r);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "qmail-popup: cannot run {}: {e}",
                args[0]
            );
            // As qmail, whose child exits 1 when exec fails.
            return Some("-ERR authorization failed\r\n");
        }
    };
    let mut data = Vec::with_capacity(user.len() + pass.len() + stamp.len() + 3);
    data.extend_from_slice(user);
    data.push(0);
    data.extend_from_slice(pass);
    data.push(0);
    data.extend_from_slice(stamp.as_bytes());
    data.push(0);
    let mut f = std::fs::File::from(w);
    let _ = f.write_all(&data);
    drop(f);
    data.iter_mut().for_each(|b| *b = 0);
    pass.iter_mut().for_each(|b| *b = 0);
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Some("-ERR aack, child crashed\r\n"),
        }
    };
    match status.code() {
        None => Some("-ERR aack, child crashed\r\n"),
        Some(0) => None,
        Some(_) => Some("-ERR authorization failed\r\n"),
    }
}

/// The qmail-popup program: exit code.
pub fn main(args: Vec<String>) -> i32 {
    if args.len() < 3 || args[1].is_empty() {
        return usage();
    }
    let host = &args[1];
    let sub = &args[2..];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp = format!("<{}.{}@{}>", std::process::id(), now, host);
    let mut io = NetIo::stdio(Duration::from_secs(1200));
    io.out(format!("+OK {stamp}\r\n"));
    let mut user: Option<Vec<u8>> = None;
    loop {
        let line = match io.line(MAX_LINE) {
            Ok(l) => l,
            Err(NetError::Timeout) | Err(_) => return 1,
        };
        let (verb, arg) = split_command(&line.text);
        match verb.as_slice() {
            b"user" => {
                if arg.is_empty() {
                    io.out("-ERR syntax error\r\n");
                } else {
                    user = Some(arg);
                    io.out("+OK \r\n");
                }
            }
            b"pass" => {
                let Some(u) = user.clone() else {
                    io.out("-ERR USER first\r\n");
                    continue;
                };
                if arg.is_empty() {
                    io.out("-ERR syntax error\r\n");
                    continue;
                }
                let mut pass = arg;
                return finish(&mut io, sub, &u, &mut pass, &stamp);
            }
            b"apop" => {
                let Some(sp) = memchr::memchr(b' ', &arg) else {
                    io.out("-ERR syntax error\r\n");
                    continue;
                };
                let u = arg[..sp].to_vec();
                let mut digest = arg[sp + 1..].to_vec();
                return finish(&mut io, sub, &u, &mut digest, &stamp);
            }
            b"auth" => {
                let (mech, ir) = split_command(&arg);
                if mech != b"plain" {
                    io.out(if mech.is_empty() {
                        "-ERR syntax error\r\n"
                    } else {
                        "-ERR unrecognized authentication type\r\n"
                    });
                    continue;
                }
                let resp = if ir.is_empty() {
                    io.out("+ \r\n");
                    match io.line(MAX_LINE) {
                        Ok(l) => l.text,
                        Err(_) => return 1,
                    }
                } else {
                    ir
                };
                let creds = if resp == b"*" {
                    None
                } else {
                    sasl_plain(&resp)
                };
                let Some((u, mut p)) = creds else {
                    io.out("-ERR authorization failed\r\n");
                    let _ = io.flush();
                    return 1;
                };
                return finish(&mut io, sub, &u, &mut p, &stamp);
            }
            b"quit" => {
                io.out("+OK \r\n");
                let _ = io.flush();
                return 0;
            }
            b"noop" => io.out("+OK \r\n"),
            b"capa" => {
                io.out("+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\n.\r\n")
            }
            _ => io.out("-ERR authorization first\r\n"),
        }
    }
}

fn finish(io: &mut NetIo, sub: &[String], user: &[u8], pass: &mut [u8], stamp: &str) -> i32 {
    // As in C, a NUL ends the string: it must not shift the fields on fd 3.
    let user = &user[..memchr::memchr(0, user).unwrap_or(user.len())];
    let plen = memchr::memchr(0, pass).unwrap_or(pass.len());
    let pass = &mut pass[..plen];
    if io.flush().is_err() {
        return 1;
    }
    io.discard_buffered();
    match do_auth(sub, user, pass, stamp) {
        None => 0,
        Some(msg) => {
            io.out(msg);
            let _ = io.flush();
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_plain_decodes() {
        assert_eq!(base64_decode(b"aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64_decode(b"aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(base64_decode(b"a$"), None);
        // "\0popu\0secret"
        assert_eq!(
            sasl_plain(b"AHBvcHUAc2VjcmV0"),
            Some((b"popu".to_vec(), b"secret".to_vec()))
        );
        // "other\0popu\0secret": another authorization identity is refused.
        assert_eq!(sasl_plain(b"b3RoZXIAcG9wdQBzZWNyZXQ="), None);
        assert_eq!(sasl_plain(b"AHBvcHUA"), None);
    }
}
