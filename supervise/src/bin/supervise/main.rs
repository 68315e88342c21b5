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
//!
//! Built without std (when panic = "abort", i.e. in release builds): one supervise runs per
//! service, so its footprint counts, and std's runtime (panic and backtrace code, formatting,
//! libgcc_s) tripled the mapped text of this small loop (bench/RESULTS.md). It uses only
//! `core` and `libc`, does at start what std's runtime did that can be observed (standard
//! descriptors 0–2 opened on /dev/null when closed, SIGPIPE ignored, so children get it reset
//! to the default), and shares the byte formats and error wording with the library through
//! src/shared.rs. In builds with unwinding (dev/test) the same code is linked with std, which
//! provides the panic runtime; nothing else of std is used.

#![cfg_attr(panic = "abort", no_std)]
#![no_main]

// The library uses all of shared.rs; this program only part of it.
#[allow(dead_code)]
#[path = "../../shared.rs"]
mod shared;
mod sys;

use core::ffi::{CStr, c_char, c_int};
use shared::{ready_bytes, reset_in_child, status_bytes, tai_encode};
use sys::{ErrText, Error, Fd, emit};

#[cfg(panic = "abort")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    emit(&[b"supervise: fatal: internal error\n"]);
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

// The libc crate leaves linking the C library to std when its "std" feature is on (as it is
// in this workspace): without std, ask for it here.
// Linked statically (`-C target-feature=+crt-static`), glibc's libc.a needs libgcc's
// unwinder (which std would have brought), and that needs libc again.
#[link(name = "c")]
#[cfg_attr(
    target_feature = "crt-static",
    link(name = "gcc_eh", kind = "static", modifiers = "-bundle")
)]
#[cfg_attr(
    target_feature = "crt-static",
    link(name = "gcc", kind = "static", modifiers = "-bundle")
)]
#[cfg_attr(target_feature = "crt-static", link(name = "c"))]
unsafe extern "C" {}

/// The prebuilt `core` names this personality routine in its unwind tables. With
/// panic = "abort" nothing unwinds and no unwinder is linked into this program, so it is
/// never called; it exists only to satisfy the linker.
#[cfg(panic = "abort")]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

const SEC: u64 = 1_000_000_000;
const FINISH_TIMEOUT: u64 = 5 * SEC;
const RESTART_GUARD: u64 = SEC;
const HOUR: u64 = 3600 * SEC;

/// Most pieces a message has (`emit` writes at most this many plus prefix and newline).
const MAX_PARTS: usize = 8;

/// "supervise: LEVEL: " + `parts` + newline, in one write.
fn say(level: &'static [u8], parts: &[&[u8]]) {
    let mut all: [&[u8]; MAX_PARTS + 2] = [b""; MAX_PARTS + 2];
    all[0] = level;
    let n = parts.len().min(MAX_PARTS);
    all[1..=n].copy_from_slice(&parts[..n]);
    all[n + 1] = b"\n";
    emit(&all[..n + 2]);
}

fn fatal(parts: &[&[u8]]) -> c_int {
    say(b"supervise: fatal: ", parts);
    111
}

fn warn(parts: &[&[u8]]) {
    say(b"supervise: warning: ", parts);
}

