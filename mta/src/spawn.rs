//! The spawner side of qmail-send's delivery protocol (qmail's spawn.c), shared by qmail-lspawn
//! and qmail-rspawn.
//!
//! At start the spawner writes one byte, its concurrency limit (120). Each command from
//! qmail-send on fd 0 is a slot byte, then `messid\0` (a path under queue/mess such as
//! `12/786433`), `sender\0` and `recipient\0`; the answer on fd 1 is the slot byte and a report
//! (`K`, `Z` or `D` + text) ending in `\0`. Checks made here, with qmail's texts: the slot must
//! be free, the messid numeric, the recipient must contain '@', the message must open and be
//! owned by qmailq (or by root or ourselves: nobody else can create such files).
//!
//! Extension (ours, remote channel only): a *batch command* hands several recipients of one
//! message to one delivery. It is a slot byte, `messid\0`, `sender\0`, then an EMPTY recipient
//! field `\0` (impossible in qmail's protocol, where a recipient always contains '@', so the
//! two forms cannot be confused), the decimal count `N\0` (1..=[`BATCH_MAX`]) and the `N`
//! recipients, each `recipient\0`. The answer is `N` ordinary reports for that slot (slot byte,
//! `K`/`Z`/`D` + text, `\0`), one per recipient in command order, written together; the slot is
//! free again once the last of them is written. The per-recipient checks (no '@') answer only
//! that recipient; a bad messid or an unopenable message answers every one. A spawner whose
//! delivery method does not batch (qmail-lspawn) answers each recipient of a batch with
//! "ZInternal error: this spawner takes one recipient per command. (#4.3.5)". The one-recipient
//! command and its answer are exactly qmail's, and qmail-send only sends batch commands to
//! qmail-rspawn when `control/batchremote` is above 1 (see [`crate::send`]), so setting it to 1
//! gives qmail's protocol byte for byte (e.g. for a foreign qmail-rspawn).
//!
//! Difference from qmail on purpose: each delivery is handled by its own thread (which runs the
//! child and waits for it) instead of one select loop; the protocol is the same.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};

mod vfork;

/// conf-spawn: the most deliveries one spawner runs at once.
pub const LIMIT: u8 = 120;

/// The most recipients one batch command may carry.
pub const BATCH_MAX: usize = 1000;

/// The answer to each recipient of a batch sent to a spawner that does not batch.
pub const NO_BATCH: &[u8] =
    b"ZInternal error: this spawner takes one recipient per command. (#4.3.5)\n";

/// A delivery method: given the opened message, the sender and the recipient, produce the
/// report (`K`/`Z`/`D` + text, no `\0`).
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, mess: File, sender: &[u8], recip: &[u8]) -> Vec<u8>;

    /// Deliver one message to several recipients at once (a batch command): one report per
    /// recipient, in order. The default refuses batches for now (temporary failure).
    fn deliver_batch(&self, mess: File, sender: &[u8], recips: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let _ = (mess, sender);
        recips.iter().map(|_| NO_BATCH.to_vec()).collect()
    }
}

/// What a child printed and how it ended.
pub struct ChildOutcome {
    pub output: Vec<u8>,
    /// true when more than `cap` bytes were printed (the rest was read and dropped).
    pub truncated: bool,
    pub status: ExitStatus,
}

/// Run `cmd` with the message on stdin and stdout+stderr captured into one pipe, keeping at
/// most `cap` bytes of output. An error means the program could not be started.
pub fn run_child(mut cmd: Command, mess: File, cap: usize) -> io::Result<ChildOutcome> {
    let (reader, writer) = io::pipe()?;
    let writer2 = writer.try_clone()?;
    cmd.stdin(Stdio::from(mess))
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2));
    let mut child = cmd.spawn()?;
    // Our copies of the pipe's write end live in `cmd`; drop them so EOF comes.
    drop(cmd);
    let (output, truncated) = collect(reader, cap);
    let status = loop {
        match child.wait() {
            Ok(s) => break s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    Ok(ChildOutcome {
        output,
        truncated,
        status,
    })
}

/// Like [`run_child`] for a program given by path and argv (argv[0] first), started with
/// [`vfork::spawn`] (no copy of this process; as `ids` = (uid, gid) when given).
pub fn run_program(
    path: &std::path::Path,
    argv: &[&[u8]],
    ids: Option<(u32, u32)>,
    mess: File,
    cap: usize,
) -> io::Result<ChildOutcome> {
    use std::os::fd::AsFd;
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = io::pipe()?;
    let pid = vfork::spawn(path, argv, ids, mess.as_fd(), writer.as_fd())?;
    // The child has its own copies now; ours must go so that EOF comes.
    drop(writer);
    drop(mess);
    let (output, truncated) = collect(reader, cap);
    let status = loop {
        let mut st = 0;
        // SAFETY: waiting for the child we started; `st` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            break ExitStatus::from_raw(st);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    Ok(ChildOutcome {
        output,
        truncated,
        status,
    })
}

