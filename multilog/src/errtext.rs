//! The short error texts daemontools prints after "…: " (djb's `error_str` wording), so our
//! messages read exactly like Debian's multilog, e.g. "file does not exist".

use std::io;

/// Text for an OS error number, in daemontools' words.
pub fn errno_text(errno: i32) -> String {
    use libc::*;
    let s = match errno {
        0 => "no error",
        EINTR => "interrupted system call",
        ENOMEM => "out of memory",
        ENOENT => "file does not exist",
        ETXTBSY => "text busy",
        EIO => "input/output error",
        EEXIST => "file already exists",
        ETIMEDOUT => "timed out",
        EINPROGRESS => "operation in progress",
        EAGAIN => "temporary failure",
        EPIPE => "broken pipe",
        EPERM => "permission denied",
        EACCES => "access denied",
        ENXIO => "device not configured",
        EPROTO => "protocol error",
        EISCONN => "already connected",
        ESRCH => "no such process",
        E2BIG => "argument list too long",
        ENOEXEC => "exec format error",
        EBADF => "file descriptor not open",
        ECHILD => "no child processes",
        EDEADLK => "operation would cause deadlock",
        EFAULT => "bad address",
        ENOTBLK => "not a block device",
        EBUSY => "device busy",
        EXDEV => "cross-device link",
        ENODEV => "device does not support operation",
        ENOTDIR => "not a directory",
        EISDIR => "is a directory",
        EINVAL => "invalid argument",
        ENFILE => "system cannot open more files",
        EMFILE => "process cannot open more files",
        ENOTTY => "not a tty",
        EFBIG => "file too big",
        ENOSPC => "out of disk space",
        ESPIPE => "unseekable descriptor",
        EROFS => "read-only file system",
        EMLINK => "too many links",
        EDOM => "input out of range",
        ERANGE => "output out of range",
        ENAMETOOLONG => "file name too long",
        ENOTEMPTY => "directory not empty",
        ELOOP => "symbolic link loop",
        EDQUOT => "disk quota exceeded",
        ESTALE => "stale NFS file handle",
        ENOSYS => "operation not supported",
        ECONNREFUSED => "connection refused",
        ECONNRESET => "connection reset",
        _ => return format!("error {errno}"),
    };
    s.to_string()
}

/// Text for an `io::Error`: the errno text when there is one, else the error itself.
pub fn io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_text(n),
        None => e.to_string(),
    }
}

/// Text for a nix errno.
pub fn nix_text(e: nix::errno::Errno) -> String {
    errno_text(e as i32)
}
