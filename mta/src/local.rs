//! qmail-local: deliver one message to one local address, following the recipient's `.qmail`
//! files (qmail-local(8), dot-qmail(5), qmail-command(8)).
//!
//! `qmail-local [ -nN ] [--] user homedir local dash ext domain sender defaultdelivery`, the
//! message on standard input. qmail-lspawn runs it as the recipient's uid/gid.
//!
//! Steps, as qmail's: switch to the home directory and check it (not group/world writable, not
//! sticky); refuse a looping message (a Delivered-To line equal to ours); find `.qmail` +
//! dash + ext (lower-cased, dots turned into colons), else `.qmail-…-default` at each dash,
//! else `.qmail-default`; with no file at all a bare user gets `defaultdelivery`, an
//! extension address bounces. Each line is then a comment, a maildir (`./Maildir/`), an mbox
//! (`./Mailbox`), a program (`|cmd`, run by /bin/sh in the home directory with qmail's
//! environment) or a forward (`&addr` or a bare address). Forwards are all injected at the end
//! in one qmail-queue call. Exit 0 (success, prints `did F+W+P`), 100 (permanent failure) or 111
//! (temporary failure); the text on stdout/stderr is the report qmail-send logs.
//!
//! Differences from qmail on purpose:
//! * A `.qmail` or home directory that is group-writable is refused as well as a world-writable
//!   one (qmail's default conf-patrn was 002; ours is 022).
//! * The whole `.qmail` is checked before anything is delivered: a malformed line (a forward
//!   address with spaces, brackets or commas, an unknown `+` instruction, a NUL byte, a file or
//!   program line in a forward-only file, a blank first line) defers the message with a report
//!   naming the line, so a typo never causes a partial delivery that would repeat on every
//!   retry. qmail found some of these only when it reached them and forwarded garbage
//!   addresses as they were.
//! * Programs run in their own process group with a time limit, `control/timeoutlocal` seconds
//!   (default 86400); at the limit the whole group is killed and the delivery deferred.
//! * Maildir deliveries fsync `new/` after the link (see [`crate::maildir`]); mbox deliveries
//!   take fcntl as well as flock locks (see [`crate::mbox`]).
//! * Temporary maildir errors add a second report line with the system error (e.g. "File too
//!   large"), after qmail's own line.
//! * A message on a pipe (not a regular file) is first copied to an unlinked file in $TMPDIR, so
//!   it can be read once per delivery line (qmail required a seekable standard input).

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Mode bits that make a home directory or .qmail unsafe (group or world writable).
pub const PATRN: u32 = 0o022;

const USAGE: &str =
    "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty";

/// A failure: exit code (100 or 111) and report text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub code: i32,
    pub text: String,
}

fn temp(text: impl Into<String>) -> Fail {
    Fail {
        code: 111,
        text: text.into(),
    }
}

fn perm(text: impl Into<String>) -> Fail {
    Fail {
        code: 100,
        text: text.into(),
    }
}

/// The command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub doit: bool,
    pub user: Vec<u8>,
    pub home: Vec<u8>,
    pub local: Vec<u8>,
    pub dash: Vec<u8>,
    pub ext: Vec<u8>,
    pub host: Vec<u8>,
    pub sender: Vec<u8>,
    pub aliasempty: Vec<u8>,
}

/// Parse qmail-local's arguments (getopt style: `-n`, `-N`, `-nN`, then `--`).
pub fn parse_args(argv: &[OsString]) -> Result<Args, Fail> {
    let usage = || perm(USAGE);
    let mut doit = true;
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        for &c in &a[1..] {
            match c {
                b'n' => doit = false,
                b'N' => doit = true,
                _ => return Err(usage()),
            }
        }
        i += 1;
    }
    let rest: Vec<Vec<u8>> = argv[i..].iter().map(|a| a.as_bytes().to_vec()).collect();
    if rest.len() != 8 {
        return Err(usage());
    }
    let mut it = rest.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let args = Args {
        doit,
        user: next(),
        home: next(),
        local: next(),
        dash: next(),
        ext: next(),
        host: next(),
        sender: next(),
        aliasempty: next(),
    };
    if args.home.first() != Some(&b'/') {
        return Err(usage());
    }
    Ok(args)
}

