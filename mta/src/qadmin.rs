//! qmail-qadmin: list, show, delete, retry, hold and release queued mail, safely while
//! qmail-send runs (qmHandle's job, without stopping qmail-send).
//!
//! # Commands
//! `qmail-qadmin [--json] [--timeout SECS] COMMAND`:
//! * `list [--sender P] [--recipient P] [--subject P] [--header 'Name: P']` — every message (or
//!   those matching all the given patterns): id, age, size, state (`todo` = not yet
//!   preprocessed, `queued`, `incomplete` = mess only, being queued or a leftover), `held`,
//!   `bouncing`, sender, subject, and each recipient with its channel (local/remote; `todo`
//!   before preprocessing) and `done`/`pending`.
//! * `show ID` — the envelope as above, next attempt per channel, then the message (headers
//!   and body) as queued.
//! * `delete ID… | --sender P | --recipient P | --subject P | --header 'Name: P'` — deletes
//!   the given messages, or every message matching all the patterns (a recipient pattern
//!   matches a message when any of its still pending recipients matches). What is already
//!   delivered stays delivered; what is left goes, without a bounce.
//! * `retry [--domain D]` — clears `queue/lock/tcpto` (qmail-tcpok; the cache holds addresses,
//!   so it is cleared entirely even with `--domain`) and makes deferred deliveries due now:
//!   all of them (like SIGALRM), or only remote ones with a pending recipient in domain D.
//! * `hold ID…` / `release ID…` — a held message stays in the queue, and qmail-send starts no
//!   delivery of it until it is released (deliveries already running finish).
//! * `init` — creates `queue/qadmin` (any changing command does so too).
//!
//! Patterns are shell-style (`*`, `?`, `[a-z]`, `[!x]`, `\` escape), case-insensitive, and
//! match the whole text (`--subject '*invoice*'`). Exit codes: 0 done; 100 bad input (unknown
//! command or id, malformed pattern, nothing selected by a delete); 111 a system problem (queue
//! unreadable or not ours, qmail-send not answering).
//!
//! # The protocol with qmail-send
//! Directory `QMAILHOME/queue/qadmin/` (owner qmails, mode 0700; created by qmail-qadmin as
//! root, or by qmail-send itself in user mode) with `tmp/ new/ cur/ done/ hold/ delivered/`.
//! 1. qmail-qadmin reads the queue directly, picks the messages and names each as `ID GEN`,
//!    GEN being the mess file's mtime in nanoseconds (ids are inode numbers and get reused: a
//!    request never touches a newer message that got the same id).
//! 2. It takes `lock/sendmutex` with a non-blocking flock. Success means no qmail-send runs:
//!    it does the work itself under the lock (qmail-send cannot start meanwhile), writing the
//!    request to `cur/` first so that a crash leaves it to be finished.
//! 3. Otherwise it writes the request (`delete|hold|release` then `ID GEN` lines, or
//!    `retry [DOMAIN]`) to `tmp/NAME`, fsyncs, renames it to `new/NAME` and pulls
//!    `lock/trigger`. qmail-send checks `new/` every time round its main loop: it renames the
//!    request to `cur/NAME` (claiming it), does it between deliveries, writes the result to
//!    `done/NAME` (`ID deleted|gone|held|released|error …`, `retry N`) and removes `cur/NAME`.
//!    qmail-qadmin waits for `done/NAME`, prints it and removes it. If qmail-send does not claim
//!    the request within the timeout (default 30 s), qmail-qadmin removes `new/NAME` again —
//!    the queue is untouched — and says so. If qmail-send exits meanwhile, qmail-qadmin gets
//!    the lock and does it itself. Requests left in `cur/` or `new/` by a crash are done at
//!    qmail-send's next start.
//! 4. Delete: a message with no delivery running (and no delivery pass in progress) is removed
//!    at once, in this order: `todo/N` (via qmail-clean), `info/S/N`, then the todo and info
//!    directories are fsynced — from here on nothing will deliver it, even after a crash —
//!    then `local/S/N`, `remote/S/N`, `bounce/N`, our markers, and last `intd/N` and
//!    `mess/S/N` (qmail-clean's `foop`). A crash in between leaves files nothing delivers; the
//!    request in `cur/` finishes the job at the next start, and a lone mess is removed by
//!    qmail-send's 36-hour cleanup anyway. A message with deliveries running is marked: no new
//!    delivery of it starts, no bounce is sent for it, and once the last running delivery
//!    reports, it is removed as above. qmail-send answers once qmail-clean has removed the mess
//!    files too (so `qmail-qstat` agrees as soon as qmail-qadmin returns); until then, and
//!    as long as a deleted id still names the same message, it neither preprocesses (a todo
//!    entry qmail-clean has not removed yet) nor starts it. qmail-send logs
//!    `qadmin: deleted msg N` and `end msg N` (so qmailanalog's matchup closes it).
//! 5. Hold: `hold/N` (content GEN) marks the message; qmail-send keeps the set in memory (read
//!    at start, stale markers dropped) and its `fill` drops queue entries of held messages
//!    instead of starting them. Release removes the marker and puts the message back on its
//!    channels' queues, due now. Holding does not stop the clock: queuelifetime counts from
//!    the message's birth, so a message released after it is bounced at its next attempt.
//! 6. Retry: qmail-send moves the chosen queue entries to now (held ones excepted).
//! 7. `delivered/N` (birth, then `CHANNEL ADDR` lines) remembers recipients delivered on one
//!    channel while the other channel still has work, because qmail-send removes a channel
//!    file once its recipients are done; `list`/`show` use it to show partly delivered
//!    messages.
//!
//! Differences from qmHandle on purpose: qmail-send is never stopped; requests are matched
//! by generation; patterns are globs, not Perl regexes. `qmail-qread` and `qmail-qstat` are
//! unchanged and agree with `list` (qmail-qstat's "messages in queue" = entries of `list`).

