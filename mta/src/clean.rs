//! qmail-clean: removes queue files on qmail-send's request.
//!
//! Protocol (fd 0 requests, fd 1 one-byte answers): `foop/N\0` removes `intd/N` then
//! `mess/N%23/N`; `todo/N\0` removes `intd/N` then `todo/N`. The answer is `+` when done, `!`
//! when an unlink failed (anything but "already gone"), `x` for a malformed request. At start and
//! every 30 requests it also removes `pid/` files not accessed for 36 hours (leftovers of a
//! qmail-queue that was killed before it linked the message).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Leftover pid/ files older than this are removed (qmail's OSSIFIED, 36 h).
pub const OSSIFIED: Duration = Duration::from_secs(129_600);

fn unlink(p: &Path) -> bool {
    match std::fs::remove_file(p) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Handle one request (without its `\0`); returns the answer byte.
pub fn handle(req: &[u8]) -> u8 {
    let Ok(s) = std::str::from_utf8(req) else {
        return b'x';
    };
    let (kind, num) = match s.split_once('/') {
        Some((k, n)) if (k == "foop" || k == "todo") && !n.is_empty() => (k, n),
        _ => return b'x',
    };
    let Ok(n) = num.parse::<u64>() else {
        return b'x';
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) {
        return b'x';
    }
    let intd_ok = unlink(Path::new(&format!("intd/{n}")));
    let other = if kind == "foop" {
        crate::queue::mess_path(n)
    } else {
        format!("todo/{n}").into()
    };
    let other_ok = unlink(&other);
    if intd_ok && other_ok { b'+' } else { b'!' }
}

/// Remove pid/ files whose access time is older than [`OSSIFIED`].
pub fn clean_pid_dir() {
    let Ok(rd) = std::fs::read_dir("pid") else {
        return;
    };
    let now = SystemTime::now();
    for e in rd.flatten() {
        if let Ok(md) = e.metadata()
            && let Ok(at) = md.accessed()
            && now.duration_since(at).unwrap_or_default() > OSSIFIED
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// qmail-clean's main.
pub fn main() -> i32 {
    let home = crate::home::qmail_home();
    if std::env::set_current_dir(&home).is_err() || std::env::set_current_dir("queue").is_err() {
        eprintln!("qmail-clean: fatal: unable to switch to queue directory");
        return 111;
    }
    clean_pid_dir();
    // SAFETY: fds 0 and 1 are ours for the whole process life (qmail-start wired them).
    let input = unsafe { std::fs::File::from_raw_fd(0) };
    let mut output = unsafe { std::fs::File::from_raw_fd(1) };
    let mut input = BufReader::new(input.take(u64::MAX));
    let mut count = 0u32;
    let mut req = Vec::new();
    loop {
        req.clear();
        match input.read_until(0, &mut req) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return 111,
        }
        if req.last() != Some(&0) {
            return 0; // EOF inside a request
        }
        req.pop();
        let ans = handle(&req);
        if output.write_all(&[ans]).is_err() {
            return 0;
        }
        count += 1;
        if count.is_multiple_of(30) {
            clean_pid_dir();
        }
    }
}
