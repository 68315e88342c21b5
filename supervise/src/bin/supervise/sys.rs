//! The few operating-system services supervise needs, as thin safe wrappers over libc (the
//! program is built without std, see main.rs): owned descriptors, errors with std's and
//! daemontools' texts, clocks, whole-file reads and messages to stderr.

use crate::shared::errno_words;
use core::ffi::{CStr, c_int};

/// The calling thread's errno.
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// An error as std's `io::Error` would have carried it: an errno, or one of the two non-OS
/// errors the old std-based code could report (with std's texts).
#[derive(Clone, Copy, Debug)]
pub enum Error {
    Os(i32),
    /// `fs::read_to_string` of a file that is not UTF-8.
    InvalidUtf8,
    /// `write_all` when write(2) returned 0.
    WriteZero,
}

impl Error {
    pub fn last() -> Error {
        Error::Os(errno())
    }
}

/// `-1` → the errno as an error.
pub fn cvt(r: c_int) -> Result<c_int, Error> {
    if r == -1 { Err(Error::last()) } else { Ok(r) }
}

/// `f` retried while it fails with EINTR (as std does for open and read).
pub fn cvt_r(mut f: impl FnMut() -> c_int) -> Result<c_int, Error> {
    loop {
        match cvt(f()) {
            Err(Error::Os(libc::EINTR)) => {}
            r => return r,
        }
    }
}

/// The text of an error as the std-based supervise printed it (`errstr::err_str`):
/// daemontools' words for the errnos it knows, else std's `io::Error` text lowercased
/// ("… (os error N)").
pub struct ErrText {
    buf: [u8; 192],
    len: usize,
}

impl ErrText {
    pub fn new(e: Error) -> ErrText {
        let mut t = ErrText {
            buf: [0; 192],
            len: 0,
        };
        match e {
            Error::InvalidUtf8 => t.push(b"stream did not contain valid UTF-8"),
            Error::WriteZero => t.push(b"failed to write whole buffer"),
            Error::Os(n) => match errno_words(n) {
                Some(w) => t.push(w.as_bytes()),
                None => {
                    // std's os::error_string: strerror_r (the XSI one, which the libc crate
                    // binds) into 128 bytes, its text used whatever it returns ("Unknown
                    // error N" for numbers it does not know), then "{text} (os error {n})".
                    let mut s = [0u8; 128];
                    // SAFETY: the buffer is valid for s.len() bytes; strerror_r writes a
                    // NUL-terminated string of at most that many bytes into it.
                    unsafe { libc::strerror_r(n, s.as_mut_ptr().cast(), s.len()) };
                    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                    t.push(&s[..end]);
                    t.push(b" (os error ");
                    let mut nb = [0u8; 12];
                    t.push(fmt_i32(n, &mut nb));
                    t.push(b")");
                    t.buf[..t.len].make_ascii_lowercase();
                }
            },
        }
        t
    }

