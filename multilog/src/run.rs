//! The multilog main loop: read stdin in large blocks, cut it into lines with memchr, stamp
//! each line, run the script's selection and hand the lines to the directories.
//!
//! Stamps: the clock is read once per read of input, right after the read returns, and every
//! line that starts in that read gets that time: it is the moment those lines reached us (they
//! were all waiting in the pipe by then). daemontools reads the clock once per line; with
//! large reads that per-line read (vDSO `clock_gettime`) cost as much CPU as all the rest of
//! our user-space work. Stamps stay within the read's time and never decrease.
//!
//! daemontools reads 1024 bytes at a time and flushes every directory's buffer before each
//! read; where it cuts `current` depends on that (see [`crate::dir`]), so we replay those
//! flush points logically every 1024 bytes of input while reading up to 1 MiB (a pipe's
//! whole content) per system call. The only per-line system call is `=FILE`'s status
//! write, which the format needs.
//!
//! ## What a SIGKILL can lose
//! Every read is processed and all of its output written (`write` to `current`, so in the
//! page cache: a killed process loses nothing written) before the next read; the loop also
//! writes `e` output then. So:
//! * stdin a pipe (what svscan gives) or anything else but a stream socket: a SIGKILL loses
//!   the bytes of the one read in progress, from the moment `read` returns them until the
//!   last `write` of their lines (at most `READ` = 1 MiB, what our pipe holds; a read takes
//!   what is there, so at a slow rate it is a few lines), and the first bytes of a line
//!   whose newline has not arrived yet (held in memory until its newline or its 1000th byte,
//!   as daemontools holds it; at most 999 bytes of input). Bytes still in the pipe are never
//!   lost. A pipe cannot be read without consuming; smaller reads would narrow the window
//!   at a cost in CPU (see `READ`).
//! * stdin a stream socket (a socketpair or TCP connection from a supervisor that keeps its
//!   end open): nothing. Input is taken with `recv(MSG_PEEK)`, its lines are written, and
//!   only then are those bytes consumed; an unfinished line stays in the socket (an
//!   edge-triggered epoll reports new data). A kill between the write and the consume makes
//!   the next multilog log those lines again: up to one peek (`PEEK` = 64 KiB) of lines can
//!   appear twice, and a kill inside a write can leave a cut copy at the end of the `.u` file. A
//!   kill in the middle of a line longer than 1000 bytes leaves its written head in the log
//!   and its rest as a line of its own. Other readers of the same socket break this.
//!
//! Power loss is another matter: `current` is fsynced at rotation and exit (daemontools
//! likewise), not per line.
//!
//! Signals: SIGTERM finishes the current line (reading one byte at a time if the last read
//! did not end in a newline, so nothing after that line is taken from the pipe), flushes,
//! and exits 0. SIGALRM rotates every non-empty directory at the next read. Both wake a
//! blocked read through a self-pipe.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::dir::{Cyclog, pause, warn};
use crate::errtext::io_text;
use crate::script::{Action, Script, matches, parse};
use crate::stamp::{Clock, ISO_LEN};

/// daemontools' line buffer: patterns, `e` and `=` see at most this much of a line
/// (prefix included); lines longer than it go to directories whole.
const LINE: usize = 1000;
/// daemontools' read size, whose flush points we replay.
const BLOCK: u64 = 1024;
/// Bytes per read from a pipe: its whole content (we make the pipe 1 MiB). Draining the pipe
/// in one read, and writing it in one write, costs a quarter less CPU than 64 KiB reads for
/// us and for the writer on the other end: fewer wake-ups of either side, less contention on
/// the pipe's lock, and the page cache takes a large write in large folios. What we have
/// read but not yet written is what a SIGKILL can lose; lines still in the pipe survive for
/// the next multilog.
const READ: usize = 1 << 20;
/// Bytes per peek from a stream socket: at most this much can be logged twice after a
/// SIGKILL (see [`Engine::run_peek`]).
const PEEK: usize = 64 * 1024;