pub mod agent;
pub mod view;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use agent::Request;
use view::{Msg, Pattern};

#[derive(Parser, Debug)]
#[command(
    name = "qmail-qadmin",
    about = "list, show, delete, retry, hold and release queued mail"
)]
struct Cli {
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for qmail-send to take a request, in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug, Default)]
struct Select {
    /// Sender pattern.
    #[arg(long)]
    sender: Option<String>,
    /// Recipient pattern (any pending recipient).
    #[arg(long)]
    recipient: Option<String>,
    /// Subject pattern.
    #[arg(long)]
    subject: Option<String>,
    /// 'Name: pattern' for any header field.
    #[arg(long)]
    header: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// List queued messages.
    List(Select),
    /// Show one message: envelope, headers, body.
    Show { id: String },
    /// Delete messages by id or by pattern.
    Delete {
        ids: Vec<String>,
        #[command(flatten)]
        sel: Select,
    },
    /// Retry deferred deliveries now.
    Retry {
        #[arg(long)]
        domain: Option<String>,
    },
    /// Keep messages in the queue without delivering them.
    Hold { ids: Vec<String> },
    /// Release held messages.
    Release { ids: Vec<String> },
    /// Create queue/qadmin.
    Init,
}

/// An error with its exit code.
struct Fail(i32, String);

fn bad(m: impl Into<String>) -> Fail {
    Fail(100, m.into())
}
fn sys(m: impl Into<String>) -> Fail {
    Fail(111, m.into())
}

struct Filter {
    sender: Option<Pattern>,
    recipient: Option<Pattern>,
    subject: Option<Pattern>,
    header: Option<(String, Pattern)>,
}

