//! Starting qmail-local without copying qmail-lspawn: `clone(CLONE_VM | CLONE_VFORK)`, the way
//! glibc's posix_spawn starts a program, plus the uid/gid change posix_spawn cannot do.
//!
//! qmail-lspawn starts one qmail-local per delivery from a process with a thread per running
//! delivery. A `fork` there copies the page tables of every thread's stack and heap, write-
//! protects them (with TLB shoot-downs on the other CPUs) and takes copy-on-write faults until
//! the child execs (in a profile of the queue benchmark qmail-lspawn took a tenth of all CPU,
//! most of it in that page-table work; the end-to-end gain was too small to measure on the
//! test machine, bench/RESULTS.md). Here the
//! child borrows our memory for the few system calls it makes before `execve`, while the
//! calling thread waits (CLONE_VFORK), as posix_spawn does; other threads go on.
//!
//! What the child does, all with raw system calls on values prepared before the clone (no
//! allocation, no lock, no libc wrapper that keeps per-process state — glibc's `setuid` would
//! try to change every thread of *our* process): SIGPIPE back to its default disposition and
//! an empty signal mask (as std's `Command` does), the message on fd 0 and the output pipe on
//! fds 1 and 2, then — as root — `setgroups(0)`, `setgid`, `setuid`, then `execve`. If any
//! step fails it leaves the errno in memory we share and exits 127; the caller reaps it and
//! reports the error.

use std::ffi::{CString, c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};

/// System call arguments are passed as C `long`s (what `syscall(2)` reads for each of them).
type L = libc::c_long;

/// Everything the child needs, prepared by the parent.
struct Plan {
    path: CString,
    argv: Vec<*const libc::c_char>,
    envp: *const *const libc::c_char,
    stdin: c_int,
    out: c_int,
    ids: Option<(libc::uid_t, libc::gid_t)>,
    /// The errno of the step that failed in the child, 0 while none has.
    err: AtomicI32,
}

/// The kernel's `struct sigaction` on x86_64 and aarch64 (not glibc's, which differs).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// A raw system call's result: the value, or the errno.
fn check(r: libc::c_long) -> Result<libc::c_long, c_int> {
    if r < 0 {
        // The libc::syscall wrapper returns -1 and sets errno; read it without libc state
        // beyond the thread's errno slot (ours, since we run on the caller's thread pointer).
        Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    } else {
        Ok(r)
    }
}

/// Put `fd` on `target` without close-on-exec.
///
/// # Safety
/// Only raw system calls; see [`child`].
unsafe fn place(fd: c_int, target: c_int) -> Result<(), c_int> {
    // SAFETY: plain system calls on integer arguments.
    unsafe {
        if fd == target {
            check(libc::syscall(
                libc::SYS_fcntl,
                fd as L,
                libc::F_SETFD as L,
                0 as L,
            ))?;
        } else {
            check(libc::syscall(libc::SYS_dup3, fd as L, target as L, 0 as L))?;
        }
    }
    Ok(())
}

/// The child's side, run on its own small stack in our address space until `execve`.
///
/// # Safety
/// `arg` points to a live [`Plan`] (the parent is suspended until we exec or exit, so it stays
/// alive). Only raw system calls and reads of the plan happen here.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: see the function's contract: the plan outlives the child's use of it.
    let plan = unsafe { &*(arg as *const Plan) };
    // SAFETY: raw system calls with arguments prepared by the parent; pointers point into the
    // plan (argv: NUL-terminated strings and a null-terminated array; envp: the process's
    // environment, which nobody changes while the parent thread is suspended in clone).
    let r: Result<(), c_int> = unsafe {
        (|| {
            let dfl = KernelSigaction {
                handler: libc::SIG_DFL,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            check(libc::syscall(
                libc::SYS_rt_sigaction,
                libc::SIGPIPE as L,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            ))?;
            let empty: u64 = 0;
            check(libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK as L,
                &empty as *const u64,
                std::ptr::null_mut::<u64>(),
                8usize,
            ))?;
            place(plan.stdin, 0)?;
            place(plan.out, 1)?;
            place(plan.out, 2)?;
            if let Some((uid, gid)) = plan.ids {
                check(libc::syscall(
                    libc::SYS_setgroups,
                    0usize,
                    std::ptr::null::<libc::gid_t>(),
                ))?;
                check(libc::syscall(libc::SYS_setgid, gid as L))?;
                check(libc::syscall(libc::SYS_setuid, uid as L))?;
            }
            check(libc::syscall(
                libc::SYS_execve,
                plan.path.as_ptr(),
                plan.argv.as_ptr(),
                plan.envp,
            ))?;
            Ok(())
        })()
    };
    let e = match r {
        Ok(()) => libc::EINVAL, // execve does not return on success
        Err(e) => e,
    };
    plan.err.store(e.max(1), Ordering::SeqCst);
    // SAFETY: ends this child process only (it is not a thread of ours: no CLONE_THREAD).
    unsafe { libc::syscall(libc::SYS_exit, 127 as L) };
    127
}