/// Read a child's output to EOF, keeping at most `cap` bytes; true when some was dropped.
fn collect(mut reader: io::PipeReader, cap: usize) -> (Vec<u8>, bool) {
    let mut output = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                let room = cap.saturating_sub(output.len());
                if k > room {
                    truncated = true;
                }
                output.extend_from_slice(&buf[..k.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (output, truncated)
}

fn numeric_messid(m: &[u8]) -> bool {
    let mut parts = m.split(|&b| b == b'/');
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !a.is_empty() && !b.is_empty() && a.iter().chain(b).all(u8::is_ascii_digit)
}

fn owner_ok(md: &std::fs::Metadata) -> bool {
    let uid = md.uid();
    if uid == 0 || uid == nix::unistd::geteuid().as_raw() {
        return true;
    }
    // Looked up once: the ids do not change while we run.
    static QMAILQ: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    QMAILQ
        .get_or_init(|| {
            crate::ids::QmailIds::load()
                .ok()
                .and_then(|i| i.uid("qmailq"))
        })
        .is_some_and(|q| q == uid)
}

const NO_HOST: &[u8] = b"DSorry, address must include host name. (#5.1.3)\n";

/// Check one command and open its message; `Err` is the report to send back at once.
fn prepare(messid: &[u8], recip: &[u8]) -> Result<File, Vec<u8>> {
    if !numeric_messid(messid) {
        return Err(b"DInternal error: messid has nonnumerics. (#5.3.5)\n".to_vec());
    }
    if !recip.contains(&b'@') {
        return Err(NO_HOST.to_vec());
    }
    open_mess(messid)
}

/// Handle a batch command: one report per recipient, in order.
fn run_batch(d: &dyn Deliver, messid: &[u8], sender: &[u8], recips: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if !numeric_messid(messid) {
        let r = b"DInternal error: messid has nonnumerics. (#5.3.5)\n".to_vec();
        return vec![r; recips.len()];
    }
    let good: Vec<Vec<u8>> = recips
        .iter()
        .filter(|r| r.contains(&b'@'))
        .cloned()
        .collect();
    let mut done = if good.is_empty() {
        Vec::new()
    } else {
        match open_mess(messid) {
            Ok(f) => d.deliver_batch(f, sender, &good),
            Err(r) => vec![r; good.len()],
        }
    }
    .into_iter();
    recips
        .iter()
        .map(|r| {
            if r.contains(&b'@') {
                done.next().unwrap_or_else(|| {
                    b"ZInternal error: no report for recipient. (#4.3.5)\n".to_vec()
                })
            } else {
                NO_HOST.to_vec()
            }
        })
        .collect()
}

/// Open the message `messid` (relative to queue/mess) and check its owner.
fn open_mess(messid: &[u8]) -> Result<File, Vec<u8>> {
    let path = std::ffi::OsStr::new(std::str::from_utf8(messid).unwrap_or(""));
    let f = File::open(path)
        .map_err(|_| b"Zqmail-spawn unable to open message. (#4.3.0)\n".to_vec())?;
    let md = f
        .metadata()
        .map_err(|_| b"Zqmail-spawn unable to open message. (#4.3.0)\n".to_vec())?;
    if !md.is_file() || !owner_ok(&md) {
        return Err(b"ZSorry, message has wrong owner. (#4.3.5)\n".to_vec());
    }
    Ok(f)
}

struct Shared {
    out: Mutex<File>,
    busy: Mutex<HashSet<u8>>,
    idle: Condvar,
}

impl Shared {
    fn report(&self, slot: u8, report: &[u8]) {
        self.reports(slot, std::slice::from_ref(&report.to_vec()));
    }

    /// Write several reports for one slot in one go (a batch's answers stay together).
    fn reports(&self, slot: u8, reports: &[Vec<u8>]) {
        let mut msg = Vec::new();
        for report in reports {
            msg.push(slot);
            // A report never contains NUL: it ends the record.
            msg.extend(report.iter().map(|&b| if b == 0 { b'_' } else { b }));
            msg.push(0);
        }
        if let Ok(mut o) = self.out.lock() {
            let _ = o.write_all(&msg);
        }
    }
}

/// The spawner's main loop; `name` is used in error messages. Returns the exit code.
pub fn main(name: &str, deliverer: Arc<dyn Deliver>) -> i32 {
    let home = crate::home::qmail_home();
    if std::env::set_current_dir(home.join("queue").join("mess")).is_err() {
        eprintln!("{name}: fatal: unable to switch to queue/mess");
        return 111;
    }
    // SAFETY: fds 0 and 1 were wired by qmail-start and are used only here.
    let input = unsafe { File::from_raw_fd(0) };
    let mut out = unsafe { File::from_raw_fd(1) };
    if out.write_all(&[LIMIT]).is_err() {
        return 111;
    }
    let shared = Arc::new(Shared {
        out: Mutex::new(out),
        busy: Mutex::new(HashSet::new()),
        idle: Condvar::new(),
    });
    let mut input = BufReader::new(input);
    fn field(input: &mut BufReader<File>) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        match input.read_until(0, &mut v) {
            Ok(_) if v.last() == Some(&0) => {
                v.pop();
                Some(v)
            }
            _ => None,
        }
    }
    loop {
        let mut slot = [0u8; 1];
        match input.read(&mut slot) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let slot = slot[0];
        let (Some(messid), Some(sender), Some(recip)) =
            (field(&mut input), field(&mut input), field(&mut input))
        else {
            break;
        };
        // An empty recipient starts a batch: count, then the recipients.
        let batch = if recip.is_empty() {
            let count = field(&mut input)
                .and_then(|c| std::str::from_utf8(&c).ok()?.parse::<usize>().ok())
                .filter(|n| (1..=BATCH_MAX).contains(n));
            let Some(count) = count else {
                eprintln!("{name}: fatal: bad recipient count in a batch command");
                break;
            };
            let mut v = Vec::with_capacity(count);
            for _ in 0..count {
                match field(&mut input) {
                    Some(r) => v.push(r),
                    None => break,
                }
            }
            if v.len() < count {
                break;
            }
            Some(v)
        } else {
            None
        };
        let answer_all = |text: &[u8]| match &batch {
            Some(v) => shared.reports(slot, &vec![text.to_vec(); v.len()]),
            None => shared.report(slot, text),
        };
        if slot >= LIMIT {
            answer_all(b"ZInternal error: delnum is out of range. (#4.3.5)\n");
            continue;
        }
        {
            let Ok(mut busy) = shared.busy.lock() else {
                return 111;
            };
            if !busy.insert(slot) {
                drop(busy);
                answer_all(b"ZInternal error: delnum in use. (#4.3.5)\n");
                continue;
            }
        }
        let sh = Arc::clone(&shared);
        let d = Arc::clone(&deliverer);
        let n = batch.as_ref().map(Vec::len);
        let spawned = std::thread::Builder::new().spawn(move || {
            let reports = match batch {
                Some(recips) => run_batch(&*d, &messid, &sender, &recips),
                None => vec![match prepare(&messid, &recip) {
                    Ok(f) => d.deliver(f, &sender, &recip),
                    Err(r) => r,
                }],
            };
            if let Ok(mut busy) = sh.busy.lock() {
                busy.remove(&slot);
            }
            sh.reports(slot, &reports);
            sh.idle.notify_all();
        });
        if spawned.is_err() {
            if let Ok(mut busy) = shared.busy.lock() {
                busy.remove(&slot);
            }
            let r = b"Zqmail-spawn out of memory. (#4.3.0)\n".to_vec();
            shared.reports(slot, &vec![r; n.unwrap_or(1)]);
        }
    }
    // qmail-send has gone: let running deliveries finish and report, then leave.
    if let Ok(mut busy) = shared.busy.lock() {
        while !busy.is_empty() {
            busy = match shared.idle.wait(busy) {
                Ok(b) => b,
                Err(_) => break,
            };
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messid_checks() {
        assert!(numeric_messid(b"12/786433"));
        assert!(!numeric_messid(b"12/78a"));
        assert!(!numeric_messid(b"../x"));
        assert!(!numeric_messid(b"1/2/3"));
        assert!(!numeric_messid(b"/2"));
    }

    struct Echo;
    impl Deliver for Echo {
        fn deliver(&self, _: File, _: &[u8], _: &[u8]) -> Vec<u8> {
            b"K".to_vec()
        }
        fn deliver_batch(&self, _: File, s: &[u8], r: &[Vec<u8>]) -> Vec<Vec<u8>> {
            r.iter()
                .map(|r| [b"K", s, b" ", r.as_slice()].concat())
                .collect()
        }
    }

    #[test]
    fn batch_answers_every_recipient_in_order() {
        let rs = [b"a@x".to_vec(), b"nohost".to_vec(), b"b@x".to_vec()];
        let bad = run_batch(&Echo, b"1/x", b"s", &rs);
        assert_eq!(bad.len(), 3);
        assert!(
            bad.iter()
                .all(|r| r.starts_with(b"DInternal error: messid"))
        );
        // A message that cannot be opened: temporary for the good ones, D for the bad one.
        let r = run_batch(&Echo, b"999999/999999999", b"s", &rs);
        assert!(r[0].starts_with(b"Zqmail-spawn unable to open message."));
        assert_eq!(r[1], NO_HOST);
        assert!(r[2].starts_with(b"Zqmail-spawn unable to open message."));
        // A spawner without batches (qmail-lspawn) defers each recipient.
        struct One;
        impl Deliver for One {
            fn deliver(&self, _: File, _: &[u8], _: &[u8]) -> Vec<u8> {
                b"K".to_vec()
            }
        }
        let f = File::open("/dev/null").unwrap();
        assert_eq!(One.deliver_batch(f, b"s", &rs), vec![NO_BATCH.to_vec(); 3]);
        let f = File::open("/dev/null").unwrap();
        assert_eq!(
            Echo.deliver_batch(f, b"s", &rs[..1]),
            vec![b"Ks a@x".to_vec()]
        );
    }
}
