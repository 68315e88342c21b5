//! The queue-administration protocol: request files, and the side of it that runs inside
//! qmail-send (or inside qmail-qadmin itself when qmail-send is not running). See the module
//! docs of [`crate::qadmin`] for the protocol.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::qmetrics::Counters;

const SPLIT: u64 = crate::install::SPLIT;

/// The protocol directory, relative to the queue directory.
pub const DIR: &str = "qadmin";
/// Its subdirectories.
pub const SUBDIRS: [&str; 6] = ["tmp", "new", "cur", "done", "hold", "delivered"];

/// qmail-send's channels, by number.
pub const CHANNELS: [&str; 2] = ["local", "remote"];

/// `S/N` path of message `id` in queue subdirectory `dir`.
pub fn split_path(q: &Path, dir: &str, id: u64) -> PathBuf {
    q.join(format!("{dir}/{}/{id}", id % SPLIT))
}

/// The generation of a message: its mess file's mtime in nanoseconds (0 when mess is gone).
/// Together with the id (mess's inode number, which the file system reuses) it names one
/// message; a request for an id whose generation changed is refused.
pub fn generation(q: &Path, id: u64) -> u64 {
    match std::fs::metadata(split_path(q, "mess", id)) {
        Ok(m) => (m.mtime() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(m.mtime_nsec() as u64),
        Err(_) => 0,
    }
}

/// Is any part of message `id` still in the queue?
pub fn exists(q: &Path, id: u64) -> bool {
    ["mess", "info", "local", "remote"]
        .iter()
        .any(|d| split_path(q, d, id).exists())
        || q.join(format!("todo/{id}")).exists()
        || q.join(format!("bounce/{id}")).exists()
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Delete these messages (id, generation).
    Delete(Vec<(u64, u64)>),
    Hold(Vec<(u64, u64)>),
    Release(Vec<(u64, u64)>),
    /// Retry now: every deferred message, or only remote ones with a recipient in this domain.
    Retry(Option<String>),
}

impl Request {
    pub fn encode(&self) -> String {
        let ids = |verb: &str, v: &[(u64, u64)]| {
            let mut s = format!("{verb}\n");
            for (id, g) in v {
                s.push_str(&format!("{id} {g}\n"));
            }
            s
        };
        match self {
            Request::Delete(v) => ids("delete", v),
            Request::Hold(v) => ids("hold", v),
            Request::Release(v) => ids("release", v),
            Request::Retry(None) => "retry\n".into(),
            Request::Retry(Some(d)) => format!("retry {d}\n"),
        }
    }

    pub fn decode(text: &str) -> Option<Request> {
        let mut lines = text.lines();
        let first = lines.next()?;
        let mut ids = || -> Option<Vec<(u64, u64)>> {
            let mut v = Vec::new();
            for l in lines.by_ref() {
                let (a, b) = l.split_once(' ')?;
                v.push((a.parse().ok()?, b.parse().ok()?));
            }
            Some(v)
        };
        match first.split_once(' ') {
            None => match first {
                "delete" => Some(Request::Delete(ids()?)),
                "hold" => Some(Request::Hold(ids()?)),
                "release" => Some(Request::Release(ids()?)),
                "retry" => Some(Request::Retry(None)),
                _ => None,
            },
            Some(("retry", d)) if !d.is_empty() && !d.contains(['/', '\0']) => {
                Some(Request::Retry(Some(d.to_ascii_lowercase())))
            }
            _ => None,
        }
    }
}

/// What qmail-send (or the direct mode) can do for the agent.
pub trait SendCtl {
    /// Is a delivery of `id` running, or a delivery pass of it in progress?
    fn busy(&self, id: u64) -> bool;
    /// Start no further deliveries of `id` in the current pass (the rest counts as deferred).
    /// With `deleting`, a job with nothing running is dropped instead of closed.
    fn stop_pass(&mut self, id: u64, deleting: bool);
    /// Put `id` back on the queues of the channels that have work for it, due now.
    fn requeue(&mut self, id: u64);
    /// Make deferred messages due now on channel `chan` when `pick(id)` says so.
    fn retry_now(&mut self, chan: usize, pick: &mut dyn FnMut(u64) -> bool);
    /// Ask qmail-clean to remove `foop/N` (intd, mess) or `todo/N` (intd, todo).
    fn clean(&mut self, req: &str);
    /// A line for qmail-send's log.
    fn log(&mut self, line: &str);
}

fn unlink(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove every file of the messages `ids`, in a crash-safe order: first todo and info of
/// all of them (after which, their directories synced, nothing will ever deliver them again),
/// then the channel files, the bounce texts, our markers, and last intd and mess (through
/// `ctl.clean`, as mess/ and todo/ belong to qmailq). A crash in between leaves files nothing
/// delivers: the request stays in `cur/` and is finished at the next start; a leftover mess is
/// removed by qmail-send's 36-hour cleanup anyway. Returns one result per id.
pub fn delete_files(q: &Path, ctl: &mut dyn SendCtl, ids: &[u64]) -> Vec<io::Result<()>> {
    let mut res: Vec<io::Result<()>> = Vec::with_capacity(ids.len());
    let mut dirs: HashSet<u64> = HashSet::new();
    let mut todo = false;
    for &id in ids {
        if q.join(format!("todo/{id}")).exists() {
            ctl.clean(&format!("todo/{id}"));
            todo = true;
        }
        dirs.insert(id % SPLIT);
        res.push(unlink(&split_path(q, "info", id)));
    }
    if todo {
        let _ = crate::util::fsync_dir(&q.join("todo"));
    }
    for s in dirs {
        let _ = crate::util::fsync_dir(&q.join(format!("info/{s}")));
    }
    for (i, &id) in ids.iter().enumerate() {
        if res[i].is_err() {
            continue; // info is still there: leave the message whole
        }
        let r = unlink(&split_path(q, "local", id))
            .and_then(|_| unlink(&split_path(q, "remote", id)))
            .and_then(|_| unlink(&q.join(format!("bounce/{id}"))));
        let _ = unlink(&q.join(format!("{DIR}/hold/{id}")));
        let _ = unlink(&q.join(format!("{DIR}/delivered/{id}")));
        if r.is_ok() {
            ctl.clean(&format!("foop/{id}"));
        }
        res[i] = r;
    }
    res
}

/// Write `text` to `dir/tmp/name`, fsync, rename to `dir/SUB/name`, fsync the directory.
pub fn write_atomic(q: &Path, sub: &str, name: &str, text: &[u8], mode: u32) -> io::Result<()> {
    let tmp = q.join(format!("{DIR}/tmp/{sub}.{name}"));
    let dst = q.join(format!("{DIR}/{sub}/{name}"));
    // Root writes into a directory qmails owns: never follow a link planted there.
    unlink(&tmp)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(text)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &dst)?;
    crate::util::fsync_dir(&q.join(format!("{DIR}/{sub}")))
}

/// A request being worked on: deletions of running messages wait for their deliveries.
#[derive(Debug)]
struct Pending {
    name: String,
    results: Vec<String>,
    waiting: HashSet<u64>,
    /// Deleted messages whose mess file qmail-clean has not removed yet: (id, generation).
    /// The answer waits for them, so that qmail-qstat agrees once qmail-qadmin returns.
    cleaning: Vec<(u64, u64)>,
}

impl Pending {
    /// Nothing left to wait for?
    fn settled(&mut self, q: &Path) -> bool {
        self.cleaning.retain(|&(id, g)| generation(q, id) == g);
        self.waiting.is_empty() && self.cleaning.is_empty()
    }
}

/// qmail-send's part: held and doomed messages, requests, delivery counters.
#[derive(Default)]
pub struct Agent {
    started: bool,
    q: PathBuf,
    held: HashSet<u64>,
    /// Messages to delete once their running deliveries end → generation.
    doomed: HashMap<u64, u64>,
    pending: Vec<Pending>,
    /// Deleted during this run; popped queue entries for them are dropped.
    /// id → generation.
    deleted: HashMap<u64, u64>,
    counters: Option<Arc<Counters>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Outcome of one delivery, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Deferral,
}

impl Agent {
    /// Set up at qmail-send's start (cwd = the queue directory).
    fn start(&mut self) {
        self.started = true;
        self.q = PathBuf::from(".");
        // Works in user mode; as root queue/ belongs to qmailq and qmail-qadmin creates it.
        let _ = ensure_dirs(&self.q, None);
        if let Ok(rd) = std::fs::read_dir(self.q.join(format!("{DIR}/hold"))) {
            for e in rd.flatten() {
                let Some(id) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
                    continue;
                };
                let want = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok());
                if want == Some(generation(&self.q, id)) && want != Some(0) {
                    self.held.insert(id);
                } else {
                    let _ = std::fs::remove_file(e.path()); // stale marker
                }
            }
        }
        self.counters = Some(crate::qmetrics::start(self.q.clone()));
    }

    /// Called from qmail-send's main loop: start pending requests, finish waiting deletions.
    pub fn tick(&mut self, ctl: &mut dyn SendCtl) {
        if !self.started {
            self.start();
        }
        // Finish deletions whose deliveries have ended.
        let ready: Vec<u64> = self
            .doomed
            .keys()
            .copied()
            .filter(|&id| !ctl.busy(id))
            .collect();
        for id in ready {
            let g = self.doomed.remove(&id).unwrap_or(0);
            let mut cleaning = Vec::new();
            let r = if generation(&self.q, id) != g {
                format!("{id} gone") // finished by its last delivery meanwhile
            } else {
                self.delete_now(ctl, &[(id, g)], &mut cleaning).remove(0)
            };
            for p in &mut self.pending {
                if p.waiting.remove(&id) {
                    p.results.push(r.clone());
                    p.cleaning.append(&mut cleaning);
                }
            }
        }
        let q = self.q.clone();
        self.settle();
        // New requests (two directory reads: microseconds).
        for sub in ["cur", "new"] {
            let Ok(rd) = std::fs::read_dir(q.join(format!("{DIR}/{sub}"))) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| !n.starts_with('.'))
                .collect();
            names.sort();
            for name in names {
                if self.pending.iter().any(|p| p.name == name) {
                    continue;
                }
                if sub == "new" {
                    let from = q.join(format!("{DIR}/new/{name}"));
                    let to = q.join(format!("{DIR}/cur/{name}"));
                    if std::fs::rename(&from, &to).is_err() {
                        continue; // withdrawn meanwhile
                    }
                }
                self.handle(ctl, &name);
            }
        }
        self.settle();
    }

    /// Answer the requests that have nothing left to wait for.
    fn settle(&mut self) {
        let q = self.q.clone();
        self.pending.retain_mut(|p| {
            if !p.settled(&q) {
                return true;
            }
            finish_request(&q, p);
            false
        });
    }

    fn handle(&mut self, ctl: &mut dyn SendCtl, name: &str) {
        let q = self.q.clone();
        let path = q.join(format!("{DIR}/cur/{name}"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut p = Pending {
            name: name.to_string(),
            results: Vec::new(),
            waiting: HashSet::new(),
            cleaning: Vec::new(),
        };
        match Request::decode(&text) {
            None => p.results.push("error malformed request".into()),
            Some(Request::Delete(v)) => {
                let mut now_ids = Vec::new();
                for (id, g) in v {
                    if generation(&q, id) != g || !exists(&q, id) {
                        p.results.push(format!("{id} gone"));
                    } else if ctl.busy(id) && {
                        ctl.stop_pass(id, true);
                        ctl.busy(id)
                    } {
                        ctl.log(&format!("qadmin: delete msg {id} after running deliveries"));
                        self.held.remove(&id);
                        self.doomed.insert(id, g);
                        p.waiting.insert(id);
                    } else {
                        now_ids.push((id, g));
                    }
                }
                let r = self.delete_now(ctl, &now_ids, &mut p.cleaning);
                p.results.extend(r);
            }
            Some(Request::Hold(v)) => {
                for (id, g) in v {
                    if generation(&q, id) != g || !exists(&q, id) {
                        p.results.push(format!("{id} gone"));
                        continue;
                    }
                    let r =
                        write_atomic(&q, "hold", &id.to_string(), g.to_string().as_bytes(), 0o644);
                    match r {
                        Ok(()) => {
                            self.held.insert(id);
                            ctl.stop_pass(id, false);
                            ctl.log(&format!("qadmin: hold msg {id}"));
                            p.results.push(format!("{id} held"));
                        }
                        Err(e) => p.results.push(format!("{id} error {e}")),
                    }
                }
            }
            Some(Request::Release(v)) => {
                for (id, g) in v {
                    let marker = q.join(format!("{DIR}/hold/{id}"));
                    if generation(&q, id) != g || !exists(&q, id) {
                        let _ = std::fs::remove_file(&marker);
                        self.held.remove(&id);
                        p.results.push(format!("{id} gone"));
                        continue;
                    }
                    match unlink(&marker) {
                        Ok(()) => {
                            let was = self.held.remove(&id);
                            if was {
                                ctl.requeue(id);
                            }
                            ctl.log(&format!("qadmin: release msg {id}"));
                            p.results.push(format!("{id} released"));
                        }
                        Err(e) => p.results.push(format!("{id} error {e}")),
                    }
                }
            }
            Some(Request::Retry(dom)) => {
                let mut n = 0u64;
                for c in 0..2 {
                    if c == 0 && dom.is_some() {
                        continue;
                    }
                    let held = &self.held;
                    let qq = q.clone();
                    ctl.retry_now(c, &mut |id| {
                        let pick = !held.contains(&id)
                            && match &dom {
                                None => true,
                                Some(d) => has_domain(&qq, id, d),
                            };
                        if pick {
                            n += 1;
                        }
                        pick
                    });
                }
                ctl.log(&format!(
                    "qadmin: retry {}",
                    dom.as_deref().unwrap_or("everything")
                ));
                p.results.push(format!("retry {n}"));
            }
        }
        self.pending.push(p);
    }

    /// Delete messages nothing is delivering; one result line per id.
    fn delete_now(
        &mut self,
        ctl: &mut dyn SendCtl,
        ids: &[(u64, u64)],
        cleaning: &mut Vec<(u64, u64)>,
    ) -> Vec<String> {
        let q = self.q.clone();
        let only: Vec<u64> = ids.iter().map(|x| x.0).collect();
        let res = delete_files(&q, ctl, &only);
        ids.iter()
            .zip(res)
            .map(|(&(id, g), r)| match r {
                Ok(()) => {
                    self.held.remove(&id);
                    self.deleted.insert(id, g);
                    cleaning.push((id, g));
                    ctl.log(&format!("qadmin: deleted msg {id}"));
                    ctl.log(&format!("end msg {id}"));
                    format!("{id} deleted")
                }
                Err(e) => format!("{id} error {e}"),
            })
            .collect()
    }

    /// qmail-send's fill: should the queue entry of `id` be dropped instead of started?
    pub fn skip(&mut self, id: u64) -> bool {
        if self.held.contains(&id) || self.doomed.contains_key(&id) {
            return true;
        }
        self.deleted(id)
    }

    /// Was `id` deleted while its files may still be around (qmail-clean removes todo/ and
    /// mess/ asynchronously)? qmail-send then neither preprocesses nor starts it. Once the id
    /// names a newer message (another generation) it is forgotten.
    pub fn deleted(&mut self, id: u64) -> bool {
        let Some(&g) = self.deleted.get(&id) else {
            return false;
        };
        let now = generation(&self.q, id);
        if now == 0 || now == g {
            return true;
        }
        self.deleted.remove(&id);
        false
    }

    /// Is `id` waiting for deletion? Its bounce is not sent then.
    pub fn doomed(&self, id: u64) -> bool {
        self.doomed.contains_key(&id)
    }

    /// One delivery ended. `id`/`addr` are kept for `show` while other recipients are pending.
    pub fn delivered(&mut self, chan: usize, id: u64, addr: &[u8], outcome: Outcome) {
        if let Some(c) = &self.counters {
            c.delivery(chan, outcome);
        }
        if outcome == Outcome::Success {
            let other = if chan == 0 { "remote" } else { "local" };
            if split_path(&self.q, other, id).exists() {
                let birth = std::fs::metadata(split_path(&self.q, "info", id))
                    .map(|m| m.mtime())
                    .unwrap_or(0);
                let p = self.q.join(format!("{DIR}/delivered/{id}"));
                let keep = std::fs::read_to_string(&p)
                    .ok()
                    .is_some_and(|t| t.lines().next() == Some(&birth.to_string()));
                let mut text = if keep {
                    String::new()
                } else {
                    format!("{birth}\n")
                };
                text.push_str(&format!(
                    "{} {}\n",
                    CHANNELS[chan],
                    String::from_utf8_lossy(addr).replace('\n', " ")
                ));
                let f = OpenOptions::new()
                    .create(true)
                    .append(keep)
                    .write(true)
                    .truncate(!keep)
                    .mode(0o644)
                    .open(&p);
                if let Ok(mut f) = f {
                    let _ = f.write_all(text.as_bytes());
                }
            }
        }
    }

    /// A bounce was injected.
    pub fn bounced(&mut self) {
        if let Some(c) = &self.counters {
            c.bounce();
        }
    }

    /// The counts changed (qmail-send's status): the metrics file is due.
    pub fn changed(&mut self, running: [usize; 2]) {
        if let Some(c) = &self.counters {
            c.changed(running);
        }
    }
}

fn finish_request(q: &Path, p: &Pending) {
    let mut text = p.results.join("\n");
    text.push('\n');
    let _ = write_atomic(q, "done", &p.name, text.as_bytes(), 0o644);
    let _ = std::fs::remove_file(q.join(format!("{DIR}/cur/{}", p.name)));
}

/// Does message `id` have a pending remote recipient in `domain`?
pub fn has_domain(q: &Path, id: u64, domain: &str) -> bool {
    let Ok(data) = std::fs::read(split_path(q, "remote", id)) else {
        return false;
    };
    data.split(|&b| b == 0).any(|r| {
        r.first() == Some(&b'T')
            && r.iter()
                .rposition(|&b| b == b'@')
                .is_some_and(|at| r[at + 1..].eq_ignore_ascii_case(domain.as_bytes()))
    })
}

/// Create `queue/qadmin` and its subdirectories; as root, owned by `owner` (qmails, qmail).
pub fn ensure_dirs(q: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    let top = q.join(DIR);
    let mut all = vec![top.clone()];
    all.extend(SUBDIRS.iter().map(|s| top.join(s)));
    for d in all {
        match b.create(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if let Some((u, g)) = owner {
            std::os::unix::fs::chown(&d, Some(u), Some(g))?;
        }
    }
    Ok(())
}

/// The direct mode: qmail-qadmin holds `lock/sendmutex`, so no qmail-send runs; nothing is
/// busy and qmail-clean's work is done here.
pub struct Direct {
    pub q: PathBuf,
}

impl SendCtl for Direct {
    fn busy(&self, _id: u64) -> bool {
        false
    }
    fn stop_pass(&mut self, _id: u64, _deleting: bool) {}
    fn requeue(&mut self, id: u64) {
        // qmail-send reads every info/ at start; make the channel files due now.
        let t = nix::sys::time::TimeVal::new(now() as i64, 0);
        for c in ["local", "remote"] {
            let p = split_path(&self.q, c, id);
            if p.exists() {
                let _ = nix::sys::stat::utimes(&p, &t, &t);
            }
        }
    }
    fn retry_now(&mut self, chan: usize, pick: &mut dyn FnMut(u64) -> bool) {
        let c = CHANNELS[chan];
        let t = nix::sys::time::TimeVal::new(now() as i64, 0);
        for s in 0..SPLIT {
            let Ok(rd) = std::fs::read_dir(self.q.join(format!("{c}/{s}"))) else {
                continue;
            };
            for e in rd.flatten() {
                if let Some(id) = e.file_name().to_str().and_then(|x| x.parse::<u64>().ok())
                    && pick(id)
                {
                    let _ = nix::sys::stat::utimes(&e.path(), &t, &t);
                }
            }
        }
    }
    fn clean(&mut self, req: &str) {
        let Some((kind, n)) = req.split_once('/') else {
            return;
        };
        let Ok(id) = n.parse::<u64>() else { return };
        let _ = unlink(&self.q.join(format!("intd/{id}")));
        if kind == "todo" {
            let _ = unlink(&self.q.join(format!("todo/{id}")));
        } else {
            let _ = unlink(&split_path(&self.q, "mess", id));
        }
    }
    fn log(&mut self, _line: &str) {}
}

/// Run one request in direct mode; the result lines.
pub fn run_direct(q: &Path, req: &Request) -> Vec<String> {
    let mut a = Agent {
        started: true,
        q: q.to_path_buf(),
        ..Default::default()
    };
    let mut ctl = Direct { q: q.to_path_buf() };
    let name = format!(
        "direct.{}.{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    // Through cur/ like qmail-send, so that a crash leaves the request to be finished later.
    let text = req.encode();
    if let Err(e) = write_atomic(q, "cur", &name, text.as_bytes(), 0o644) {
        return vec![format!("error {e}")];
    }
    a.handle(&mut ctl, &name);
    let out = a
        .pending
        .first()
        .map(|p| p.results.clone())
        .unwrap_or_default();
    let _ = std::fs::remove_file(q.join(format!("{DIR}/cur/{name}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::Delete(vec![(1, 2), (3, 4)]),
            Request::Hold(vec![]),
            Request::Release(vec![(5, 0)]),
            Request::Retry(None),
            Request::Retry(Some("example.com".into())),
        ] {
            assert_eq!(Request::decode(&r.encode()), Some(r));
        }
        assert_eq!(Request::decode("delete\nx y\n"), None);
        assert_eq!(Request::decode("frob\n"), None);
        assert_eq!(Request::decode(""), None);
    }
}
