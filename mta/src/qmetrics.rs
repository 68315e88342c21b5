//! Queue metrics for monitoring: qmail-send keeps a Prometheus text-format file.
//!
//! Path: the first line of `control/metricsfile` when that file exists (a relative path is taken
//! relative to QMAILHOME), else `QMAILHOME/queue/qadmin/metrics.prom`. The default directory is
//! readable only by qmail-send's user and root; for node_exporter's textfile collector either
//! point `control/metricsfile` into the collector's directory (it must be writable by qmails)
//! or link it there with a copy job. The file is written to `.NAME.tmp` in the same directory,
//! fsynced and renamed over NAME, so a reader never sees half a file; node_exporter only reads
//! `*.prom`, so the temporary name is ignored.
//!
//! A thread of qmail-send writes it at start, then at most every 2 seconds while the counts
//! change (qmail-send's status line) and at least every 30 seconds. It scans the queue
//! directories itself (no per-message reads: one directory entry and one stat per message), so
//! the numbers are the ones `qmail-qstat` and `qmail-qadmin list` show:
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `qmail_queue_messages` | gauge | files under mess/ (qmail-qstat's "messages in queue") |
//! | `qmail_queue_todo` | gauge | files in todo/ (not yet preprocessed) |
//! | `qmail_queue_pending{channel="local"\|"remote"}` | gauge | messages with recipients pending on the channel |
//! | `qmail_queue_bouncing` | gauge | messages with bounce text waiting |
//! | `qmail_queue_held` | gauge | messages held by qmail-qadmin |
//! | `qmail_queue_oldest_message_age_seconds` | gauge | age of the oldest mess/ file, 0 when empty |
//! | `qmail_deliveries_running{channel}` | gauge | deliveries in progress |
//! | `qmail_deliveries_total{channel,outcome="success"\|"failure"\|"deferral"}` | counter | delivery results since qmail-send started |
//! | `qmail_bounces_total` | counter | bounce messages injected since qmail-send started |
//! | `qmail_send_start_time_seconds` | gauge | when qmail-send started (counter resets) |
//! | `qmail_metrics_scrape_duration_seconds` | gauge | time the queue scan took |

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::qadmin::agent::Outcome;

const SPLIT: u64 = crate::install::SPLIT;

/// Shared between qmail-send's loop and the writer thread.
#[derive(Default)]
pub struct Counters {
    /// [channel][success, failure, deferral]
    deliveries: [[AtomicU64; 3]; 2],
    bounces: AtomicU64,
    running: [AtomicU64; 2],
    dirty: AtomicBool,
    started: AtomicU64,
}

impl Counters {
    pub fn delivery(&self, chan: usize, o: Outcome) {
        let i = match o {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Deferral => 2,
        };
        if let Some(c) = self.deliveries.get(chan) {
            c[i].fetch_add(1, Ordering::Relaxed);
        }
        self.dirty.store(true, Ordering::Relaxed);
    }
    pub fn bounce(&self) {
        self.bounces.fetch_add(1, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
    }
    pub fn changed(&self, running: [usize; 2]) {
        for (slot, n) in self.running.iter().zip(running) {
            slot.store(n as u64, Ordering::Relaxed);
        }
        self.dirty.store(true, Ordering::Relaxed);
    }
}

/// The queue's depth, read from its directories.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Depth {
    pub messages: u64,
    pub todo: u64,
    pub local: u64,
    pub remote: u64,
    pub bouncing: u64,
    pub held: u64,
    /// mtime of the oldest mess/ file (Unix seconds).
    pub oldest: Option<u64>,
}

fn count(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().count() as u64)
        .unwrap_or(0)
}

impl Depth {
    /// Scan the queue at `q`.
    pub fn scan(q: &Path) -> Depth {
        let mut d = Depth::default();
        for s in 0..SPLIT {
            if let Ok(rd) = std::fs::read_dir(q.join(format!("mess/{s}"))) {
                for e in rd.flatten() {
                    d.messages += 1;
                    if let Some(t) = e
                        .metadata()
                        .ok()
                        .and_then(|m| m.modified().ok())
                        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    {
                        let t = t.as_secs();
                        d.oldest = Some(d.oldest.map_or(t, |o| o.min(t)));
                    }
                }
            }
            d.local += count(&q.join(format!("local/{s}")));
            d.remote += count(&q.join(format!("remote/{s}")));
        }
        d.todo = count(&q.join("todo"));
        d.bouncing = count(&q.join("bounce"));
        d.held = count(&q.join(format!("{}/hold", crate::qadmin::agent::DIR)));
        d
    }
}

