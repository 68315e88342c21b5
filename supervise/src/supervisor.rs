//! `supervise DIR`: keeps `DIR/run` running, the daemontools 0.76 way.
//!
//! It changes to DIR, creates `supervise/` (mode 700), takes an exclusive non-blocking flock on
//! `supervise/lock` (a second supervise gets "unable to acquire DIR/supervise/lock: temporary
//! failure" and exit 111), creates the `control` and `ok` fifos and keeps them open (plus a
//! write end of `control`, so it never reads EOF), and rewrites the 18-byte `supervise/status`
//! (status.new + rename) at every change.
//!
//! One event loop: `poll` on a self-pipe fed by the SIGCHLD handler, the control fifo and the
//! readiness pipe; no busy waiting, at least an hourly wake-up. SIGTERM and SIGHUP keep their
//! default action, as in daemontools: supervise dies and leaves the service running (use
//! `svc -dx` to stop both).
//!
//! Differences from daemontools 0.76, on purpose:
//! - the restart guard (at most one start of ./run per second) is a deadline in the loop, not a
//!   blocking sleep, so commands are still handled during that second; a ./run that cannot be
//!   executed gets daemontools' message ("unable to start DIR/run: …", reported by the parent
//!   from a pipe the child writes its errno to) and is retried every second;
//! - after each exit of ./run, `./finish CODE SIGNAL` runs when present (CODE is the exit
//!   code or -1 when killed by a signal, SIGNAL the signal number or 0), for at most 5 seconds;
//!   ./run is not restarted before ./finish has ended;
//! - commands `1` and `2` send SIGUSR1 and SIGUSR2;
//! - readiness: when `notification-fd` holds a descriptor number N, ./run gets the write end of
//!   a pipe as descriptor N; the first newline written to it marks the service ready, recorded
//!   in `supervise/ready` (the 18-byte status is unchanged).

use crate::childproc;
use crate::errstr::{err_str, nix_str};
use crate::status::{Ready, Status, Want, replace_file};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, mkfifo};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
const RESTART_GUARD: Duration = Duration::from_secs(1);

fn fatal(msg: &str) -> i32 {
    eprintln!("supervise: fatal: {msg}");
    111
}

fn warn(msg: &str) {
    eprintln!("supervise: warning: {msg}");
}

/// Entry point; returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let Some(dir) = args.get(1) else {
        eprintln!("supervise: usage: supervise dir");
        return 100;
    };
    let shown = dir.to_string_lossy().into_owned();
    match Supervisor::setup(&shown, Path::new(dir)) {
        Ok(mut s) => s.run(),
        Err(code) => code,
    }
}

struct Supervisor {
    dir: String,
    _lock: nix::fcntl::Flock<File>,
    control_r: File,
    _control_w: File,
    _ok_r: File,
    sigpipe: UnixStream,
    // state as daemontools keeps it
    pid: Option<Pid>,
    when: SystemTime,
    paused: bool,
    flag_want: bool,
    flag_want_up: bool,
    flag_exit: bool,
    start_pending: bool,
    last_start: Option<Instant>,
    finish: Option<(Pid, Instant)>,
    notify: Option<OwnedFd>,
    exec_err: Option<OwnedFd>,
}

fn open_fifo(path: &str, write: bool) -> io::Result<File> {
    let mut o = fs::OpenOptions::new();
    if write {
        o.write(true);
    } else {
        o.read(true);
    }
    o.custom_flags(libc::O_NONBLOCK).open(path)
}

