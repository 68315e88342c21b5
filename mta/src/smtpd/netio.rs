//! Line-oriented network I/O on fd 0 / fd 1 with per-operation timeouts, shared by
//! qmail-smtpd, qmail-popup and qmail-pop3d.
//!
//! Both descriptors are switched to non-blocking mode and every read or write waits with
//! `poll` for at most the configured timeout, so a client that stops reading or writing can
//! never hang a server. Output is buffered and flushed before the next read that would have
//! to wait for the network (that is what makes SMTP PIPELINING work: replies to a batch of
//! pipelined commands go out together).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Why a network operation failed.
#[derive(Debug)]
pub enum NetError {
    /// The peer sent nothing (or accepted nothing) for the whole timeout.
    Timeout,
    /// The peer closed the connection.
    Eof,
    /// Any other read or write error.
    Io(io::Error),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Timeout => write!(f, "timeout"),
            NetError::Eof => write!(f, "connection closed"),
            NetError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A line read from the network.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// The line without its LF and without one CR before it; truncated at the cap.
    pub text: Vec<u8>,
    /// The line was longer than the cap; the excess was read and thrown away.
    pub overflow: bool,
}

/// Buffered, timed network I/O over two descriptors (normally 0 and 1).
pub struct NetIo {
    inbuf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    timeout: Duration,
}

fn set_nonblock(fd: RawFd) {
    // Best effort: if it fails, poll before each operation still bounds most waits.
    let _ = (|| -> nix::Result<()> {
        let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(())
    })();
}

fn clear_nonblock(fd: RawFd) {
    let _ = (|| -> nix::Result<()> {
        let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
        fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
        Ok(())
    })();
}

/// Put fd 0 and 1 back into blocking mode, before handing them to another program that
/// may expect it (qmail-popup's subprogram).
pub fn restore_blocking() {
    clear_nonblock(0);
    clear_nonblock(1);
}

fn wait_fd(fd: BorrowedFd<'_>, flags: PollFlags, until: Instant) -> Result<(), NetError> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NetError::Timeout);
        }
        let ms = i32::try_from(left.as_millis().max(1)).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(fd, flags)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => continue,
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(NetError::Io(e.into())),
        }
    }
}

impl NetIo {
    /// Network I/O on fd 0 (input) and fd 1 (output) with a per-operation timeout.
    pub fn stdio(timeout: Duration) -> Self {
        set_nonblock(0);
        set_nonblock(1);
        NetIo {
            inbuf: vec![0; 16384],
            start: 0,
            end: 0,
            out: Vec::with_capacity(1024),
            timeout,
        }
    }

    /// Change the timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Queue output; it is sent by [`NetIo::flush`] or before the next blocking read.
    pub fn out(&mut self, s: impl AsRef<[u8]>) {
        self.out.extend_from_slice(s.as_ref());
    }

    /// Bytes buffered for output.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Send all buffered output, waiting at most the timeout for each write.
    pub fn flush(&mut self) -> Result<(), NetError> {
        let mut done = 0;
        while done < self.out.len() {
            match nix::unistd::write(io::stdout().as_fd(), &self.out[done..]) {
                Ok(n) => done += n,
                Err(Errno::EAGAIN) => wait_fd(
                    io::stdout().as_fd(),
                    PollFlags::POLLOUT,
                    Instant::now() + self.timeout,
                )?,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    self.out.clear();
                    return Err(NetError::Io(e.into()));
                }
            }
        }
        self.out.clear();
        Ok(())
    }

    /// Bytes already read and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    fn fill(&mut self) -> Result<(), NetError> {
        self.flush()?;
        self.start = 0;
        self.end = 0;
        let until = Instant::now() + self.timeout;
        loop {
            match nix::unistd::read(io::stdin().as_raw_fd(), &mut self.inbuf) {
                Ok(0) => return Err(NetError::Eof),
                Ok(n) => {
                    self.end = n;
                    return Ok(());
                }
                Err(Errno::EAGAIN) => wait_fd(io::stdin().as_fd(), PollFlags::POLLIN, until)?,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(NetError::Io(e.into())),
            }
        }
    }

    /// One byte of input.
    pub fn byte(&mut self) -> Result<u8, NetError> {
        if self.start == self.end {
            self.fill()?;
        }
        let b = self.inbuf[self.start];
        self.start += 1;
        Ok(b)
    }

    /// A line up to LF (LF and one preceding CR removed), at most `cap` bytes kept.
    pub fn line(&mut self, cap: usize) -> Result<Line, NetError> {
        let mut text = Vec::new();
        let mut overflow = false;
        loop {
            if self.start == self.end {
                self.fill()?;
            }
            let avail = &self.inbuf[self.start..self.end];
            let (chunk, found) = match memchr::memchr(b'\n', avail) {
                Some(i) => (&avail[..i], Some(i)),
                None => (avail, None),
            };
            let room = cap.saturating_sub(text.len());
            if chunk.len() > room {
                overflow = true;
            }
            text.extend_from_slice(&chunk[..chunk.len().min(room)]);
            match found {
                Some(i) => {
                    self.start += i + 1;
                    if !overflow && text.last() == Some(&b'\r') {
                        text.pop();
                    }
                    return Ok(Line { text, overflow });
                }
                None => self.start = self.end,
            }
        }
    }

    /// Read and discard whatever input is already buffered (qmail-popup's behaviour: bytes
    /// pipelined after PASS die with the process).
    pub fn discard_buffered(&mut self) {
        self.start = self.end;
    }
}
