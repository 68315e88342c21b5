//! Small shared helpers: qmail's date format and directory fsync.

use std::io;
use std::path::Path;

/// qmail's date822fmt: "24 Nov 2026 23:14:05 -0000" — day without a leading zero, GMT.
pub fn date822fmt(t: std::time::SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%-d %b %Y %H:%M:%S -0000").to_string()
}

/// fsync a directory, so that a link, rename or unlink inside it is on disk.
///
/// qmail assumed BSD's synchronous directory updates; Linux file systems need this call for
/// the queue's guarantee to hold.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Start-up for the programs that run once per message (qmail-inject, qmail-queue,
/// qmail-local, …), whose `main` is declared with `#![no_main]` and [`fast_main!`]: Rust's
/// usual start-up reads `/proc/self/maps` (to place a guard for stack overflows on the main
/// thread) and installs a signal stack, which costs as much as a small program's whole work.
/// What of it these programs rely on is done here: SIGPIPE ignored, so that writing to a closed
/// pipe is an error (EPIPE) and not death, as under the usual start-up. `std::env::args` still
/// works (glibc hands argv to std's own initialiser), and `std::process::exit` still flushes
/// stdout.
pub fn fast_start() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE and no handler code is involved; this
    // runs first thing in main, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// `fast_main!(path::to::main)` defines the C `main` of a `#![no_main]` binary: it calls
/// [`fast_start`], then the given `fn() -> i32`, and exits with its result.
#[macro_export]
macro_rules! fast_main {
    ($f:path) => {
        // SAFETY: with #![no_main] std generates no `main` symbol, so this is the only one in
        // the program; its C signature is the one the C runtime calls.
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: std::ffi::c_int,
            _argv: *const *const std::ffi::c_char,
        ) -> std::ffi::c_int {
            $crate::util::fast_start();
            std::process::exit($f())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date822_has_no_leading_zero() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_200_045);
        assert_eq!(date822fmt(t), "26 Nov 2025 23:34:05 -0000");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_762_041_600);
        assert_eq!(date822fmt(t), "2 Nov 2025 00:00:00 -0000");
    }
}
