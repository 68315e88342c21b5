//! Starting children with a fresh process state: every signal disposition back to its
//! default and an empty signal mask, whatever the parent had ignored or blocked (caught
//! signals reset themselves at exec; ignored ones are reset explicitly). Used by
//! supervise (for ./run and ./finish) and svscan (for supervise).

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::OnceLock;

/// The signals this process ignores (SIG_IGN). Only those need resetting in a child: caught
/// signals go back to their default by themselves at exec. Found once, so starting a child
/// costs no extra system calls in the usual case (nothing ignored).
pub fn ignored() -> &'static [i32] {
    static IGNORED: OnceLock<Vec<i32>> = OnceLock::new();
    IGNORED.get_or_init(|| {
        let mut v = Vec::new();
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..libc::SIGRTMIN()).contains(&sig)
            {
                continue;
            }
            // SAFETY: sigaction with a null new action only reads the current disposition
            // into `old`, a zeroed plain-data struct we own.
            let ignored = unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
            };
            if ignored {
                v.push(sig);
            }
        }
        v
    })
}

/// Put the calling process (a child between fork and exec) into a fresh state: the signals
/// in `ignored` back to their default, an empty signal mask, and `dup` (from, to) applied.
/// Returns the errno on failure.
///
/// # Safety
/// Call only in a forked child before exec: it calls only async-signal-safe functions
/// (signal(2), sigemptyset, sigprocmask, dup2, fcntl) on plain integers and a stack-local
/// sigset, allocates nothing and takes no locks.
pub unsafe fn reset_in_child(ignored: &[i32], dup: Option<(i32, i32)>) -> Result<(), i32> {
    // SAFETY: see the function's contract; every call is async-signal-safe and only touches
    // integers and the local `set`.
    unsafe {
        for &sig in ignored {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        if let Some((from, to)) = dup {
            if from == to {
                let fl = libc::fcntl(from, libc::F_GETFD);
                if fl == -1 || libc::fcntl(from, libc::F_SETFD, fl & !libc::FD_CLOEXEC) == -1 {
                    return Err(*libc::__errno_location());
                }
            } else if libc::dup2(from, to) == -1 {
                return Err(*libc::__errno_location());
            }
        }
    }
    Ok(())
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
