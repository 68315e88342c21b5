//! qmail-queue: put one message into the queue (qmail-queue(8)).
//!
//! The message comes on fd 0, the envelope on fd 1 (`F`sender`\0`, `T`recipient`\0`…, `\0`).
//! Steps, as qmail's INTERNALS describe them: create `pid/PID.TIME.SEQ` exclusively, whose inode
//! number N names the message; link it to `mess/N%23/N`; write our Received line and the
//! message, fsync; create `intd/N` with the `u`, `p`, `F`, `T` records, fsync; link it to
//! `todo/N` — the instant the message is queued — and pull `lock/trigger`.
//!
//! Differences from qmail on purpose:
//! * every directory whose new entry the guarantee depends on (`mess/N%23`, `todo`) is fsynced
//!   after the link: qmail assumed BSD's synchronous directory updates, Linux ext4/xfs need it;
//! * an envelope address containing a newline is refused with exit 91 (envelope format error):
//!   it could only forge header lines later (bounces, Return-Path);
//! * `control/databytes` (overridden by `$DATABYTES`, 0 = no limit) is enforced here too, with
//!   exit 31 (permanent refusal): every front end then honours it. qmail-send sets
//!   `DATABYTES=0` for bounces, which must never be refused for their size. An unreadable
//!   `control/databytes` gives exit 55.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// conf-split.
pub const SPLIT: u64 = crate::install::SPLIT;
/// Longest envelope address accepted (qmail's ADDR).
pub const ADDR: usize = 1003;
/// qmail's DEATH: a qmail-queue alive this long kills itself (must stay below qmail-send's
/// 36 h OSSIFIED, after which leftovers are removed).
pub const DEATH_SECS: u32 = 86400;

/// qmail-queue's exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ADDR_TOO_LONG: i32 = 11;
    pub const PERM_REFUSAL: i32 = 31;
    pub const NOMEM: i32 = 51;
    pub const TIMEOUT: i32 = 52;
    pub const WRITE: i32 = 53;
    pub const READ: i32 = 54;
    pub const CONFIG: i32 = 55;
    pub const HOME: i32 = 61;
    pub const QUEUE: i32 = 62;
    pub const PID: i32 = 63;
    pub const MESS: i32 = 64;
    pub const INTD: i32 = 65;
    pub const TODO: i32 = 66;
    pub const BUG: i32 = 81;
    pub const ENVELOPE: i32 = 91;
}

/// The split subdirectory of message `n`.
pub fn split(n: u64) -> u64 {
    n % SPLIT
}

/// `mess/S/N` relative to the queue directory.
pub fn mess_path(n: u64) -> PathBuf {
    PathBuf::from(format!("mess/{}/{}", split(n), n))
}

/// What this run has created so far, removed again on failure.
#[derive(Default)]
struct Made {
    pid: Option<PathBuf>,
    mess: Option<PathBuf>,
    intd: Option<PathBuf>,
}

impl Made {
    fn cleanup(&mut self) {
        for p in [self.intd.take(), self.mess.take(), self.pid.take()]
            .into_iter()
            .flatten()
        {
            if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                let _ = f.set_len(0);
            }
            let _ = std::fs::remove_file(&p);
        }
    }
}

struct Fail(i32);

impl From<i32> for Fail {
    fn from(c: i32) -> Self {
        Fail(c)
    }
}

extern "C" fn on_alarm(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe; leftovers are removed later by qmail-send/qmail-clean
    // exactly as after a crash.
    unsafe { libc::_exit(exit::TIMEOUT) }
}

/// The `name:uid:gid` lines of `QMAILHOME/ids`, read as [`crate::ids::QmailIds::load`] reads
/// them (a missing file lists nothing); `None` when that load would fail (unreadable file,
/// malformed line), and then no name is looked up at all.
fn ids_file(path: &Path) -> Option<Vec<(String, u32)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut v = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() != 3 || f[2].parse::<u32>().is_err() {
            return None;
        }
        v.push((f[0].to_string(), f[1].parse::<u32>().ok()?));
    }
    Some(v)
}

