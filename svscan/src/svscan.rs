//! `svscan [DIR]`: starts one `supervise NAME` per subdirectory of DIR (names starting with
//! '.' skipped; symlinks to directories followed; entries keyed by device and inode), and for
//! a subdirectory with `log/` a second `supervise NAME/log`. The service's supervise gets the
//! write end of a pipe as stdout and the log's supervise the read end as stdin; svscan creates
//! that pipe once per service and keeps both ends open itself, so either side can restart
//! without losing what is buffered in the pipe.
//!
//! Rescans every 5 seconds and at once on SIGALRM. A supervise that exits is started again at
//! the next scan if its directory is still there; a directory that disappears is forgotten
//! once its supervise has exited — svscan never kills a supervise (use `svc -dx`).
//!
//! The "pipe" is a one-way Unix stream socket pair rather than a pipe(2): a service writes to
//! it exactly as to a pipe, but our multilog can then peek at its input, write the lines, and
//! only then consume them, so a SIGKILL of the logger at any instant loses no line (at worst
//! a line is logged twice). Any other logger simply read(2)s it as it would a pipe.
//!
//! supervise is looked for next to svscan's own executable first, then on `$PATH`.
//! Differences from daemontools, on purpose: a `log/` directory that appears after the service
//! was first seen still gets its logger and pipe (the service's supervise keeps the stdout it
//! was started with until it restarts).

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use supervise::errstr::{err_str, nix_str};

const MAX_SERVICES: usize = 1000;
const SCAN_INTERVAL: Duration = Duration::from_secs(5);

fn warn(msg: &str) {
    eprintln!("svscan: warning: {msg}");
}

struct Service {
    key: (u64, u64),
    name: OsString,
    pid: Option<Pid>,
    log_pid: Option<Pid>,
    pipe: Option<(OwnedFd, OwnedFd)>,
    active: bool,
}

