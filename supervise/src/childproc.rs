//! Starting children with a fresh process state: every signal disposition back to its
//! default and an empty signal mask, whatever the parent had ignored or blocked (caught
//! signals reset themselves at exec; ignored ones are reset explicitly). Used by svscan (for
//! supervise); the std-free supervise program (for ./run and ./finish) calls the same
//! `reset_in_child` and `scan_ignored` from src/shared.rs.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

pub use crate::shared::reset_in_child;

/// The signals this process ignores (SIG_IGN). Only those need resetting in a child: caught
/// signals go back to their default by themselves at exec. Found once, so starting a child
/// costs no extra system calls in the usual case (nothing ignored).
pub fn ignored() -> &'static [i32] {
    static IGNORED: OnceLock<Vec<i32>> = OnceLock::new();
    IGNORED.get_or_init(|| {
        let mut buf = [0; crate::shared::MAX_SIGNALS];
        let n = crate::shared::scan_ignored(&mut buf);
        buf[..n].to_vec()
    })
}

/// Arrange for `cmd`'s child to start with default signal dispositions and an empty signal
/// mask; if `dup` is `Some((from, to))`, descriptor `from` is also duplicated to `to` (and
/// left open across exec).
pub fn fresh(cmd: &mut Command, dup: Option<(i32, i32)>) {
    let ignored = ignored();
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // `reset_in_child`, which is async-signal-safe (see its contract) and uses a `&'static`
    // slice computed before the fork; that is what `pre_exec` requires.
    unsafe {
        cmd.pre_exec(move || {
            reset_in_child(ignored, dup).map_err(std::io::Error::from_raw_os_error)
        });
    }
}
