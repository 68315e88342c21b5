//! qmail-send: the queue manager.
//!
//! Started by qmail-start with fd 0 = the activity log, fds 1/2 = qmail-lspawn (commands,
//! results), 3/4 = qmail-rspawn, 5/6 = qmail-clean, cwd anywhere. It preprocesses `todo/`
//! into `info/`, `local/` and `remote/` (rewriting addresses: envnoathost, percenthack, locals,
//! virtualdomains), hands one recipient per delivery to qmail-lspawn and batches of
//! recipients to qmail-rspawn (below) within concurrencylocal / concurrencyremote, marks
//! finished recipients, retries deferrals on qmail's schedule
//! (`birth + (isqrt(age) + 10 or 20)^2`), gives up after queuelifetime, sends bounces and double
//! bounces, and writes qmail's log lines (qmail-log(5)) to fd 0.
//!
//! Signals: TERM finishes running deliveries then exits ("status: exiting"); ALRM retries every
//! deferred message now; HUP rereads locals and virtualdomains. `lock/trigger` (a fifo pulled by
//! qmail-queue) makes it scan todo/ at once; it scans at least every 1500 s anyway.
//!
//! Differences from qmail on purpose: the trigger fifo is opened read-write so it never reports
//! end of file; after creating info/local/remote files their directories are fsynced before
//! todo/N is removed (the guarantee depends on those entries); a bounce is sent as soon as a
//! channel has finished a delivery pass with failures, not only when the whole message is done;
//! bounces are queued with `DATABYTES=0` so that the size limit never refuses them.
//!
//! Remote batches (ours; qmail sends one recipient per delivery): the pending remote recipients
//! of a message are ordered by domain (case-insensitively, stable) when its job opens, and up
//! to `control/batchremote` (default 100, at most [`crate::spawn::BATCH_MAX`]; 1 = qmail's
//! behaviour) consecutive recipients of one domain go to qmail-rspawn in ONE batch command
//! (protocol: [`crate::spawn`]), which qmail-rspawn hands to one qmail-remote run, i.e. one SMTP
//! transaction. A VERP sender (`…-@[]`) differs per recipient, so such messages are never
//! batched. A batch takes one concurrency slot until its last report is in, but every
//! recipient keeps its own delivery number: one "starting delivery N: msg M to remote R" line
//! (and status line) per recipient when the batch starts and one "delivery N:
//! success|failure|deferral: …" per recipient as its report arrives, so qmail-log(5) readers
//! and matchup see ordinary deliveries. Each recipient is marked done, bounced or deferred on
//! its own; a retry only tries the recipients not yet marked done. For queue administration a
//! batch counts as a running delivery of each of its recipients.
//!
//! The main loop is [`Send::run`]: one `poll` over the spawner, trigger, qmail-clean, signal and
//! syncer descriptors, then at most one batch of todo entries, then new deliveries. A batch is
//! preprocessed in the main loop (info/local/remote written) and fsynced by a background thread
//! ([`Syncer`]), so deliveries keep starting and reports keep being read while the disk works;
//! todo/N is removed only after the batch has come back from the syncer. Queue administration
//! ("hold", metrics) hooks into [`Send::fill`] (which decides what to start) and
//! [`Send::status`] (called after every change of the counts).

// Channels are numbered 0 (local) and 1 (remote) and index several parallel arrays.
#![allow(clippy::needless_range_loop)]

mod rewrite;

pub use rewrite::{Route, Routes};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bounce::{BounceConfig, Outcome};
use crate::control::Control;

/// Split subdirectories.
const SPLIT: u64 = crate::install::SPLIT;
/// Rescan todo/ at least this often even without a trigger.
const SLEEP_TODO: u64 = 1500;
/// Retry a failed bounce injection or other system failure after this long.
const SLEEP_SYSFAIL: u64 = 123;
/// Leftovers (mess/ without todo/info) older than this are removed.
const OSSIFIED: u64 = 129_600;
/// Scan mess/ for leftovers this often.
const SLEEP_CLEANUP: u64 = 76_431;
/// At most this many todo entries are preprocessed together.
const TODO_BATCH: usize = 64;
/// Longest report accepted from a spawner.
const REPORT_MAX: usize = 10_000;

