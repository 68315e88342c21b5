//! One log directory (`./main`, `/var/log/x`): the files daemontools' multilog keeps there, its
//! start-up clean-up, its crash-safe rotation, and an exact model of *where* daemontools cuts
//! `current`.
//!
//! ## Files
//! `lock` (flock held while we write), `current` (mode 644 while written, 744 once closed
//! cleanly), `state`/`newstate` (the processor's fd 4 / fd 5), `previous` (the full `current`
//! being archived), `processed` (processor output; 744 once complete) and archives
//! `@<tai64n>.s` (complete) or `@<tai64n>.u` (left by a crash, possibly cut).
//!
//! ## Where files end
//! daemontools passes every line through a 512-byte output buffer whose flushes go through a
//! write function that starts a new file after a write that ends with a newline once
//! `current` holds at least SIZE−2000 bytes (cutting that write at its last newline), and
//! that never lets `current` exceed SIZE. The buffer is flushed before every 1024-byte read of
//! input. So file boundaries depend on that chunking; to leave byte-identical directories we
//! replay the same chunking *logically* ([`Cyclog::put`], [`Cyclog::flush`]) on offsets into
//! our own large output buffer, and do the real writes in big batches. The chunking costs a few
//! integer operations per line, no system calls.
//!
//! ## Rotation order (crash safe)
//! With a processor: write everything up to the cut → fsync `current` → rename `current` → `previous` → create
//! a new `current` (644) → fsync the directory → chmod `previous` 744 → either link `previous`
//! to `@….s` and unlink it, or run the processor (`previous` on stdin, `processed` on stdout,
//! `state` on fd 4, `newstate` on fd 5), fsync + chmod 744 `processed`, fsync `newstate`,
//! unlink `previous`, rename `newstate` → `state`, link `processed` to `@….s`, unlink it →
//! fsync the directory → remove the oldest archives beyond `n` (and beyond `S` bytes).
//! Without a processor we rename first and let the directory's background thread do "fsync
//! the directory and `previous` (both at once) → chmod 744 → link `@….s` → unlink → fsync
//! the directory → clean-up" while the main thread writes the new `current` (daemontools
//! fsyncs before the rename and waits); the next rotation waits until `previous` is gone,
//! the exit until the clean-up is done too. An archive is still never named `.s` before its
//! data is on disk, and a `previous` left by a crash is archived as `.u` at the next start.
//! A kill at any point leaves files that the next start finishes as daemontools does:
//! a 744 `processed` becomes `.s` (its `previous` is dropped), otherwise `previous` becomes
//! `.u`; a `current` not marked 744 becomes `.u`. Every step that fails is retried after a
//! one-second pause with "multilog: warning: …, pausing: …" on stderr (daemontools pauses
//! five seconds); nothing is ever dropped. Unlike daemontools we also fsync the directory
//! after each rename/link, so an archived file survives a power loss.
//!
//! ## Writeback
//! The same background thread starts the writeback of `current` every 2 MiB as it grows
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the disk writes while we go on and the
//! fsync at rotation or exit (still done, as before) finds little left to write.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::errtext::{io_text, nix_text};
use crate::stamp::{Clock, tai64n_label};

/// daemontools' per-directory output buffer.
const BUF: usize = 512;
/// daemontools' chunk size for large direct writes.
const OUTSIZE: usize = 8192;
/// Start the writeback of `current` every this many bytes (see [`Cyclog::start_writeback`]).
const WRITEBACK: u64 = 2 << 20;
const PAGE: u64 = 4096;

/// A directory's background thread, started at the first need; it runs its jobs in order.
enum Worker {
    NotYet,
    Running(Sender<Job>),
    /// Could not be started: rotations are finished in the main thread and the fsyncs do
    /// all the writing.
    Off,
}

enum Job {
    /// Start writing these bytes of a file to disk ([`write_back`]).
    WriteBack(Arc<File>, u64, u64),
    /// Finish a rotation without processor: fsync the directory and `previous` (the file
    /// given), mode 744, link `@….s`, unlink `previous`, fsync the
    /// directory; then report on the channel (`previous` is gone, the next rotation may
    /// go on) and remove the oldest archives.
    Rotate(Option<Arc<File>>, Sender<()>),
    /// Report on the channel: every job before this one is done.
    Drain(Sender<()>),
}

