//! qmail-lspawn: the local delivery spawner (`qmail-lspawn DEFAULTDELIVERY`).
//!
//! Speaks the spawn protocol ([`crate::spawn`]) with qmail-send. For each recipient
//! `local@domain` it finds the owner with [`crate::users::lookup`] (users/cdb, then the password
//! file, then the alias user) and runs `$QMAILLOCAL` (tests) or `QMAILHOME/bin/qmail-local` as
//! `qmail-local -- user home local dash ext domain sender defaultdelivery`, as the owner's uid and
//! gid with no supplementary groups when we are root (never as root: "ZNot allowed to perform
//! deliveries as root."), as ourselves otherwise (user mode). qmail-local's exit code and output
//! become the report as in qmail: 0 → K, 111/71/74/75 → Z, 100 and anything else → D, crash →
//! "Zqmail-local crashed.", output cut at 3000 bytes.
//!
//! Difference from qmail: the owner lookup (qmail-getpw) runs inside qmail-lspawn instead of a
//! separate program.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::spawn::{ChildOutcome, Deliver};
use crate::users::LookupError;

/// qmail-lspawn's output cap.
pub const OUTPUT_CAP: usize = 3000;

/// The local delivery method.
pub struct Local {
    pub default_delivery: String,
    pub root: bool,
}

/// The qmail-local to run: `$QMAILLOCAL` or `QMAILHOME/bin/qmail-local`.
pub fn qmail_local_program() -> PathBuf {
    match std::env::var_os("QMAILLOCAL") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::home::bin("qmail-local"),
    }
}

/// Turn qmail-local's outcome into a report, as qmail-lspawn does.
pub fn report(o: &ChildOutcome) -> Vec<u8> {
    let mut out = o.output.clone();
    if o.truncated {
        out.extend_from_slice(b"\nError report too long, sorry.\n");
    }
    let with = |letter: u8, out: &[u8]| {
        let mut v = vec![letter];
        v.extend_from_slice(out);
        v
    };
    let Some(code) = o.status.code() else {
        let _ = o.status.signal();
        return b"Zqmail-local crashed.\n".to_vec();
    };
    match code {
        0 => with(b'K', &out),
        111 | 71 | 74 | 75 => with(b'Z', &out),
        112 => b"ZInternal qmail-lspawn bug. (#4.3.0)\n".to_vec(),
        113 => b"ZNot allowed to perform deliveries as root.\n".to_vec(),
        115 => b"ZUnable to chdir to home directory. (#4.3.0)\n".to_vec(),
        116 => b"ZUnable to find alias user!\n".to_vec(),
        117 => b"ZTrouble reading users/cdb in qmail-lspawn.\n".to_vec(),
        118 => b"ZSystem resources temporarily unavailable in qmail-lspawn.\n".to_vec(),
        119 => b"ZOut of memory in qmail-lspawn.\n".to_vec(),
        120 => b"ZUnable to run qmail-local.\n".to_vec(),
        121 => b"ZUnable to run qmail-getpw.\n".to_vec(),
        126 => b"DUnable to run qmail-local.\n".to_vec(),
        _ => with(b'D', &out),
    }
}

impl Deliver for Local {
    fn deliver(&self, mess: File, sender: &[u8], recip: &[u8]) -> Vec<u8> {
        let at = recip
            .iter()
            .rposition(|&b| b == b'@')
            .unwrap_or(recip.len());
        let local = &recip[..at];
        let domain = recip.get(at + 1..).unwrap_or(&[]);
        if local.is_empty() {
            // The trash address "@host".
            return b"K".to_vec();
        }
        let local_s = String::from_utf8_lossy(local).into_owned();
        let a = match crate::users::lookup(&local_s) {
            Ok(Some(a)) => a,
            Ok(None) => return b"ZUnable to find alias user!\n".to_vec(),
            Err(LookupError::UsersCdb(_)) => {
                return b"ZTrouble reading users/cdb in qmail-lspawn.\n".to_vec();
            }
            Err(LookupError::System(t)) => {
                return format!("ZUnable to look up the owner of {local_s}: {t} (#4.3.0)\n")
                    .into_bytes();
            }
        };
        if self.root && a.uid == 0 {
            return b"ZNot allowed to perform deliveries as root.\n".to_vec();
        }
        use std::os::unix::ffi::OsStrExt;
        let (user, home) = (a.user.as_bytes(), a.home.as_os_str().as_bytes());
        let argv: [&[u8]; 10] = [
            b"qmail-local",
            b"--",
            user,
            home,
            local,
            a.dash.as_bytes(),
            a.ext.as_bytes(),
            domain,
            sender,
            self.default_delivery.as_bytes(),
        ];
        // As root: the owner's uid and gid, no supplementary groups.
        let ids = self.root.then_some((a.uid, a.gid));
        match crate::spawn::run_program(&qmail_local_program(), &argv, ids, mess, OUTPUT_CAP) {
            Ok(o) => report(&o),
            Err(_) => b"ZUnable to run qmail-local.\n".to_vec(),
        }
    }
}

/// qmail-lspawn's main.
pub fn main(args: Vec<String>) -> i32 {
    let default_delivery = args.first().cloned().unwrap_or_else(|| "./Mailbox".into());
    let d = Local {
        default_delivery,
        root: crate::ids::running_as_root(),
    };
    crate::spawn::main("qmail-lspawn", Arc::new(d))
}
