//! qmail-rspawn: the remote delivery spawner.
//!
//! Speaks the spawn protocol ([`crate::spawn`]) with qmail-send and runs `$QMAILREMOTE` (tests)
//! or `QMAILHOME/bin/qmail-remote HOST SENDER RECIPIENT` for each delivery, HOST being the part
//! of the recipient after its last '@'. qmail-remote prints recipient reports (`r` accepted,
//! `h` refused for good, `s` refused for now) and one message report (`K`/`Z`/`D`), each ending
//! in `\0`; they are collapsed into one report as qmail-rspawn does: `h` → D, `s` → Z, otherwise
//! the message report's letter. Exit 111 → "ZUnable to run qmail-remote.", other non-zero →
//! "DUnable to run qmail-remote.", no output → "Zqmail-remote produced no output.", crash →
//! "Zqmail-remote crashed.". When qmail-remote is missing every delivery is a deferral, so remote
//! mail stays queued.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use crate::spawn::{ChildOutcome, Deliver};

/// qmail-send caps reports at 10000 bytes; stay below.
pub const OUTPUT_CAP: usize = 9000;

/// The qmail-remote to run.
pub fn qmail_remote_program() -> PathBuf {
    match std::env::var_os("QMAILREMOTE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::home::bin("qmail-remote"),
    }
}

/// Collapse qmail-remote's output into one report.
pub fn collapse(output: &[u8]) -> Vec<u8> {
    let mut recip: Option<(u8, &[u8])> = None;
    let mut message: Option<(u8, &[u8])> = None;
    for part in output.split(|&b| b == 0) {
        let Some((&letter, text)) = part.split_first() else {
            continue;
        };
        match letter {
            b'r' | b'h' | b's' if recip.is_none() => recip = Some((letter, text)),
            b'K' | b'Z' | b'D' if message.is_none() => message = Some((letter, text)),
            _ => {}
        }
    }
    let mut v = Vec::new();
    match (recip, message) {
        (None, None) => return b"Zqmail-remote produced no output.\n".to_vec(),
        (Some((b'h', t)), _) => {
            v.push(b'D');
            v.extend_from_slice(t);
        }
        (Some((b's', t)), _) => {
            v.push(b'Z');
            v.extend_from_slice(t);
        }
        (Some((_, rt)), Some((b'K', mt))) => {
            v.push(b'K');
            v.extend_from_slice(rt);
            v.extend_from_slice(mt);
        }
        (_, Some((l, mt))) => {
            v.push(l);
            v.extend_from_slice(mt);
        }
        (Some((_, rt)), None) => {
            // Accepted recipient but no message report: the connection died.
            v.push(b'Z');
            v.extend_from_slice(rt);
            v.extend_from_slice(b"qmail-remote produced no message report.\n");
        }
    }
    v
}

fn report(o: &ChildOutcome) -> Vec<u8> {
    match o.status.code() {
        None => b"Zqmail-remote crashed.\n".to_vec(),
        Some(0) => collapse(&o.output),
        Some(111) => b"ZUnable to run qmail-remote.\n".to_vec(),
        Some(_) => b"DUnable to run qmail-remote.\n".to_vec(),
    }
}

struct Remote;

impl Deliver for Remote {
    fn deliver(&self, mess: File, sender: &[u8], recip: &[u8]) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let at = recip.iter().rposition(|&b| b == b'@').unwrap_or(0);
        let host = recip.get(at + 1..).unwrap_or(&[]);
        let os = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
        let mut cmd = Command::new(qmail_remote_program());
        cmd.arg0("qmail-remote")
            .arg(os(host))
            .arg(os(sender))
            .arg(os(recip));
        match crate::spawn::run_child(cmd, mess, OUTPUT_CAP) {
            Ok(o) => report(&o),
            Err(_) => b"ZUnable to run qmail-remote.\n".to_vec(),
        }
    }
}

/// qmail-rspawn's main.
pub fn main() -> i32 {
    crate::spawn::main("qmail-rspawn", Arc::new(Remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_like_qmail_rspawn() {
        assert_eq!(
            collapse(b"r\0K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\0"),
            b"K1.2.3.4 accepted message.\nRemote host said: 250 ok\n"
        );
        assert_eq!(
            collapse(b"h1.2.3.4 does not like recipient.\nRemote host said: 550 no\n\0DGiving up on 1.2.3.4.\n\0"),
            b"D1.2.3.4 does not like recipient.\nRemote host said: 550 no\n"
        );
        assert_eq!(collapse(b"s x\n\0DGiving up\n\0")[0], b'Z');
        assert_eq!(
            collapse(b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0"),
            b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
        );
        assert_eq!(collapse(b""), b"Zqmail-remote produced no output.\n");
    }
}
