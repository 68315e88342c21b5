//! `sendmail`: the wrapper for programs that expect Sendmail (cron, mailx, git send-email,
//! PHP's mail(), …). It runs QMAILHOME/bin/qmail-inject (`-H` with `-t`, else `-a`), or
//! QMAILHOME/bin/qmail-smtpd for `-bs`, or QMAILHOME/bin/qmail-qread for `-bp` and when
//! called as `mailq`.
//!
//! Options as qmail's sendmail: `-t` recipients from the header (plus arguments), `-f SENDER`
//! (passed to qmail-inject, which also takes QMAILUSER/QMAILHOST from it and forgets the
//! QMAILNAME/MAILNAME/NAME/MAILHOST it had), `-F NAME` (MAILNAME), `-bs` (SMTP on stdin; when
//! PROTO is unset it sets RELAYCLIENT="", DATABYTES=0, PROTO=TCP, TCPLOCALIP/TCPREMOTEIP
//! 127.0.0.1, TCPLOCALHOST/TCPREMOTEHOST localhost and TCPREMOTEINFO=sendmail-bs), `-bp`, `-bm`;
//! accepted and ignored: -B x, -p x, -v, -i, -x, -m, -e x, -o x (-oi, -oem, -odi, …), -E, -J.
//! Called as `newaliases`, or with `-bi`, it says to use fastforward's newaliases and exits 100.
//! Usage errors exit 100; a program that cannot be run, 111.
//!
//! Deliberate differences: `-F NAME` also holds together with `-f` (qmail's wrapper dropped
//! the name when `-f` was given, since its `-f` handling unset MAILNAME); `-bi` is treated like
//! `newaliases`.

use std::os::unix::process::CommandExt;
use std::process::Command;

const USAGE: &str =
    "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]";

fn die(code: i32, msg: &str) -> i32 {
    eprintln!("sendmail: fatal: {msg}");
    code
}

fn usage() -> i32 {
    eprintln!("{USAGE}");
    100
}

fn run(mut cmd: Command, what: &str) -> i32 {
    let e = cmd.exec();
    die(111, &format!("unable to run {what}: {e}"))
}

fn mailq() -> i32 {
    run(Command::new(crate::home::bin("qmail-qread")), "qmail-qread")
}

fn smtpd() -> i32 {
    let mut cmd = Command::new(crate::home::bin("qmail-smtpd"));
    if std::env::var_os("PROTO").is_none() {
        cmd.env("RELAYCLIENT", "")
            .env("DATABYTES", "0")
            .env("PROTO", "TCP")
            .env("TCPLOCALIP", "127.0.0.1")
            .env("TCPLOCALHOST", "localhost")
            .env("TCPREMOTEIP", "127.0.0.1")
            .env("TCPREMOTEHOST", "localhost")
            .env("TCPREMOTEINFO", "sendmail-bs");
    }
    run(cmd, "qmail-smtpd")
}

/// The program; `argv0` is the name it was called by. Returns the exit code (only on errors
/// or for newaliases: otherwise it execs).
pub fn main(argv0: &str, args: &[String]) -> i32 {
    let progname = std::path::Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut flag_h = false;
    let mut sender: Option<String> = None;
    let mut fullname: Option<String> = None;
    let mut i = 0;
    // getopt "vimte:f:p:o:B:F:EJxb:"
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        let cs: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < cs.len() {
            let c = cs[j];
            match c {
                'v' | 'i' | 'm' | 't' | 'x' => {
                    if c == 't' {
                        flag_h = true;
                    }
                    j += 1;
                }
                // -E and -J take an optional argument in the same word.
                'E' | 'J' => j = cs.len(),
                'e' | 'f' | 'p' | 'o' | 'B' | 'F' | 'b' => {
                    let rest: String = cs[j + 1..].iter().collect();
                    let val = if rest.is_empty() {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => return usage(),
                        }
                    } else {
                        rest
                    };
                    match c {
                        'f' => sender = Some(val),
                        'F' => fullname = Some(val),
                        'b' => match val.chars().next() {
                            Some('m') => {}
                            Some('p') => return mailq(),
                            Some('s') => return smtpd(),
                            Some('i') => return newaliases(),
                            _ => return usage(),
                        },
                        _ => {}
                    }
                    j = cs.len();
                }
                _ => return usage(),
            }
        }
        i += 1;
    }
    let rest = &args[i.min(args.len())..];
    if progname == "mailq" {
        return mailq();
    }
    if progname == "newaliases" {
        return newaliases();
    }
    let mut cmd = Command::new(crate::home::bin("qmail-inject"));
    cmd.arg(if flag_h { "-H" } else { "-a" });
    if let Some(s) = &sender {
        cmd.arg("-f").arg(s);
        for v in ["QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"] {
            cmd.env_remove(v);
        }
        match s.rfind('@') {
            Some(at) => {
                cmd.env("QMAILHOST", &s[at + 1..])
                    .env("QMAILUSER", &s[..at]);
            }
            None => {
                cmd.env("QMAILUSER", s);
            }
        }
    }
    if let Some(n) = &fullname {
        cmd.env("MAILNAME", n);
    }
    cmd.arg("--").args(rest);
    run(cmd, "qmail-inject")
}

fn newaliases() -> i32 {
    die(100, "please use fastforward/newaliases instead")
}