    fn push(&mut self, b: &[u8]) {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Decimal text of `n` in `buf`.
pub fn fmt_i32(n: i32, buf: &mut [u8; 12]) -> &[u8] {
    let mut v = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Write the concatenation of `parts` to stderr with one writev (the rest, if it was short,
/// with further writes); errors are ignored, as there is nowhere else to report them.
pub fn emit(parts: &[&[u8]]) {
    const MAX: usize = 16;
    let mut iov = [libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    }; MAX];
    let n = parts.len().min(MAX);
    let mut total = 0;
    for (v, p) in iov.iter_mut().zip(parts) {
        v.iov_base = p.as_ptr() as *mut libc::c_void;
        v.iov_len = p.len();
        total += p.len();
    }
    // SAFETY: the first n iovecs point into the live slices of `parts`.
    let w = match cvt_r(|| unsafe { libc::writev(2, iov.as_ptr(), n as c_int) } as c_int) {
        Ok(w) => w as usize,
        Err(_) => return,
    };
    if w >= total {
        return;
    }
    // short write: the remaining bytes, piece by piece
    let mut skip = w;
    for p in &parts[..n] {
        if skip >= p.len() {
            skip -= p.len();
            continue;
        }
        if write_all(2, &p[skip..]).is_err() {
            return;
        }
        skip = 0;
    }
}

/// write(2) until all of `data` is written.
pub fn write_all(fd: c_int, mut data: &[u8]) -> Result<(), Error> {
    while !data.is_empty() {
        // SAFETY: `data` is a live slice; write reads at most data.len() bytes from it.
        let n = cvt_r(|| unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) } as c_int)?;
        if n == 0 {
            return Err(Error::WriteZero);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// read(2) into `buf`, retried on EINTR.
pub fn read(fd: c_int, buf: &mut [u8]) -> Result<usize, Error> {
    // SAFETY: `buf` is a live, writable slice; read writes at most buf.len() bytes into it.
    cvt_r(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as c_int)
        .map(|n| n as usize)
}

/// A descriptor we own: closed when dropped.
pub struct Fd(pub c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours (Fd is only built from descriptors we opened and
        // never copied out), so closing it cannot close someone else's.
        unsafe { libc::close(self.0) };
    }
}

/// open(2) with O_CLOEXEC (as std opens every file), retried on EINTR.
pub fn open(path: &CStr, flags: c_int, mode: libc::mode_t) -> Result<Fd, Error> {
    // SAFETY: `path` is a NUL-terminated string.
    cvt_r(|| unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })
        .map(Fd)
}

/// pipe2(2).
pub fn pipe(flags: c_int) -> Result<(Fd, Fd), Error> {
    let mut p = [0 as c_int; 2];
    // SAFETY: `p` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(p.as_mut_ptr(), flags) })?;
    Ok((Fd(p[0]), Fd(p[1])))
}

/// Whether stat(2) of `path` succeeds; the error if not.
pub fn stat(path: &CStr) -> Result<(), Error> {
    // SAFETY: an all-zero `stat` is a valid value of this plain-data struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is ours to write.
    cvt(unsafe { libc::stat(path.as_ptr(), &mut st) }).map(|_| ())
}

/// unlink(2), errors ignored (the callers remove a file that is usually absent).
pub fn unlink(path: &CStr) {
    // SAFETY: `path` is NUL-terminated.
    unsafe { libc::unlink(path.as_ptr()) };
}

/// Set O_NONBLOCK on `fd` (failure ignored: the callers read only after poll said readable).
pub fn set_nonblock(fd: c_int) {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl != -1 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn clock(id: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is ours to write; CLOCK_MONOTONIC and CLOCK_REALTIME always exist.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts
}

/// Nanoseconds of the monotonic clock (what std's `Instant` reads).
pub fn mono_ns() -> u64 {
    let ts = clock(libc::CLOCK_MONOTONIC);
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Seconds and nanoseconds since the Unix epoch (what std's `SystemTime` reads); a clock
/// before 1970 gives the epoch, as `duration_since(UNIX_EPOCH).unwrap_or(ZERO)` did.
pub fn realtime() -> (u64, u32) {
    let ts = clock(libc::CLOCK_REALTIME);
    if ts.tv_sec < 0 {
        (0, 0)
    } else {
        (ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// A malloc'd byte buffer (freed when dropped).
pub struct Bytes {
    ptr: *mut u8,
    len: usize,
    cap: usize,
}

impl Bytes {
    pub fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: ptr points to cap >= len bytes allocated by us, the first len initialised.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        // SAFETY: ptr is null or came from malloc/realloc and is freed only here.
        unsafe { libc::free(self.ptr.cast()) };
    }
}

/// The whole contents of `path`, as `fs::read` reads it.
pub fn read_file(path: &CStr) -> Result<Bytes, Error> {
    let fd = open(path, libc::O_RDONLY, 0)?;
    let mut b = Bytes {
        ptr: core::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
    loop {
        if b.len == b.cap {
            let cap = if b.cap == 0 { 64 } else { b.cap * 2 };
            // SAFETY: realloc of null or of our own allocation; on failure the old block
            // stays valid and owned by `b`.
            let p = unsafe { libc::realloc(b.ptr.cast(), cap) } as *mut u8;
            if p.is_null() {
                return Err(Error::Os(libc::ENOMEM));
            }
            b.ptr = p;
            b.cap = cap;
        }
        // SAFETY: ptr has cap bytes, len of them used: the rest is ours to fill.
        let spare = unsafe { core::slice::from_raw_parts_mut(b.ptr.add(b.len), b.cap - b.len) };
        match read(fd.0, spare)? {
            0 => return Ok(b),
            n => b.len += n,
        }
    }
}

/// `bytes` as `OsStr::to_string_lossy` shows them: unchanged when UTF-8, else each invalid
/// sequence replaced by U+FFFD (in a buffer that lives as long as the program).
pub fn lossy(bytes: &'static [u8]) -> &'static [u8] {
    if core::str::from_utf8(bytes).is_ok() {
        return bytes;
    }
    let cap = bytes.len() * 3;
    // SAFETY: plain allocation; checked for null below. Never freed: the text is used until
    // the program ends.
    let p = unsafe { libc::malloc(cap.max(1)) } as *mut u8;
    if p.is_null() {
        return bytes;
    }
    // SAFETY: p has cap bytes, all ours.
    let out = unsafe { core::slice::from_raw_parts_mut(p, cap) };
    let mut n = 0;
    let mut put = |b: &[u8]| {
        out[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    for chunk in bytes.utf8_chunks() {
        put(chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            put("\u{FFFD}".as_bytes());
        }
    }
    // SAFETY: the first n bytes were written above; the allocation is never freed.
    unsafe { core::slice::from_raw_parts(p, n) }
}