unsafe extern "C" {
    static environ: *const *const libc::c_char;
}

/// Start `path` with `argv` (argv[0] first), fd 0 = `stdin`, fds 1 and 2 = `out`, as
/// `ids` = (uid, gid) when given (root only), and return its pid.
pub fn spawn(
    path: &Path,
    argv: &[&[u8]],
    ids: Option<(u32, u32)>,
    stdin: BorrowedFd<'_>,
    out: BorrowedFd<'_>,
) -> io::Result<libc::pid_t> {
    let nul = |_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in an argument");
    let path = CString::new(path.as_os_str().as_bytes()).map_err(nul)?;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(*a).map_err(nul))
        .collect::<io::Result<_>>()?;
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let plan = Plan {
        path,
        argv: ptrs,
        // SAFETY: reading the pointer value of libc's `environ`; the environment is not changed
        // by this program's threads after start-up.
        envp: unsafe { environ },
        stdin: stdin.as_raw_fd(),
        out: out.as_raw_fd(),
        ids,
        err: AtomicI32::new(0),
    };
    // The child's stack: it makes a handful of system calls, 64 KiB is plenty. 16-byte aligned
    // top, as the ABI wants.
    let mut stack = vec![0u128; 64 * 1024 / 16];
    let top = stack.as_mut_ptr_range().end as *mut c_void;
    // SAFETY: `child` only reads `plan` and makes raw system calls (see its contract); with
    // CLONE_VFORK this thread is suspended until the child has exec'd or exited, so `plan` and
    // `stack` outlive every use the child makes of them; SIGCHLD makes it an ordinary child
    // that waitpid reaps.
    let pid = unsafe {
        libc::clone(
            child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &plan as *const Plan as *mut c_void,
        )
    };
    drop(stack);
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let e = plan.err.load(Ordering::SeqCst);
    if e != 0 {
        let mut status = 0;
        // SAFETY: reaping the child we just created.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(e));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::super::run_program;
    use std::fs::File;

    #[test]
    fn runs_with_fds_args_and_ids() {
        let mess = File::open("/dev/null").unwrap();
        let root = nix::unistd::geteuid().is_root();
        let ids = root.then_some((4242, 4343));
        let o = run_program(
            std::path::Path::new("/bin/sh"),
            &[
                b"sh",
                b"-c",
                b"echo $0 $1 $(id -u) $(id -g) $(id -G); cat; echo err >&2; exit 3",
                b"one",
            ],
            ids,
            mess,
            3000,
        )
        .unwrap();
        let want = if root {
            "one 4242 4343 4343\nerr\n".to_string()
        } else {
            let (u, g) = (nix::unistd::geteuid(), nix::unistd::getegid());
            format!("one {u} {g}")
        };
        let got = String::from_utf8_lossy(&o.output);
        if root {
            assert_eq!(got, want);
        } else {
            assert!(got.starts_with(&want), "{got}");
        }
        assert_eq!(o.status.code(), Some(3));
    }

    #[test]
    fn missing_program_is_an_error() {
        let mess = File::open("/dev/null").unwrap();
        let e = run_program(
            std::path::Path::new("/nonexistent/qmail-local"),
            &[b"qmail-local"],
            None,
            mess,
            3000,
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn sigpipe_is_default_in_the_child() {
        let mess = File::open("/dev/null").unwrap();
        let o = run_program(
            std::path::Path::new("/bin/sh"),
            &[b"sh", b"-c", b"grep SigIgn /proc/self/status"],
            None,
            mess,
            3000,
        )
        .unwrap();
        let line = String::from_utf8_lossy(&o.output);
        let mask =
            u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
        assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{line}");
    }
}