/// The uid of qmail user `name`: the ids file's last line for the name, else the password
/// file's entry for it.
///
/// The password file is read directly, not through the name service switch: qmail compiled
/// these uids in when it was built, and a qmail-queue that never loads NSS modules can be
/// linked statically (`rc/build`; a static glibc's NSS would load e.g. libnss_systemd with its
/// own loader, where it crashes). The answer only words the Received line.
fn qmail_uid(ids: Option<&[(String, u32)]>, name: &str) -> Option<u32> {
    let ids = ids?;
    match ids.iter().rev().find(|(n, _)| n == name) {
        Some(&(_, uid)) => Some(uid),
        None => std::fs::read(PASSWD)
            .ok()
            .and_then(|pw| passwd_uid(&pw, name)),
    }
    .filter(|&u| u != u32::MAX)
}

/// The password file [`qmail_uid`] reads.
const PASSWD: &str = "/etc/passwd";

/// The uid of the first `name:…` line of a password file (`name:passwd:uid:gid:…`).
fn passwd_uid(passwd: &[u8], name: &str) -> Option<u32> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let mut f = line.split(|&b| b == b':');
        if f.next()? != name.as_bytes() {
            return None;
        }
        let uid = f.nth(1)?;
        std::str::from_utf8(uid).ok()?.trim().parse::<u32>().ok()
    })
}

/// Our Received line. Only the users it names are looked up, and only until one matches.
fn received_line(pid: u32, uid: u32, now: std::time::SystemTime) -> String {
    let ids = ids_file(&crate::home::qmail_home().join("ids"));
    let ids = ids.as_deref();
    let who = if qmail_uid(ids, "alias") == Some(uid) {
        "by alias".to_string()
    } else if qmail_uid(ids, "qmaild") == Some(uid) {
        "from network".to_string()
    } else if qmail_uid(ids, "qmails") == Some(uid) {
        "for bounce".to_string()
    } else {
        format!("by uid {uid}")
    };
    format!(
        "Received: (qmail {pid} invoked {who}); {}\n",
        crate::util::date822fmt(now)
    )
}

/// The size limit: `$DATABYTES` if set, else control/databytes; 0 = none.
fn databytes() -> Result<u64, Fail> {
    if let Ok(v) = std::env::var("DATABYTES") {
        return Ok(v.trim().parse::<u64>().unwrap_or(0));
    }
    let c = crate::control::Control::at(crate::home::qmail_home().join("control"));
    c.int_or("databytes", 0).map_err(|e| {
        eprintln!("qmail-queue: {e}");
        Fail(exit::CONFIG)
    })
}

/// Read one `\0`-terminated address (after its record letter) and append it with the `\0`.
fn read_addr(input: &mut impl Read, out: &mut Vec<u8>) -> Result<(), Fail> {
    let start = out.len();
    loop {
        let mut b = [0u8; 1];
        match input.read(&mut b) {
            Ok(0) => return Err(Fail(exit::READ)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Fail(exit::READ)),
        }
        out.push(b[0]);
        if b[0] == 0 {
            break;
        }
        if out.len() - start >= ADDR {
            return Err(Fail(exit::ADDR_TOO_LONG));
        }
        if b[0] == b'\n' {
            return Err(Fail(exit::ENVELOPE));
        }
    }
    Ok(())
}