const CHANNELS: [&str; 2] = ["local", "remote"];
const CHANSKIP: [u64; 2] = [10, 20];

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn isqrt(x: u64) -> u64 {
    let mut r = (x as f64).sqrt() as u64;
    while r * r > x {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= x {
        r += 1;
    }
    r
}

/// qmail's next retry time.
pub fn next_retry(birth: u64, now: u64, chanskip: u64) -> u64 {
    let n = isqrt(now.saturating_sub(birth)) + chanskip;
    birth + n * n
}

/// qmail's logsafe: "\n" → "/", bytes below 33, above 126 and '%' → "_".
pub fn logsafe(b: &[u8]) -> String {
    b.iter()
        .map(|&c| match c {
            b'\n' => '/',
            b'%' => '_',
            c if !(33..=126).contains(&c) => '_',
            c => c as char,
        })
        .collect()
}

/// The domain of an address, lower-cased: recipients with equal keys may share a batch.
fn domain_key(addr: &[u8]) -> Vec<u8> {
    let at = addr
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(addr.len(), |a| a + 1);
    addr[at..].to_ascii_lowercase()
}

fn path_split(dir: &str, id: u64) -> PathBuf {
    PathBuf::from(format!("{dir}/{}/{id}", id % SPLIT))
}

/// Everything read from control/ at start.
#[derive(Debug, Clone)]
pub struct Config {
    pub routes: Routes,
    pub bounce: BounceConfig,
    pub concurrency: [usize; 2],
    pub lifetime: u64,
    pub me: Option<String>,
    /// The most remote recipients of one message in one delivery (`control/batchremote`).
    pub batch: usize,
}

impl Config {
    pub fn load(c: &Control) -> Result<Config, crate::control::ControlError> {
        let me = c.me()?;
        let mdef = me.clone().unwrap_or_default();
        let bouncehost = c.line_or(
            "bouncehost",
            if mdef.is_empty() { "bouncehost" } else { &mdef },
        )?;
        let dbhost = c.line_or(
            "doublebouncehost",
            if mdef.is_empty() {
                "doublebouncehost"
            } else {
                &mdef
            },
        )?;
        Ok(Config {
            routes: Routes::load(c)?,
            bounce: BounceConfig {
                bouncefrom: c.line_or("bouncefrom", "MAILER-DAEMON")?,
                bouncehost,
                doublebounceto: c.line_or("doublebounceto", "postmaster")?,
                doublebouncehost: dbhost,
            },
            concurrency: [
                c.int_or("concurrencylocal", 10)? as usize,
                c.int_or("concurrencyremote", 20)? as usize,
            ],
            lifetime: c.int_or("queuelifetime", 604_800)?,
            me,
            batch: (c.int_or("batchremote", 100)? as usize).clamp(1, crate::spawn::BATCH_MAX),
        })
    }
}

/// A todo entry written out but not yet synced.
struct Prepared {
    id: u64,
    files: Vec<(PathBuf, File)>,
    chans: [bool; 2],
}

impl Prepared {
    fn remove(&self) {
        for (p, _) in &self.files {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What the syncer found for one batch of prepared todo entries.
struct Synced {
    /// Entries whose files and directories are all on disk.
    ok: Vec<Prepared>,
    /// Entries one of whose files could not be fsynced.
    bad_files: Vec<Prepared>,
    /// A directory that could not be fsynced (then nothing in the batch is `ok`).
    bad_dir: Option<PathBuf>,
}

/// A thread that fsyncs preprocessed todo entries (their new files, then the directories that
/// got the new entries) while the main loop goes on starting deliveries and reading reports.
/// One batch is in flight at a time; entries that arrive meanwhile make the next batch bigger,
/// so that one round of fsyncs covers more messages as the load grows. todo/N stays until the
/// main loop gets the batch back, so the order "new files durable, then todo/N removed" holds.
struct Syncer {
    tx: std::sync::mpsc::Sender<Vec<Prepared>>,
    rx: std::sync::mpsc::Receiver<Synced>,
    /// Readable when a batch is back.
    wake: std::os::unix::net::UnixStream,
    /// The ids of the batch in flight.
    busy: HashSet<u64>,
    in_flight: bool,
}

impl Syncer {
    fn start() -> io::Result<Syncer> {
        let (tx, jobs) = std::sync::mpsc::channel::<Vec<Prepared>>();
        let (done, rx) = std::sync::mpsc::channel::<Synced>();
        let (wake, mut wake_w) = std::os::unix::net::UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        std::thread::Builder::new()
            .name("todo-sync".into())
            .spawn(move || {
                while let Ok(batch) = jobs.recv() {
                    if done.send(sync_batch(batch)).is_err() {
                        return;
                    }
                    let _ = wake_w.write_all(b"+");
                }
            })?;
        Ok(Syncer {
            tx,
            rx,
            wake,
            busy: HashSet::new(),
            in_flight: false,
        })
    }
}

/// fsync every new file of the batch, then every directory that got a new entry — each step
/// in parallel, so that the file system can commit them together.
fn sync_batch(preps: Vec<Prepared>) -> Synced {
    let failed: Vec<bool> = parallel(&preps, |p| {
        p.files.iter().any(|(_, f)| f.sync_all().is_err())
    });
    let mut ok = Vec::with_capacity(preps.len());
    let mut bad_files = Vec::new();
    for (p, bad) in preps.into_iter().zip(failed) {
        if bad {
            bad_files.push(p);
        } else {
            ok.push(p);
        }
    }
    let mut dirs: Vec<PathBuf> = ok
        .iter()
        .flat_map(|p| {
            p.files
                .iter()
                .filter_map(|(f, _)| f.parent().map(Path::to_path_buf))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    let bad_dirs: Vec<bool> = parallel(&dirs, |d| crate::util::fsync_dir(d).is_err());
    let bad_dir = dirs
        .iter()
        .zip(&bad_dirs)
        .find(|(_, b)| **b)
        .map(|(d, _)| d.clone());
    if bad_dir.is_some() {
        bad_files.append(&mut ok);
    }
    Synced {
        ok,
        bad_files,
        bad_dir,
    }
}

/// Run `f` over `items` on a few threads; results in order.
fn parallel<T: Sync, R: std::marker::Send + Default + Clone>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    const THREADS: usize = 8;
    let n = items.len();
    if n <= 1 {
        return items.iter().map(&f).collect();
    }
    let per = n.div_ceil(THREADS);
    let out = std::sync::Mutex::new(vec![R::default(); n]);
    let run_chunk = |k: usize| {
        for i in k * per..((k + 1) * per).min(n) {
            let r = f(&items[i]);
            if let Ok(mut o) = out.lock() {
                o[i] = r;
            }
        }
    };
    std::thread::scope(|s| {
        for k in 0..n.div_ceil(per) {
            let rc = &run_chunk;
            if std::thread::Builder::new()
                .spawn_scoped(s, move || rc(k))
                .is_err()
            {
                // No thread to be had: do the work here.
                run_chunk(k);
            }
        }
    });
    out.into_inner().unwrap_or_default()
}

/// One recipient of a running delivery.
struct Rcpt {
    off: u64,
    addr: Vec<u8>,
    num: u64,
}

/// The recipient a report is about.
struct Delivery1 {
    id: u64,
    off: u64,
    addr: Vec<u8>,
    num: u64,
}

/// One running delivery (a slot): one recipient, or a remote batch whose reports come in
/// recipient order.
struct Delivery {
    id: u64,
    rcpts: std::collections::VecDeque<Rcpt>,
}

/// A message being worked on by one channel.
struct Job {
    retry: u64,
    dying: bool,
    sender: Vec<u8>,
    file: File,
    /// Offsets and addresses of the records still to do.
    recs: Vec<(u64, Vec<u8>)>,
    next: usize,
    running: usize,
    deferred: bool,
}

struct Chan {
    idx: usize,
    cmd: File,
    res: File,
    outbuf: Vec<u8>,
    inbuf: Vec<u8>,
    max: usize,
    slots: Vec<Option<Delivery>>,
    used: usize,
    prioq: BinaryHeap<Reverse<(u64, u64)>>,
    pass: Option<u64>,
    jobs: HashMap<u64, Job>,
}

/// The queue manager's state.
pub struct Send {
    cfg: Config,
    control: Control,
    log: File,
    chans: [Chan; 2],
    clean_cmd: File,
    clean_res: File,
    trigger: File,
    sigpipe: std::os::unix::net::UnixStream,
    term: Arc<AtomicBool>,
    alrm: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    exitasap: bool,
    delnum: u64,
    todo: std::collections::VecDeque<u64>,
    todo_known: HashSet<u64>,
    /// todo/N removals asked of qmail-clean and not yet answered (not to be preprocessed again).
    todo_cleaning: HashSet<u64>,
    /// Requests sent to qmail-clean, oldest first.
    clean_pending: std::collections::VecDeque<String>,
    /// fsyncs preprocessed todo entries in the background.
    syncer: Syncer,
    next_todo_scan: u64,
    next_cleanup: u64,
    /// Messages to look at again later (bounce injection failed, …): (time, id).
    retry_done: Vec<(u64, u64)>,
    /// Queue administration (hold, delete, retry requests) and metrics: crate::qadmin.
    qa: crate::qadmin::agent::Agent,
}

/// Alerts that stop qmail-send before it starts.
fn die_start(log: &mut File, why: &str) -> i32 {
    let _ = log.write_all(format!("alert: cannot start: {why}\n").as_bytes());
    111
}

fn set_nonblock(f: &File) {
    if let Ok(fl) = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL) {
        let fl = nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK;
        let _ = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(fl));
    }
}

fn open_trigger() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("lock/trigger")
}

impl Send {
    fn log(&mut self, line: &str) {
        let mut l = String::with_capacity(line.len() + 1);
        l.push_str(line);
        l.push('\n');
        let _ = self.log.write_all(l.as_bytes());
    }

    /// The status line, logged after every change of the counts.
    fn status(&mut self) {
        let l = format!(
            "status: local {}/{} remote {}/{}{}",
            self.chans[0].used,
            self.chans[0].max,
            self.chans[1].used,
            self.chans[1].max,
            if self.exitasap { " exitasap" } else { "" }
        );
        self.log(&l);
        self.qa.changed([self.chans[0].used, self.chans[1].used]);
    }

    /// Ask qmail-clean to remove something; its answer is read in the main loop.
    fn clean(&mut self, req: &str) {
        // Never let the answers pile up to where both pipes are full.
        while self.clean_pending.len() >= 4096 {
            let mut fds = [nix::poll::PollFd::new(
                self.clean_res.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16));
            self.read_clean();
        }
        let mut r = req.as_bytes().to_vec();
        r.push(0);
        if self.clean_cmd.write_all(&r).is_err() {
            self.lost_clean();
        }
        if let Some(id) = req
            .strip_prefix("todo/")
            .and_then(|n| n.parse::<u64>().ok())
        {
            self.todo_cleaning.insert(id);
        }
        self.clean_pending.push_back(req.to_string());
    }

    /// Read qmail-clean's answers (one byte per request, in order).
    fn read_clean(&mut self) {
        let mut buf = [0u8; 512];
        loop {
            let n = match nix::unistd::read(self.clean_res.as_raw_fd(), &mut buf) {
                Ok(0) => self.lost_clean(),
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => self.lost_clean(),
            };
            for &b in &buf[..n] {
                let Some(req) = self.clean_pending.pop_front() else {
                    continue;
                };
                if let Some(id) = req
                    .strip_prefix("todo/")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    self.todo_cleaning.remove(&id);
                }
                if b != b'+' {
                    self.log(&format!("warning: qmail-clean unable to clean up {req}"));
                }
            }
        }
    }

    fn lost_clean(&mut self) -> ! {
        self.log("alert: oh no! lost qmail-clean connection! dying...");
        std::process::exit(111);
    }

    fn lost_spawn(&mut self) -> ! {
        self.log("alert: oh no! lost spawn connection! dying...");
        std::process::exit(111);
    }

    fn scan_todo(&mut self) {
        self.next_todo_scan = now() + SLEEP_TODO;
        let rd = match std::fs::read_dir("todo") {
            Ok(r) => r,
            Err(_) => {
                self.log("alert: unable to opendir todo, sleeping...");
                self.next_todo_scan = now() + 10;
                return;
            }
        };
        let mut found: Vec<u64> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()))
            .filter(|id| {
                !self.todo_known.contains(id)
                    && !self.todo_cleaning.contains(id)
                    && !self.syncer.busy.contains(id)
            })
            .collect();
        found.sort_unstable();
        for id in found {
            self.todo_known.insert(id);
            self.todo.push_back(id);
        }
    }

    /// Preprocess todo/N: read it, rewrite the recipients and write info/local/remote without
    /// syncing them yet (the batch does that).
    fn prepare_todo(&mut self, id: u64) -> Option<Prepared> {
        self.todo_known.remove(&id);
        if self.qa.deleted(id) {
            return None; // deleted by qmail-qadmin; qmail-clean is removing todo/N
        }
        let todofn = format!("todo/{id}");
        let data = match std::fs::read(&todofn) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(_) => {
                self.log(&format!(
                    "warning: unable to open {todofn}; will try again later"
                ));
                return None;
            }
        };
        self.log(&format!("new msg {id}"));
        let messfn = path_split("mess", id);
        let bytes = match std::fs::metadata(&messfn) {
            Ok(m) => m.len(),
            Err(_) => {
                self.log(&format!("warning: unable to stat {}", messfn.display()));
                return None;
            }
        };
        let infofn = path_split("info", id);
        let chanfn = [path_split("local", id), path_split("remote", id)];
        for p in [&infofn, &chanfn[0], &chanfn[1]] {
            if let Err(e) = std::fs::remove_file(p)
                && e.kind() != io::ErrorKind::NotFound
            {
                self.log(&format!(
                    "warning: unable to unlink {}; will try again later",
                    p.display()
                ));
                return None;
            }
        }
        let mut uid = String::new();
        let mut qp = String::new();
        let mut sender: Option<Vec<u8>> = None;
        let mut out: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let data = data.strip_suffix(b"\0").unwrap_or(&data);
        for rec in data.split(|&b| b == 0) {
            let Some((&t, v)) = rec.split_first() else {
                continue;
            };
            match t {
                b'u' => uid = String::from_utf8_lossy(v).into_owned(),
                b'p' => qp = String::from_utf8_lossy(v).into_owned(),
                b'F' => sender = Some(v.to_vec()),
                b'T' => {
                    let (c, a) = match self.cfg.routes.rewrite(v) {
                        Route::Local(a) => (0, a),
                        Route::Remote(a) => (1, a),
                    };
                    out[c].push(b'T');
                    out[c].extend_from_slice(&a);
                    out[c].push(0);
                }
                _ => {
                    self.log(&format!("warning: unknown record type in {todofn}!"));
                }
            }
        }
        let sender = sender.unwrap_or_default();
        let mut info = Vec::with_capacity(sender.len() + 2);
        info.push(b'F');
        info.extend_from_slice(&sender);
        info.push(0);
        let write = |p: &Path, data: &[u8]| -> io::Result<File> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)?;
            f.write_all(data)?;
            Ok(f)
        };
        let mut prep = Prepared {
            id,
            files: Vec::with_capacity(3),
            chans: [!out[0].is_empty(), !out[1].is_empty()],
        };
        match write(&infofn, &info) {
            Ok(f) => prep.files.push((infofn.clone(), f)),
            Err(e) => {
                self.log(&format!(
                    "warning: trouble writing to {}: {e}; will try again later",
                    infofn.display()
                ));
                let _ = std::fs::remove_file(&infofn);
                return None;
            }
        }
        self.log(&format!(
            "info msg {id}: bytes {bytes} from <{}> qp {qp} uid {uid}",
            logsafe(&sender)
        ));
        for c in 0..2 {
            if out[c].is_empty() {
                continue;
            }
            match write(&chanfn[c], &out[c]) {
                Ok(f) => prep.files.push((chanfn[c].clone(), f)),
                Err(e) => {
                    self.log(&format!(
                        "warning: trouble writing to {}: {e}; will try again later",
                        chanfn[c].display()
                    ));
                    prep.remove();
                    return None;
                }
            }
        }
        Some(prep)
    }

    /// Preprocess a batch of todo entries and hand them to the syncer; [`Send::synced`] takes
    /// them back once their files and directories are on disk.
    fn do_todo_batch(&mut self, ids: Vec<u64>) {
        let preps: Vec<Prepared> = ids
            .into_iter()
            .filter_map(|id| self.prepare_todo(id))
            .collect();
        if preps.is_empty() {
            return;
        }
        let busy: HashSet<u64> = preps.iter().map(|p| p.id).collect();
        if let Err(e) = self.syncer.tx.send(preps) {
            // The thread is gone (it cannot be, short of a bug): do the work here.
            let r = sync_batch(e.0);
            self.synced(r);
            return;
        }
        self.syncer.busy = busy;
        self.syncer.in_flight = true;
    }

    /// A batch is back from the syncer: todo/N may go for every entry that is on disk.
    fn synced(&mut self, r: Synced) {
        self.syncer.busy.clear();
        self.syncer.in_flight = false;
        if let Some(d) = &r.bad_dir {
            self.log(&format!(
                "warning: trouble fsyncing {}; will try again later",
                d.display()
            ));
        } else {
            for p in &r.bad_files {
                self.log(&format!(
                    "warning: trouble fsyncing {}; will try again later",
                    p.files
                        .first()
                        .map(|f| f.0.display().to_string())
                        .unwrap_or_default()
                ));
            }
        }
        if !r.bad_files.is_empty() {
            for p in &r.bad_files {
                p.remove();
            }
            self.retry_todo();
        }
        let t = now();
        for p in r.ok {
            self.clean(&format!("todo/{}", p.id));
            let mut any = false;
            for c in 0..2 {
                if p.chans[c] {
                    self.chans[c].prioq.push(Reverse((t, p.id)));
                    any = true;
                }
            }
            if !any {
                self.mess_done(p.id);
            }
        }
    }

    /// Take back what the syncer has finished.
    fn read_synced(&mut self) {
        let mut b = [0u8; 64];
        while matches!((&self.syncer.wake).read(&mut b), Ok(n) if n > 0) {}
        while let Ok(r) = self.syncer.rx.try_recv() {
            self.synced(r);
        }
    }

    /// A todo entry could not be finished: look at todo/ again soon.
    fn retry_todo(&mut self) {
        self.next_todo_scan = self.next_todo_scan.min(now() + 10);
    }

    /// Open a job for message `id` on channel `c`.
    fn open_job(&mut self, c: usize, id: u64) -> bool {
        let infofn = path_split("info", id);
        let (birth, sender) = match (std::fs::metadata(&infofn), std::fs::read(&infofn)) {
            (Ok(m), Ok(d)) => {
                let birth = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let s = d.strip_prefix(b"F").unwrap_or(&d);
                let s = s.split(|&b| b == 0).next().unwrap_or(&[]).to_vec();
                (birth, s)
            }
            _ => {
                self.log(&format!("warning: unable to open {}", infofn.display()));
                return false;
            }
        };
        let chanfn = path_split(CHANNELS[c], id);
        let mut file = match OpenOptions::new().read(true).write(true).open(&chanfn) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Nothing left on this channel; maybe the message is finished.
                self.mess_done(id);
                return false;
            }
            Err(_) => {
                self.log(&format!(
                    "warning: unable to open {}; will try again later",
                    chanfn.display()
                ));
                self.chans[c]
                    .prioq
                    .push(Reverse((now() + SLEEP_SYSFAIL, id)));
                return false;
            }
        };
        let mut data = Vec::new();
        if file.read_to_end(&mut data).is_err() {
            self.log(&format!(
                "warning: trouble reading {}; will try again later",
                chanfn.display()
            ));
            self.chans[c]
                .prioq
                .push(Reverse((now() + SLEEP_SYSFAIL, id)));
            return false;
        }
        let mut recs = Vec::new();
        let mut off = 0usize;
        while off < data.len() {
            let end = memchr::memchr(0, &data[off..])
                .map(|e| off + e)
                .unwrap_or(data.len());
            if data[off] == b'T' {
                recs.push((off as u64, data[off + 1..end].to_vec()));
            } else if data[off] != b'D' {
                self.log(&format!(
                    "warning: unknown record type in {}",
                    chanfn.display()
                ));
            }
            off = end + 1;
        }
        if c == 1 && self.cfg.batch > 1 && !sender.ends_with(b"-@[]") {
            // Recipients of one domain next to each other, so that they can share a batch.
            recs.sort_by_cached_key(|(_, a)| domain_key(a));
        }
        let t = now();
        let job = Job {
            retry: next_retry(birth, t, CHANSKIP[c]),
            dying: t >= birth.saturating_add(self.cfg.lifetime),
            sender,
            file,
            recs,
            next: 0,
            running: 0,
            deferred: false,
        };
        self.chans[c].jobs.insert(id, job);
        true
    }

    /// A job has no more deliveries to start or wait for.
    fn close_job(&mut self, c: usize, id: u64) {
        let Some(job) = self.chans[c].jobs.remove(&id) else {
            return;
        };
        let chanfn = path_split(CHANNELS[c], id);
        if job.deferred {
            let tv = nix::sys::time::TimeVal::new(job.retry as i64, 0);
            if nix::sys::stat::utimes(&chanfn, &tv, &tv).is_err() {
                self.log(&format!(
                    "warning: unable to utime {}; message will be retried too soon",
                    chanfn.display()
                ));
            }
            self.chans[c].prioq.push(Reverse((job.retry, id)));
            self.send_bounce(id);
            return;
        }
        drop(job);
        if let Err(e) = std::fs::remove_file(&chanfn)
            && e.kind() != io::ErrorKind::NotFound
        {
            self.log(&format!(
                "warning: unable to unlink {}; will try again later",
                chanfn.display()
            ));
            self.chans[c]
                .prioq
                .push(Reverse((now() + SLEEP_SYSFAIL, id)));
            return;
        }
        if self.send_bounce(id) {
            self.mess_done(id);
        }
    }

    /// Send the bounce for `id` if there is bounce text; false when it must be retried.
    fn send_bounce(&mut self, id: u64) -> bool {
        let bfn = PathBuf::from(format!("bounce/{id}"));
        if self.qa.doomed(id) {
            let _ = std::fs::remove_file(&bfn); // deleted by qmail-qadmin: no bounce
            return true;
        }
        let blocks = match std::fs::read(&bfn) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
            Err(_) => {
                self.log(&format!(
                    "warning: unable to open {}; will try again later",
                    bfn.display()
                ));
                self.retry_done.push((now() + SLEEP_SYSFAIL, id));
                return false;
            }
        };
        let infofn = path_split("info", id);
        let sender = match std::fs::read(&infofn) {
            Ok(d) => {
                let s = d.strip_prefix(b"F").unwrap_or(&d);
                s.split(|&b| b == 0).next().unwrap_or(&[]).to_vec()
            }
            Err(_) => {
                self.log(&format!(
                    "warning: unable to open {}; will try again later",
                    infofn.display()
                ));
                self.retry_done.push((now() + SLEEP_SYSFAIL, id));
                return false;
            }
        };
        match crate::bounce::inject(&sender, &blocks, &path_split("mess", id), &self.cfg.bounce) {
            Outcome::Injected(qp) => {
                self.log(&format!("bounce msg {id} qp {qp}"));
                self.qa.bounced();
            }
            Outcome::Triple => self.log(&format!("triple bounce: discarding bounce/{id}")),
            Outcome::Failed(_) => {
                self.log("warning: trouble injecting bounce message, will try later");
                self.retry_done.push((now() + SLEEP_SYSFAIL, id));
                return false;
            }
        }
        if let Err(e) = std::fs::remove_file(&bfn)
            && e.kind() != io::ErrorKind::NotFound
        {
            self.log(&format!(
                "warning: unable to unlink {}; will try again later",
                bfn.display()
            ));
        }
        true
    }

    /// If no channel has work left for `id`: bounce, "end msg", remove it.
    fn mess_done(&mut self, id: u64) {
        for c in 0..2 {
            if self.chans[c].jobs.contains_key(&id) || self.chans[c].pass == Some(id) {
                return;
            }
            if path_split(CHANNELS[c], id).exists() {
                return;
            }
        }
        if !self.send_bounce(id) {
            return;
        }
        self.log(&format!("end msg {id}"));
        let infofn = path_split("info", id);
        if let Err(e) = std::fs::remove_file(&infofn)
            && e.kind() != io::ErrorKind::NotFound
        {
            self.log(&format!(
                "warning: unable to unlink {}; will try again later",
                infofn.display()
            ));
            self.retry_done.push((now() + SLEEP_SYSFAIL, id));
            return;
        }
        self.clean(&format!("foop/{id}"));
    }

    /// VERP: a sender `pre-@host-@[]` becomes `pre-BOX=HOST@host` for recipient BOX@HOST.
    fn verp(sender: &[u8], recip: &[u8]) -> Vec<u8> {
        let Some(s) = sender.strip_suffix(b"-@[]") else {
            return sender.to_vec();
        };
        let Some(at) = s.iter().rposition(|&b| b == b'@') else {
            return sender.to_vec();
        };
        let rat = recip
            .iter()
            .rposition(|&b| b == b'@')
            .unwrap_or(recip.len());
        let mut v = s[..at].to_vec();
        v.extend_from_slice(&recip[..rat]);
        if rat < recip.len() {
            v.push(b'=');
            v.extend_from_slice(&recip[rat + 1..]);
        }
        v.extend_from_slice(&s[at..]);
        v
    }

    /// Start as many deliveries on channel `c` as slots and due messages allow.
    fn fill(&mut self, c: usize) {
        let t = now();
        loop {
            let ch = &self.chans[c];
            if ch.used >= ch.max || !ch.outbuf.is_empty() {
                return;
            }
            let id = match ch.pass {
                Some(id) => id,
                None => {
                    let Some(&Reverse((when, id))) = ch.prioq.peek() else {
                        return;
                    };
                    if when > t {
                        return;
                    }
                    self.chans[c].prioq.pop();
                    if self.qa.skip(id) {
                        continue; // held or being deleted (crate::qadmin)
                    }
                    if self.chans[c].jobs.contains_key(&id) {
                        continue; // already being worked on
                    }
                    if !self.open_job(c, id) {
                        continue;
                    }
                    self.chans[c].pass = Some(id);
                    id
                }
            };
            let Some(job) = self.chans[c].jobs.get_mut(&id) else {
                self.chans[c].pass = None;
                continue;
            };
            if job.next >= job.recs.len() {
                self.chans[c].pass = None;
                if job.running == 0 {
                    self.close_job(c, id);
                }
                continue;
            }
            let Some(slot) = self.chans[c].slots.iter().position(Option::is_none) else {
                return;
            };
            // The recipients of this delivery: one, or on the remote channel (without VERP)
            // up to cfg.batch consecutive ones of the same domain.
            let first = job.next;
            let mut end = first + 1;
            if c == 1 && self.cfg.batch > 1 && !job.sender.ends_with(b"-@[]") {
                let key = domain_key(&job.recs[first].1);
                while end < job.recs.len()
                    && end - first < self.cfg.batch
                    && domain_key(&job.recs[end].1) == key
                {
                    end += 1;
                }
            }
            let picked: Vec<(u64, Vec<u8>)> = job.recs[first..end].to_vec();
            job.next = end;
            job.running += picked.len();
            let sender = Self::verp(&job.sender, &picked[0].1);
            let mut rcpts = std::collections::VecDeque::with_capacity(picked.len());
            for (off, addr) in picked {
                self.delnum += 1;
                rcpts.push_back(Rcpt {
                    off,
                    addr,
                    num: self.delnum,
                });
            }
            let ch = &mut self.chans[c];
            ch.outbuf.push(slot as u8);
            ch.outbuf
                .extend_from_slice(format!("{}/{id}", id % SPLIT).as_bytes());
            ch.outbuf.push(0);
            ch.outbuf.extend_from_slice(&sender);
            ch.outbuf.push(0);
            if rcpts.len() == 1 {
                ch.outbuf.extend_from_slice(&rcpts[0].addr);
                ch.outbuf.push(0);
            } else {
                // A batch command (crate::spawn): empty field, count, recipients.
                ch.outbuf.push(0);
                ch.outbuf
                    .extend_from_slice(format!("{}", rcpts.len()).as_bytes());
                ch.outbuf.push(0);
                for r in &rcpts {
                    ch.outbuf.extend_from_slice(&r.addr);
                    ch.outbuf.push(0);
                }
            }
            let lines: Vec<String> = rcpts
                .iter()
                .map(|r| {
                    format!(
                        "starting delivery {}: msg {id} to {} {}",
                        r.num,
                        CHANNELS[c],
                        logsafe(&r.addr)
                    )
                })
                .collect();
            ch.slots[slot] = Some(Delivery { id, rcpts });
            ch.used += 1;
            self.flush_cmd(c);
            for l in lines {
                self.log(&l);
                self.status();
            }
        }
    }

    fn flush_cmd(&mut self, c: usize) {
        let ch = &mut self.chans[c];
        while !ch.outbuf.is_empty() {
            match nix::unistd::write(ch.cmd.as_fd(), &ch.outbuf) {
                Ok(n) => {
                    ch.outbuf.drain(..n);
                }
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => self.lost_spawn(),
            }
        }
    }

    fn mark_done(&mut self, c: usize, id: u64, off: u64) {
        let failed = match self.chans[c].jobs.get(&id) {
            Some(j) => j.file.write_at(b"D", off).is_err(),
            None => true,
        };
        if failed {
            let l = format!(
                "warning: trouble marking {}; message will be delivered twice!",
                path_split(CHANNELS[c], id).display()
            );
            self.log(&l);
        }
    }

    fn add_bounce(&mut self, c: usize, id: u64, addr: &[u8], text: &[u8]) -> bool {
        let shown = if c == 0 {
            self.cfg.routes.strip_prepend(addr)
        } else {
            addr.to_vec()
        };
        let blk = crate::bounce::block(&shown, text);
        let bfn = format!("bounce/{id}");
        let r = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&bfn)
            .and_then(|mut f| f.write_all(&blk));
        if r.is_err() {
            self.log("alert: unable to append to bounce message; HELP! sleeping...");
            std::thread::sleep(Duration::from_secs(1));
            return false;
        }
        true
    }

    /// Handle one report from channel `c` (for the next recipient of that slot's delivery).
    fn report(&mut self, c: usize, slot: u8, rep: &[u8]) {
        let Some((id, r, last)) = self.chans[c].slots.get_mut(slot as usize).and_then(|s| {
            let d = s.as_mut()?;
            let r = d.rcpts.pop_front()?;
            Some((d.id, r, d.rcpts.is_empty()))
        }) else {
            self.log("warning: internal error: delivery report out of range");
            return;
        };
        if last {
            self.chans[c].slots[slot as usize] = None;
            self.chans[c].used -= 1;
        }
        let d = Delivery1 {
            id,
            off: r.off,
            addr: r.addr,
            num: r.num,
        };
        let dying = self.chans[c].jobs.get(&d.id).is_some_and(|j| j.dying);
        let (letter, text) = match rep.split_first() {
            Some((&l, t)) => (l, t.to_vec()),
            None => (0, Vec::new()),
        };
        let mut deferred = false;
        match letter {
            b'K' => {
                self.log(&format!("delivery {}: success: {}", d.num, logsafe(&text)));
                self.mark_done(c, d.id, d.off);
            }
            b'Z' if !dying => {
                self.log(&format!("delivery {}: deferral: {}", d.num, logsafe(&text)));
                deferred = true;
            }
            b'Z' | b'D' => {
                let mut text = text;
                if letter == b'Z' {
                    if !text.is_empty() && !text.ends_with(b"\n") {
                        text.push(b'\n');
                    }
                    text.extend_from_slice(
                        b"I'm not going to try again; this message has been in the queue too long.\n",
                    );
                }
                self.log(&format!("delivery {}: failure: {}", d.num, logsafe(&text)));
                if self.add_bounce(c, d.id, &d.addr, &text) {
                    self.mark_done(c, d.id, d.off);
                } else {
                    deferred = true;
                }
            }
            _ => {
                self.log(&format!("delivery {}: report mangled, will defer", d.num));
                deferred = true;
            }
        }
        self.status();
        use crate::qadmin::agent::Outcome as O;
        let o = match (letter, deferred) {
            (b'K', _) => O::Success,
            (_, true) => O::Deferral,
            _ => O::Failure,
        };
        self.qa.delivered(c, d.id, &d.addr, o);
        let pass = self.chans[c].pass;
        if let Some(job) = self.chans[c].jobs.get_mut(&d.id) {
            job.running -= 1;
            if deferred {
                job.deferred = true;
            }
            if job.running == 0 && job.next >= job.recs.len() && pass != Some(d.id) {
                self.close_job(c, d.id);
            }
        }
    }

    /// Read what channel `c` has sent; handle every complete report.
    fn read_results(&mut self, c: usize) {
        let mut buf = [0u8; 8192];
        loop {
            match nix::unistd::read(self.chans[c].res.as_raw_fd(), &mut buf) {
                Ok(0) => self.lost_spawn(),
                Ok(n) => self.chans[c].inbuf.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => self.lost_spawn(),
            }
        }
        loop {
            let inb = &self.chans[c].inbuf;
            if inb.len() < 2 {
                return;
            }
            let Some(end) = memchr::memchr(0, &inb[1..]).map(|e| e + 1) else {
                if inb.len() > REPORT_MAX + 1 {
                    // Keep the head, drop the rest of an endless report.
                    self.chans[c].inbuf.truncate(REPORT_MAX + 1);
                }
                return;
            };
            let slot = inb[0];
            let rep = inb[1..end.min(REPORT_MAX + 1)].to_vec();
            self.chans[c].inbuf.drain(..=end);
            self.report(c, slot, &rep);
        }
    }

    /// Remove leftovers: mess/ files with neither todo/ nor info/, older than 36 h.
    fn cleanup_leftovers(&mut self) {
        self.next_cleanup = now() + SLEEP_CLEANUP;
        let t = SystemTime::now();
        for s in 0..SPLIT {
            let Ok(rd) = std::fs::read_dir(format!("mess/{s}")) else {
                continue;
            };
            let mut old = Vec::new();
            for e in rd.flatten() {
                let Some(id) = e.file_name().to_str().and_then(|x| x.parse::<u64>().ok()) else {
                    continue;
                };
                let Ok(md) = e.metadata() else { continue };
                let age = md
                    .modified()
                    .ok()
                    .and_then(|m| t.duration_since(m).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if age > OSSIFIED
                    && !Path::new(&format!("todo/{id}")).exists()
                    && !path_split("info", id).exists()
                {
                    old.push(id);
                }
            }
            for id in old {
                self.clean(&format!("foop/{id}"));
            }
        }
    }

    /// Put every message in info/ on its channels' queues (at start).
    fn scan_info(&mut self) {
        let todo: HashSet<u64> = self.todo_known.clone();
        for s in 0..SPLIT {
            let Ok(rd) = std::fs::read_dir(format!("info/{s}")) else {
                self.log(&format!("alert: unable to opendir info/{s}, sleeping..."));
                continue;
            };
            for e in rd.flatten() {
                let Some(id) = e.file_name().to_str().and_then(|x| x.parse::<u64>().ok()) else {
                    continue;
                };
                if todo.contains(&id) {
                    continue; // will be preprocessed again
                }
                let mut any = false;
                for c in 0..2 {
                    if let Ok(md) = std::fs::metadata(path_split(CHANNELS[c], id)) {
                        let when = md
                            .modified()
                            .ok()
                            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                            .map(|d| d.as_secs())
                            .unwrap_or(0);
                        self.chans[c].prioq.push(Reverse((when, id)));
                        any = true;
                    }
                }
                if !any {
                    self.retry_done.push((0, id));
                }
            }
        }
    }

    fn reread(&mut self) {
        match Routes::load_locals(&self.control, self.cfg.me.as_deref()) {
            Ok((l, v)) => {
                self.cfg.routes.locals = l;
                self.cfg.routes.vdoms = v;
            }
            Err(e) => {
                let which = if e.path.ends_with("locals") {
                    "locals"
                } else {
                    "virtualdomains"
                };
                self.log(&format!("alert: unable to reread control/{which}"));
            }
        }
    }

    /// The main loop.
    pub fn run(&mut self) -> i32 {
        self.scan_todo();
        self.scan_info();
        self.cleanup_leftovers();
        self.qadmin_tick();
        self.status();
        loop {
            if self.term.swap(false, Ordering::SeqCst) && !self.exitasap {
                self.exitasap = true;
                self.status();
            }
            if self.alrm.swap(false, Ordering::SeqCst) {
                let t = now();
                for c in 0..2 {
                    let items: Vec<_> = self.chans[c]
                        .prioq
                        .drain()
                        .map(|Reverse((_, id))| Reverse((t, id)))
                        .collect();
                    self.chans[c].prioq.extend(items);
                }
                for r in &mut self.retry_done {
                    r.0 = t;
                }
            }
            if self.hup.swap(false, Ordering::SeqCst) {
                self.reread();
            }
            if self.exitasap {
                if self.chans[0].used == 0 && self.chans[1].used == 0 && !self.syncer.in_flight {
                    return self.finish();
                }
            } else {
                let t = now();
                let due: Vec<u64> = self
                    .retry_done
                    .iter()
                    .filter(|r| r.0 <= t)
                    .map(|r| r.1)
                    .collect();
                self.retry_done.retain(|r| r.0 > t);
                for id in due {
                    self.mess_done(id);
                }
                if t >= self.next_todo_scan {
                    self.scan_todo();
                }
                if t >= self.next_cleanup {
                    self.cleanup_leftovers();
                }
                if !self.todo.is_empty() && !self.syncer.in_flight {
                    let n = self.todo.len().min(TODO_BATCH);
                    let batch: Vec<u64> = self.todo.drain(..n).collect();
                    self.do_todo_batch(batch);
                }
                self.qadmin_tick();
                self.fill(0);
                self.fill(1);
            }
            let timeout = self.timeout();
            self.poll_once(timeout);
        }
    }

    /// How long poll may sleep, in milliseconds.
    fn timeout(&self) -> i32 {
        if self.exitasap {
            return 1000;
        }
        if !self.todo.is_empty() && !self.syncer.in_flight {
            return 0;
        }
        let t = now();
        let mut wake = self.next_todo_scan.min(self.next_cleanup);
        for ch in &self.chans {
            if ch.used < ch.max
                && ch.outbuf.is_empty()
                && let Some(Reverse((when, _))) = ch.prioq.peek()
            {
                wake = wake.min(*when);
            }
        }
        for r in &self.retry_done {
            wake = wake.min(r.0);
        }
        if wake <= t {
            // Due now but blocked (e.g. pass in progress): check again soon.
            return 1000;
        }
        (((wake - t) * 1000).min(60_000)) as i32
    }

    fn poll_once(&mut self, timeout: i32) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut revents = [PollFlags::empty(); 8];
        {
            let mut fds = vec![
                PollFd::new(self.sigpipe.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.trigger.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.chans[0].res.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.chans[1].res.as_fd(), PollFlags::POLLIN),
            ];
            let want0 = !self.chans[0].outbuf.is_empty();
            let want1 = !self.chans[1].outbuf.is_empty();
            fds.push(PollFd::new(
                self.chans[0].cmd.as_fd(),
                if want0 {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::empty()
                },
            ));
            fds.push(PollFd::new(
                self.chans[1].cmd.as_fd(),
                if want1 {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::empty()
                },
            ));
            fds.push(PollFd::new(self.clean_res.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(self.syncer.wake.as_fd(), PollFlags::POLLIN));
            let to = PollTimeout::try_from(timeout.max(0)).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, to) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return,
                Err(_) => {
                    drop(fds);
                    self.log("warning: trouble in select");
                    std::thread::sleep(Duration::from_millis(100));
                    return;
                }
            }
            for (i, f) in fds.iter().enumerate() {
                revents[i] = f.revents().unwrap_or(PollFlags::empty());
            }
        }
        let any = |f: PollFlags| {
            f.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
        };
        if any(revents[0]) {
            let mut b = [0u8; 64];
            let _ = (&self.sigpipe).read(&mut b);
        }
        if any(revents[1]) {
            let mut b = [0u8; 256];
            while let Ok(n) = nix::unistd::read(self.trigger.as_raw_fd(), &mut b) {
                if n == 0 {
                    break;
                }
            }
            self.scan_todo();
        }
        for c in 0..2 {
            if any(revents[2 + c]) {
                self.read_results(c);
            }
            if revents[4 + c]
                .intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP)
            {
                self.flush_cmd(c);
            }
        }
        if any(revents[6]) {
            self.read_clean();
        }
        if any(revents[7]) {
            self.read_synced();
        }
    }

    /// After TERM, once nothing runs: record retry times and leave.
    fn finish(&mut self) -> i32 {
        for c in 0..2 {
            let ids: Vec<u64> = self.chans[c].jobs.keys().copied().collect();
            for id in ids {
                if let Some(job) = self.chans[c].jobs.remove(&id)
                    && job.deferred
                {
                    let tv = nix::sys::time::TimeVal::new(job.retry as i64, 0);
                    let p = path_split(CHANNELS[c], id);
                    if nix::sys::stat::utimes(&p, &tv, &tv).is_err() {
                        self.log(&format!(
                            "warning: unable to utime {}; message will be retried too soon",
                            p.display()
                        ));
                    }
                }
            }
        }
        self.log("status: exiting");
        0
    }
}