pub fn main(args: Vec<OsString>) -> i32 {
    if let Some(dir) = args.get(1)
        && let Err(e) = std::env::set_current_dir(dir)
    {
        eprintln!(
            "svscan: fatal: unable to chdir to {}: {}",
            dir.to_string_lossy(),
            err_str(&e)
        );
        return 111;
    }
    let (sig_r, sig_w) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("svscan: fatal: unable to create pipe: {}", err_str(&e));
            return 111;
        }
    };
    let _ = sig_r.set_nonblocking(true);
    let _ = sig_w.set_nonblocking(true);
    let alarm = Arc::new(AtomicBool::new(false));
    let registered = signal_hook::flag::register(libc::SIGALRM, alarm.clone())
        .and_then(|_| sig_w.try_clone())
        .and_then(|w| signal_hook::low_level::pipe::register(libc::SIGALRM, w))
        .and_then(|_| signal_hook::low_level::pipe::register(libc::SIGCHLD, sig_w));
    if let Err(e) = registered {
        eprintln!("svscan: fatal: unable to catch signals: {}", err_str(&e));
        return 111;
    }
    let mut scanner = Scanner {
        supervise: crate::sibling("supervise"),
        services: Vec::new(),
    };
    loop {
        scanner.scan();
        let next = Instant::now() + SCAN_INTERVAL;
        loop {
            let now = Instant::now();
            if now >= next {
                break;
            }
            let ms = (next - now).as_millis().min(i32::MAX as u128) as i32 + 1;
            let mut fds = [PollFd::new(sig_r.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    warn(&format!("unable to poll: {}", nix_str(e)));
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            let mut buf = [0u8; 64];
            while matches!((&sig_r).read(&mut buf), Ok(n) if n > 0) {}
            scanner.reap();
            if alarm.swap(false, Ordering::SeqCst) {
                break;
            }
        }
    }
}

struct Scanner {
    supervise: PathBuf,
    services: Vec<Service>,
}

impl Scanner {
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    let Some(p) = ws.pid() else { return };
                    for s in &mut self.services {
                        if s.pid == Some(p) {
                            s.pid = None;
                        }
                        if s.log_pid == Some(p) {
                            s.log_pid = None;
                        }
                    }
                }
            }
        }
    }

    fn scan(&mut self) {
        for s in &mut self.services {
            s.active = false;
        }
        let rd = match std::fs::read_dir(".") {
            Ok(r) => r,
            Err(e) => {
                warn(&format!("unable to open .: {}", err_str(&e)));
                return;
            }
        };
        let mut names: Vec<OsString> = Vec::new();
        for ent in rd {
            match ent {
                Ok(e) => names.push(e.file_name()),
                Err(e) => {
                    warn(&format!("unable to read .: {}", err_str(&e)));
                    break;
                }
            }
        }
        names.sort();
        for name in names {
            if name.as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            let meta = match std::fs::metadata(&name) {
                Ok(m) => m,
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        warn(&format!(
                            "unable to stat {}: {}",
                            name.to_string_lossy(),
                            err_str(&e)
                        ));
                    }
                    continue;
                }
            };
            if !meta.is_dir() {
                continue;
            }
            let key = (meta.dev(), meta.ino());
            let idx = match self.services.iter().position(|s| s.key == key) {
                Some(i) => i,
                None => {
                    if self.services.len() >= MAX_SERVICES {
                        warn(&format!(
                            "unable to start {}: running too many services",
                            name.to_string_lossy()
                        ));
                        continue;
                    }
                    self.services.push(Service {
                        key,
                        name: name.clone(),
                        pid: None,
                        log_pid: None,
                        pipe: None,
                        active: false,
                    });
                    self.services.len() - 1
                }
            };
            let sup = self.supervise.clone();
            let s = &mut self.services[idx];
            s.active = true;
            s.name = name.clone();
            let logdir = Path::new(&name).join("log");
            let has_log = match std::fs::metadata(&logdir) {
                Ok(m) => m.is_dir(),
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        warn(&format!(
                            "unable to stat {}: {}",
                            logdir.display(),
                            err_str(&e)
                        ));
                    }
                    false
                }
            };
            if has_log && s.pipe.is_none() {
                match log_channel() {
                    Ok(p) => s.pipe = Some(p),
                    Err(e) => {
                        warn(&format!("unable to create pipe: {}", nix_str(e)));
                        continue;
                    }
                }
            }
            if s.pid.is_none() {
                let out = s.pipe.as_ref().map(|(_, w)| w.try_clone());
                s.pid = start(&sup, Path::new(&name), None, out);
            }
            if s.pipe.is_some() && s.log_pid.is_none() && has_log {
                let inp = s.pipe.as_ref().map(|(r, _)| r.try_clone());
                s.log_pid = start(&sup, &logdir, inp, None);
            }
        }
        // Forget vanished services whose supervise processes have all exited.
        self.services
            .retain(|s| s.active || s.pid.is_some() || s.log_pid.is_some());
    }
}

fn start(
    supervise: &Path,
    dir: &Path,
    stdin: Option<std::io::Result<OwnedFd>>,
    stdout: Option<std::io::Result<OwnedFd>>,
) -> Option<Pid> {
    let mut cmd = Command::new(supervise);
    cmd.arg(dir);
    let fail = |e: &std::io::Error| {
        warn(&format!(
            "unable to start supervise {}: {}",
            dir.display(),
            err_str(e)
        ));
        None
    };
    match stdin {
        Some(Ok(fd)) => {
            cmd.stdin(Stdio::from(fd));
        }
        Some(Err(e)) => return fail(&e),
        None => {}
    }
    match stdout {
        Some(Ok(fd)) => {
            cmd.stdout(Stdio::from(fd));
        }
        Some(Err(e)) => return fail(&e),
        None => {}
    }
    supervise::childproc::fresh(&mut cmd, None);
    match cmd.spawn() {
        Ok(c) => Some(Pid::from_raw(c.id() as i32)),
        Err(e) => fail(&e),
    }
}

/// The service→logger channel: (read end, write end), both close-on-exec, each end shut down
/// in the direction it must not be used in.
fn log_channel() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, Shutdown, SockFlag, SockType, shutdown, socketpair};
    use std::os::fd::AsRawFd;
    let (r, w) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    shutdown(r.as_raw_fd(), Shutdown::Write)?;
    shutdown(w.as_raw_fd(), Shutdown::Read)?;
    Ok((r, w))
}