/// The rotation job: see [`Job::Rotate`]. Without a worker thread, the caller runs it.
fn rotate_job(
    arch: &Archiver,
    old: Option<Arc<File>>,
    clock: &mut Clock,
    done: Option<Sender<()>>,
) {
    // The rename and the new `current` reach the disk before `previous` is archived, as
    // before; the main thread's writes to the new `current` go on meanwhile but are fsynced
    // only at the next rotation or the exit, which wait for `done`. The directory's fsync
    // and `previous`'s are independent, so they run at the same time (each waits for a
    // cache flush of the disk, which is slow when the disk is busy); both are done before
    // `previous` gets its archive name.
    let sync_previous = || {
        if let Some(old) = &old {
            while let Err(e) = old.sync_all() {
                pause(&format!(
                    "unable to write {} to disk, pausing: {}",
                    arch.file_name("previous"),
                    io_text(&e)
                ));
            }
        }
    };
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("multilog-fsync".into())
            .spawn_scoped(s, || arch.sync_dir())
        {
            Ok(h) => {
                sync_previous();
                // sync_dir retries until it succeeds; the thread cannot fail otherwise.
                let _ = h.join();
            }
            Err(_) => {
                arch.sync_dir();
                sync_previous();
            }
        }
    });
    arch.set_mode("previous", 0o744);
    arch.archive("previous", b's', clock);
    if let Some(done) = done {
        let _ = done.send(());
    }
    arch.cleanup();
}

