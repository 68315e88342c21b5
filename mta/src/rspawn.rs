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
//!
//! Batches (our extension of the spawn protocol, see [`crate::spawn`]): for a batch command
//! the recipients are grouped by host (case-insensitively; qmail-send only batches recipients
//! of one domain, so normally there is one group) and each group is handed to ONE run of
//! `qmail-remote HOST SENDER R1 R2 …`, i.e. one SMTP transaction. Its output — one `r`/`h`/`s`
//! report per recipient, in order, then the message report — is turned into one report per
//! recipient with the same rules as above: `h` → D with that recipient's text, `s` → Z with
//! its text, `r` → the message report's letter (K with the recipient text + message text); a
//! recipient qmail-remote never reached (e.g. no connection) gets the message report. The
//! exit-status cases apply to every recipient of the run. Each report is cut at
//! [`OUTPUT_CAP`] bytes, so qmail-send's 10000-byte limit still holds.

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
    recipient_report(recip, message)
}

/// One recipient's report from its r/h/s line (if any) and the message's K/Z/D line, with
/// qmail-rspawn's rules: `h` forces D and `s` forces Z with the recipient's text; an accepted
/// recipient takes the message's letter (its text first when the message was accepted).
fn recipient_report(recip: Option<(u8, &[u8])>, message: Option<(u8, &[u8])>) -> Vec<u8> {
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

/// Split a multi-recipient run's output into one report per recipient (`n` of them).
pub fn split(output: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut recips: Vec<(u8, &[u8])> = Vec::new();
    let mut message: Option<(u8, &[u8])> = None;
    for part in output.split(|&b| b == 0) {
        let Some((&letter, text)) = part.split_first() else {
            continue;
        };
        match letter {
            b'r' | b'h' | b's' if message.is_none() && recips.len() < n => {
                recips.push((letter, text))
            }
            b'K' | b'Z' | b'D' if message.is_none() => message = Some((letter, text)),
            _ => {}
        }
    }
    (0..n)
        .map(|i| {
            let mut v = recipient_report(recips.get(i).copied(), message);
            v.truncate(OUTPUT_CAP);
            v
        })
        .collect()
}

fn reports(o: &ChildOutcome, n: usize) -> Vec<Vec<u8>> {
    match o.status.code() {
        Some(0) => split(&o.output, n),
        _ => vec![report(o); n],
    }
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

fn host_of(recip: &[u8]) -> &[u8] {
    let at = recip.iter().rposition(|&b| b == b'@').unwrap_or(0);
    recip.get(at + 1..).unwrap_or(&[])
}

fn command(sender: &[u8], recips: &[&[u8]]) -> Command {
    use std::os::unix::ffi::OsStrExt;
    let os = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
    let host = recips.first().map(|r| host_of(r)).unwrap_or(&[]);
    let mut cmd = Command::new(qmail_remote_program());
    cmd.arg0("qmail-remote").arg(os(host)).arg(os(sender));
    for r in recips {
        cmd.arg(os(r));
    }
    cmd
}

impl Deliver for Remote {
    fn deliver(&self, mess: File, sender: &[u8], recip: &[u8]) -> Vec<u8> {
        match crate::spawn::run_child(command(sender, &[recip]), mess, OUTPUT_CAP) {
            Ok(o) => report(&o),
            Err(_) => b"ZUnable to run qmail-remote.\n".to_vec(),
        }
    }

    fn deliver_batch(&self, mess: File, sender: &[u8], recips: &[Vec<u8>]) -> Vec<Vec<u8>> {
        // Groups of recipients with the same host (ignoring case), in order of appearance.
        let mut groups: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        for (i, r) in recips.iter().enumerate() {
            let h = host_of(r).to_ascii_lowercase();
            match groups.iter_mut().find(|g| g.0 == h) {
                Some(g) => g.1.push(i),
                None => groups.push((h, vec![i])),
            }
        }
        let mut out = vec![Vec::new(); recips.len()];
        for (_, idx) in groups {
            let rs: Vec<&[u8]> = idx.iter().map(|&i| recips[i].as_slice()).collect();
            // Each run reads the message from the start: its own descriptor.
            let reps = match mess.try_clone().and_then(|f| {
                use std::io::Seek;
                let mut f = f;
                f.rewind()?;
                Ok(f)
            }) {
                Err(_) => {
                    vec![b"Zqmail-spawn unable to open message. (#4.3.0)\n".to_vec(); rs.len()]
                }
                Ok(f) => {
                    let cap = OUTPUT_CAP.saturating_mul(rs.len());
                    match crate::spawn::run_child(command(sender, &rs), f, cap) {
                        Ok(o) => reports(&o, rs.len()),
                        Err(_) => vec![b"ZUnable to run qmail-remote.\n".to_vec(); rs.len()],
                    }
                }
            };
            for (&i, r) in idx.iter().zip(reps) {
                out[i] = r;
            }
        }
        out
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

    #[test]
    fn splits_a_batch_per_recipient() {
        let out = b"r\0h1.2.3.4 does not like recipient.\nRemote host said: 550 no\n\0s1.2.3.4 does not like recipient.\nRemote host said: 451 later\n\0K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\0";
        let r = split(out, 3);
        assert_eq!(
            r[0],
            b"K1.2.3.4 accepted message.\nRemote host said: 250 ok\n"
        );
        assert_eq!(
            r[1],
            b"D1.2.3.4 does not like recipient.\nRemote host said: 550 no\n"
        );
        assert_eq!(
            r[2],
            b"Z1.2.3.4 does not like recipient.\nRemote host said: 451 later\n"
        );
        // No connection: every recipient gets the message report.
        let r = split(
            b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0",
            2,
        );
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|x| x.starts_with(b"ZSorry, I wasn't")));
        // Accepted, then the connection died without a message report.
        let r = split(b"r\0r\0", 2);
        assert!(
            r.iter()
                .all(|x| x.ends_with(b"no message report.\n") && x[0] == b'Z')
        );
        assert_eq!(
            split(b"", 2),
            vec![b"Zqmail-remote produced no output.\n".to_vec(); 2]
        );
    }
}