/// Whether `fd` is a stream socket (then we peek before consuming; see [`Engine::run_peek`]).
fn is_stream_socket(fd: std::os::fd::BorrowedFd) -> bool {
    use nix::sys::socket::{SockType, getsockopt, sockopt};
    getsockopt(&fd, sockopt::SockType).is_ok_and(|t| t == SockType::Stream)
}

#[repr(C, align(4096))]
struct ReadBuf([u8; READ]);

enum State {
    /// Between lines.
    Idle,
    /// In the first 1000 bytes of a line that continues in the next read (prefix included).
    First,
    /// Past the first 1000 bytes of a long line: the rest streams to the selected dirs.
    Rest,
}

struct Engine {
    script: Script,
    dirs: Vec<Cyclog>,
    status: Vec<File>,
    clock: Clock,
    needs_line: bool,
    prefix: [u8; 25 + 1 + ISO_LEN],
    prefix_len: usize,
    /// Length of the prefix computed for the current read (see [`Engine::stamp_batch`]).
    stamp_len: usize,
    line: Vec<u8>,
    state: State,
    errbuf: Vec<u8>,
    /// Input offset of the next replayed 1024-byte read.
    next_block: u64,
    /// Input offset of the start of the current read.
    base: u64,
    nl: Newline,
}

/// Finds newlines. memchr's free function picks its AVX2 searcher on every call; with
/// two million short lines per 200 MB that choice cost as much as the search, so we keep the
/// searcher.
enum Newline {
    #[cfg(target_arch = "x86_64")]
    Avx2(memchr::arch::x86_64::avx2::memchr::One),
    Any,
}

impl Newline {
    fn new() -> Newline {
        #[cfg(target_arch = "x86_64")]
        if let Some(one) = memchr::arch::x86_64::avx2::memchr::One::new(b'\n') {
            return Newline::Avx2(one);
        }
        Newline::Any
    }

    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Newline::Avx2(one) => one.find(haystack),
            Newline::Any => memchr::memchr(b'\n', haystack),
        }
    }
}

/// Entry point of the `multilog` program; returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    if args.is_empty() {
        let _ = writeln!(io::stderr(), "multilog: usage: multilog script");
        return 100;
    }
    let script = match parse(&args) {
        Ok(s) => s,
        Err(m) => {
            let _ = writeln!(io::stderr(), "multilog: fatal: {m}");
            return 100;
        }
    };
    match Engine::start(script) {
        Ok(mut e) => e.run(),
        Err(m) => {
            let _ = writeln!(io::stderr(), "multilog: fatal: {m}");
            111
        }
    }
}