/// What queue administration (crate::qadmin) may do inside qmail-send.
impl crate::qadmin::agent::SendCtl for Send {
    fn busy(&self, id: u64) -> bool {
        self.syncer.busy.contains(&id)
            || self
                .chans
                .iter()
                .any(|ch| ch.pass == Some(id) || ch.jobs.contains_key(&id))
    }
    fn stop_pass(&mut self, id: u64, deleting: bool) {
        for c in 0..2 {
            let pass = self.chans[c].pass == Some(id);
            if let Some(job) = self.chans[c].jobs.get_mut(&id) {
                if job.next < job.recs.len() {
                    job.next = job.recs.len();
                    job.deferred = true;
                }
                if pass {
                    self.chans[c].pass = None;
                }
                if pass && job.running == 0 {
                    if deleting {
                        self.chans[c].jobs.remove(&id); // its files go next
                    } else {
                        self.close_job(c, id);
                    }
                }
            }
        }
    }
    fn requeue(&mut self, id: u64) {
        let t = now();
        for c in 0..2 {
            if !self.chans[c].jobs.contains_key(&id) && path_split(CHANNELS[c], id).exists() {
                self.chans[c].prioq.push(Reverse((t, id)));
            }
        }
    }
    fn retry_now(&mut self, c: usize, pick: &mut dyn FnMut(u64) -> bool) {
        let t = now();
        let items: Vec<_> = self.chans[c]
            .prioq
            .drain()
            .map(|Reverse((w, id))| Reverse((if pick(id) { w.min(t) } else { w }, id)))
            .collect();
        self.chans[c].prioq.extend(items);
    }
    fn clean(&mut self, req: &str) {
        Send::clean(self, req);
    }
    fn log(&mut self, line: &str) {
        Send::log(self, line);
    }
}

