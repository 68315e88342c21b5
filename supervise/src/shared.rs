//! The code the library shares with the `supervise` program, which is built without std
//! (src/bin/supervise/main.rs includes this file with `#[path]`): so only `core` and `libc`
//! here. It holds the one definition of the status/ready byte layouts, the TAI64N label, the
//! daemontools error wording and the reset of a child's signal state.

/// Length of the status file.
pub const STATUS_LEN: usize = 18;
/// Length of the ready file.
pub const READY_LEN: usize = 16;

const TAI_OFFSET: u64 = (1u64 << 62) + 10;

/// The 12-byte TAI64N label of a time `secs`.`nanos` after the Unix epoch: 8-byte big-endian
/// TAI64 (2^62 + 10 + unix seconds; later leap seconds ignored, as daemontools does) and
/// 4-byte big-endian nanoseconds.
pub fn tai_encode(secs: u64, nanos: u32) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&(TAI_OFFSET.wrapping_add(secs)).to_be_bytes());
    out[8..].copy_from_slice(&nanos.to_be_bytes());
    out
}

/// Unix seconds of a TAI64 label's first 8 bytes (0 for labels before the epoch).
pub fn tai_unix_secs(label: u64) -> u64 {
    label.saturating_sub(TAI_OFFSET)
}

/// The 18 status bytes: TAI64N `label`, little-endian `pid`, paused flag, want byte
/// (`u`, `d` or 0).
pub fn status_bytes(label: [u8; 12], pid: u32, paused: bool, want: u8) -> [u8; STATUS_LEN] {
    let mut b = [0u8; STATUS_LEN];
    b[..12].copy_from_slice(&label);
    b[12..16].copy_from_slice(&pid.to_le_bytes());
    b[16] = u8::from(paused);
    b[17] = want;
    b
}

/// The 16 ready bytes: TAI64N `label`, then the little-endian `pid`.
pub fn ready_bytes(label: [u8; 12], pid: u32) -> [u8; READY_LEN] {
    let mut b = [0u8; READY_LEN];
    b[..12].copy_from_slice(&label);
    b[12..].copy_from_slice(&pid.to_le_bytes());
    b
}

/// The daemontools wording (`error_str`) for the errnos it knows; `None` for the others.
pub fn errno_words(errno: i32) -> Option<&'static str> {
    Some(match errno {
        0 => "no error",
        libc::EINTR => "interrupted system call",
        libc::ENOMEM => "out of memory",
        libc::ENOENT => "file does not exist",
        libc::ETXTBSY => "text busy",
        libc::EIO => "input/output error",
        libc::EEXIST => "file already exists",
        libc::ETIMEDOUT => "timed out",
        libc::EINPROGRESS => "operation in progress",
        libc::EAGAIN => "temporary failure",
        libc::EPIPE => "broken pipe",
        libc::EPERM => "permission denied",
        libc::EACCES => "access denied",
        libc::ENXIO => "device not configured",
        libc::EPROTO => "protocol error",
        libc::EISCONN => "already connected",
        libc::ESRCH => "no such process",
        libc::E2BIG => "argument list too long",
        libc::ENOEXEC => "exec format error",
        libc::EBADF => "file descriptor not open",
        libc::ECHILD => "no child processes",
        libc::EDEADLK => "operation would cause deadlock",
        libc::EFAULT => "bad address",
        libc::ENOTBLK => "not a block device",
        libc::EBUSY => "device busy",
        libc::EXDEV => "cross-device link",
        libc::ENODEV => "device does not support operation",
        libc::ENOTDIR => "not a directory",
        libc::EISDIR => "is a directory",
        libc::EINVAL => "invalid argument",
        libc::ENFILE => "system cannot open more files",
        libc::EMFILE => "process cannot open more files",
        libc::ENOTTY => "not a tty",
        libc::EFBIG => "file too big",
        libc::ENOSPC => "out of disk space",
        libc::ESPIPE => "unseekable descriptor",
        libc::EROFS => "read-only file system",
        libc::EMLINK => "too many links",
        libc::EDOM => "input out of range",
        libc::ERANGE => "output out of range",
        libc::ELOOP => "symbolic link loop",
        libc::ENAMETOOLONG => "file name too long",
        libc::ENOTEMPTY => "directory not empty",
        libc::EDQUOT => "disk quota exceeded",
        libc::ECONNREFUSED => "connection refused",
        libc::ECONNRESET => "connection reset",
        libc::ENOTSOCK => "not a socket",
        libc::ENOSYS => "operation not supported",
        _ => return None,
    })
}

/// The signal a pure signal command letter of `supervise/control` delivers to the service.
pub fn signal_for_letter(c: u8) -> Option<i32> {
    Some(match c {
        b'a' => libc::SIGALRM,
        b'h' => libc::SIGHUP,
        b'i' => libc::SIGINT,
        b't' => libc::SIGTERM,
        b'k' => libc::SIGKILL,
        b'1' => libc::SIGUSR1,
        b'2' => libc::SIGUSR2,
        _ => return None,
    })
}

/// Most signals there are (Linux: 64).
pub const MAX_SIGNALS: usize = 64;

/// Fill `out` with the signals this process ignores (SIG_IGN) and return how many. Only
/// those need resetting in a child: caught signals go back to their default by themselves at
/// exec.
pub fn scan_ignored(out: &mut [i32; MAX_SIGNALS]) -> usize {
    let mut n = 0;
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..libc::SIGRTMIN()).contains(&sig) {
            continue;
        }
        // SAFETY: sigaction with a null new action only reads the current disposition into
        // `old`, a zeroed plain-data struct we own.
        let ignored = unsafe {
            let mut old: libc::sigaction = core::mem::zeroed();
            libc::sigaction(sig, core::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        };
        if ignored && n < out.len() {
            out[n] = sig;
            n += 1;
        }
    }
    n
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
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
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