/// Read and check the whole envelope; returns the records to store (`F…\0T…\0…`).
fn read_envelope(input: &mut impl Read) -> Result<Vec<u8>, Fail> {
    let mut env = Vec::with_capacity(256);
    let mut b = [0u8; 1];
    let mut get = |input: &mut dyn Read| -> Result<u8, Fail> {
        loop {
            match input.read(&mut b) {
                Ok(0) => return Err(Fail(exit::READ)),
                Ok(_) => return Ok(b[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(Fail(exit::READ)),
            }
        }
    };
    if get(input)? != b'F' {
        return Err(Fail(exit::ENVELOPE));
    }
    env.push(b'F');
    read_addr(input, &mut env)?;
    loop {
        match get(input)? {
            0 => break,
            b'T' => {
                env.push(b'T');
                read_addr(input, &mut env)?;
            }
            _ => return Err(Fail(exit::ENVELOPE)),
        }
    }
    Ok(env)
}

fn run(made: &mut Made) -> Result<(), Fail> {
    // SAFETY: installing a handler that only calls _exit (async-signal-safe) before any thread
    // exists; alarm() just arms the timer.
    unsafe {
        libc::signal(
            libc::SIGALRM,
            on_alarm as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::alarm(DEATH_SECS);
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o033));
    let limit = databytes()?;
    let home = crate::home::qmail_home();
    std::env::set_current_dir(&home).map_err(|_| Fail(exit::HOME))?;
    std::env::set_current_dir("queue").map_err(|_| Fail(exit::QUEUE))?;

    let uid = nix::unistd::getuid().as_raw();
    let pid = std::process::id();
    let now = std::time::SystemTime::now();
    let start = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    // 2. pid file, exclusively; its inode names the message.
    let mut pidfile = None;
    for seq in 1..=9 {
        let p = PathBuf::from(format!("pid/{pid}.{start}.{seq}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&p)
        {
            Ok(f) => {
                made.pid = Some(p.clone());
                pidfile = Some((f, p));
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => return Err(Fail(exit::PID)),
        }
    }
    let (messfile, pidpath) = pidfile.ok_or(Fail(exit::PID))?;
    let n = messfile.metadata().map_err(|_| Fail(exit::PID))?.ino();
    let messpath = mess_path(n);
    let intdpath = PathBuf::from(format!("intd/{n}"));
    let todopath = PathBuf::from(format!("todo/{n}"));

    // 3. mess/S/N, then drop the pid name.
    std::fs::hard_link(&pidpath, &messpath).map_err(|_| Fail(exit::MESS))?;
    made.mess = Some(messpath.clone());
    std::fs::remove_file(&pidpath).map_err(|_| Fail(exit::PID))?;
    made.pid = None;

    // 4. Received line + message, fsync.
    let mut out = BufWriter::with_capacity(64 * 1024, messfile);
    out.write_all(received_line(pid, uid, now).as_bytes())
        .map_err(|_| Fail(exit::WRITE))?;
    // SAFETY: fd 0 is open for the whole process life; ManuallyDrop keeps it from being closed.
    let mut stdin = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let k = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Fail(exit::READ)),
        };
        total += k as u64;
        if limit > 0 && total > limit {
            return Err(Fail(exit::PERM_REFUSAL));
        }
        out.write_all(&buf[..k]).map_err(|_| Fail(exit::WRITE))?;
    }
    let messfile = out.into_inner().map_err(|_| Fail(exit::WRITE))?;
    messfile.sync_all().map_err(|_| Fail(exit::WRITE))?;
    drop(messfile);
    // The mess/S/N entry must be on disk before todo/N can be.
    crate::util::fsync_dir(Path::new(&format!("mess/{}", split(n))))
        .map_err(|_| Fail(exit::WRITE))?;

    // 5. The envelope into intd/N.
    // SAFETY: as for fd 0.
    let mut envin = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let mut reader = io::BufReader::new(&mut *envin);
    let env = read_envelope(&mut reader)?;
    let mut intd = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&intdpath)
        .map_err(|_| Fail(exit::INTD))?;
    made.intd = Some(intdpath.clone());
    let mut rec = Vec::with_capacity(env.len() + 32);
    rec.extend_from_slice(format!("u{uid}\0p{pid}\0").as_bytes());
    rec.extend_from_slice(&env);
    intd.write_all(&rec).map_err(|_| Fail(exit::WRITE))?;
    intd.sync_all().map_err(|_| Fail(exit::WRITE))?;
    drop(intd);

    // 6. todo/N: from here on the message is queued.
    std::fs::hard_link(&intdpath, &todopath).map_err(|_| Fail(exit::TODO))?;
    if crate::util::fsync_dir(Path::new("todo")).is_err() {
        // The link may not survive a crash; undo it rather than promise delivery.
        let _ = std::fs::remove_file(&todopath);
        return Err(Fail(exit::WRITE));
    }
    made.intd = None;
    made.mess = None;

    // 7. Pull the trigger; nobody listening is fine.
    pull_trigger(Path::new("lock/trigger"));
    Ok(())
}

/// Write one byte to the trigger fifo without blocking.
pub fn pull_trigger(path: &Path) {
    if let Ok(f) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        let _ = nix::unistd::write(&f, b"\0");
        let _ = f.as_raw_fd();
    }
}

