//! `svscanboot [DIR]` (DIR defaults to /service): the boot entry point of daemontools. With
//! its standard descriptors on /dev/null, it first tells any supervise left from a previous
//! run to stop (`svc -dx DIR/* DIR/*/log`), then runs `svscan DIR` with a clean environment
//! (only PATH) and both its output streams piped into `readproctitle service errors: ……`,
//! which it becomes, so `ps` shows the services' latest error output.
//!
//! Differences from daemontools: a program, not a shell script; takes DIR as an optional
//! argument; PATH starts with the directory of this executable so our svc, svscan, supervise
//! and readproctitle are found first.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

const PATH: &str =
    "/command:/usr/local/bin:/usr/local/sbin:/bin:/sbin:/usr/bin:/usr/sbin:/usr/X11R6/bin";

pub fn main(args: Vec<OsString>) -> i32 {
    let dir = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| OsString::from("/service"));
    let mut path = OsString::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        path.push(d.as_os_str());
        path.push(":");
    }
    path.push(PATH);
    // Standard descriptors to /dev/null, as the original script's `exec </dev/null >/dev/null
    // 2>/dev/null`.
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let mut stop: Vec<OsString> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut names: Vec<OsString> = rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
        names.sort();
        for n in names {
            if n.as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            let p = std::path::Path::new(&dir).join(&n);
            if p.join("log").is_dir() {
                stop.push(p.join("log").into_os_string());
            }
            stop.push(p.into_os_string());
        }
    }
    if !stop.is_empty() {
        let _ = Command::new(crate::sibling("svc"))
            .arg("-dx")
            .args(&stop)
            .env("PATH", &path)
            .status();
    }
    let (r, w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(_) => return 111,
    };
    let w2 = match w.try_clone() {
        Ok(w) => w,
        Err(_) => return 111,
    };
    let spawned = Command::new(crate::sibling("svscan"))
        .arg(&dir)
        .env_clear()
        .env("PATH", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2))
        .spawn();
    if spawned.is_err() {
        return 111;
    }
    let dots = ".".repeat(400);
    let e = Command::new(crate::sibling("readproctitle"))
        .args(["service", "errors:", &dots])
        .env_clear()
        .env("PATH", &path)
        .stdin(Stdio::from(r))
        .exec();
    let _ = e;
    111
}