/// What std's runtime did before `main` that can be observed: closed descriptors 0–2 are
/// opened on /dev/null (so a child never gets some other file as its stdin/stdout/stderr),
/// and SIGPIPE is ignored (a write to a closed pipe fails instead of killing supervise;
/// children get SIGPIPE back at its default like every ignored signal).
fn runtime_init() {
    // SAFETY: poll, fcntl, open and signal are called with valid pointers (a local array and
    // a static C string) and plain integers.
    unsafe {
        let mut pfds = [libc::pollfd {
            fd: 0,
            events: 0,
            revents: 0,
        }; 3];
        for (i, p) in pfds.iter_mut().enumerate() {
            p.fd = i as c_int;
        }
        let devnull = c"/dev/null";
        loop {
            if libc::poll(pfds.as_mut_ptr(), 3, 0) != -1 {
                for p in &pfds {
                    if p.revents & libc::POLLNVAL != 0
                        && libc::open(devnull.as_ptr(), libc::O_RDWR, 0) == -1
                    {
                        libc::abort();
                    }
                }
                break;
            }
            match sys::errno() {
                libc::EINTR => continue,
                libc::EINVAL | libc::EAGAIN | libc::ENOMEM => {
                    for fd in 0..3 {
                        if libc::fcntl(fd, libc::F_GETFD) == -1
                            && sys::errno() == libc::EBADF
                            && libc::open(devnull.as_ptr(), libc::O_RDWR, 0) == -1
                        {
                            libc::abort();
                        }
                    }
                    break;
                }
                _ => libc::abort(),
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// The write end of the self-pipe, for the SIGCHLD handler.
static SIGPIPE_W: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_sigchld(_: c_int) {
    let fd = SIGPIPE_W.load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: only async-signal-safe calls (write to a non-blocking pipe; errno saved and
    // restored so the interrupted code does not see it change).
    unsafe {
        let e = *libc::__errno_location();
        libc::write(fd, b"x".as_ptr().cast(), 1);
        *libc::__errno_location() = e;
    }
}

#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    runtime_init();
    if argc < 2 {
        emit(&[b"supervise: usage: supervise dir\n"]);
        return 100;
    }
    // SAFETY: the C runtime passes argc valid NUL-terminated strings in argv, which live
    // until the program ends; argc >= 2.
    let dir: &'static CStr = unsafe { CStr::from_ptr(*argv.add(1)) };
    let shown = sys::lossy(dir.to_bytes());
    match Supervisor::setup(shown, dir) {
        Ok(mut s) => s.run(),
        Err(code) => code,
    }
}

struct Supervisor {
    dir: &'static [u8],
    control_r: Fd,
    sigpipe: Fd,
    ignored: [i32; shared::MAX_SIGNALS],
    n_ignored: usize,
    // state as daemontools keeps it
    /// pid of ./run, 0 when down
    pid: i32,
    when: (u64, u32),
    paused: bool,
    flag_want: bool,
    flag_want_up: bool,
    flag_exit: bool,
    start_pending: bool,
    /// monotonic ns of the last start
    last_start: Option<u64>,
    /// pid of ./finish and the monotonic deadline of its run
    finish: Option<(i32, u64)>,
    notify: Option<Fd>,
    exec_err: Option<Fd>,
}

impl Supervisor {
    fn setup(shown: &'static [u8], dir: &CStr) -> Result<Supervisor, c_int> {
        let et = ErrText::new;
        // SAFETY: dir is NUL-terminated.
        if let Err(e) = sys::cvt(unsafe { libc::chdir(dir.as_ptr()) }) {
            return Err(fatal(&[
                b"unable to chdir to ",
                shown,
                b": ",
                et(e).as_bytes(),
            ]));
        }
        // SAFETY: a static C string and a mode.
        if let Err(e) = sys::cvt(unsafe { libc::mkdir(c"supervise".as_ptr(), 0o700) })
            && !matches!(e, Error::Os(libc::EEXIST))
        {
            return Err(fatal(&[
                b"unable to mkdir ",
                shown,
                b"/supervise: ",
                et(e).as_bytes(),
            ]));
        }
        let lock_err = |e| {
            fatal(&[
                b"unable to acquire ",
                shown,
                b"/supervise/lock: ",
                ErrText::new(e).as_bytes(),
            ])
        };
        let lock = sys::open(
            c"supervise/lock",
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
            0o600,
        )
        .map_err(lock_err)?;
        // SAFETY: flock on our own descriptor.
        sys::cvt(unsafe { libc::flock(lock.0, libc::LOCK_EX | libc::LOCK_NB) })
            .map_err(lock_err)?;
        for (path, name) in [
            (c"supervise/control", b"control".as_slice()),
            (c"supervise/ok", b"ok".as_slice()),
        ] {
            // SAFETY: a static C string and a mode.
            match sys::cvt(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }) {
                Ok(_) | Err(Error::Os(libc::EEXIST)) => {}
                Err(e) => {
                    return Err(fatal(&[
                        b"unable to mkfifo ",
                        shown,
                        b"/supervise/",
                        name,
                        b": ",
                        et(e).as_bytes(),
                    ]));
                }
            }
        }
        let rd = |path: &CStr, name: &[u8]| {
            sys::open(path, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(|e| {
                fatal(&[
                    b"unable to read ",
                    shown,
                    b"/supervise/",
                    name,
                    b": ",
                    ErrText::new(e).as_bytes(),
                ])
            })
        };
        let control_r = rd(c"supervise/control", b"control")?;
        let control_w = sys::open(c"supervise/control", libc::O_WRONLY | libc::O_NONBLOCK, 0)
            .map_err(|e| {
                fatal(&[
                    b"unable to write ",
                    shown,
                    b"/supervise/control: ",
                    et(e).as_bytes(),
                ])
            })?;
        let ok_r = rd(c"supervise/ok", b"ok")?;
        let (sig_r, sig_w) = sys::pipe(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .map_err(|e| fatal(&[b"unable to create pipe: ", et(e).as_bytes()]))?;
        SIGPIPE_W.store(sig_w.0, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: installs a handler that only makes async-signal-safe calls (on_sigchld);
        // the sigaction struct is fully initialised (zeroed, then handler, mask, flags).
        let caught = unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_sigchld as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            sys::cvt(libc::sigaction(libc::SIGCHLD, &sa, core::ptr::null_mut()))
        };
        if let Err(e) = caught {
            return Err(fatal(&[b"unable to catch SIGCHLD: ", et(e).as_bytes()]));
        }
        let flag_want_up = match sys::stat(c"down") {
            Ok(()) => false,
            Err(Error::Os(libc::ENOENT)) => true,
            Err(e) => {
                return Err(fatal(&[
                    b"unable to stat ",
                    shown,
                    b"/down: ",
                    et(e).as_bytes(),
                ]));
            }
        };
        sys::unlink(c"supervise/ready");
        // kept open for the life of the program: the lock, the write ends of the control
        // fifo and of the self-pipe, the ok fifo
        core::mem::forget((lock, control_w, ok_r, sig_w));
        let mut ignored = [0; shared::MAX_SIGNALS];
        let n_ignored = shared::scan_ignored(&mut ignored);
        Ok(Supervisor {
            dir: shown,
            control_r,
            sigpipe: sig_r,
            ignored,
            n_ignored,
            pid: 0,
            when: sys::realtime(),
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

    /// Write `supervise/NAME.new` and rename it over `supervise/NAME`; a warning names the
    /// step that failed.
    fn replace_file(&self, new: &CStr, path: &CStr, name: &[u8], data: &[u8]) {
        let fail = |what: &[u8], e: Error| {
            let et = ErrText::new(e);
            warn(&[
                what,
                self.dir,
                b"/supervise/",
                name,
                b".new: ",
                et.as_bytes(),
            ]);
        };
        let f = match sys::open(new, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o666) {
            Ok(f) => f,
            Err(e) => return fail(b"unable to open ", e),
        };
        if let Err(e) = sys::write_all(f.0, data) {
            return fail(b"unable to write ", e);
        }
        drop(f);
        // SAFETY: two NUL-terminated paths.
        if let Err(e) = sys::cvt(unsafe { libc::rename(new.as_ptr(), path.as_ptr()) }) {
            let et = ErrText::new(e);
            warn(&[
                b"unable to rename ",
                self.dir,
                b"/supervise/",
                name,
                b".new to ",
                name,
                b": ",
                et.as_bytes(),
            ]);
        }
    }

    fn announce(&self) {
        let want = match (self.flag_want, self.flag_want_up) {
            (false, _) => 0,
            (true, true) => b'u',
            (true, false) => b'd',
        };
        let st = status_bytes(
            tai_encode(self.when.0, self.when.1),
            self.pid as u32,
            self.paused,
            want,
        );
        self.replace_file(c"supervise/status.new", c"supervise/status", b"status", &st);
    }

    fn run(&mut self) -> c_int {
        self.announce();
        loop {
            if self.flag_exit && self.pid == 0 && self.finish.is_none() {
                return 0;
            }
            let now = sys::mono_ns();
            let mut timeout = HOUR;
            if self.start_pending && self.pid == 0 && self.finish.is_none() {
                match self.last_start.map(|t| t + RESTART_GUARD) {
                    Some(a) if a > now => timeout = timeout.min(a - now),
                    _ => {
                        self.start();
                        continue;
                    }
                }
            }
            if let Some((fpid, deadline)) = self.finish {
                if deadline <= now {
                    warn(&[
                        self.dir,
                        b"/finish did not end within 5 seconds, killing it",
                    ]);
                    // SAFETY: kill with integer arguments.
                    unsafe { libc::kill(fpid, libc::SIGKILL) };
                    self.finish = Some((fpid, now + HOUR));
                } else {
                    timeout = timeout.min(deadline - now);
                }
            }
            let ms = (timeout / 1_000_000) as c_int + 1;
            let pfd = |fd: c_int| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let mut fds = [pfd(self.sigpipe.0), pfd(self.control_r.0), pfd(-1), pfd(-1)];
            let mut n = 2;
            let mut ni = None;
            let mut ei = None;
            if let Some(f) = &self.notify {
                ni = Some(n);
                fds[n].fd = f.0;
                n += 1;
            }
            if let Some(f) = &self.exec_err {
                ei = Some(n);
                fds[n].fd = f.0;
                n += 1;
            }
            // SAFETY: the first n entries of `fds` are initialised pollfds we own.
            match sys::cvt(unsafe { libc::poll(fds.as_mut_ptr(), n as libc::nfds_t, ms) }) {
                Ok(_) => {}
                // Interrupted by a signal, SIGCHLD most likely: reap at once (nothing is
                // marked ready; the self-pipe is drained on the next round).
                Err(Error::Os(libc::EINTR)) => {}
                Err(e) => {
                    warn(&[b"unable to poll: ", ErrText::new(e).as_bytes()]);
                    // SAFETY: no preconditions.
                    unsafe { libc::sleep(1) };
                    continue;
                }
            }
            let ready = |i: usize| fds[i].revents != 0;
            if ei.is_some_and(ready) {
                self.read_exec_err();
            }
            if ready(0) {
                let mut buf = [0u8; 64];
                // a short read means the pipe is empty
                while matches!(sys::read(self.sigpipe.0, &mut buf), Ok(n) if n == buf.len()) {}
            }
            self.reap();
            if ready(1) {
                let mut buf = [0u8; 64];
                // EOF (never, as we hold a write end), EAGAIN or an error end the batch
                while let Ok(n @ 1..) = sys::read(self.control_r.0, &mut buf) {
                    for &c in &buf[..n] {
                        self.command(c);
                    }
                }
            }
            if ni.is_some_and(ready) {
                self.read_notify();
            }
        }
    }

    fn reap(&mut self) {
        loop {
            let mut st: c_int = 0;
            // SAFETY: `st` is ours to write.
            let p = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if p <= 0 {
                return;
            }
            if p == self.pid {
                self.run_exited(st);
            } else if self.finish.is_some_and(|(f, _)| f == p) {
                self.finish = None;
            }
        }
    }

    fn run_exited(&mut self, st: c_int) {
        self.read_exec_err();
        self.exec_err = None;
        self.pid = 0;
        self.when = sys::realtime();
        self.paused = false;
        self.notify = None;
        sys::unlink(c"supervise/ready");
        self.announce();
        let (code, sig) = if libc::WIFEXITED(st) {
            (libc::WEXITSTATUS(st), 0)
        } else if libc::WIFSIGNALED(st) {
            (-1, libc::WTERMSIG(st))
        } else {
            (-1, 0)
        };
        if sys::stat(c"finish").is_ok() {
            self.start_finish(code, sig);
        }
        if !self.flag_exit && self.flag_want && self.flag_want_up {
            self.start_pending = true;
        }
    }

    /// Start `./finish CODE SIGNAL` as std's `Command::spawn` did before: execvp (so a
    /// script without `#!` runs under /bin/sh), a fresh signal state, and an exec failure
    /// reported here through a close-on-exec pipe (the failed child is reaped at once).
    fn start_finish(&mut self, code: c_int, sig: c_int) {
        let fail = |e: Error| {
            warn(&[
                b"unable to start ",
                self.dir,
                b"/finish: ",
                ErrText::new(e).as_bytes(),
            ])
        };
        let mut cb = [0u8; 13];
        let mut sb = [0u8; 13];
        let mut tmp = [0u8; 12];
        let c = sys::fmt_i32(code, &mut tmp);
        cb[..c.len()].copy_from_slice(c);
        let s = sys::fmt_i32(sig, &mut tmp);
        sb[..s.len()].copy_from_slice(s);
        let prog = c"./finish";
        let argv: [*const c_char; 4] = [
            prog.as_ptr(),
            cb.as_ptr().cast(),
            sb.as_ptr().cast(),
            core::ptr::null(),
        ];
        let (err_r, err_w) = match sys::pipe(libc::O_CLOEXEC) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let ignored = &self.ignored[..self.n_ignored];
        let err_wfd = err_w.0;
        // SAFETY: supervise is single-threaded, so the child of fork is a consistent copy.
        // In the child we only call async-signal-safe functions — `reset_in_child`, execvp,
        // write, _exit — on data prepared before the fork (NUL-terminated stack buffers, a
        // stack array of pointers, integers).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above.
            unsafe {
                let e = match reset_in_child(ignored, None) {
                    Err(e) => e,
                    Ok(()) => {
                        libc::execvp(prog.as_ptr(), argv.as_ptr());
                        *libc::__errno_location()
                    }
                };
                let b = e.to_ne_bytes();
                libc::write(err_wfd, b.as_ptr().cast(), b.len());
                libc::_exit(1);
            }
        }
        if pid == -1 {
            return fail(Error::last());
        }
        drop(err_w);
        let mut b = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match sys::read(err_r.0, &mut b[got..]) {
                Ok(n @ 1..) => got += n,
                _ => break,
            }
        }
        if got == 4 {
            let mut st = 0;
            // SAFETY: waits for our own child; `st` is ours to write.
            while unsafe { libc::waitpid(pid, &mut st, 0) } == -1 && sys::errno() == libc::EINTR {}
            return fail(Error::Os(i32::from_ne_bytes(b)));
        }
        self.finish = Some((pid, sys::mono_ns() + FINISH_TIMEOUT));
    }

    /// The descriptor number in `notification-fd`, if any.
    fn notification_fd(&self) -> Option<c_int> {
        let text = sys::read_file(c"notification-fd").and_then(|b| {
            match core::str::from_utf8(b.as_slice()) {
                Ok(t) => Ok(t.trim().parse::<i32>()),
                Err(_) => Err(Error::InvalidUtf8),
            }
        });
        match text {
            Ok(Ok(n)) if (3..1024).contains(&n) => Some(n),
            Ok(_) => {
                warn(&[
                    b"ignoring ",
                    self.dir,
                    b"/notification-fd: not a descriptor number from 3 to 1023",
                ]);
                None
            }
            Err(Error::Os(libc::ENOENT)) => None,
            Err(e) => {
                warn(&[
                    b"unable to read ",
                    self.dir,
                    b"/notification-fd: ",
                    ErrText::new(e).as_bytes(),
                ]);
                None
            }
        }
    }

    fn start(&mut self) {
        self.start_pending = false;
        self.last_start = Some(sys::mono_ns());
        let mut notify_pipe = None;
        if let Some(n) = self.notification_fd() {
            match sys::pipe(libc::O_CLOEXEC) {
                Ok((r, w)) => notify_pipe = Some((r, w, n)),
                Err(e) => warn(&[b"unable to create pipe: ", ErrText::new(e).as_bytes()]),
            }
        }
        // The child reports a failed exec through this pipe (closed on a successful exec).
        // Non-blocking for our reads; the child's one 4-byte write into the empty pipe
        // cannot fail with EAGAIN.
        let (err_r, err_w) = match sys::pipe(libc::O_CLOEXEC | libc::O_NONBLOCK) {
            Ok(p) => p,
            Err(e) => {
                warn(&[b"unable to create pipe: ", ErrText::new(e).as_bytes()]);
                self.retry_later();
                return;
            }
        };
        let ignored = &self.ignored[..self.n_ignored];
        let dup = notify_pipe.as_ref().map(|(_, w, n)| (w.0, *n));
        let run = c"./run";
        let argv: [*const c_char; 2] = [run.as_ptr(), core::ptr::null()];
        let err_wfd = err_w.0;
        // SAFETY: supervise is single-threaded, so the child of fork is a consistent copy.
        // In the child we only call async-signal-safe functions — `reset_in_child`, fcntl,
        // execv, write, _exit — on data prepared before the fork (a static C string, a stack
        // array of pointers, integers).
        let child = unsafe { libc::fork() };
        if child == 0 {
            // SAFETY: see above.
            unsafe {
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
                let code = match reset_in_child(ignored, dup) {
                    Err(e) => e,
                    Ok(()) => {
                        libc::execv(run.as_ptr(), argv.as_ptr());
                        *libc::__errno_location()
                    }
                };
                let b = code.to_ne_bytes();
                libc::write(err_wfd, b.as_ptr().cast(), b.len());
                libc::_exit(111);
            }
        }
        if child == -1 {
            warn(&[b"unable to fork: ", ErrText::new(Error::last()).as_bytes()]);
            self.retry_later();
            return;
        }
        self.pid = child;
        self.when = sys::realtime();
        self.paused = false;
        self.announce();
        drop(err_w);
        sys::unlink(c"supervise/ready");
        self.exec_err = Some(err_r);
        if let Some((r, w, _)) = notify_pipe {
            drop(w);
            sys::set_nonblock(r.0);
            self.notify = Some(r);
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
        let mut b = [0u8; 4];
        let mut got = 0;
        loop {
            match sys::read(fd.0, &mut b[got..]) {
                Ok(0) => break,
                Ok(n) => {
                    got += n;
                    if got == 4 {
                        break;
                    }
                }
                Err(Error::Os(libc::EAGAIN)) => {
                    self.exec_err = Some(fd);
                    return;
                }
                Err(_) => break,
            }
        }
        if got == 4 {
            let text = ErrText::new(Error::Os(i32::from_ne_bytes(b)));
            emit(&[
                b"supervise: fatal: unable to start ",
                self.dir,
                b"/run: ",
                text.as_bytes(),
                b"\n",
            ]);
        }
    }

    fn read_notify(&mut self) {
        let Some(fd) = &self.notify else { return };
        let mut buf = [0u8; 512];
        match sys::read(fd.0, &mut buf) {
            Ok(0) => self.notify = None,
            Ok(n) => {
                if buf[..n].contains(&b'\n') {
                    self.notify = None;
                    if self.pid != 0 {
                        let (s, ns) = sys::realtime();
                        let r = ready_bytes(tai_encode(s, ns), self.pid as u32);
                        self.replace_file(c"supervise/ready.new", c"supervise/ready", b"ready", &r);
                    }
                }
            }
            Err(Error::Os(libc::EAGAIN)) => {}
            Err(_) => self.notify = None,
        }
    }

    fn signal(&self, s: c_int) {
        if self.pid != 0 {
            // SAFETY: kill with integer arguments.
            unsafe { libc::kill(self.pid, s) };
        }
    }

    fn command(&mut self, c: u8) {
        match c {
            b'u' => {
                self.flag_want = true;
                self.flag_want_up = true;
                if self.pid == 0 {
                    self.start_pending = true;
                }
            }
            b'd' => {
                self.flag_want = true;
                self.flag_want_up = false;
                self.start_pending = false;
                self.signal(libc::SIGTERM);
                self.signal(libc::SIGCONT);
                self.paused = false;
            }
            b'o' => {
                self.flag_want = false;
                if self.pid == 0 {
                    self.start_pending = true;
                }
            }
            b'x' => self.flag_exit = true,
            b'p' => {
                self.paused = true;
                self.signal(libc::SIGSTOP);
            }
            b'c' => {
                self.paused = false;
                self.signal(libc::SIGCONT);
            }
            _ => match shared::signal_for_letter(c) {
                Some(s) => self.signal(s),
                None => return,
            },
        }
        self.announce();
    }
}