impl Engine {
    fn start(script: Script) -> Result<Engine, String> {
        let mut status = Vec::new();
        for p in &script.status {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(p)
                .map_err(|e| format!("unable to create {}: {}", p.display(), io_text(&e)))?;
            let f = OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| format!("unable to write {}: {}", p.display(), io_text(&e)))?;
            status.push(f);
        }
        let mut clock = Clock::new();
        let mut dirs = Vec::new();
        for spec in &script.dirs {
            dirs.push(Cyclog::open(spec.clone(), &mut clock).map_err(|f| f.0)?);
        }
        let needs_line = script.needs_line();
        Ok(Engine {
            script,
            dirs,
            status,
            clock,
            needs_line,
            prefix: [0; 25 + 1 + ISO_LEN],
            prefix_len: 0,
            stamp_len: 0,
            line: Vec::with_capacity(LINE),
            state: State::Idle,
            errbuf: Vec::new(),
            next_block: BLOCK,
            base: 0,
            nl: Newline::new(),
        })
    }

    fn run(&mut self) -> i32 {
        let term = Arc::new(AtomicBool::new(false));
        let alarm = Arc::new(AtomicBool::new(false));
        let wake = match UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(
                    io::stderr(),
                    "multilog: fatal: unable to create pipe: {}",
                    io_text(&e)
                );
                return 111;
            }
        };
        let _ = wake.0.set_nonblocking(true);
        let _ = wake.1.set_nonblocking(true);
        for (sig, flag) in [
            (signal_hook::consts::SIGTERM, &term),
            (signal_hook::consts::SIGALRM, &alarm),
        ] {
            let ok = signal_hook::flag::register(sig, Arc::clone(flag)).is_ok()
                && wake
                    .1
                    .try_clone()
                    .map(|w| signal_hook::low_level::pipe::register(sig, w).is_ok())
                    .unwrap_or(false);
            if !ok {
                let _ = writeln!(
                    io::stderr(),
                    "multilog: fatal: unable to catch signal {sig}"
                );
                return 111;
            }
        }

        // Page-aligned, which the kernel's copy routines like best.
        let mut boxed = Box::new(ReadBuf([0; READ]));
        let buf = &mut boxed.0;
        // Raw reads of fd 0: a buffered reader would take more than the one byte we ask
        // for while finishing a line after SIGTERM.
        let stdin = io::stdin();
        // A larger pipe means fewer wake-ups of the writer and of us (best effort: stdin may
        // not be a pipe, or the system limit may be lower).
        let _ = nix::fcntl::fcntl(
            stdin.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20),
        );
        if is_stream_socket(stdin.as_fd()) {
            self.run_peek(&mut buf[..PEEK], &term, &alarm, &wake.0);
            return 0;
        }
        let mut last_newline = true;
        loop {
            // daemontools' flush before every read.
            self.flush_all();
            if alarm.swap(false, Ordering::SeqCst) {
                for d in &mut self.dirs {
                    d.force_rotate(&mut self.clock);
                }
            }
            let exiting = term.load(Ordering::SeqCst);
            if exiting && last_newline {
                break;
            }
            let want = if exiting { 1 } else { READ };
            {
                let fds = &mut [
                    PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
                    PollFd::new(wake.0.as_fd(), PollFlags::POLLIN),
                ];
                match poll(fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        warn(&format!(
                            "unable to wait for input: {}",
                            crate::errtext::nix_text(e)
                        ));
                        std::thread::sleep(crate::dir::PAUSE);
                        continue;
                    }
                }
                let woke = fds[1].revents().is_some_and(|r| !r.is_empty());
                let ready = fds[0].revents().is_some_and(|r| !r.is_empty());
                if woke {
                    let mut sink = [0u8; 64];
                    while (&wake.0).read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
                }
                if !ready {
                    continue;
                }
            }
            let n = match nix::unistd::read(stdin.as_raw_fd(), &mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => {
                    warn(&format!(
                        "unable to read input: {}; treating it as the end",
                        crate::errtext::nix_text(e)
                    ));
                    break;
                }
            };
            last_newline = buf[n - 1] == b'\n';
            self.batch(&buf[..n]);
            self.base += n as u64;
        }
        self.end_of_input();
        let _ = wake.0.as_raw_fd();
        0
    }

    /// The main loop when stdin is a stream socket: lines are taken with `MSG_PEEK`, written,
    /// and only then consumed from the socket, so a SIGKILL at any instant loses nothing (what
    /// was written but not yet consumed is logged again by the next multilog: at most one
    /// peek, `PEEK` = 64 KiB, of lines can appear twice). The unfinished line at the end of a peek
    /// stays in the socket too; an edge-triggered epoll tells us when more data arrives.
    fn run_peek(
        &mut self,
        buf: &mut [u8],
        term: &AtomicBool,
        alarm: &AtomicBool,
        wake: &UnixStream,
    ) {
        use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
        use nix::sys::socket::{MsgFlags, recv};
        let fd = io::stdin().as_raw_fd();
        let stdin = io::stdin();
        let epoll = loop {
            let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).and_then(|ep| {
                ep.add(
                    stdin.as_fd(),
                    EpollEvent::new(
                        EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLET,
                        0,
                    ),
                )?;
                ep.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))?;
                Ok(ep)
            });
            match ep {
                Ok(ep) => break ep,
                Err(e) => pause(&format!(
                    "unable to wait for input: {}, pausing",
                    crate::errtext::nix_text(e)
                )),
            }
        };
        // Bytes handed to `batch` but still in the socket.
        let mut unconsumed: usize = 0;
        let mut peer_closed = false;
        // Whether to block in epoll before the next peek (the last one brought nothing new).
        let mut wait = false;
        loop {
            self.flush_all();
            // Everything handed to `batch` is written now, except an unfinished line.
            let held = self.held();
            if !self.consume(fd, buf, unconsumed - held) {
                break;
            }
            unconsumed = held;
            if alarm.swap(false, Ordering::SeqCst) {
                for d in &mut self.dirs {
                    d.force_rotate(&mut self.clock);
                }
            }
            let exiting = term.load(Ordering::SeqCst);
            if exiting && matches!(self.state, State::Idle) {
                break;
            }
            if wait {
                let mut evs = [EpollEvent::empty(); 2];
                match epoll.wait(&mut evs, EpollTimeout::NONE) {
                    Ok(n) => {
                        for ev in &evs[..n] {
                            if ev.data() == 1 {
                                let mut sink = [0u8; 64];
                                while (&*wake).read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
                            } else if ev.events().intersects(
                                EpollFlags::EPOLLRDHUP
                                    | EpollFlags::EPOLLHUP
                                    | EpollFlags::EPOLLERR,
                            ) {
                                peer_closed = true;
                            }
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => pause(&format!(
                        "unable to wait for input: {}, pausing",
                        crate::errtext::nix_text(e)
                    )),
                }
                wait = false;
                continue;
            }
            let n = match recv(
                fd,
                &mut buf[..],
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    wait = true;
                    continue;
                }
                Err(e) => {
                    warn(&format!(
                        "unable to read input: {}; treating it as the end",
                        crate::errtext::nix_text(e)
                    ));
                    break;
                }
            };
            if n == 0 {
                break;
            }
            if n <= unconsumed {
                // Nothing new after the unfinished line.
                if peer_closed {
                    break;
                }
                wait = true;
                continue;
            }
            let mut new = &buf[unconsumed..n];
            if exiting {
                // Finish the current line only; what follows stays in the socket.
                if let Some(k) = memchr::memchr(b'\n', new) {
                    new = &new[..=k];
                }
            }
            let len = new.len();
            self.batch(new);
            self.base += len as u64;
            unconsumed += len;
        }
        self.end_of_input();
        // The unfinished line is written now (end_of_input ends it with a newline).
        let _ = self.consume(fd, buf, unconsumed);
    }

    /// Input bytes of an unfinished line that is not written yet.
    fn held(&self) -> usize {
        match self.state {
            State::First => self.line.len() - self.prefix_len,
            _ => 0,
        }
    }

    /// Take `n` bytes (already peeked and written) out of the socket `fd`; false on an error
    /// (then reported: input ends there).
    fn consume(&mut self, fd: std::os::fd::RawFd, buf: &mut [u8], mut n: usize) -> bool {
        use nix::sys::socket::{MsgFlags, recv};
        while n > 0 {
            let want = n.min(buf.len());
            match recv(fd, &mut buf[..want], MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return false,
                Ok(k) => n -= k,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    warn(&format!(
                        "unable to read input: {}; treating it as the end",
                        crate::errtext::nix_text(e)
                    ));
                    return false;
                }
            }
        }
        true
    }

    fn flush_all(&mut self) {
        for d in &mut self.dirs {
            d.flush_out(&mut self.clock);
        }
        if !self.errbuf.is_empty() {
            let _ = io::stderr().write_all(&self.errbuf);
            self.errbuf.clear();
        }
    }

    fn end_of_input(&mut self) {
        self.flush_all();
        match self.state {
            State::Idle => {}
            State::First => {
                let line = std::mem::take(&mut self.line);
                self.select(&line);
                self.put_line(&line, true);
                self.line = line;
            }
            State::Rest => self.put_newline(),
        }
        self.state = State::Idle;
        self.flush_all();
        for d in &mut self.dirs {
            d.quit(&mut self.clock);
        }
    }

    /// Replay daemontools' flushes for every 1024-byte read that starts at or before
    /// input offset `upto`.
    #[inline]
    fn advance(&mut self, upto: u64) {
        while self.next_block <= upto {
            for d in &mut self.dirs {
                d.flush(&mut self.clock);
            }
            self.next_block += BLOCK;
        }
    }

    /// Read the clock once for a whole read of input: every line that starts in it is
    /// stamped with the time the read returned, i.e. when the line reached us.
    fn stamp_batch(&mut self) {
        let mut n = 0;
        if self.script.tai || self.script.iso {
            let (s, ns) = self.clock.now();
            if self.script.tai {
                let label = self.clock.label(s, ns);
                self.prefix[..25].copy_from_slice(&label);
                self.prefix[25] = b' ';
                n = 26;
            }
            if self.script.iso {
                let mut v = Vec::with_capacity(ISO_LEN);
                self.clock.push_iso(&mut v, s, ns);
                self.prefix[n..n + ISO_LEN].copy_from_slice(&v);
                n += ISO_LEN;
            }
        }
        self.stamp_len = n;
    }

    /// Handle one read of input, `buf`, which starts at input offset `self.base`.
    fn batch(&mut self, buf: &[u8]) {
        // The read itself is a replayed block start (its flush was done before reading).
        self.next_block = self.base + BLOCK;
        self.stamp_batch();
        let base = self.base;
        let mut i = 0usize;
        while i < buf.len() {
            match self.state {
                State::Idle => {
                    if !self.needs_line {
                        let next = self.short_lines(buf, i);
                        if next > i {
                            i = next;
                            continue;
                        }
                    }
                    self.prefix_len = self.stamp_len;
                    let avail = LINE - self.prefix_len;
                    let lim = buf.len().min(i + avail);
                    if let Some(k) = self.nl.find(&buf[i..lim]) {
                        let nl = i + k;
                        self.advance(base + nl as u64);
                        self.line_from_parts(&buf[i..=nl], true);
                        i = nl + 1;
                    } else if i + avail <= buf.len() {
                        let end = i + avail;
                        self.advance(base + end as u64 - 1);
                        self.line_from_parts(&buf[i..end], false);
                        self.state = State::Rest;
                        i = end;
                    } else {
                        self.line.clear();
                        self.line.extend_from_slice(&self.prefix[..self.prefix_len]);
                        self.line.extend_from_slice(&buf[i..]);
                        self.state = State::First;
                        i = buf.len();
                    }
                }
                State::First => {
                    let avail = LINE - self.line.len();
                    let lim = buf.len().min(i + avail);
                    let mut line = std::mem::take(&mut self.line);
                    if let Some(k) = memchr::memchr(b'\n', &buf[i..lim]) {
                        let nl = i + k;
                        line.extend_from_slice(&buf[i..nl]);
                        self.advance(base + nl as u64);
                        self.select(&line);
                        self.put_line(&line, true);
                        self.state = State::Idle;
                        i = nl + 1;
                    } else if i + avail <= buf.len() {
                        let end = i + avail;
                        line.extend_from_slice(&buf[i..end]);
                        self.advance(base + end as u64 - 1);
                        self.select(&line);
                        self.put_line(&line, false);
                        self.state = State::Rest;
                        i = end;
                    } else {
                        line.extend_from_slice(&buf[i..]);
                        i = buf.len();
                    }
                    self.line = line;
                }
                State::Rest => {
                    let (end, done) = match memchr::memchr(b'\n', &buf[i..]) {
                        Some(k) => (i + k, true),
                        None => (buf.len(), false),
                    };
                    let mut pos = i;
                    while pos < end {
                        self.advance(base + pos as u64);
                        let seg = end.min((self.next_block - base) as usize);
                        for d in &mut self.dirs {
                            if d.selected {
                                d.append(&buf[pos..seg]);
                                d.stream_len(seg - pos, &mut self.clock);
                            }
                        }
                        pos = seg;
                    }
                    if done {
                        self.advance(base + end as u64);
                        self.put_newline();
                        self.state = State::Idle;
                        i = end + 1;
                    } else {
                        i = end;
                    }
                }
            }
        }
    }

    /// The common case in one tight loop: no script action needs the line's text (no
    /// patterns, `e` or `=`), so every line goes to every directory. Handles the complete
    /// lines from `buf[i..]` on that fit daemontools' line buffer (prefix included), exactly
    /// as [`Engine::line_from_parts`] would, and returns where it stopped: at a long line or
    /// an unfinished one, which the general code takes.
    fn short_lines(&mut self, buf: &[u8], mut i: usize) -> usize {
        let n = self.stamp_len;
        self.prefix_len = n;
        let avail = LINE - n;
        let base = self.base;
        let Engine {
            dirs,
            clock,
            prefix,
            next_block,
            nl,
            ..
        } = self;
        let prefix = &prefix[..n];
        // The usual prefix, a tai64n stamp and a space, as a fixed-size copy.
        let tai: Option<&[u8; 26]> = prefix.try_into().ok();
        for d in dirs.iter_mut() {
            d.selected = true;
        }
        while let Some(k) = nl.find(&buf[i..]) {
            if k >= avail {
                break;
            }
            let end = i + k;
            // Engine::advance
            while *next_block <= base + end as u64 {
                for d in dirs.iter_mut() {
                    d.flush(clock);
                }
                *next_block += BLOCK;
            }
            for d in dirs.iter_mut() {
                match tai {
                    Some(p) => d.append(p),
                    None => d.append(prefix),
                }
                d.append(&buf[i..=end]);
                d.put_len(n + k, clock);
                d.put_len(1, clock);
            }
            i = end + 1;
        }
        i
    }

    /// A line (or a long line's first part) whose text is the current prefix + `content`;
    /// with `newline`, `content` ends with the line's newline.
    #[inline]
    fn line_from_parts(&mut self, content: &[u8], newline: bool) {
        let text = if newline {
            &content[..content.len() - 1]
        } else {
            content
        };
        if self.needs_line {
            let mut line = std::mem::take(&mut self.line);
            line.clear();
            line.extend_from_slice(&self.prefix[..self.prefix_len]);
            line.extend_from_slice(text);
            self.select(&line);
            self.put_line(&line, newline);
            self.line = line;
            return;
        }
        let total = self.prefix_len + text.len();
        for d in &mut self.dirs {
            d.selected = true;
            // One copy of text and newline; the buffer model still sees two puts.
            d.append(&self.prefix[..self.prefix_len]);
            d.append(content);
            d.put_len(total, &mut self.clock);
            if newline {
                d.put_len(1, &mut self.clock);
            }
        }
    }

    /// Run the selection actions on `line` (at most 1000 bytes, prefix included).
    fn select(&mut self, line: &[u8]) {
        let mut sel = true;
        for a in &self.script.actions {
            match a {
                Action::Select(true, p) => {
                    if !sel && matches(p, line) {
                        sel = true;
                    }
                }
                Action::Select(false, p) => {
                    if sel && matches(p, line) {
                        sel = false;
                    }
                }
                Action::Stderr => {
                    if sel {
                        if line.len() > 200 {
                            self.errbuf.extend_from_slice(&line[..200]);
                            self.errbuf.extend_from_slice(b"...\n");
                        } else {
                            self.errbuf.extend_from_slice(line);
                            self.errbuf.push(b'\n');
                        }
                    }
                }
                Action::Status(i) => {
                    if sel {
                        let mut block = [b'\n'; LINE + 1];
                        block[..line.len()].copy_from_slice(line);
                        let f = &self.status[*i];
                        loop {
                            match nix::sys::uio::pwrite(f, &block, 0) {
                                Ok(n) if n == block.len() => break,
                                Ok(_) => pause(&format!(
                                    "unable to write {}, pausing: short write",
                                    self.script.status[*i].display()
                                )),
                                Err(e) => pause(&format!(
                                    "unable to write {}, pausing: {}",
                                    self.script.status[*i].display(),
                                    crate::errtext::nix_text(e)
                                )),
                            }
                        }
                    }
                }
                Action::Dir(j) => self.dirs[*j].selected = sel,
            }
        }
    }

    fn put_line(&mut self, line: &[u8], newline: bool) {
        for d in &mut self.dirs {
            if d.selected {
                d.append(line);
                d.put_len(line.len(), &mut self.clock);
                if newline {
                    d.append(b"\n");
                    d.put_len(1, &mut self.clock);
                }
            }
        }
    }

    fn put_newline(&mut self) {
        for d in &mut self.dirs {
            if d.selected {
                d.append(b"\n");
                d.put_len(1, &mut self.clock);
            }
        }
    }
}