/// qmail's quote2: quote the local part of an address if RFC 821 needs it.
pub fn quote2(s: &[u8]) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    let (box_, domain) = match s.iter().rposition(|&c| c == b'@') {
        Some(j) => (&s[..j], &s[j..]),
        None => (s, &b""[..]),
    };
    let mut out = quote(box_);
    out.extend_from_slice(domain);
    out
}

fn quote_ok(c: u8) -> bool {
    c > 32 && c < 127 && !b"\"(),:;<>@[\\]".contains(&c)
}

fn quote(s: &[u8]) -> Vec<u8> {
    let need = s.is_empty()
        || !s.iter().all(|&c| quote_ok(c))
        || s[0] == b'.'
        || s[s.len() - 1] == b'.'
        || s.windows(2).any(|w| w == b"..");
    if !need {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &c in s {
        if matches!(c, b'\r' | b'\n' | b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
    out
}

/// qmail's myctime: "Tue Nov 24 23:31:58 2026\n" (GMT, two-digit day).
pub fn myctime(t: std::time::SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%a %b %d %H:%M:%S %Y\n").to_string()
}

/// The part of `s` before its last '.', or all of it.
fn before_last_dot(s: &[u8]) -> &[u8] {
    match s.iter().rposition(|&c| c == b'.') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// The part of `s` after its first '-', or "".
fn after_dash(s: &[u8]) -> &[u8] {
    match s.iter().position(|&c| c == b'-') {
        Some(i) => &s[i + 1..],
        None => &s[s.len()..],
    }
}

/// One instruction of a .qmail file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instr {
    Maildir(Vec<u8>),
    Mbox(Vec<u8>),
    Program(Vec<u8>),
    Forward(Vec<u8>),
}

/// A parsed .qmail: instructions in order, and the counts qmail reports ("did F+W+P").
#[derive(Debug, Default)]
pub struct Plan {
    pub instrs: Vec<Instr>,
}

/// True for an address qmail-local may hand to qmail-queue as a forward.
fn forward_ok(a: &[u8]) -> bool {
    !a.is_empty()
        && a.iter()
            .all(|&c| c > 32 && c != 127 && !b"<>()\",;\\".contains(&c))
}

/// Parse the contents of a .qmail (or the default delivery). `name` names it in errors;
/// `forward_only` is the file's owner-execute bit.
pub fn parse_qmail(contents: &[u8], name: &str, mut forward_only: bool) -> Result<Plan, Fail> {
    let mut plan = Plan::default();
    let mut text = contents.to_vec();
    if text.last() != Some(&b'\n') {
        text.push(b'\n');
    }
    let lines: Vec<&[u8]> = text[..text.len() - 1].split(|&c| c == b'\n').collect();
    for (n, raw) in lines.iter().enumerate() {
        let mut line = *raw;
        while let Some((&last, rest)) = line.split_last() {
            if last == b' ' || last == b'\t' {
                line = rest;
            } else {
                break;
            }
        }
        let lineno = n + 1;
        let bad = |why: &str| {
            temp(format!(
                "Uh-oh: {name} line {lineno}: {why}: {}. (#4.7.0)",
                String::from_utf8_lossy(line)
            ))
        };
        if line.contains(&0) {
            return Err(bad("NUL byte in instruction"));
        }
        match line.first() {
            None => {
                if n == 0 {
                    return Err(temp("Uh-oh: first line of .qmail file is blank. (#4.2.1)"));
                }
            }
            Some(b'#') => {}
            Some(b'.') | Some(b'/') => {
                if forward_only {
                    return Err(temp(
                        "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)",
                    ));
                }
                if line.ends_with(b"/") {
                    plan.instrs.push(Instr::Maildir(line.to_vec()));
                } else {
                    plan.instrs.push(Instr::Mbox(line.to_vec()));
                }
            }
            Some(b'|') => {
                if forward_only {
                    return Err(temp(
                        "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)",
                    ));
                }
                if line.len() == 1 {
                    return Err(bad("empty program"));
                }
                plan.instrs.push(Instr::Program(line[1..].to_vec()));
            }
            Some(b'+') => {
                if line == b"+list" {
                    forward_only = true;
                } else {
                    return Err(bad("unknown instruction"));
                }
            }
            Some(&c) => {
                let addr = if c == b'&' { &line[1..] } else { line };
                if !forward_ok(addr) {
                    return Err(bad("malformed forward address"));
                }
                plan.instrs.push(Instr::Forward(addr.to_vec()));
            }
        }
    }
    Ok(plan)
}

impl Plan {
    /// (files, forwards, programs) as in "did F+W+P".
    pub fn counts(&self, upto: usize) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for i in &self.instrs[..upto.min(self.instrs.len())] {
            match i {
                Instr::Maildir(_) | Instr::Mbox(_) => c.0 += 1,
                Instr::Forward(_) => c.1 += 1,
                Instr::Program(_) => c.2 += 1,
            }
        }
        c
    }
}

/// Where the message is: a seekable file.
fn message_file() -> Result<File, Fail> {
    use std::os::fd::AsFd;
    let fd = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| temp(format!("Unable to read message: {}. (#4.3.0)", os_text(&e))))?;
    let mut f = File::from(fd);
    let is_file = f.metadata().map(|m| m.is_file()).unwrap_or(false);
    if is_file && f.seek(SeekFrom::Start(0)).is_ok() {
        return Ok(f);
    }
    // A pipe: copy it to an unlinked temporary file.
    let dir = std::env::var_os("TMPDIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let werr = |e: io::Error| {
        temp(format!(
            "Unable to copy message to {}: {}. (#4.3.0)",
            dir.display(),
            os_text(&e)
        ))
    };
    let mut tries = 0;
    let (path, mut spool) = loop {
        let p = dir.join(format!(
            ".qmail-local.{}.{}",
            std::process::id(),
            crate::maildir::unique_name()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
        {
            Ok(s) => break (p, s),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 5 => tries += 1,
            Err(e) => return Err(werr(e)),
        }
    };
    let _ = std::fs::remove_file(&path);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(temp(format!(
                    "Unable to read message: {}. (#4.3.0)",
                    os_text(&e)
                )));
            }
        };
        spool.write_all(&buf[..n]).map_err(werr)?;
    }
    spool.seek(SeekFrom::Start(0)).map_err(werr)?;
    Ok(spool)
}