impl Send {
    fn qadmin_tick(&mut self) {
        let mut qa = std::mem::take(&mut self.qa);
        qa.tick(self);
        self.qa = qa;
    }
}

/// qmail-send's main.
pub fn main() -> i32 {
    // SAFETY: fds 0-6 were set up by qmail-start and belong to this process for its whole life;
    // each is wrapped exactly once.
    let mut log = unsafe { File::from_raw_fd(0) };
    let (l_cmd, l_res, r_cmd, r_res, c_cmd, c_res) = unsafe {
        (
            File::from_raw_fd(1),
            File::from_raw_fd(2),
            File::from_raw_fd(3),
            File::from_raw_fd(4),
            File::from_raw_fd(5),
            File::from_raw_fd(6),
        )
    };
    // Bounces must never be refused for their size (see crate::queue).
    // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
    unsafe { std::env::set_var("DATABYTES", "0") };

    let home = crate::home::qmail_home();
    if std::env::set_current_dir(&home).is_err() {
        return die_start(&mut log, "unable to switch to home directory");
    }
    let control = Control::at(home.join("control"));
    let cfg = match Config::load(&control) {
        Ok(c) => c,
        Err(_) => return die_start(&mut log, "unable to read controls"),
    };
    if std::env::set_current_dir("queue").is_err() {
        return die_start(&mut log, "unable to switch to queue directory");
    }
    let mutex = match OpenOptions::new().write(true).open("lock/sendmutex") {
        Ok(f) => f,
        Err(_) => return die_start(&mut log, "unable to open mutex"),
    };
    let mutex = match nix::fcntl::Flock::lock(mutex, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err(_) => return die_start(&mut log, "qmail-send is already running"),
    };
    let mut limits = [0u8; 2];
    for (i, f) in [&l_res, &r_res].into_iter().enumerate() {
        let mut b = [0u8; 1];
        let mut f = f;
        match f.read(&mut b) {
            Ok(1) => limits[i] = b[0],
            _ => return die_start(&mut log, "hath the daemon spawn no fire?"),
        }
    }
    let trigger = match open_trigger() {
        Ok(t) => t,
        Err(_) => return die_start(&mut log, "unable to open lock/trigger"),
    };
    let (sig_r, sig_w) = match std::os::unix::net::UnixStream::pair() {
        Ok(p) => p,
        Err(_) => return die_start(&mut log, "unable to create a signal pipe"),
    };
    let _ = sig_r.set_nonblocking(true);
    let _ = sig_w.set_nonblocking(true);
    let term = Arc::new(AtomicBool::new(false));
    let alrm = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGTERM, &term),
        (signal_hook::consts::SIGALRM, &alrm),
        (signal_hook::consts::SIGHUP, &hup),
    ] {
        let ok = signal_hook::flag::register(sig, Arc::clone(flag)).is_ok()
            && sig_w
                .try_clone()
                .ok()
                .is_some_and(|w| signal_hook::low_level::pipe::register(sig, w).is_ok());
        if !ok {
            return die_start(&mut log, "unable to set up signal handlers");
        }
    }
    for f in [&l_cmd, &r_cmd, &l_res, &r_res, &c_res] {
        set_nonblock(f);
    }
    let mk = |idx: usize, cmd: File, res: File, lim: u8| {
        let max = cfg.concurrency[idx].min(lim as usize);
        Chan {
            idx,
            cmd,
            res,
            outbuf: Vec::new(),
            inbuf: Vec::new(),
            max,
            slots: (0..max).map(|_| None).collect(),
            used: 0,
            prioq: BinaryHeap::new(),
            pass: None,
            jobs: HashMap::new(),
        }
    };
    let chans = [
        mk(0, l_cmd, l_res, limits[0]),
        mk(1, r_cmd, r_res, limits[1]),
    ];
    let syncer = match Syncer::start() {
        Ok(s) => s,
        Err(e) => return die_start(&mut log, &format!("unable to start a thread: {e}")),
    };
    let mut s = Send {
        cfg: cfg.clone(),
        control,
        log,
        chans,
        clean_cmd: c_cmd,
        clean_res: c_res,
        trigger,
        sigpipe: sig_r,
        term,
        alrm,
        hup,
        exitasap: false,
        delnum: 0,
        todo: Default::default(),
        todo_known: HashSet::new(),
        todo_cleaning: HashSet::new(),
        clean_pending: Default::default(),
        syncer,
        next_todo_scan: 0,
        next_cleanup: 0,
        retry_done: Vec::new(),
        qa: Default::default(),
    };
    debug_assert!(s.chans.iter().enumerate().all(|(i, c)| c.idx == i));
    let code = s.run();
    drop(mutex);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_and_logsafe() {
        assert_eq!(next_retry(1000, 1000, 10), 1100);
        assert_eq!(next_retry(1000, 1100, 10), 1400);
        assert_eq!(next_retry(1000, 1000, 20), 1400);
        assert_eq!(next_retry(1000, 1400, 20), 2600);
        assert_eq!(logsafe(b"did 1+0+0\n"), "did_1+0+0/");
        assert_eq!(logsafe(b"a%b\x01\xff"), "a_b__");
        assert_eq!(isqrt(99), 9);
        assert_eq!(isqrt(100), 10);
    }

    #[test]
    fn verp_expands() {
        assert_eq!(
            Send::verp(b"list-@example.org-@[]", b"bob@x.net"),
            b"list-bob=x.net@example.org"
        );
        assert_eq!(Send::verp(b"a@b", b"c@d"), b"a@b");
    }
}