impl Filter {
    fn new(s: &Select) -> Result<Filter, Fail> {
        let p = |o: &Option<String>, what: &str| -> Result<Option<Pattern>, Fail> {
            o.as_deref()
                .map(|x| Pattern::new(x).map_err(|e| bad(format!("bad {what} pattern: {e}"))))
                .transpose()
        };
        let header = match &s.header {
            None => None,
            Some(h) => {
                let Some((n, v)) = h.split_once(':') else {
                    return Err(bad(format!("bad --header {h:?}: expected 'Name: pattern'")));
                };
                let n = n.trim();
                if n.is_empty() || n.contains(|c: char| c.is_whitespace() || c.is_control()) {
                    return Err(bad(format!("bad --header {h:?}: bad field name")));
                }
                let pat = Pattern::new(v.trim())
                    .map_err(|e| bad(format!("bad --header pattern: {e}")))?;
                Some((n.to_string(), pat))
            }
        };
        Ok(Filter {
            sender: p(&s.sender, "--sender")?,
            recipient: p(&s.recipient, "--recipient")?,
            subject: p(&s.subject, "--subject")?,
            header,
        })
    }
    fn empty(&self) -> bool {
        self.sender.is_none()
            && self.recipient.is_none()
            && self.subject.is_none()
            && self.header.is_none()
    }
    fn needs_headers(&self) -> bool {
        self.subject.is_some() || self.header.is_some()
    }
    fn matches(&self, m: &Msg) -> bool {
        self.sender.as_ref().is_none_or(|p| p.matches(&m.sender))
            && self
                .recipient
                .as_ref()
                .is_none_or(|p| m.rcpts.iter().any(|r| !r.done && p.matches(&r.addr)))
            && self.subject.as_ref().is_none_or(|p| p.matches(m.subject()))
            && self.header.as_ref().is_none_or(|(n, p)| {
                m.headers
                    .iter()
                    .any(|(hn, hv)| hn.eq_ignore_ascii_case(n) && p.matches(hv))
            })
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn msg_json(m: &Msg, t: u64) -> String {
    let rcpts: Vec<String> = m
        .rcpts
        .iter()
        .map(|r| {
            format!(
                "{{\"channel\":{},\"address\":{},\"state\":{}}}",
                json_str(r.chan),
                json_str(&r.addr),
                json_str(if r.done { "done" } else { "pending" })
            )
        })
        .collect();
    let nt = |o: Option<u64>| o.map_or("null".to_string(), |v| v.to_string());
    format!(
        "{{\"id\":{},\"age\":{},\"birth\":{},\"size\":{},\"state\":{},\"held\":{},\"bouncing\":{},\"sender\":{},\"subject\":{},\"next_try\":{{\"local\":{},\"remote\":{}}},\"recipients\":[{}]}}",
        m.id,
        t.saturating_sub(m.birth),
        m.birth,
        m.size,
        json_str(m.state),
        m.held,
        m.bouncing,
        json_str(&m.sender),
        json_str(m.subject()),
        nt(m.next_try[0]),
        nt(m.next_try[1]),
        rcpts.join(",")
    )
}

fn age(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn size(b: u64) -> String {
    match b {
        0..10_000 => format!("{b}"),
        10_000..10_000_000 => format!("{}K", b / 1024),
        _ => format!("{}M", b / (1024 * 1024)),
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

fn msg_text(m: &Msg, t: u64, out: &mut String) {
    let mut flags = m.state.to_string();
    if m.held {
        flags.push_str(",held");
    }
    if m.bouncing {
        flags.push_str(",bouncing");
    }
    let done = m.rcpts.len() - m.pending();
    out.push_str(&format!(
        "{:<10} {:>7} {:>6}  {:<16} <{}>  {}/{} done  {}\n",
        m.id,
        age(t.saturating_sub(m.birth)),
        size(m.size),
        flags,
        printable(&m.sender),
        done,
        m.rcpts.len(),
        json_str(&printable(m.subject()))
    ));
    for r in &m.rcpts {
        out.push_str(&format!(
            "    {:<6} {:<7} {}\n",
            r.chan,
            if r.done { "done" } else { "pending" },
            printable(&r.addr)
        ));
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<u64>, Fail> {
    ids.iter()
        .map(|s| {
            s.trim_start_matches('#')
                .parse::<u64>()
                .map_err(|_| bad(format!("bad message id {s:?}: expected a number")))
        })
        .collect()
}

/// The messages named by `ids`, each with its generation; unknown ids are an error.
fn lookup(q: &Path, ids: &[String]) -> Result<Vec<Msg>, Fail> {
    if ids.is_empty() {
        return Err(bad("no message id given"));
    }
    let mut v = Vec::new();
    for id in parse_ids(ids)? {
        match view::one(q, id).map_err(sys)? {
            Some(m) => v.push(m),
            None => return Err(bad(format!("no message {id} in the queue"))),
        }
    }
    Ok(v)
}

fn ids_gens(ms: &[Msg]) -> Vec<(u64, u64)> {
    ms.iter().map(|m| (m.id, m.generation)).collect()
}

/// The qmail-send user's ids, for queue/qadmin, when we are root.
fn owner() -> Option<(u32, u32)> {
    if !crate::ids::running_as_root() {
        return None;
    }
    let ids = crate::ids::QmailIds::load().ok()?;
    Some((ids.uid("qmails")?, ids.gid("qmail")?))
}

fn prepare(q: &Path) -> Result<std::fs::File, Fail> {
    let mp = q.join("lock/sendmutex");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&mp)
        .map_err(|e| {
            sys(format!(
                "unable to open {}: {e} (only root or the qmail-send user may change the queue)",
                mp.display()
            ))
        })?;
    agent::ensure_dirs(q, owner()).map_err(|e| {
        sys(format!(
            "unable to create {}: {e}",
            q.join(agent::DIR).display()
        ))
    })?;
    Ok(f)
}

fn try_lock(f: &std::fs::File) -> Option<nix::fcntl::Flock<std::fs::File>> {
    let f = f.try_clone().ok()?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}

/// Hand `req` to qmail-send, or do it here when qmail-send is not running.
fn submit(q: &Path, req: &Request, timeout: u64) -> Result<Vec<String>, Fail> {
    let mutex = prepare(q)?;
    if let Some(_lock) = try_lock(&mutex) {
        return Ok(agent::run_direct(q, req));
    }
    let name = format!(
        "{}.{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
        std::process::id()
    );
    agent::write_atomic(q, "new", &name, req.encode().as_bytes(), 0o644).map_err(|e| {
        sys(format!(
            "unable to write a request to {}: {e}",
            q.join(agent::DIR).join("new").display()
        ))
    })?;
    let trigger = q.join("lock/trigger");
    crate::queue::pull_trigger(&trigger);
    let newp = q.join(format!("{}/new/{name}", agent::DIR));
    let donep = q.join(format!("{}/done/{name}", agent::DIR));
    let start = Instant::now();
    let mut pulled = Instant::now();
    let mut claimed = false;
    loop {
        if let Ok(t) = std::fs::read_to_string(&donep) {
            let _ = std::fs::remove_file(&donep);
            return Ok(t.lines().map(str::to_string).collect());
        }
        if !claimed && newp.exists() {
            if let Some(_lock) = try_lock(&mutex) {
                // qmail-send has gone: withdraw and do it here.
                if std::fs::remove_file(&newp).is_ok() {
                    return Ok(agent::run_direct(q, req));
                }
            }
        } else {
            claimed = true;
        }
        if start.elapsed() >= Duration::from_secs(timeout) {
            if !claimed && std::fs::remove_file(&newp).is_ok() {
                return Err(sys(format!(
                    "{} is locked (qmail-send runs) but the request was not taken within {timeout} s; request withdrawn, queue unchanged",
                    q.join("lock/sendmutex").display()
                )));
            }
            if start.elapsed() >= Duration::from_secs(timeout.saturating_mul(4).max(60)) {
                return Err(sys(format!(
                    "qmail-send took the request {name} but has not finished it; it will (see {})",
                    donep.display()
                )));
            }
        }
        if pulled.elapsed() >= Duration::from_secs(1) {
            crate::queue::pull_trigger(&trigger);
            pulled = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn clear_tcpto(q: &Path) -> Result<(), Fail> {
    let p = q.join("lock/tcpto");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .map_err(|e| sys(format!("unable to open {}: {e}", p.display())))?;
    let mut f = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| sys(format!("unable to lock {}: {e}", p.display())))?;
    f.write_all(&[0u8; 1024])
        .map_err(|e| sys(format!("unable to clear {}: {e}", p.display())))
}

/// Print the results of a request; an error result makes the exit code 111.
fn report(json: bool, verb: &str, lines: &[String], out: &mut String) -> i32 {
    let mut ok: Vec<u64> = Vec::new();
    let mut gone: Vec<u64> = Vec::new();
    let mut errs: Vec<String> = Vec::new();
    let mut retried = None;
    for l in lines {
        let mut w = l.splitn(2, ' ');
        let (a, b) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
        match (a.parse::<u64>(), b) {
            (Ok(id), "gone") => gone.push(id),
            (Ok(id), s) if s == "deleted" || s == "held" || s == "released" => ok.push(id),
            _ if a == "retry" => retried = b.parse::<u64>().ok(),
            _ => errs.push(l.clone()),
        }
    }
    let past = match verb {
        "delete" => "deleted",
        "hold" => "held",
        "release" => "released",
        _ => "retried",
    };
    if json {
        let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        out.push_str(&format!(
            "{{\"{past}\":{},\"gone\":[{}],\"errors\":[{}]}}\n",
            match retried {
                Some(n) => n.to_string(),
                None => format!("[{}]", list(&ok)),
            },
            list(&gone),
            errs.iter()
                .map(|e| json_str(e))
                .collect::<Vec<_>>()
                .join(",")
        ));
    } else {
        match retried {
            Some(n) => out.push_str(&format!("{n} queue entries made due now\n")),
            None => {
                out.push_str(&format!("{past} {} message(s)", ok.len()));
                if !ok.is_empty() && ok.len() <= 20 {
                    let ids: Vec<String> = ok.iter().map(u64::to_string).collect();
                    out.push_str(&format!(": {}", ids.join(" ")));
                }
                out.push('\n');
            }
        }
        if !gone.is_empty() {
            out.push_str(&format!(
                "{} message(s) had left the queue meanwhile\n",
                gone.len()
            ));
        }
        for e in &errs {
            out.push_str(&format!("error: {e}\n"));
        }
    }
    if errs.is_empty() { 0 } else { 111 }
}

fn run(cli: Cli, q: &Path, out: &mut String) -> Result<i32, Fail> {
    let t = now();
    match cli.cmd {
        Cmd::Init => {
            prepare(q)?;
            out.push_str(&format!("{} ready\n", q.join(agent::DIR).display()));
            Ok(0)
        }
        Cmd::List(sel) => {
            let f = Filter::new(&sel)?;
            let all = view::scan(q, true).map_err(sys)?;
            let ms: Vec<&Msg> = all.iter().filter(|m| f.matches(m)).collect();
            if cli.json {
                let v: Vec<String> = ms.iter().map(|m| msg_json(m, t)).collect();
                out.push_str(&format!("{{\"messages\":[{}]}}\n", v.join(",\n")));
            } else {
                let held = ms.iter().filter(|m| m.held).count();
                let todo = ms.iter().filter(|m| m.state == "todo").count();
                out.push_str(&format!(
                    "{:<10} {:>7} {:>6}  {:<16} SENDER  DONE  SUBJECT\n",
                    "ID", "AGE", "SIZE", "STATE"
                ));
                for m in &ms {
                    msg_text(m, t, out);
                }
                out.push_str(&format!(
                    "-- {} message(s), {} not yet preprocessed, {} held\n",
                    ms.len(),
                    todo,
                    held
                ));
            }
            Ok(0)
        }
        Cmd::Show { id } => {
            let m = lookup(q, &[id])?.remove(0);
            let body = std::fs::read(agent::split_path(q, "mess", m.id))
                .map_err(|e| sys(format!("unable to read message {}: {e}", m.id)))?;
            let body = String::from_utf8_lossy(&body);
            if cli.json {
                let j = msg_json(&m, t);
                let hdrs: Vec<String> = m
                    .headers
                    .iter()
                    .map(|(n, v)| format!("[{},{}]", json_str(n), json_str(v)))
                    .collect();
                out.push_str(&format!(
                    "{},\"headers\":[{}],\"message\":{}}}\n",
                    j.trim_end_matches('}'),
                    hdrs.join(","),
                    json_str(&body)
                ));
            } else {
                msg_text(&m, t, out);
                for (i, c) in ["local", "remote"].iter().enumerate() {
                    if let Some(nt) = m.next_try[i] {
                        out.push_str(&format!(
                            "next {c} attempt: {}\n",
                            if nt <= t {
                                "due now".to_string()
                            } else {
                                format!("in {}", age(nt - t))
                            }
                        ));
                    }
                }
                out.push_str("----\n");
                out.push_str(&body);
                if !body.ends_with('\n') {
                    out.push('\n');
                }
            }
            Ok(0)
        }
        Cmd::Delete { ids, sel } => {
            let f = Filter::new(&sel)?;
            let ms = if !ids.is_empty() {
                if !f.empty() {
                    return Err(bad("give message ids or patterns, not both"));
                }
                lookup(q, &ids)?
            } else {
                if f.empty() {
                    return Err(bad(
                        "delete what? give message ids, --sender, --recipient, --subject or --header",
                    ));
                }
                let all = view::scan(q, f.needs_headers()).map_err(sys)?;
                let ms: Vec<Msg> = all.into_iter().filter(|m| f.matches(m)).collect();
                if ms.is_empty() {
                    return Err(bad("no message matches"));
                }
                ms
            };
            let r = submit(q, &Request::Delete(ids_gens(&ms)), cli.timeout)?;
            Ok(report(cli.json, "delete", &r, out))
        }
        Cmd::Hold { ids } => {
            let ms = lookup(q, &ids)?;
            let r = submit(q, &Request::Hold(ids_gens(&ms)), cli.timeout)?;
            Ok(report(cli.json, "hold", &r, out))
        }
        Cmd::Release { ids } => {
            let ms = lookup(q, &ids)?;
            let r = submit(q, &Request::Release(ids_gens(&ms)), cli.timeout)?;
            Ok(report(cli.json, "release", &r, out))
        }
        Cmd::Retry { domain } => {
            if let Some(d) = &domain
                && (d.is_empty()
                    || d.contains(|c: char| {
                        c.is_whitespace() || c.is_control() || c == '/' || c == '@'
                    }))
            {
                return Err(bad(format!("bad domain {d:?}")));
            }
            prepare(q)?;
            clear_tcpto(q)?;
            let r = submit(q, &Request::Retry(domain), cli.timeout)?;
            Ok(report(cli.json, "retry", &r, out))
        }
    }
}

/// qmail-qadmin's main.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 100 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let json = cli.json;
    let q: PathBuf = crate::home::queue_dir();
    let mut out = String::new();
    let code = match run(cli, &q, &mut out) {
        Ok(c) => c,
        Err(Fail(code, msg)) => {
            if json {
                println!("{{\"error\":{}}}", json_str(&msg));
            }
            eprintln!("qmail-qadmin: fatal: {msg}");
            code
        }
    };
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.as_bytes());
    let _ = so.flush();
    code
}