fn os_text(e: &io::Error) -> String {
    crate::mbox::os_text(e)
}

/// Open a .qmail candidate: `Ok(None)` if it does not exist (or is not a regular file),
/// otherwise its contents and whether the owner-execute bit is set.
fn qme_open(name: &[u8]) -> Result<Option<(Vec<u8>, bool)>, Fail> {
    let path = Path::new(OsStr::from_bytes(name));
    let shown = String::from_utf8_lossy(name);
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut f = match f {
        Ok(f) => f,
        Err(e) => match e.raw_os_error() {
            Some(libc::ENOENT)
            | Some(libc::ENOTDIR)
            | Some(libc::ELOOP)
            | Some(libc::ENAMETOOLONG)
            | Some(libc::ENXIO) => return Ok(None),
            _ => {
                return Err(temp(format!(
                    "Unable to open {shown}: {}. (#4.3.0)",
                    os_text(&e)
                )));
            }
        },
    };
    let st = f
        .metadata()
        .map_err(|e| temp(format!("Unable to open {shown}: {}. (#4.3.0)", os_text(&e))))?;
    if !st.is_file() {
        return Ok(None);
    }
    if st.mode() & PATRN != 0 {
        return Err(temp("Uh-oh: .qmail file is writable. (#4.7.0)"));
    }
    let mut contents = Vec::new();
    f.read_to_end(&mut contents)
        .map_err(|e| temp(format!("Unable to read {shown}: {}. (#4.3.0)", os_text(&e))))?;
    Ok(Some((contents, st.mode() & 0o100 != 0)))
}

/// Does `.qmail` + dash + safeext + suffix exist? (qmail's qmeox, for -owner files.)
fn qme_stat(name: &[u8]) -> Result<bool, Fail> {
    match std::fs::metadata(Path::new(OsStr::from_bytes(name))) {
        Ok(_) => Ok(true),
        Err(e) => match e.raw_os_error() {
            Some(libc::EIO)
            | Some(libc::ETIMEDOUT)
            | Some(libc::ENOMEM)
            | Some(libc::EAGAIN)
            | Some(libc::ESTALE) => Err(temp(format!(
                "Unable to open {}: {}. (#4.3.0)",
                String::from_utf8_lossy(name),
                os_text(&e)
            ))),
            _ => Ok(false),
        },
    }
}

