//! `tai64n` (prefix each line with `@` + TAI64N + space) and `tai64nlocal` (turn a leading
//! stamp into local time `YYYY-MM-DD HH:MM:SS.nnnnnnnnn`), byte for byte as daemontools'.
//!
//! `tai64n` takes one clock reading per line, when the line's first byte has been read, and
//! writes its output before every read of input (so it works in interactive pipes); a final
//! line without a newline is passed through without one.
//!
//! `tai64nlocal` follows daemontools' parsing exactly: after a leading `@` it consumes the
//! run of lowercase hex digits (any length; the last 8 are nanoseconds, the ones before
//! seconds), replaces it by the local time, and copies the rest of the line. At end of input
//! in the middle of a stamp it stops without output, as daemontools does. Our one deviation:
//! a stamp whose time cannot be represented is copied unchanged (daemontools crashes).

use std::io::{self, Read, Write};

use chrono::{Datelike, Local, TimeZone, Timelike};

use crate::errtext::io_text;
use crate::stamp::{Clock, TAI_UNIX_EPOCH};

/// Die quietly of SIGPIPE when the reader goes away (`tai64nlocal < log | head`), as the
/// C programs do, instead of reporting a write error.
fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing the default disposition registers no handler code, so there is no
    // async-signal-safety question; we are single-threaded at this point.
    unsafe {
        let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
    }
}

fn fatal(prog: &str, what: &str, e: &io::Error) -> i32 {
    let _ = writeln!(io::stderr(), "{prog}: fatal: {what}: {}", io_text(e));
    111
}

fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// The `tai64n` program.
pub fn tai64n_main() -> i32 {
    default_sigpipe();
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let mut clock = Clock::new();
    let mut buf = vec![0u8; 128 * 1024];
    let mut out: Vec<u8> = Vec::with_capacity(160 * 1024);
    let mut at_start = true;
    loop {
        let n = match read_some(&mut input, &mut buf) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) => return fatal("tai64n", "unable to read input", &e),
        };
        let mut i = 0;
        while i < n {
            if at_start {
                let (s, ns) = clock.now();
                out.extend_from_slice(&clock.label(s, ns));
                out.push(b' ');
            }
            match memchr::memchr(b'\n', &buf[i..n]) {
                Some(k) => {
                    out.extend_from_slice(&buf[i..=i + k]);
                    i += k + 1;
                    at_start = true;
                }
                None => {
                    out.extend_from_slice(&buf[i..n]);
                    i = n;
                    at_start = false;
                }
            }
        }
        if let Err(e) = output.write_all(&out).and_then(|_| output.flush()) {
            return fatal("tai64n", "unable to write output", &e);
        }
        out.clear();
    }
}

/// Local time text for daemontools' seconds/nanoseconds accumulators, or `None` when the
/// time cannot be represented.
pub fn local_text(secs: u64, nanos: u64) -> Option<String> {
    let t = secs.wrapping_sub(TAI_UNIX_EPOCH) as i64;
    let dt = Local.timestamp_opt(t, 0).single()?;
    Some(format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}.{:09}",
        i64::from(dt.year()) as u64,
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        nanos as u32
    ))
}

fn hex_value(c: u8) -> Option<u64> {
    match c {
        b'0'..=b'9' => Some(u64::from(c - b'0')),
        b'a'..=b'f' => Some(u64::from(c - b'a' + 10)),
        _ => None,
    }
}

/// Convert whole input to output the way `tai64nlocal` does; returns the bytes to write for
/// `input`, consuming complete pieces and keeping an unfinished stamp in `pending`.
pub struct LocalConverter {
    /// At the start of a line.
    at_start: bool,
    /// Inside `@hex…` at the start of a line: the bytes seen so far.
    stamp: Option<Vec<u8>>,
}

impl Default for LocalConverter {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalConverter {
    pub fn new() -> LocalConverter {
        LocalConverter {
            at_start: true,
            stamp: None,
        }
    }

    /// Feed a block of input, appending output to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if let Some(st) = &mut self.stamp {
                let run = data.iter().take_while(|c| hex_value(**c).is_some()).count();
                st.extend_from_slice(&data[..run]);
                data = &data[run..];
                if data.is_empty() {
                    return;
                }
                // The stamp ends here; the terminating byte belongs to the rest of the line.
                let st = self.stamp.take().unwrap_or_default();
                let (mut secs, mut nanos) = (0u64, 0u64);
                for c in &st[1..] {
                    let u = hex_value(*c).unwrap_or(0);
                    secs = (secs << 4).wrapping_add(nanos >> 28);
                    nanos = ((nanos & 0xfff_ffff) << 4) + u;
                }
                match local_text(secs, nanos) {
                    Some(t) => out.extend_from_slice(t.as_bytes()),
                    None => out.extend_from_slice(&st),
                }
                self.at_start = false;
                continue;
            }
            if self.at_start {
                if data[0] == b'@' {
                    self.stamp = Some(vec![b'@']);
                    data = &data[1..];
                    continue;
                }
                self.at_start = false;
            }
            match memchr::memchr(b'\n', data) {
                Some(k) => {
                    out.extend_from_slice(&data[..=k]);
                    data = &data[k + 1..];
                    self.at_start = true;
                }
                None => {
                    out.extend_from_slice(data);
                    data = &[];
                }
            }
        }
    }
}

/// The `tai64nlocal` program.
pub fn tai64nlocal_main() -> i32 {
    default_sigpipe();
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let mut conv = LocalConverter::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(96 * 1024);
    loop {
        let n = match read_some(&mut input, &mut buf) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) => return fatal("tai64nlocal", "unable to read input", &e),
        };
        conv.feed(&buf[..n], &mut out);
        if let Err(e) = output.write_all(&out).and_then(|_| output.flush()) {
            return fatal("tai64nlocal", "unable to write output", &e);
        }
        out.clear();
    }
}