/// qmail-queue's main: returns the exit code.
pub fn main() -> i32 {
    let mut made = Made::default();
    match run(&mut made) {
        Ok(()) => exit::OK,
        Err(Fail(code)) => {
            made.cleanup();
            code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_parsing() {
        let ok = read_envelope(&mut &b"Fa@b\0Tc@d\0Te@f\0\0"[..])
            .ok()
            .unwrap();
        assert_eq!(ok, b"Fa@b\0Tc@d\0Te@f\0");
        let code = |e: &[u8]| read_envelope(&mut &e[..]).err().map(|f| f.0);
        assert_eq!(code(b"Fa@b\0Tc@d\0"), Some(exit::READ));
        assert_eq!(code(b"Xa@b\0\0"), Some(exit::ENVELOPE));
        assert_eq!(code(b"Fa@b\0Qc\0\0"), Some(exit::ENVELOPE));
        assert_eq!(code(b"Fa\n@b\0\0"), Some(exit::ENVELOPE));
        let mut long = b"F".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2000));
        long.extend_from_slice(b"\0\0");
        assert_eq!(code(&long), Some(exit::ADDR_TOO_LONG));
        assert_eq!(read_envelope(&mut &b"F\0\0"[..]).ok().unwrap(), b"F\0");
    }

    #[test]
    fn ids_file_reads_like_qmail_ids() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ids");
        // Missing: nothing listed, lookups fall back to /etc/passwd.
        assert_eq!(ids_file(&p), Some(Vec::new()));
        std::fs::write(
            &p,
            "# c\n\nalias:7001:7000\nqmaild:7002:7000\nalias:7003:7000\n",
        )
        .unwrap();
        let ids = ids_file(&p);
        assert_eq!(qmail_uid(ids.as_deref(), "alias"), Some(7003));
        assert_eq!(qmail_uid(ids.as_deref(), "qmaild"), Some(7002));
        let q = crate::ids::QmailIds::load_from(&p).unwrap();
        assert_eq!(q.uid("alias"), Some(7003));
        // A malformed line makes QmailIds::load fail: then no name resolves.
        std::fs::write(&p, "alias:7001:7000\nqmaild::7000\n").unwrap();
        assert!(crate::ids::QmailIds::load_from(&p).is_err());
        assert_eq!(ids_file(&p), None);
        assert_eq!(qmail_uid(None, "alias"), None);
        std::fs::write(&p, "alias:4294967295:7000\n").unwrap();
        assert_eq!(qmail_uid(ids_file(&p).as_deref(), "alias"), None);
    }

    #[test]
    fn password_file_lines() {
        let pw = b"root:x:0:0:root:/root:/bin/bash\nqmaild:x:64011:64010::/var/qmail:/bin/false\n\
                   qmailq:*:abc:1::/:/bin/false\nshort:x\nqmaild:x:1:1::/:/bin/false\n";
        assert_eq!(passwd_uid(pw, "root"), Some(0));
        // The first line for a name counts, as getpwnam's files module answers.
        assert_eq!(passwd_uid(pw, "qmaild"), Some(64011));
        assert_eq!(passwd_uid(pw, "qmailq"), None);
        assert_eq!(passwd_uid(pw, "short"), None);
        assert_eq!(passwd_uid(pw, "qmail"), None);
        assert_eq!(passwd_uid(pw, ""), None);
        assert_eq!(passwd_uid(b"", "root"), None);
    }
}