/// The result of the .qmail search.
pub struct Found {
    /// File name and contents, `None` when no file matched.
    pub file: Option<(Vec<u8>, Vec<u8>, bool)>,
    /// $DEFAULT, when a -default file (or a name ending in "default") matched.
    pub default: Option<Vec<u8>>,
}

/// `.qmail` + dash + ext lower-cased with dots turned into colons.
pub fn safe_ext(ext: &[u8]) -> Vec<u8> {
    ext.iter()
        .map(|&c| {
            if c == b'.' {
                b':'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Find the .qmail file for dash/ext, in the current directory (qmail's qmesearch).
pub fn qmesearch(dash: &[u8], ext: &[u8]) -> Result<Found, Fail> {
    let safe = safe_ext(ext);
    let mut name = b".qmail".to_vec();
    name.extend_from_slice(dash);
    name.extend_from_slice(&safe);
    if let Some((c, x)) = qme_open(&name)? {
        let default = if safe.len() >= 7 && safe.ends_with(b"default") {
            Some(ext[safe.len() - 7..].to_vec())
        } else {
            None
        };
        return Ok(Found {
            file: Some((name, c, x)),
            default,
        });
    }
    if !dash.is_empty() {
        for i in (0..=safe.len()).rev() {
            if i == 0 || safe[i - 1] == b'-' {
                let mut name = b".qmail".to_vec();
                name.extend_from_slice(dash);
                name.extend_from_slice(&safe[..i]);
                name.extend_from_slice(b"default");
                if let Some((c, x)) = qme_open(&name)? {
                    return Ok(Found {
                        file: Some((name, c, x)),
                        default: Some(ext[i..].to_vec()),
                    });
                }
            }
        }
    }
    Ok(Found {
        file: None,
        default: None,
    })
}

/// Everything one delivery needs.
struct Delivery {
    dtline: Vec<u8>,
    rpline: Vec<u8>,
    ufline: Vec<u8>,
    newsender: Vec<u8>,
    env: Vec<(&'static str, Vec<u8>)>,
    default: Option<Vec<u8>>,
    timeout: Duration,
}

/// Check the home directory (the current directory).
fn checkhome(doit: bool, out: &mut Vec<u8>) -> Result<(), Fail> {
    let st = std::fs::metadata(".").map_err(|e| {
        temp(format!(
            "Unable to stat home directory: {}. (#4.3.0)",
            os_text(&e)
        ))
    })?;
    if st.mode() & PATRN != 0 {
        return Err(temp("Uh-oh: home directory is writable. (#4.7.0)"));
    }
    if st.mode() & 0o1000 != 0 {
        if doit {
            return Err(temp(
                "Home directory is sticky: user is editing his .qmail file. (#4.2.1)",
            ));
        }
        out.extend_from_slice(b"Warning: home directory is sticky.\n");
    }
    Ok(())
}

/// Scan the message header for our own Delivered-To line.
fn bouncexf(msg: &mut File, dtline: &[u8]) -> Result<(), Fail> {
    msg.seek(SeekFrom::Start(0))
        .map_err(|_| temp("Unable to rewind message. (#4.3.0)"))?;
    let mut r = BufReader::new(&*msg);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| temp(format!("Unable to read message: {}. (#4.3.0)", os_text(&e))))?;
        if n == 0 || line.last() != Some(&b'\n') || line.len() <= 1 {
            return Ok(());
        }
        if line == dtline {
            return Err(perm(
                "This message is looping: it already has my Delivered-To line. (#5.4.6)",
            ));
        }
    }
}

impl Delivery {
    fn program(&self, cmd: &[u8], msg: &mut File) -> Result<bool, Fail> {
        msg.seek(SeekFrom::Start(0))
            .map_err(|_| temp("Unable to rewind message. (#4.3.0)"))?;
        let stdin = msg
            .try_clone()
            .map_err(|e| temp(format!("Unable to fork: {}. (#4.3.0)", os_text(&e))))?;
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(OsStr::from_bytes(cmd))
            .stdin(Stdio::from(stdin))
            .process_group(0);
        for (k, v) in &self.env {
            c.env(k, OsStr::from_bytes(v));
        }
        match &self.default {
            Some(d) => {
                c.env("DEFAULT", OsStr::from_bytes(d));
            }
            None => {
                c.env_remove("DEFAULT");
            }
        }
        let mut child = c
            .spawn()
            .map_err(|e| temp(format!("Unable to run /bin/sh: {}. (#4.3.0)", os_text(&e))))?;
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let timeout = self.timeout;
        let watchdog = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                true
            } else {
                false
            }
        });
        let status = loop {
            match child.wait() {
                Ok(s) => break Ok(s),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        if timed_out {
            return Err(temp(format!(
                "Timeout on program delivery: killed after {} seconds. (#4.3.0)",
                self.timeout.as_secs()
            )));
        }
        let status = status.map_err(|_| temp("Aack, child crashed. (#4.3.0)"))?;
        if status.signal().is_some() {
            return Err(temp("Aack, child crashed. (#4.3.0)"));
        }
        match status.code() {
            Some(0) => Ok(false),
            Some(99) => Ok(true),
            Some(100 | 64 | 65 | 70 | 76 | 77 | 78 | 112) => Err(perm("")),
            _ => Err(temp("")),
        }
    }

    /// Inject the forwards; returns qmail-queue's process id ("qp").
    fn forward(&self, recips: &[Vec<u8>], msg: &mut File) -> Result<u32, Fail> {
        msg.seek(SeekFrom::Start(0))
            .map_err(|_| temp("Unable to rewind message. (#4.3.0)"))?;
        let mut qq = crate::qq::QueueClient::open()
            .map_err(|e| temp(format!("Unable to fork: {}. (#4.3.0)", os_text(&e))))?;
        let qp = qq.pid();
        let _ = qq.write_all(&self.dtline);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match msg.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    qq.abort();
                    return Err(temp(format!(
                        "Unable to read message: {}. (#4.3.0)",
                        os_text(&e)
                    )));
                }
            };
            if qq.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        match qq.finish(&self.newsender, recips) {
            crate::qq::QueueResult::Ok => Ok(qp),
            crate::qq::QueueResult::Temporary(t) => {
                Err(temp(format!("Unable to forward message: {t}.")))
            }
            crate::qq::QueueResult::Permanent(t) => {
                Err(perm(format!("Unable to forward message: {t}.")))
            }
        }
    }
}

/// Run qmail-local: the report goes to `out` (stdout); failures are returned.
pub fn run(args: Args, out: &mut dyn Write) -> Result<(), Fail> {
    let home_path = PathBuf::from(OsStr::from_bytes(&args.home));
    std::env::set_current_dir(&home_path).map_err(|e| {
        temp(format!(
            "Unable to switch to {}: {}. (#4.3.0)",
            home_path.display(),
            os_text(&e)
        ))
    })?;
    let mut warn = Vec::new();
    checkhome(args.doit, &mut warn)?;
    if !warn.is_empty() {
        let _ = io::stderr().write_all(&warn);
    }

    let mut recipient = args.local.clone();
    recipient.push(b'@');
    recipient.extend_from_slice(&args.host);
    let mut dtline = b"Delivered-To: ".to_vec();
    dtline.extend(recipient.iter().map(|&c| if c == b'\n' { b'_' } else { c }));
    dtline.push(b'\n');

    let mut msg = if args.doit {
        let mut m = message_file()?;
        bouncexf(&mut m, &dtline)?;
        Some(m)
    } else {
        None
    };

    let mut rpline = b"Return-Path: <".to_vec();
    rpline.extend(
        quote2(&args.sender)
            .into_iter()
            .map(|c| if c == b'\n' { b'_' } else { c }),
    );
    rpline.extend_from_slice(b">\n");

    let mut ufline = b"From ".to_vec();
    if args.sender.is_empty() {
        ufline.extend_from_slice(b"MAILER-DAEMON");
    } else {
        ufline.extend(args.sender.iter().map(|&c| {
            if matches!(c, b' ' | b'\t' | b'\n') {
                b'-'
            } else {
                c
            }
        }));
    }
    ufline.push(b' ');
    ufline.extend_from_slice(myctime(std::time::SystemTime::now()).as_bytes());

    let ext2 = after_dash(&args.ext);
    let ext3 = after_dash(ext2);
    let ext4 = after_dash(ext3);
    let host2 = before_last_dot(&args.host);
    let host3 = before_last_dot(host2);
    let host4 = before_last_dot(host3);

    let found = qmesearch(&args.dash, &args.ext)?;
    if found.file.is_none() && !args.dash.is_empty() {
        return Err(perm("Sorry, no mailbox here by that name. (#5.1.1)"));
    }

    // The envelope sender of forwards.
    let mut newsender = args.sender.clone();
    if !args.sender.is_empty() && args.sender != b"#@[]" {
        let mut base = b".qmail".to_vec();
        base.extend_from_slice(&args.dash);
        base.extend_from_slice(&safe_ext(&args.ext));
        let owner = [&base[..], b"-owner"].concat();
        if qme_stat(&owner)? {
            let owner_default = [&base[..], b"-owner-default"].concat();
            newsender = args.local.clone();
            if qme_stat(&owner_default)? {
                newsender.extend_from_slice(b"-owner-@");
                newsender.extend_from_slice(&args.host);
                newsender.extend_from_slice(b"-@[]");
            } else {
                newsender.extend_from_slice(b"-owner@");
                newsender.extend_from_slice(&args.host);
            }
        }
    }

    let plan = match &found.file {
        Some((name, contents, x)) if !contents.is_empty() => {
            parse_qmail(contents, &String::from_utf8_lossy(name), *x)?
        }
        _ => parse_qmail(&args.aliasempty, "default delivery", false)?,
    };

    if !args.doit {
        let mut text = Vec::new();
        for i in &plan.instrs {
            let (kind, v) = match i {
                Instr::Maildir(v) => ("maildir ", v),
                Instr::Mbox(v) => ("mbox ", v),
                Instr::Program(v) => ("program ", v),
                Instr::Forward(v) => ("forward ", v),
            };
            text.extend_from_slice(kind.as_bytes());
            text.extend_from_slice(v);
            text.push(b'\n');
        }
        let (f, w, p) = plan.counts(plan.instrs.len());
        text.extend_from_slice(format!("did {f}+{w}+{p}\n").as_bytes());
        let _ = out.write_all(&text);
        let _ = out.flush();
        return Ok(());
    }

    let timeout = crate::control::Control::new()
        .int_or("timeoutlocal", 86400)
        .unwrap_or(86400)
        .max(1);
    let env: Vec<(&'static str, Vec<u8>)> = vec![
        ("HOST", args.host.clone()),
        ("HOME", args.home.clone()),
        ("USER", args.user.clone()),
        ("LOCAL", args.local.clone()),
        ("RECIPIENT", recipient.clone()),
        ("DTLINE", dtline.clone()),
        ("SENDER", args.sender.clone()),
        ("RPLINE", rpline.clone()),
        ("UFLINE", ufline.clone()),
        ("EXT", args.ext.clone()),
        ("EXT2", ext2.to_vec()),
        ("EXT3", ext3.to_vec()),
        ("EXT4", ext4.to_vec()),
        ("HOST2", host2.to_vec()),
        ("HOST3", host3.to_vec()),
        ("HOST4", host4.to_vec()),
        ("NEWSENDER", newsender.clone()),
    ];
    let d = Delivery {
        dtline,
        rpline,
        ufline,
        newsender,
        env,
        default: found.default,
        timeout: Duration::from_secs(timeout),
    };
    let Some(msg) = msg.as_mut() else {
        return Err(temp("Unable to read message. (#4.3.0)"));
    };

    let mut forwards: Vec<Vec<u8>> = Vec::new();
    let mut done = plan.instrs.len();
    for (idx, ins) in plan.instrs.iter().enumerate() {
        match ins {
            Instr::Maildir(dir) => {
                let prefix = [&d.rpline[..], &d.dtline[..]].concat();
                if let Err(e) =
                    crate::maildir::deliver(Path::new(OsStr::from_bytes(dir)), &prefix, msg)
                {
                    return Err(temp(format!("{}\n{}", e.qmail_text(), e.detail())));
                }
            }
            Instr::Mbox(file) => {
                let prefix = [&d.ufline[..], &d.rpline[..], &d.dtline[..]].concat();
                crate::mbox::deliver(Path::new(OsStr::from_bytes(file)), &prefix, msg)
                    .map_err(|e| temp(e.0))?;
            }
            Instr::Program(cmd) => {
                let _ = io::stdout().flush();
                if d.program(cmd, msg)? {
                    done = idx + 1;
                    break;
                }
            }
            Instr::Forward(a) => forwards.push(a.clone()),
        }
    }
    let qp = if forwards.is_empty() {
        None
    } else {
        Some(d.forward(&forwards, msg)?)
    };
    let (f, w, p) = plan.counts(done);
    let mut report = format!("did {f}+{w}+{p}\n");
    if let Some(qp) = qp {
        report.push_str(&format!("qp {qp}\n"));
    }
    let _ = out.write_all(report.as_bytes());
    let _ = out.flush();
    Ok(())
}

/// The qmail-local program.
pub fn main() -> i32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let result = parse_args(&argv).and_then(|a| {
        let stdout = io::stdout();
        let mut lock = stdout.lock();
        run(a, &mut lock)
    });
    match result {
        Ok(()) => 0,
        Err(f) => {
            if !f.text.is_empty() {
                let mut e = io::stderr().lock();
                let _ = e.write_all(f.text.as_bytes());
                let _ = e.write_all(b"\n");
            }
            f.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_dates() {
        assert_eq!(quote2(b"alice@example.net"), b"alice@example.net");
        assert_eq!(quote2(b""), b"");
        assert_eq!(quote2(b"#@[]"), b"#@[]");
        assert_eq!(quote2(b"a b@x"), b"\"a b\"@x");
        assert_eq!(quote2(b"a..b@x"), b"\"a..b\"@x");
        assert_eq!(quote2(b"@x"), b"\"\"@x");
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_563_118);
        assert_eq!(myctime(t), "Tue Nov 24 23:31:58 2026\n");
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_762_041_600);
        assert_eq!(myctime(t), "Sun Nov 02 00:00:00 2025\n");
    }

    #[test]
    fn parses_lines() {
        let p = parse_qmail(
            b"# c\n./Maildir/\n./Mailbox  \n|echo hi\n&a@b\nc@d\n\n",
            "x",
            false,
        )
        .unwrap();
        assert_eq!(
            p.instrs,
            vec![
                Instr::Maildir(b"./Maildir/".to_vec()),
                Instr::Mbox(b"./Mailbox".to_vec()),
                Instr::Program(b"echo hi".to_vec()),
                Instr::Forward(b"a@b".to_vec()),
                Instr::Forward(b"c@d".to_vec()),
            ]
        );
        assert_eq!(p.counts(5), (2, 2, 1));
        let e = parse_qmail(b"\n./Maildir/\n", "x", false).unwrap_err();
        assert_eq!(
            e.text,
            "Uh-oh: first line of .qmail file is blank. (#4.2.1)"
        );
        let e = parse_qmail(b"a@b\n./Maildir/\n", "x", true).unwrap_err();
        assert_eq!(
            e.text,
            "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)"
        );
        let e = parse_qmail(b"+list\n|x\n", "x", false).unwrap_err();
        assert_eq!(
            e.text,
            "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)"
        );
        let e = parse_qmail(b"./M/\nJoe Smith <joe@x>\n", ".qmail", false).unwrap_err();
        assert_eq!(e.code, 111);
        assert!(
            e.text.contains(".qmail line 2: malformed forward address"),
            "{}",
            e.text
        );
        let e = parse_qmail(b"+foo\n", ".qmail", false).unwrap_err();
        assert!(e.text.contains("unknown instruction"), "{}", e.text);
    }

    #[test]
    fn env_pieces() {
        assert_eq!(after_dash(b"list-foo.bar"), b"foo.bar");
        assert_eq!(after_dash(b"foo"), b"");
        assert_eq!(before_last_dot(b"example.org"), b"example");
        assert_eq!(before_last_dot(b"example"), b"example");
        assert_eq!(safe_ext(b"Frank.Berbig"), b"frank:berbig");
    }
}