impl Supervisor {
    fn setup(shown: &str, dir: &Path) -> Result<Supervisor, i32> {
        if let Err(e) = std::env::set_current_dir(dir) {
            return Err(fatal(&format!(
                "unable to chdir to {shown}: {}",
                err_str(&e)
            )));
        }
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create("supervise")
            && e.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(fatal(&format!(
                "unable to mkdir {shown}/supervise: {}",
                err_str(&e)
            )));
        }
        let lockfile = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open("supervise/lock")
            .map_err(|e| {
                fatal(&format!(
                    "unable to acquire {shown}/supervise/lock: {}",
                    err_str(&e)
                ))
            })?;
        let lock = nix::fcntl::Flock::lock(lockfile, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| {
            fatal(&format!(
                "unable to acquire {shown}/supervise/lock: {}",
                nix_str(e)
            ))
        })?;
        for name in ["control", "ok"] {
            let p = format!("supervise/{name}");
            match mkfifo(p.as_str(), nix::sys::stat::Mode::from_bits_truncate(0o600)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(fatal(&format!(
                        "unable to mkfifo {shown}/{p}: {}",
                        nix_str(e)
                    )));
                }
            }
        }
        let rd = |name: &str| {
            open_fifo(&format!("supervise/{name}"), false).map_err(|e| {
                fatal(&format!(
                    "unable to read {shown}/supervise/{name}: {}",
                    err_str(&e)
                ))
            })
        };
        let control_r = rd("control")?;
        let control_w = open_fifo("supervise/control", true).map_err(|e| {
            fatal(&format!(
                "unable to write {shown}/supervise/control: {}",
                err_str(&e)
            ))
        })?;
        let ok_r = rd("ok")?;
        let (sig_r, sig_w) = UnixStream::pair()
            .map_err(|e| fatal(&format!("unable to create pipe: {}", err_str(&e))))?;
        let _ = sig_r.set_nonblocking(true);
        let _ = sig_w.set_nonblocking(true);
        if let Err(e) = signal_hook::low_level::pipe::register(libc::SIGCHLD, sig_w) {
            return Err(fatal(&format!("unable to catch SIGCHLD: {}", err_str(&e))));
        }
        let flag_want_up = match fs::metadata("down") {
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                return Err(fatal(&format!(
                    "unable to stat {shown}/down: {}",
                    err_str(&e)
                )));
            }
        };
        let _ = fs::remove_file("supervise/ready");
        Ok(Supervisor {
            dir: shown.to_string(),
            _lock: lock,
            control_r,
            _control_w: control_w,
            _ok_r: ok_r,
            sigpipe: sig_r,
            pid: None,
            when: SystemTime::now(),
            paused: false,
            flag_want: true,
            flag_want_up,
            flag_exit: false,
            start_pending: flag_want_up,
            last_start: None,
            finish: None,
            notify: None,
            exec_err: None,
        })
    }

    fn announce(&self) {
        let st = Status {
            when: self.when,
            pid: self.pid.map(|p| p.as_raw() as u32).unwrap_or(0),
            paused: self.paused,
            want: match (self.flag_want, self.flag_want_up) {
                (false, _) => Want::Nothing,
                (true, true) => Want::Up,
                (true, false) => Want::Down,
            },
        };
        if let Err(m) = replace_file(
            Path::new("supervise"),
            &format!("{}/supervise", self.dir),
            "status",
            &st.encode(),
        ) {
            warn(&m);
        }
    }

    fn run(&mut self) -> i32 {
        self.announce();
        loop {
            if self.flag_exit && self.pid.is_none() && self.finish.is_none() {
                return 0;
            }
            let now = Instant::now();
            let mut timeout = Duration::from_secs(3600);
            if self.start_pending && self.pid.is_none() && self.finish.is_none() {
                let allowed = self.last_start.map(|t| t + RESTART_GUARD);
                match allowed {
                    Some(a) if a > now => timeout = timeout.min(a - now),
                    _ => {
                        self.start();
                        continue;
                    }
                }
            }
            if let Some((fpid, deadline)) = self.finish {
                if deadline <= now {
                    warn(&format!(
                        "{}/finish did not end within 5 seconds, killing it",
                        self.dir
                    ));
                    let _ = kill(fpid, Signal::SIGKILL);
                    self.finish = Some((fpid, now + Duration::from_secs(3600)));
                } else {
                    timeout = timeout.min(deadline - now);
                }
            }
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32 + 1;
            let (sig_ready, ctl_ready, notify_ready, err_ready) = {
                let mut fds = vec![
                    PollFd::new(self.sigpipe.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.control_r.as_fd(), PollFlags::POLLIN),
                ];
                let mut ni = None;
                let mut ei = None;
                if let Some(n) = &self.notify {
                    ni = Some(fds.len());
                    fds.push(PollFd::new(n.as_fd(), PollFlags::POLLIN));
                }
                if let Some(e) = &self.exec_err {
                    ei = Some(fds.len());
                    fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
                }
                match poll(
                    &mut fds,
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                ) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        warn(&format!("unable to poll: {}", nix_str(e)));
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                }
                let r = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (
                    r(&fds[0]),
                    r(&fds[1]),
                    ni.is_some_and(|i| r(&fds[i])),
                    ei.is_some_and(|i| r(&fds[i])),
                )
            };
            if err_ready {
                self.read_exec_err();
            }
            if sig_ready {
                let mut buf = [0u8; 64];
                while matches!((&self.sigpipe).read(&mut buf), Ok(n) if n > 0) {}
            }
            self.reap();
            if ctl_ready {
                let mut buf = [0u8; 64];
                loop {
                    match (&self.control_r).read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            for &c in &buf[..n] {
                                self.command(c);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            if notify_ready {
                self.read_notify();
            }
        }
    }

    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    let Some(p) = ws.pid() else { return };
                    if Some(p) == self.pid {
                        self.run_exited(ws);
                    } else if self.finish.is_some_and(|(f, _)| f == p) {
                        self.finish = None;
                    }
                }
            }
        }
    }

    fn run_exited(&mut self, ws: WaitStatus) {
        self.read_exec_err();
        self.exec_err = None;
        self.pid = None;
        self.when = SystemTime::now();
        self.paused = false;
        self.notify = None;
        let _ = fs::remove_file("supervise/ready");
        self.announce();
        let (code, sig) = match ws {
            WaitStatus::Exited(_, c) => (c, 0),
            WaitStatus::Signaled(_, s, _) => (-1, s as i32),
            _ => (-1, 0),
        };
        if fs::metadata("finish").is_ok() {
            let mut cmd = Command::new("./finish");
            cmd.arg(code.to_string()).arg(sig.to_string());
            childproc::fresh(&mut cmd, None);
            match cmd.spawn() {
                Ok(child) => {
                    self.finish = Some((
                        Pid::from_raw(child.id() as i32),
                        Instant::now() + FINISH_TIMEOUT,
                    ));
                }
                Err(e) => warn(&format!(
                    "unable to start {}/finish: {}",
                    self.dir,
                    err_str(&e)
                )),
            }
        }
        if !self.flag_exit && self.flag_want && self.flag_want_up {
            self.start_pending = true;
        }
    }

    /// The descriptor number in `notification-fd`, if any.
    fn notification_fd(&self) -> Option<i32> {
        let text = match fs::read_to_string("notification-fd") {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn(&format!(
                    "unable to read {}/notification-fd: {}",
                    self.dir,
                    err_str(&e)
                ));
                return None;
            }
        };
        match text.trim().parse::<i32>() {
            Ok(n) if (3..1024).contains(&n) => Some(n),
            _ => {
                warn(&format!(
                    "ignoring {}/notification-fd: not a descriptor number from 3 to 1023",
                    self.dir
                ));
                None
            }
        }
    }

    fn start(&mut self) {
        self.start_pending = false;
        self.last_start = Some(Instant::now());
        let mut notify_pipe = None;
        if let Some(n) = self.notification_fd() {
            match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok((r, w)) => notify_pipe = Some((r, w, n)),
                Err(e) => warn(&format!("unable to create pipe: {}", nix_str(e))),
            }
        }
        // The child reports a failed exec through this pipe (closed on a successful exec).
        let (err_r, err_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => {
                warn(&format!("unable to create pipe: {}", nix_str(e)));
                self.retry_later();
                return;
            }
        };
        let ignored = childproc::ignored();
        let dup = notify_pipe.as_ref().map(|(_, w, n)| (w.as_raw_fd(), *n));
        let run = c"./run";
        let argv: [*const libc::c_char; 2] = [run.as_ptr(), std::ptr::null()];
        let err_wfd = err_w.as_raw_fd();
        // SAFETY: supervise is single-threaded (signal-hook's pipe registration starts no
        // thread), so the child of fork is a consistent copy. In the child we only call
        // async-signal-safe functions — `reset_in_child`, execv, write, _exit — on data
        // prepared before the fork (a static C string, a stack array of pointers, integers).
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => unsafe {
                let mut err_wfd = err_wfd;
                if let Some((_, to)) = dup
                    && to == err_wfd
                {
                    // keep the error pipe out of the way of the notification descriptor
                    let moved = libc::fcntl(err_wfd, libc::F_DUPFD_CLOEXEC, to + 1);
                    if moved >= 0 {
                        err_wfd = moved;
                    }
                }
                let code = match childproc::reset_in_child(ignored, dup) {
                    Err(e) => e,
                    Ok(()) => {
                        libc::execv(run.as_ptr(), argv.as_ptr());
                        *libc::__errno_location()
                    }
                };
                let b = code.to_ne_bytes();
                libc::write(err_wfd, b.as_ptr().cast(), b.len());
                libc::_exit(111);
            },
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                drop(err_w);
                self.pid = Some(child);
                self.when = SystemTime::now();
                self.paused = false;
                self.announce();
                let _ = fs::remove_file("supervise/ready");
                let _ = nix::fcntl::fcntl(
                    err_r.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                self.exec_err = Some(err_r);
                if let Some((r, w, _)) = notify_pipe {
                    drop(w);
                    let _ = nix::fcntl::fcntl(
                        r.as_raw_fd(),
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                    );
                    self.notify = Some(r);
                }
            }
            Err(e) => {
                warn(&format!("unable to fork: {}", nix_str(e)));
                self.retry_later();
            }
        }
    }

    fn retry_later(&mut self) {
        if self.flag_want && self.flag_want_up {
            self.start_pending = true;
        }
    }

    /// The child's report of a failed exec: print it as daemontools does (the child then
    /// exits 111 and is restarted like any other exit).
    fn read_exec_err(&mut self) {
        let Some(fd) = self.exec_err.take() else {
            return;
        };
        let mut f = File::from(fd);
        let mut b = [0u8; 4];
        let mut got = 0;
        loop {
            match f.read(&mut b[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if got == 4 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.exec_err = Some(OwnedFd::from(f));
                    return;
                }
                Err(_) => break,
            }
        }
        if got == 4 {
            eprintln!(
                "supervise: fatal: unable to start {}/run: {}",
                self.dir,
                crate::errstr::errno_str(i32::from_ne_bytes(b))
            );
        }
    }

    fn read_notify(&mut self) {
        let Some(fd) = &self.notify else { return };
        let mut buf = [0u8; 512];
        let mut f = File::from(match fd.try_clone() {
            Ok(f) => f,
            Err(_) => return,
        });
        match f.read(&mut buf) {
            Ok(0) => self.notify = None,
            Ok(n) => {
                if buf[..n].contains(&b'\n') {
                    self.notify = None;
                    if let Some(pid) = self.pid {
                        let r = Ready {
                            when: SystemTime::now(),
                            pid: pid.as_raw() as u32,
                        };
                        if let Err(m) = replace_file(
                            Path::new("supervise"),
                            &format!("{}/supervise", self.dir),
                            "ready",
                            &r.encode(),
                        ) {
                            warn(&m);
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.notify = None,
        }
    }

    fn signal(&self, s: Signal) {
        if let Some(p) = self.pid {
            let _ = kill(p, s);
        }
    }

    fn command(&mut self, c: u8) {
        match c {
            b'u' => {
                self.flag_want = true;
                self.flag_want_up = true;
                if self.pid.is_none() {
                    self.start_pending = true;
                }
            }
            b'd' => {
                self.flag_want = true;
                self.flag_want_up = false;
                self.start_pending = false;
                self.signal(Signal::SIGTERM);
                self.signal(Signal::SIGCONT);
                self.paused = false;
            }
            b'o' => {
                self.flag_want = false;
                if self.pid.is_none() {
                    self.start_pending = true;
                }
            }
            b'x' => self.flag_exit = true,
            b'p' => {
                self.paused = true;
                self.signal(Signal::SIGSTOP);
            }
            b'c' => {
                self.paused = false;
                self.signal(Signal::SIGCONT);
            }
            _ => match crate::control::signal_for(c) {
                Some(s) => self.signal(s),
                None => return,
            },
        }
        self.announce();
    }
}
