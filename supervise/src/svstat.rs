//! `svstat [--json] DIR…`: one line per DIR in daemontools' exact words ("DIR: up (pid P) S
//! seconds, normally down, paused, want down", "DIR: supervise not running", …), plus
//! ", ready S seconds" when the service reported readiness (our extension, see
//! `status::Ready`). Exit 0, errors go on the DIR's line, as in daemontools.
//! `--json` prints one JSON array with an object per DIR instead.

use crate::control::supervise_running;
use crate::errstr::{err_str, nix_str};
use crate::status::{ReadError, Ready, Status, Want};
use crate::tai::seconds_since;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What svstat found for one directory.
#[derive(Debug)]
pub enum Report {
    /// An error line (text after "DIR: ").
    Error(String),
    NotRunning,
    Running {
        status: Status,
        normally_down: bool,
        ready: Option<Ready>,
    },
}

/// Inspect one service directory (relative to the current directory).
pub fn inspect(dir: &Path) -> Report {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Report::Error(format!(
                "unable to chdir: {}",
                err_str(&std::io::Error::from_raw_os_error(libc::ENOTDIR))
            ));
        }
        Err(e) => return Report::Error(format!("unable to chdir: {}", err_str(&e))),
    }
    let sup: PathBuf = dir.join("supervise");
    match supervise_running(&sup) {
        Ok(true) => {}
        Ok(false) => return Report::NotRunning,
        Err(e) => {
            return Report::Error(format!("unable to open supervise/ok: {}", nix_str(e)));
        }
    }
    let status = match Status::read(&sup) {
        Ok(s) => s,
        Err(ReadError::Io(e)) => {
            return Report::Error(format!("unable to open supervise/status: {}", err_str(&e)));
        }
        Err(ReadError::BadFormat) => {
            return Report::Error("unable to read supervise/status: bad format".to_string());
        }
    };
    let normally_down = dir.join("down").exists();
    let ready = Ready::read(&sup).filter(|r| status.pid != 0 && r.pid == status.pid);
    Report::Running {
        status,
        normally_down,
        ready,
    }
}

/// The daemontools line for a report (without the newline).
pub fn line(shown: &str, r: &Report, now: SystemTime) -> String {
    match r {
        Report::Error(e) => format!("{shown}: {e}"),
        Report::NotRunning => format!("{shown}: supervise not running"),
        Report::Running {
            status,
            normally_down,
            ready,
        } => {
            let secs = seconds_since(status.when, now);
            let up = status.pid != 0;
            let mut s = if up {
                format!("{shown}: up (pid {}) {secs} seconds", status.pid)
            } else {
                format!("{shown}: down {secs} seconds")
            };
            if up && *normally_down {
                s.push_str(", normally down");
            }
            if !up && !*normally_down {
                s.push_str(", normally up");
            }
            if up && status.paused {
                s.push_str(", paused");
            }
            if !up && status.want == Want::Up {
                s.push_str(", want up");
            }
            if up && status.want == Want::Down {
                s.push_str(", want down");
            }
            if let Some(rd) = ready {
                s.push_str(&format!(", ready {} seconds", seconds_since(rd.when, now)));
            }
            s
        }
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The JSON object for a report.
pub fn json(shown: &str, r: &Report, now: SystemTime) -> String {
    let dir = json_str(shown);
    match r {
        Report::Error(e) => format!(
            "{{\"dir\":{dir},\"supervise\":null,\"error\":{}}}",
            json_str(e)
        ),
        Report::NotRunning => format!("{{\"dir\":{dir},\"supervise\":false}}"),
        Report::Running {
            status,
            normally_down,
            ready,
        } => {
            let up = status.pid != 0;
            let want = match status.want {
                Want::Up => "\"up\"",
                Want::Down => "\"down\"",
                Want::Nothing => "null",
            };
            let ready_part = match ready {
                Some(rd) => format!(
                    "\"ready\":true,\"ready_seconds\":{},\"ready_since\":{:.3}",
                    seconds_since(rd.when, now),
                    unix(rd.when)
                ),
                None => "\"ready\":false,\"ready_seconds\":null,\"ready_since\":null".to_string(),
            };
            format!(
                "{{\"dir\":{dir},\"supervise\":true,\"state\":\"{}\",\"pid\":{},\"seconds\":{},\"since\":{:.3},\"normally\":\"{}\",\"paused\":{},\"want\":{want},{ready_part}}}",
                if up { "up" } else { "down" },
                if up {
                    status.pid.to_string()
                } else {
                    "null".to_string()
                },
                seconds_since(status.when, now),
                unix(status.when),
                if *normally_down { "down" } else { "up" },
                up && status.paused,
            )
        }
    }
}

pub fn main(args: Vec<OsString>) -> i32 {
    let mut json_out = false;
    let mut dirs = Vec::new();
    for a in args.into_iter().skip(1) {
        if a == "--json" {
            json_out = true;
        } else {
            dirs.push(a);
        }
    }
    let now = SystemTime::now();
    let mut out = std::io::stdout().lock();
    let mut parts = Vec::new();
    for d in &dirs {
        let shown = d.to_string_lossy();
        let r = inspect(Path::new(d));
        if json_out {
            parts.push(json(&shown, &r, now));
        } else if writeln!(out, "{}", line(&shown, &r, now)).is_err() {
            return 111;
        }
    }
    if json_out && writeln!(out, "[{}]", parts.join(",")).is_err() {
        return 111;
    }
    if out.flush().is_err() {
        return 111;
    }
    0
}
