//! mbox delivery, as qmail-local's mailfile: the file is opened for appending (created with
//! mode 0600 if absent), locked, and gets a `From ` line, the Return-Path and Delivered-To
//! lines, the message with mboxrd quoting (a `>` before every line matching `>*From `), a
//! final newline if the message lacked one, and one empty line; then it is fsynced. Any error
//! truncates the file back to where it ended, so a reader never sees half a message.
//!
//! Locking: qmail took flock() only; we take both flock() and an fcntl() write lock (what
//! Debian's mail readers and Dovecot use), polling for up to 30 seconds ("File has been locked
//! for 30 seconds straight. (#4.3.0)"). As in qmail, when locking is not supported at all the
//! delivery goes ahead unlocked and then does not truncate on error.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A failed mbox delivery: qmail's report text (always temporary, exit 111).
#[derive(Debug, PartialEq, Eq)]
pub struct MboxError(pub String);

/// How long to wait for the locks.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// True for a line that mboxrd quoting must protect: `>*From `.
pub fn needs_quote(line: &[u8]) -> bool {
    let rest = &line[line.iter().take_while(|&&c| c == b'>').count()..];
    rest.starts_with(b"From ")
}

// nix 0.29 deprecates the fd-based flock() in favour of an owning wrapper; we need the lock on
// a borrowed File for the duration of one delivery, which the plain call expresses best.
#[allow(deprecated)]
fn try_locks(f: &File) -> io::Result<bool> {
    use nix::fcntl::{FlockArg, flock};
    match flock(f.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
        Ok(()) => {}
        Err(nix::errno::Errno::EWOULDBLOCK) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let lk = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    match nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETLK(&lk)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EACCES) => {
            let _ = flock(f.as_raw_fd(), FlockArg::Unlock);
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Take both locks, polling until `timeout`. `Ok(false)` when locking is unsupported.
fn lock(f: &File, timeout: Duration) -> Result<bool, MboxError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match try_locks(f) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(_) => return Ok(false),
        }
        if start.elapsed() >= timeout {
            return Err(MboxError(
                "File has been locked for 30 seconds straight. (#4.3.0)".into(),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Append one message to mbox `path`. `prefix` is the From_ line plus Return-Path and
/// Delivered-To; the message is read from the start of `msg`.
pub fn deliver(path: &Path, prefix: &[u8], msg: &mut File) -> Result<(), MboxError> {
    deliver_with_timeout(path, prefix, msg, LOCK_TIMEOUT)
}

pub fn deliver_with_timeout(
    path: &Path,
    prefix: &[u8],
    msg: &mut File,
    timeout: Duration,
) -> Result<(), MboxError> {
    let fname = path.display().to_string();
    msg.seek(SeekFrom::Start(0))
        .map_err(|_| MboxError("Unable to rewind message. (#4.3.0)".into()))?;
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| MboxError(format!("Unable to open {fname}: {}. (#4.2.1)", os_text(&e))))?;
    let locked = lock(&file, timeout)?;
    let mut f = &file;
    let pos = f.seek(SeekFrom::End(0)).map_err(|e| {
        MboxError(format!(
            "Unable to write {fname}: {}. (#4.3.0)",
            os_text(&e)
        ))
    })?;
    let fail = |text: String| {
        if locked {
            let _ = file.set_len(pos);
            let _ = file.sync_all();
        }
        MboxError(text)
    };
    let werr = |e: io::Error| format!("Unable to write {fname}: {}. (#4.3.0)", os_text(&e));
    let mut out = io::BufWriter::with_capacity(64 * 1024, &file);
    let mut input = BufReader::with_capacity(64 * 1024, &*msg);
    let result = (|| -> Result<(), String> {
        out.write_all(prefix).map_err(werr)?;
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("Unable to read message: {}. (#4.3.0)", os_text(&e)))?;
            if n == 0 {
                break;
            }
            if needs_quote(&line) {
                out.write_all(b">").map_err(werr)?;
            }
            out.write_all(&line).map_err(werr)?;
            if line.last() != Some(&b'\n') {
                out.write_all(b"\n").map_err(werr)?;
                break;
            }
        }
        out.write_all(b"\n").map_err(werr)?;
        out.flush().map_err(werr)?;
        Ok(())
    })();
    drop(out);
    if let Err(t) = result {
        return Err(fail(t));
    }
    if let Err(e) = file.sync_all() {
        return Err(fail(werr(e)));
    }
    Ok(())
}

/// An OS error the way qmail's error_str words it (no "(os error N)").
pub fn os_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_terminates() {
        assert!(needs_quote(b"From x"));
        assert!(needs_quote(b">>From x"));
        assert!(!needs_quote(b"Fromx"));
        assert!(!needs_quote(b" From x"));
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mbox");
        let mut m = tempfile::tempfile().unwrap();
        m.write_all(b"Subject: a\n\nFrom me\n>From you\nlast")
            .unwrap();
        deliver(&p, b"From a@b Tue Nov 24 23:31:58 2026\n", &mut m).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"From a@b Tue Nov 24 23:31:58 2026\nSubject: a\n\n>From me\n>>From you\nlast\n\n"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second writer holding the lock makes us give up after the timeout, nothing written.
        let holder = OpenOptions::new().append(true).open(&p).unwrap();
        assert!(try_locks(&holder).unwrap());
        let before = std::fs::read(&p).unwrap();
        let child = std::thread::spawn(move || {
            let mut m2 = tempfile::tempfile().unwrap();
            m2.write_all(b"x\n").unwrap();
            deliver_with_timeout(&p, b"From x\n", &mut m2, Duration::from_millis(300))
        });
        let r = child.join().unwrap();
        // fcntl locks are per process, so inside one process only flock excludes us.
        assert_eq!(
            r,
            Err(MboxError(
                "File has been locked for 30 seconds straight. (#4.3.0)".into()
            ))
        );
        assert_eq!(std::fs::read(d.path().join("mbox")).unwrap(), before);
    }
}
