//! `svc [-udopchaitkx12] [-wu|-wd|-wr] [-T SECONDS] DIR…`: sends the command letters, in the
//! order given, to each DIR's supervise.
//!
//! Exit codes: 0 all sent (and, with -w, every DIR reached the state); 100 usage; 111 some DIR
//! could not be controlled (a warning names it, as in daemontools); with -w, 99 when the
//! timeout passed first (a message names the DIRs still waiting).
//!
//! Our additions: `1`/`2` (USR1/USR2); `-wu` waits until up, `-wd` until down, `-wr` until up
//! and ready (readiness notification); `-T SECONDS` bounds the wait (default: no limit).
//! After `-t` or `-k` a waited-for up/ready state must belong to a new pid.

use crate::control::{SendError, send};
use crate::errstr::{err_str, nix_str};
use crate::status::{ReadError, Ready, Status};
use nix::errno::Errno;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const OPTIONS_LINE: &str = "svc options: u up, d down, o once, x exit, p pause, c continue, h hup, a alarm, i interrupt, t term, k kill, 1 usr1, 2 usr2, wu/wd/wr wait until up/down/ready, T seconds wait at most";

fn usage(bad: Option<String>) -> i32 {
    if let Some(b) = bad {
        eprintln!("svc: illegal option -- {b}");
    }
    eprintln!("{OPTIONS_LINE}");
    100
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WaitFor {
    Up,
    Down,
    Ready,
}

pub fn main(args: Vec<OsString>) -> i32 {
    let mut cmds: Vec<u8> = Vec::new();
    let mut wait: Option<WaitFor> = None;
    let mut timeout: Option<Duration> = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        let mut j = 1;
        while j < a.len() {
            let c = a[j];
            match c {
                b'w' => {
                    let Some(&t) = a.get(j + 1) else {
                        eprintln!("svc: option -w needs u, d or r");
                        return usage(None);
                    };
                    wait = Some(match t {
                        b'u' => WaitFor::Up,
                        b'd' => WaitFor::Down,
                        b'r' => WaitFor::Ready,
                        _ => {
                            return usage(Some(format!("w{}", t as char)));
                        }
                    });
                    j += 2;
                    continue;
                }
                b'T' => {
                    let val: Vec<u8> = if j + 1 < a.len() {
                        a[j + 1..].to_vec()
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.as_bytes().to_vec(),
                            None => {
                                eprintln!("svc: option -T needs a number of seconds");
                                return usage(None);
                            }
                        }
                    };
                    let text = String::from_utf8_lossy(&val).into_owned();
                    match text.parse::<f64>() {
                        Ok(s) if (0.0..1e9).contains(&s) => {
                            timeout = Some(Duration::from_secs_f64(s))
                        }
                        _ => {
                            eprintln!("svc: bad timeout for -T: {text}");
                            return usage(None);
                        }
                    }
                    j = a.len();
                    continue;
                }
                c if crate::control::COMMANDS.contains(&c) => cmds.push(c),
                c => {
                    return usage(Some(String::from_utf8_lossy(&[c]).into_owned()));
                }
            }
            j += 1;
        }
        i += 1;
    }
    let dirs: Vec<&OsString> = args[i.min(args.len())..].iter().collect();
    let mut failed = false;
    let mut targets: Vec<(String, PathBuf, Option<u32>)> = Vec::new();
    for d in dirs {
        let shown = d.to_string_lossy().into_owned();
        let dir = Path::new(d);
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                eprintln!("svc: warning: unable to chdir to {shown}: not a directory");
                failed = true;
                continue;
            }
            Err(e) => {
                eprintln!("svc: warning: unable to chdir to {shown}: {}", err_str(&e));
                failed = true;
                continue;
            }
        }
        let sup = dir.join("supervise");
        let before = Status::read(&sup).ok().map(|s| s.pid).filter(|p| *p != 0);
        match send(&sup, &cmds) {
            Ok(()) => targets.push((shown, sup, before)),
            Err(SendError::Open(Errno::ENXIO)) => {
                eprintln!("svc: warning: unable to control {shown}: supervise not running");
                failed = true;
            }
            Err(SendError::Open(e)) => {
                eprintln!("svc: warning: unable to control {shown}: {}", nix_str(e));
                failed = true;
            }
            Err(SendError::Write(e)) => {
                eprintln!(
                    "svc: warning: error writing commands to {shown}: {}",
                    err_str(&e)
                );
                failed = true;
            }
        }
    }
    if let Some(w) = wait {
        let need_new_pid = cmds.iter().any(|c| matches!(c, b't' | b'k'));
        let end = timeout.map(|t| Instant::now() + t);
        let mut pending = targets;
        loop {
            let mut still = Vec::new();
            for (shown, sup, before) in pending {
                match reached(&sup, w, if need_new_pid { before } else { None }) {
                    Ok(true) => {}
                    Ok(false) => still.push((shown, sup, before)),
                    Err(msg) => {
                        eprintln!("svc: warning: unable to wait for {shown}: {msg}");
                        failed = true;
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                break;
            }
            if end.is_some_and(|e| Instant::now() >= e) {
                let names: Vec<&str> = pending.iter().map(|p| p.0.as_str()).collect();
                eprintln!(
                    "svc: fatal: timed out waiting for {} to be {}: {}",
                    if names.len() == 1 {
                        "service"
                    } else {
                        "services"
                    },
                    match w {
                        WaitFor::Up => "up",
                        WaitFor::Down => "down",
                        WaitFor::Ready => "ready",
                    },
                    names.join(" ")
                );
                return 99;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if failed { 111 } else { 0 }
}

/// Whether the service reached the state; `old_pid` (when set) must not be the pid seen.
fn reached(sup: &Path, w: WaitFor, old_pid: Option<u32>) -> Result<bool, String> {
    let st = match Status::read(sup) {
        Ok(s) => s,
        Err(ReadError::Io(e)) => {
            return Err(format!("unable to open supervise/status: {}", err_str(&e)));
        }
        Err(ReadError::BadFormat) => {
            return Err("unable to read supervise/status: bad format".to_string());
        }
    };
    let running = crate::control::supervise_running(sup).unwrap_or(false);
    Ok(match w {
        WaitFor::Down => st.pid == 0 || !running,
        WaitFor::Up => {
            if !running {
                return Err("supervise not running".into());
            }
            st.pid != 0 && Some(st.pid) != old_pid
        }
        WaitFor::Ready => {
            if !running {
                return Err("supervise not running".into());
            }
            st.pid != 0
                && Some(st.pid) != old_pid
                && Ready::read(sup).is_some_and(|r| r.pid == st.pid)
        }
    })
}