/// `sync_file_range(f, off, len, SYNC_FILE_RANGE_WRITE)`: start writing those bytes to disk.
/// Best effort; errors are left for the fsync to report.
fn write_back(f: &File, off: u64, len: u64) {
    let (Ok(off), Ok(len)) = (i64::try_from(off), i64::try_from(len)) else {
        return;
    };
    // SAFETY: plain system call on integers; the descriptor is open for the whole call
    // because `f` borrows a `File` that the caller's `Arc` keeps alive.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// How long to wait before retrying a failed step.
pub const PAUSE: Duration = Duration::from_secs(1);

/// Print "multilog: warning: TEXT" and sleep [`PAUSE`].
pub fn pause(text: &str) {
    warn(text);
    std::thread::sleep(PAUSE);
}

/// Print "multilog: warning: TEXT".
pub fn warn(text: &str) {
    let _ = writeln!(io::stderr(), "multilog: warning: {text}");
}

/// What the script says about one directory.
#[derive(Clone, Debug, PartialEq)]
pub struct DirSpec {
    /// The directory as written in the script (used in messages, like daemontools).
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub num: u64,
    /// `S` cap on the total bytes of the archived files; 0 = none.
    pub total: u64,
    pub processor: Option<OsString>,
}

/// A fatal start-up error: message (without the "multilog: fatal: " prefix).
#[derive(Debug)]
pub struct Fatal(pub String);

pub struct Cyclog {
    spec: DirSpec,
    arch: Arc<Archiver>,
    /// Reports when the background thread has finished the last rotation's `previous`
    /// (directories without processor).
    pending: Option<Receiver<()>>,
    _lock: Flock<File>,
    /// `None` only while the start-up clean-up runs. Shared with the worker thread.
    current: Option<Arc<File>>,
    /// Bytes in `current` as daemontools counts them.
    bytes: u64,
    /// Bytes really written to `current` (its length), and how far its writeback has been
    /// started (see [`Cyclog::start_writeback`]).
    written: u64,
    queued: u64,
    worker: Worker,
    /// Output not yet written: `out[phys..lw]` is logically written (daemontools' write
    /// function saw it), `out[lw..pend]` sits in the logical 512-byte buffer.
    out: Vec<u8>,
    phys: usize,
    lw: usize,
    pend: usize,
    /// Whether the line being handled is selected for this directory.
    pub selected: bool,
}

fn name_in(spec: &DirSpec, file: &str) -> String {
    format!("{}/{}", spec.name, file)
}

impl Cyclog {
    /// Open (creating it, mode 700) and lock the directory, then clean up after a crash as
    /// daemontools does. Errors here are fatal, as in daemontools.
    pub fn open(spec: DirSpec, clock: &mut Clock) -> Result<Cyclog, Fatal> {
        let d = &spec.name;
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&spec.path)
            && e.kind() != io::ErrorKind::AlreadyExists
            && !spec.path.is_dir()
        {
            return Err(Fatal(format!(
                "unable to create directory {d}: {}",
                io_text(&e)
            )));
        }
        let dir = File::open(&spec.path)
            .map_err(|e| Fatal(format!("unable to open directory {d}: {}", io_text(&e))))?;
        if !dir.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Fatal(format!(
                "unable to open directory {d}: not a directory"
            )));
        }
        let lockf = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(spec.path.join("lock"))
            .map_err(|e| Fatal(format!("unable to lock directory {d}: {}", io_text(&e))))?;
        let lock = Flock::lock(lockf, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| Fatal(format!("unable to lock directory {d}: {}", nix_text(e))))?;

        let cur = spec.path.join("current");
        match fs::metadata(&cur) {
            Ok(m) if m.mode() & 0o100 != 0 => {
                // Closed cleanly: append to it.
                let f = open_append(&cur).map_err(|e| {
                    Fatal(format!(
                        "unable to append to {}: {}",
                        name_in(&spec, "current"),
                        io_text(&e)
                    ))
                })?;
                f.set_permissions(fs::Permissions::from_mode(0o644))
                    .map_err(|e| {
                        Fatal(format!(
                            "unable to set mode of {}: {}",
                            name_in(&spec, "current"),
                            io_text(&e)
                        ))
                    })?;
                let bytes = m.len();
                let mut c = Cyclog::assemble(spec, dir, lock, Some(Arc::new(f)));
                c.bytes = bytes;
                c.written = bytes;
                c.queued = bytes & !(PAGE - 1);
                return Ok(c);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Fatal(format!(
                    "unable to stat {}: {}",
                    name_in(&spec, "current"),
                    io_text(&e)
                )));
            }
        }

        let _ = fs::remove_file(spec.path.join("state"));
        let _ = fs::remove_file(spec.path.join("newstate"));
        let processed_done = match fs::metadata(spec.path.join("processed")) {
            Ok(m) => m.mode() & 0o100 != 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                return Err(Fatal(format!(
                    "unable to stat {}: {}",
                    name_in(&spec, "processed"),
                    io_text(&e)
                )));
            }
        };
        // The new `current` is opened only after the leftovers are archived.
        let mut c = Cyclog::assemble(spec, dir, lock, None);
        if processed_done {
            let _ = fs::remove_file(c.spec.path.join("previous"));
            c.arch.finish("processed", b's', clock);
        } else {
            let _ = fs::remove_file(c.spec.path.join("processed"));
            c.arch.finish("previous", b'u', clock);
        }
        c.arch.finish("current", b'u', clock);

        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(c.spec.path.join("state"))
            .map_err(|e| {
                Fatal(format!(
                    "unable to write to {}: {}",
                    name_in(&c.spec, "state"),
                    io_text(&e)
                ))
            })?;
        let f = open_append(&cur).map_err(|e| {
            Fatal(format!(
                "unable to write to {}: {}",
                name_in(&c.spec, "current"),
                io_text(&e)
            ))
        })?;
        f.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(|e| {
                Fatal(format!(
                    "unable to set mode of {}: {}",
                    name_in(&c.spec, "current"),
                    io_text(&e)
                ))
            })?;
        c.current = Some(Arc::new(f));
        c.bytes = 0;
        c.arch.sync_dir();
        Ok(c)
    }

    fn assemble(spec: DirSpec, dir: File, lock: Flock<File>, current: Option<Arc<File>>) -> Cyclog {
        Cyclog {
            arch: Arc::new(Archiver {
                spec: spec.clone(),
                dir,
            }),
            pending: None,
            spec,
            _lock: lock,
            current,
            bytes: 0,
            written: 0,
            queued: 0,
            worker: Worker::NotYet,
            out: Vec::with_capacity(1 << 18),
            phys: 0,
            lw: 0,
            pend: 0,
            selected: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Bytes in `current` as daemontools counts them.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn file_name(&self, f: &str) -> String {
        name_in(&self.spec, f)
    }

    // ----- the logical model of daemontools' buffering -----

    /// Append bytes that will be handed to [`Cyclog::put_len`] / [`Cyclog::stream_len`].
    #[inline]
    pub fn append(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
    }

    /// One `put` of the last `len` appended bytes into the 512-byte buffer.
    #[inline]
    pub fn put_len(&mut self, len: usize, clock: &mut Clock) {
        let p = self.pend - self.lw;
        if len > BUF - p {
            self.flush(clock);
            if len > BUF {
                let mut rem = len;
                let chunk = BUF.max(OUTSIZE);
                while rem > BUF {
                    let n = chunk.min(rem);
                    self.allwrite(n, clock);
                    rem -= n;
                }
                self.pend = self.lw + rem;
                return;
            }
        }
        self.pend += len;
    }

    /// `len` appended bytes put one at a time (the tail of a line longer than 1000 bytes).
    pub fn stream_len(&mut self, mut len: usize, clock: &mut Clock) {
        loop {
            let take = len.min(BUF - (self.pend - self.lw));
            self.pend += take;
            len -= take;
            if len == 0 {
                return;
            }
            self.flush(clock);
        }
    }

    /// Flush the logical buffer through the logical write function.
    #[inline]
    pub fn flush(&mut self, clock: &mut Clock) {
        let n = self.pend - self.lw;
        if n > 0 {
            self.allwrite(n, clock);
        }
        self.pend = self.lw;
    }

    fn allwrite(&mut self, mut n: usize, clock: &mut Clock) {
        while n > 0 {
            let w = self.c_write(self.lw, self.lw + n, clock);
            self.lw += w;
            n -= w;
        }
        if self.pend < self.lw {
            self.pend = self.lw;
        }
    }

    /// daemontools' write function on `out[s..e]`: returns how much it took.
    fn c_write(&mut self, s: usize, e: usize, clock: &mut Clock) -> usize {
        let size = self.spec.size;
        if self.bytes >= size {
            self.rotate_at(s, clock);
        }
        let mut len = e - s;
        if self.bytes + len as u64 >= size {
            len = (size - self.bytes) as usize;
        }
        if self.bytes + len as u64 >= size - 2000
            && let Some(i) = memchr::memrchr(b'\n', &self.out[s..s + len])
        {
            len = i + 1;
        }
        self.bytes += len as u64;
        if self.bytes >= size - 2000 && self.out[s + len - 1] == b'\n' {
            self.rotate_at(s + len, clock);
        }
        len
    }

    // ----- real output -----

    /// Make sure `current` is open (it is, except during start-up clean-up).
    fn ensure_current(&mut self) {
        while self.current.is_none() {
            match open_append(&self.spec.path.join("current")) {
                Ok(f) => {
                    self.written = f.metadata().map(|m| m.len()).unwrap_or(0);
                    self.queued = self.written & !(PAGE - 1);
                    self.current = Some(Arc::new(f));
                }
                Err(e) => pause(&format!(
                    "unable to create {}, pausing: {}",
                    self.file_name("current"),
                    io_text(&e)
                )),
            }
        }
    }

    /// The open `current`.
    fn current_file(&mut self) -> &File {
        self.ensure_current();
        match &self.current {
            Some(f) => f,
            None => unreachable!("ensure_current opened it"),
        }
    }

    /// Write `out[phys..upto]` to `current`, pausing and retrying on errors.
    fn write_upto(&mut self, upto: usize) {
        while self.phys < upto {
            self.ensure_current();
            let Some(cur) = &self.current else { continue };
            match (&**cur).write(&self.out[self.phys..upto]) {
                Ok(0) => pause(&format!(
                    "unable to write to {}, pausing: wrote nothing",
                    self.file_name("current")
                )),
                Ok(n) => {
                    self.phys += n;
                    self.written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => pause(&format!(
                    "unable to write to {}, pausing: {}",
                    self.file_name("current"),
                    io_text(&e)
                )),
            }
        }
    }

    /// Flush the logical buffer and write everything out (before blocking on input).
    pub fn flush_out(&mut self, clock: &mut Clock) {
        self.flush(clock);
        let lw = self.lw;
        self.write_upto(lw);
        if self.phys == self.out.len() {
            self.out.clear();
            self.phys = 0;
            self.lw = 0;
            self.pend = 0;
        }
        self.start_writeback();
    }

    /// Once [`WRITEBACK`] more bytes of `current` are written, have the worker thread
    /// start writing them to disk (`sync_file_range(SYNC_FILE_RANGE_WRITE)`: no wait, no
    /// metadata, and no error is consumed, so the fsync at rotation or exit still sees any).
    /// That fsync then finds little left to write, and the disk works while we go on.
    /// Whole pages only: the last, partial page is still being appended to.
    fn start_writeback(&mut self) {
        let end = self.written & !(PAGE - 1);
        if end < self.queued + WRITEBACK {
            return;
        }
        let Some(cur) = &self.current else { return };
        let job = Job::WriteBack(Arc::clone(cur), self.queued, end - self.queued);
        self.queued = end;
        let _ = self.send(job);
    }

    /// Hand `job` to the worker thread (starting it if need be); gives the job back when
    /// there is no worker.
    fn send(&mut self, job: Job) -> Result<(), Job> {
        if let Worker::NotYet = self.worker {
            let (tx, rx) = channel::<Job>();
            let arch = Arc::clone(&self.arch);
            let spawned = std::thread::Builder::new()
                .name("multilog-bg".into())
                .spawn(move || {
                    let mut clock = Clock::new();
                    for job in rx {
                        match job {
                            Job::WriteBack(f, off, len) => write_back(&f, off, len),
                            Job::Rotate(old, done) => {
                                rotate_job(&arch, old, &mut clock, Some(done))
                            }
                            Job::Drain(done) => {
                                let _ = done.send(());
                            }
                        }
                    }
                });
            self.worker = match spawned {
                Ok(_) => Worker::Running(tx),
                Err(_) => Worker::Off,
            };
        }
        match &self.worker {
            Worker::Running(tx) => tx.send(job).map_err(|e| {
                self.worker = Worker::Off;
                e.0
            }),
            _ => Err(job),
        }
    }

    fn rotate_at(&mut self, x: usize, clock: &mut Clock) {
        self.write_upto(x);
        self.full_current(clock);
    }

    /// Rotate now (SIGALRM), when `current` is not empty.
    pub fn force_rotate(&mut self, clock: &mut Clock) {
        self.flush_out(clock);
        if self.bytes > 0 {
            self.full_current(clock);
        }
    }

    /// End of input or SIGTERM: flush, fsync `current`, mark it 744.
    pub fn quit(&mut self, clock: &mut Clock) {
        self.flush_out(clock);
        // fsync `current` while the background thread may still be fsyncing `previous`.
        while let Err(e) = self.current_file().sync_all() {
            pause(&format!(
                "unable to write {} to disk, pausing: {}",
                self.file_name("current"),
                io_text(&e)
            ));
        }
        // `previous` must be archived before `current` is marked clean: a start that finds a
        // 744 `current` does not look for leftovers. The removal of old archives after it
        // is finished too, so the directory is complete when we exit.
        self.join_pending();
        let (tx, rx) = channel();
        if self.send(Job::Drain(tx)).is_ok() {
            let _ = rx.recv();
        }
        while let Err(e) = self
            .current_file()
            .set_permissions(fs::Permissions::from_mode(0o744))
        {
            pause(&format!(
                "unable to set mode of {}, pausing: {}",
                self.file_name("current"),
                io_text(&e)
            ));
        }
    }

    /// Wait until the background thread has archived the previous rotation's `previous`.
    fn join_pending(&mut self) {
        if let Some(rx) = self.pending.take()
            && rx.recv().is_err()
        {
            warn(&format!(
                "archiving previous in {} failed; the next start finishes it",
                self.spec.name
            ));
        }
    }

    fn full_current(&mut self, clock: &mut Clock) {
        self.join_pending();
        let p = self.spec.path.clone();
        // Without a processor, the fsync of the full file, its 744 mode and its archive name
        // are done by a background thread while we go on writing the new `current`; the
        // order on disk stays: fsync, then 744, then `@….s`. A crash before that leaves
        // `previous`, which the next start archives as `.u`.
        let background = self.spec.processor.is_none();
        if !background {
            while let Err(e) = self.current_file().sync_all() {
                pause(&format!(
                    "unable to write {} to disk, pausing: {}",
                    self.file_name("current"),
                    io_text(&e)
                ));
            }
        }
        while let Err(e) = fs::rename(p.join("current"), p.join("previous")) {
            pause(&format!(
                "unable to rename current to previous in directory {}, pausing: {}",
                self.spec.name,
                io_text(&e)
            ));
        }
        let f = loop {
            match open_append(&p.join("current")) {
                Ok(f) => break f,
                Err(e) => pause(&format!(
                    "unable to create {}, pausing: {}",
                    self.file_name("current"),
                    io_text(&e)
                )),
            }
        };
        let old = self.current.replace(Arc::new(f));
        self.bytes = 0;
        self.written = 0;
        self.queued = 0;
        while let Err(e) = self
            .current_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
        {
            pause(&format!(
                "unable to set mode of {}, pausing: {}",
                self.file_name("current"),
                io_text(&e)
            ));
        }
        if background {
            let (tx, rx) = channel();
            match self.send(Job::Rotate(old, tx)) {
                Ok(()) => self.pending = Some(rx),
                Err(Job::Rotate(old, _)) => {
                    // No thread: do it here.
                    let arch = Arc::clone(&self.arch);
                    rotate_job(&arch, old, clock, None);
                }
                Err(_) => {}
            }
            return;
        }
        self.arch.sync_dir();
        drop(old);
        self.arch.set_mode("previous", 0o744);
        self.run_processor();
        let processed = loop {
            match open_append(&p.join("processed")) {
                Ok(f) => break f,
                Err(e) => pause(&format!(
                    "unable to create {}, pausing: {}",
                    self.file_name("processed"),
                    io_text(&e)
                )),
            }
        };
        while let Err(e) = processed.sync_all() {
            pause(&format!(
                "unable to write {} to disk, pausing: {}",
                self.file_name("processed"),
                io_text(&e)
            ));
        }
        while let Err(e) = processed.set_permissions(fs::Permissions::from_mode(0o744)) {
            pause(&format!(
                "unable to set mode of {}, pausing: {}",
                self.file_name("processed"),
                io_text(&e)
            ));
        }
        drop(processed);
        let newstate = loop {
            match open_append(&p.join("newstate")) {
                Ok(f) => break f,
                Err(e) => pause(&format!(
                    "unable to create {}, pausing: {}",
                    self.file_name("newstate"),
                    io_text(&e)
                )),
            }
        };
        while let Err(e) = newstate.sync_all() {
            pause(&format!(
                "unable to write {} to disk, pausing: {}",
                self.file_name("newstate"),
                io_text(&e)
            ));
        }
        drop(newstate);
        loop {
            match fs::remove_file(p.join("previous")) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => pause(&format!(
                    "unable to remove {}, pausing: {}",
                    self.file_name("previous"),
                    io_text(&e)
                )),
            }
        }
        while let Err(e) = fs::rename(p.join("newstate"), p.join("state")) {
            pause(&format!(
                "unable to rename newstate to state in directory {}, pausing: {}",
                self.spec.name,
                io_text(&e)
            ));
        }
        self.arch.sync_dir();
        self.arch.finish("processed", b's', clock);
    }

    /// Run the processor until it succeeds, as daemontools does (it waits for it, however
    /// long it takes; input waits in the pipe meanwhile). We warn when it runs long.
    fn run_processor(&mut self) {
        let Some(prog) = self.spec.processor.clone() else {
            return;
        };
        let shown = prog.to_string_lossy().into_owned();
        let p = self.spec.path.clone();
        loop {
            let opened = (|| -> Result<_, String> {
                let stdin = File::open(p.join("previous")).map_err(|e| {
                    format!(
                        "unable to read {}: {}",
                        self.file_name("previous"),
                        io_text(&e)
                    )
                })?;
                let stdout = trunc(&p.join("processed")).map_err(|e| {
                    format!(
                        "unable to create {}: {}",
                        self.file_name("processed"),
                        io_text(&e)
                    )
                })?;
                let state = File::open(p.join("state")).map_err(|e| {
                    format!(
                        "unable to read {}: {}",
                        self.file_name("state"),
                        io_text(&e)
                    )
                })?;
                let newstate = trunc(&p.join("newstate")).map_err(|e| {
                    format!(
                        "unable to create {}: {}",
                        self.file_name("newstate"),
                        io_text(&e)
                    )
                })?;
                Ok((stdin, stdout, state, newstate))
            })();
            let (stdin, stdout, state, newstate) = match opened {
                Ok(x) => x,
                Err(m) => {
                    pause(&format!("{m}, pausing"));
                    continue;
                }
            };
            let sfd = state.as_raw_fd();
            let nfd = newstate.as_raw_fd();
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(&prog)
                .current_dir(&p)
                .stdin(Stdio::from(stdin))
                .stdout(Stdio::from(stdout));
            // SAFETY: the closure runs in the forked child before exec and only calls
            // fcntl(F_DUPFD) and dup2, which are async-signal-safe; it touches no memory
            // besides two copied integers. `sfd` and `nfd` stay open in the parent (the
            // `state`/`newstate` Files live until after spawn) so they are valid in the child.
            // Both are first moved above fd 9 so neither dup2 can clobber the other.
            unsafe {
                cmd.pre_exec(move || {
                    let a = libc::fcntl(sfd, libc::F_DUPFD_CLOEXEC, 10);
                    let b = libc::fcntl(nfd, libc::F_DUPFD_CLOEXEC, 10);
                    if a < 0 || b < 0 || libc::dup2(a, 4) < 0 || libc::dup2(b, 5) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    pause(&format!(
                        "unable to run processor {shown} in {}, pausing: {}",
                        self.spec.name,
                        io_text(&e)
                    ));
                    continue;
                }
            };
            drop(state);
            drop(newstate);
            let start = Instant::now();
            let mut next_warn = Duration::from_secs(5);
            let mut nap = Duration::from_millis(1);
            let status = loop {
                match child.try_wait() {
                    Ok(Some(s)) => break Some(s),
                    Ok(None) => {}
                    Err(e) => {
                        pause(&format!(
                            "wait failed for processor in {}, pausing: {}",
                            self.spec.name,
                            io_text(&e)
                        ));
                        break None;
                    }
                }
                let el = start.elapsed();
                if el >= next_warn {
                    warn(&format!(
                        "processor {shown} in {} still running after {} seconds; waiting for it (input waits meanwhile)",
                        self.spec.name,
                        el.as_secs()
                    ));
                    next_warn = (next_warn * 4).min(next_warn + Duration::from_secs(600));
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(50));
            };
            let Some(status) = status else {
                continue;
            };
            if status.success() {
                return;
            }
            if let Some(sig) = status.signal() {
                pause(&format!(
                    "processor crashed in {} (signal {sig}), pausing",
                    self.spec.name
                ));
            } else {
                pause(&format!(
                    "processor failed in {} (exit status {}), pausing",
                    self.spec.name,
                    status.code().unwrap_or(-1)
                ));
            }
        }
    }
}

/// The directory-level steps (archive naming, clean-up, directory fsync), shared with the
/// background thread that finishes a rotation.
pub struct Archiver {
    spec: DirSpec,
    dir: File,
}

impl Archiver {
    fn file_name(&self, f: &str) -> String {
        name_in(&self.spec, f)
    }

    fn set_mode(&self, f: &str, mode: u32) {
        while let Err(e) =
            fs::set_permissions(self.spec.path.join(f), fs::Permissions::from_mode(mode))
        {
            pause(&format!(
                "unable to set mode of {}, pausing: {}",
                self.file_name(f),
                io_text(&e)
            ));
        }
    }

    pub fn sync_dir(&self) {
        while let Err(e) = self.dir.sync_all() {
            pause(&format!(
                "unable to write directory {} to disk, pausing: {}",
                self.spec.name,
                io_text(&e)
            ));
        }
    }

    /// Archive `file` as `@<now>.<code>` (unless it is already linked there), remove it, and
    /// drop the oldest archives beyond `n` and `S`.
    pub fn finish(&self, file: &str, code: u8, clock: &mut Clock) {
        self.archive(file, code, clock);
        self.cleanup();
    }

    /// Archive `file` as `@<now>.<code>` (unless it is already linked there), remove it and
    /// fsync the directory.
    fn archive(&self, file: &str, code: u8, clock: &mut Clock) {
        let p = self.spec.path.clone();
        let src = p.join(file);
        let meta = loop {
            match fs::symlink_metadata(&src) {
                Ok(m) => break m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => pause(&format!(
                    "unable to stat {}, pausing: {}",
                    self.file_name(file),
                    io_text(&e)
                )),
            }
        };
        if meta.nlink() == 1 {
            loop {
                let (s, n) = clock.now_strict();
                let mut name = tai64n_label(s, n).to_vec();
                name.push(b'.');
                name.push(code);
                let name = String::from_utf8_lossy(&name).into_owned();
                match fs::hard_link(&src, p.join(&name)) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => pause(&format!(
                        "unable to link to {}, pausing: {}",
                        self.file_name(&name),
                        io_text(&e)
                    )),
                }
            }
        }
        loop {
            match fs::remove_file(&src) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => pause(&format!(
                    "unable to remove {}, pausing: {}",
                    self.file_name(file),
                    io_text(&e)
                )),
            }
        }
        self.sync_dir();
    }

    /// Remove the oldest `@…` files while `n` or more remain, then while their total size
    /// exceeds `S`.
    fn cleanup(&self) {
        let p = self.spec.path.clone();
        loop {
            let rd = match fs::read_dir(&p) {
                Ok(rd) => rd,
                Err(e) => {
                    pause(&format!(
                        "unable to read {}, pausing: {}",
                        self.spec.name,
                        io_text(&e)
                    ));
                    continue;
                }
            };
            let mut arch: Vec<(Vec<u8>, u64)> = Vec::new();
            let mut failed = None;
            for ent in rd {
                match ent {
                    Ok(ent) => {
                        use std::os::unix::ffi::OsStrExt;
                        let n = ent.file_name();
                        let b = n.as_bytes();
                        if b.first() == Some(&b'@') && b.len() >= 25 {
                            let size = if self.spec.total > 0 {
                                ent.metadata().map(|m| m.len()).unwrap_or(0)
                            } else {
                                0
                            };
                            arch.push((b.to_vec(), size));
                        }
                    }
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                pause(&format!(
                    "unable to read {}, pausing: {}",
                    self.spec.name,
                    io_text(&e)
                ));
                continue;
            }
            arch.sort_by(|a, b| a.0[..25].cmp(&b.0[..25]).then(a.0.cmp(&b.0)));
            let mut total: u64 = arch.iter().map(|a| a.1).sum();
            let mut count = arch.len() as u64;
            let mut removed = false;
            let mut retry = false;
            for (name, size) in &arch {
                let over_n = count >= self.spec.num;
                let over_s = self.spec.total > 0 && total > self.spec.total;
                if !over_n && !over_s {
                    break;
                }
                use std::os::unix::ffi::OsStrExt;
                let path = p.join(std::ffi::OsStr::from_bytes(name));
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        pause(&format!(
                            "unable to remove {}/{}, pausing: {}",
                            self.spec.name,
                            String::from_utf8_lossy(name),
                            io_text(&e)
                        ));
                        retry = true;
                        break;
                    }
                }
                removed = true;
                count -= 1;
                total -= size;
            }
            if removed {
                self.sync_dir();
            }
            if !retry {
                return;
            }
        }
    }
}

fn open_append(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(p)
}

fn trunc(p: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(p)
}