/// The metrics file's path (see the module docs).
pub fn path() -> PathBuf {
    let home = crate::home::qmail_home();
    match crate::control::Control::at(home.join("control")).line("metricsfile") {
        Ok(Some(p)) if !p.trim().is_empty() => home.join(p.trim()),
        _ => home.join("queue/qadmin/metrics.prom"),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The file's text.
pub fn render(d: &Depth, c: &Counters, now: u64, scan: Duration) -> String {
    let mut s = String::with_capacity(2048);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in samples {
            s.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    family(
        "qmail_queue_messages",
        "gauge",
        "Messages in the queue (files under mess/).",
        &one(d.messages),
    );
    family(
        "qmail_queue_todo",
        "gauge",
        "Messages not yet preprocessed (files in todo/).",
        &one(d.todo),
    );
    family(
        "qmail_queue_pending",
        "gauge",
        "Messages with recipients pending, by channel.",
        &[
            ("{channel=\"local\"}".into(), d.local),
            ("{channel=\"remote\"}".into(), d.remote),
        ],
    );
    family(
        "qmail_queue_bouncing",
        "gauge",
        "Messages with bounce text waiting.",
        &one(d.bouncing),
    );
    family(
        "qmail_queue_held",
        "gauge",
        "Messages held by qmail-qadmin.",
        &one(d.held),
    );
    family(
        "qmail_queue_oldest_message_age_seconds",
        "gauge",
        "Age of the oldest message in the queue.",
        &one(d.oldest.map_or(0, |o| now.saturating_sub(o))),
    );
    let chans = ["local", "remote"];
    family(
        "qmail_deliveries_running",
        "gauge",
        "Deliveries in progress, by channel.",
        &chans
            .iter()
            .enumerate()
            .map(|(i, ch)| {
                (
                    format!("{{channel=\"{ch}\"}}"),
                    c.running[i].load(Ordering::Relaxed),
                )
            })
            .collect::<Vec<_>>(),
    );
    let mut dl = Vec::new();
    for (i, ch) in chans.iter().enumerate() {
        for (j, o) in ["success", "failure", "deferral"].iter().enumerate() {
            dl.push((
                format!("{{channel=\"{ch}\",outcome=\"{o}\"}}"),
                c.deliveries[i][j].load(Ordering::Relaxed),
            ));
        }
    }
    family(
        "qmail_deliveries_total",
        "counter",
        "Delivery results since qmail-send started, by channel and outcome.",
        &dl,
    );
    family(
        "qmail_bounces_total",
        "counter",
        "Bounce messages injected since qmail-send started.",
        &one(c.bounces.load(Ordering::Relaxed)),
    );
    family(
        "qmail_send_start_time_seconds",
        "gauge",
        "When qmail-send started (Unix time).",
        &one(c.started.load(Ordering::Relaxed)),
    );
    s.push_str(&format!(
        "# HELP qmail_metrics_scan_duration_seconds Time the queue scan took.\n\
         # TYPE qmail_metrics_scan_duration_seconds gauge\n\
         qmail_metrics_scan_duration_seconds {:.6}\n",
        scan.as_secs_f64()
    ));
    s
}

/// Write `text` to `path` via a temporary name, fsync, rename.
pub fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics.prom".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Start the writer thread for the queue at `q`; the counters qmail-send updates.
pub fn start(q: PathBuf) -> Arc<Counters> {
    let c = Arc::new(Counters::default());
    c.started.store(now_secs(), Ordering::Relaxed);
    c.dirty.store(true, Ordering::Relaxed);
    let out = path();
    let q = if q.is_absolute() {
        q
    } else {
        std::env::current_dir().map(|d| d.join(&q)).unwrap_or(q)
    };
    let c2 = Arc::clone(&c);
    let _ = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let mut last: Option<Instant> = None;
            loop {
                let due = match last {
                    None => true,
                    Some(l) => {
                        let e = l.elapsed();
                        (c2.dirty.load(Ordering::Relaxed) && e >= Duration::from_secs(2))
                            || e >= Duration::from_secs(30)
                    }
                };
                if due {
                    c2.dirty.store(false, Ordering::Relaxed);
                    let t0 = Instant::now();
                    let d = Depth::scan(&q);
                    let text = render(&d, &c2, now_secs(), t0.elapsed());
                    // An unwritable path is retried on the next round; qmail-send's log is
                    // not ours to write from a thread.
                    let _ = write_file(&out, &text);
                    last = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_prometheus_text() {
        let c = Counters::default();
        c.delivery(1, Outcome::Deferral);
        c.delivery(1, Outcome::Deferral);
        c.bounce();
        let d = Depth {
            messages: 3,
            todo: 1,
            local: 1,
            remote: 2,
            bouncing: 0,
            held: 1,
            oldest: Some(100),
        };
        let t = render(&d, &c, 160, Duration::from_millis(3));
        assert!(t.contains("qmail_queue_messages 3\n"));
        assert!(t.contains("qmail_queue_pending{channel=\"remote\"} 2\n"));
        assert!(t.contains("qmail_deliveries_total{channel=\"remote\",outcome=\"deferral\"} 2\n"));
        assert!(t.contains("qmail_bounces_total 1\n"));
        assert!(t.contains("qmail_queue_oldest_message_age_seconds 60\n"));
        assert!(t.ends_with('\n'));
    }
}
