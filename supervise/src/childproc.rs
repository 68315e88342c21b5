//! Starting children with a fresh process state: every signal disposition back to its
//! default and an empty signal mask, whatever the parent had ignored or blocked. Used by
//! supervise (for ./run and ./finish) and svscan (for supervise).

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Arrange for `cmd`'s child to start with default signal dispositions and an empty signal
/// mask; if `dup` is `Some((from, to))`, descriptor `from` is also duplicated to `to` (and
/// left open across exec).
pub fn fresh(cmd: &mut Command, dup: Option<(i32, i32)>) {
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (sigaction via signal(2), sigemptyset, sigprocmask, dup2,
    // fcntl; SIGRTMIN/SIGRTMAX just return glibc constants) on plain integers and a stack-local sigset; it allocates nothing, takes no locks
    // and touches no Rust-managed state, which is what `pre_exec` requires.
    unsafe {
        cmd.pre_exec(move || {
            // 1..=31 and the real-time signals glibc lets us touch (it reserves two).
            for sig in 1..=libc::SIGRTMAX() {
                if sig != libc::SIGKILL
                    && sig != libc::SIGSTOP
                    && (sig < 32 || sig >= libc::SIGRTMIN())
                {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if let Some((from, to)) = dup {
                if from == to {
                    let fl = libc::fcntl(from, libc::F_GETFD);
                    if fl == -1 || libc::fcntl(from, libc::F_SETFD, fl & !libc::FD_CLOEXEC) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(from, to) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
