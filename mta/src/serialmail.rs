//! serialmail: push the messages of a Maildir to an SMTP server (`maildirsmtp`,
//! `maildirserial`, `serialsmtp`), for dial-up links and other hosts that collect mail for a
//! peer in a Maildir.
//!
//! Each Maildir file written by qmail-local starts with `Return-Path: <sender>` and
//! `Delivered-To: recipient`. The envelope is taken from those two lines, which are not sent;
//! PREFIX is removed from the front of the recipient (files whose recipient does not start with
//! PREFIX are left alone). A message is deleted only after the server accepted it with a 2xx
//! reply to the end of DATA; a permanent failure (5xx) is bounced to the envelope sender (by
//! qmail-queue, with the null sender) and then deleted; a temporary failure keeps the message
//! for the next run unless it is older than the lifetime (then it is bounced like a permanent
//! one). Failure to connect is not a rejection: messages stay.
//!
//! * `maildirsmtp DIR PREFIX HOST[:PORT] HELOHOST` — serialmail's script
//!   `maildirserial -b -t 1209600 -- DIR PREFIX tcpclient -RHl0 -- HOST 25 serialsmtp PREFIX
//!   HELOHOST` in one program: it connects itself (to PORT, default 25), and reconnects while
//!   it makes progress.
//! * `maildirserial [-b] [-t LIFETIME] [--] DIR PREFIX CLIENT [ARG…]` — runs CLIENT in DIR,
//!   writes the selected file names (`new/…`, `cur/…`) to its fd 0, NUL-terminated, and reads
//!   results `NAME\0` + `K`/`Z`/`D` + text + `\n` from its fd 1. Without `-b` permanent failures
//!   are kept; the lifetime (default: none) applies only with `-b`.
//! * `serialsmtp PREFIX HELOHOST` — the client: SMTP on fds 6 (read) and 7 (write), as under
//!   `tcpclient`; the file names on fd 0, the results on fd 1.
//!
//! Where we differ from serialmail on purpose: serialsmtp speaks plain HELO without
//! PIPELINING (one command at a time), replies longer than 64 KiB or malformed are treated as a
//! dead connection, and every result is also logged to fd 2 as `NAME: TEXT`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Two weeks, maildirsmtp's lifetime for temporarily failing messages.
pub const LIFETIME: u64 = 1_209_600;
const TIMEOUT: Duration = Duration::from_secs(1200);
const MAX_REPLY: usize = 64 * 1024;

/// One selected message.
#[derive(Debug, Clone)]
pub struct Item {
    /// Name relative to the Maildir, e.g. `new/1700000000.123.host`.
    pub name: String,
    /// How old the file is.
    pub age: Duration,
}

/// The result of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: String,
    /// `K` delivered, `Z` temporary failure, `D` permanent failure.
    pub status: u8,
    pub text: String,
}

/// The envelope of a Maildir file: the sender, the recipient (PREFIX removed) and the offset
/// of the message after the two envelope lines. `None` when the file does not start with
/// `Return-Path:` and `Delivered-To:` lines or the recipient lacks PREFIX.
pub fn envelope(data: &[u8], prefix: &[u8]) -> Option<(Vec<u8>, Vec<u8>, usize)> {
    let e1 = memchr::memchr(b'\n', data)?;
    let l1 = &data[..e1];
    let rest = &data[e1 + 1..];
    let e2 = memchr::memchr(b'\n', rest)?;
    let l2 = &rest[..e2];
    let rp = strip_ci(l1, b"Return-Path:")?;
    let rp = trim(rp);
    let sender = rp.strip_prefix(b"<")?.strip_suffix(b">")?.to_vec();
    let dt = trim(strip_ci(l2, b"Delivered-To:")?);
    let recip = dt.strip_prefix(prefix)?.to_vec();
    if recip.is_empty()
        || sender
            .iter()
            .chain(&recip)
            .any(|&c| c == b'\r' || c == b'\n')
    {
        return None;
    }
    Some((sender, recip, e1 + 1 + e2 + 1))
}

fn strip_ci<'a>(l: &'a [u8], head: &[u8]) -> Option<&'a [u8]> {
    (l.len() >= head.len() && l[..head.len()].eq_ignore_ascii_case(head)).then(|| &l[head.len()..])
}

fn trim(s: &[u8]) -> &[u8] {
    let s = match s.iter().position(|c| !c.is_ascii_whitespace()) {
        Some(i) => &s[i..],
        None => return &[],
    };
    let end = s
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// The messages of DIR/new and DIR/cur whose recipient starts with PREFIX, oldest first.
pub fn scan(dir: &Path, prefix: &[u8]) -> io::Result<Vec<Item>> {
    let mut out: Vec<(SystemTime, Item)> = Vec::new();
    let now = SystemTime::now();
    for sub in ["new", "cur"] {
        let d = dir.join(sub);
        for ent in std::fs::read_dir(&d)
            .map_err(|e| io::Error::new(e.kind(), format!("unable to scan {}: {e}", d.display())))?
        {
            let ent = ent?;
            let fname = ent.file_name();
            let Some(fname) = fname.to_str() else {
                continue;
            };
            if fname.starts_with('.') {
                continue;
            }
            let Ok(meta) = ent.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let mut head = vec![0u8; 4096];
            let n = match File::open(ent.path()).and_then(|mut f| read_some(&mut f, &mut head)) {
                Ok(n) => n,
                Err(_) => continue,
            };
            if envelope(&head[..n], prefix).is_none() {
                continue;
            }
            let mtime = meta.modified().unwrap_or(now);
            out.push((
                mtime,
                Item {
                    name: format!("{sub}/{fname}"),
                    age: now.duration_since(mtime).unwrap_or_default(),
                },
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    Ok(out.into_iter().map(|(_, i)| i).collect())
}

fn read_some(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// What to do with the results.
pub struct Policy {
    /// Bounce permanent failures (and expired temporary ones) and delete them.
    pub bounce: bool,
    /// Seconds after which a temporary failure counts as permanent (with `bounce`).
    pub lifetime: Option<u64>,
}

/// Act on one result; true when the message was removed.
pub fn apply(
    dir: &Path,
    items: &[Item],
    o: &Outcome,
    policy: &Policy,
    prefix: &[u8],
    log: &str,
) -> bool {
    let Some(item) = items.iter().find(|i| i.name == o.name) else {
        return false;
    };
    let path = dir.join(&item.name);
    eprintln!("{log}: {}: {}{}", o.name, o.status as char, o.text);
    match o.status {
        b'K' => remove(&path, log),
        b'D' if policy.bounce => bounce(&path, prefix, &o.text, log) && remove(&path, log),
        b'Z' if policy.bounce && policy.lifetime.is_some_and(|l| item.age.as_secs() > l) => {
            let text = format!(
                "{} I'm not going to try again; this message has been in the queue too long.",
                o.text
            );
            bounce(&path, prefix, &text, log) && remove(&path, log)
        }
        _ => false,
    }
}

fn remove(path: &Path, log: &str) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => {
            if let Some(d) = path.parent() {
                let _ = crate::util::fsync_dir(d);
            }
            true
        }
        Err(e) => {
            eprintln!("{log}: warning: unable to remove {}: {e}", path.display());
            false
        }
    }
}

/// Send a failure notice for the message in `path` to its envelope sender. A message with the
/// null sender is not bounced (true: it may be deleted).
fn bounce(path: &Path, prefix: &[u8], why: &str, log: &str) -> bool {
    let Ok(data) = std::fs::read(path) else {
        eprintln!(
            "{log}: warning: unable to read {} for the bounce",
            path.display()
        );
        return false;
    };
    let Some((sender, recip, off)) = envelope(&data, prefix) else {
        return false;
    };
    if sender.is_empty() || sender == b"#@[]" {
        return true;
    }
    let me = crate::control::Control::new()
        .me()
        .ok()
        .flatten()
        .unwrap_or_else(|| "localhost".into());
    let mut m = Vec::new();
    m.extend_from_slice(
        format!(
            "Date: {}\nFrom: MAILER-DAEMON@{me}\nTo: {}\nSubject: failure notice\n\n\
             Hi. This is the serialmail program at {me}.\n\
             I could not deliver your message to the following address.\n\
             This is a permanent error; I've given up. Sorry it didn't work out.\n\n<{}>:\n{}\n\n\
             --- Below this line is a copy of the message.\n\n",
            crate::util::date822fmt(SystemTime::now()),
            String::from_utf8_lossy(&sender),
            String::from_utf8_lossy(&recip),
            why.trim_end(),
        )
        .as_bytes(),
    );
    m.extend_from_slice(&data[off..]);
    let q = match crate::qq::QueueClient::open() {
        Ok(q) => q,
        Err(e) => {
            eprintln!("{log}: warning: unable to run qmail-queue: {e}");
            return false;
        }
    };
    let mut q = q;
    if q.write_all(&m).is_err() {
        q.abort();
        eprintln!(
            "{log}: warning: unable to queue the bounce for {}",
            path.display()
        );
        return false;
    }
    match q.finish(b"", &[&sender]) {
        crate::qq::QueueResult::Ok => true,
        r => {
            eprintln!(
                "{log}: warning: unable to queue the bounce for {}: {}",
                path.display(),
                r.report()
            );
            false
        }
    }
}

/// An SMTP conversation on any pair of streams.
struct Conn<R: Read, W: Write> {
    r: BufReader<R>,
    w: BufWriter<W>,
    text: String,
}

/// The connection is unusable (reported as a `Z` result for the message being sent).
struct Dead(String);

impl<R: Read, W: Write> Conn<R, W> {
    fn send(&mut self, b: &[u8]) -> Result<(), Dead> {
        self.w
            .write_all(b)
            .and_then(|_| self.w.flush())
            .map_err(|e| Dead(format!("connection died while sending: {e}")))
    }

    fn code(&mut self) -> Result<u16, Dead> {
        self.text.clear();
        let mut total = 0;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.r)
                .take((MAX_REPLY + 1 - total.min(MAX_REPLY)) as u64)
                .read_until(b'\n', &mut line)
                .map_err(|e| Dead(format!("connection died: {e}")))?;
            if n == 0 {
                return Err(Dead("connection died".into()));
            }
            total += n;
            if total > MAX_REPLY {
                return Err(Dead("SMTP reply too long".into()));
            }
            let l = String::from_utf8_lossy(&line);
            let l = l.trim_end_matches(['\r', '\n']);
            let b = l.as_bytes();
            if b.len() < 3
                || !b[..3].iter().all(u8::is_ascii_digit)
                || !matches!(b.get(3), None | Some(b' ') | Some(b'-'))
            {
                return Err(Dead(format!("malformed SMTP reply: {l}")));
            }
            if !self.text.is_empty() {
                self.text.push('/');
            }
            self.text.push_str(l);
            if b.get(3) != Some(&b'-') {
                return Ok(l[..3].parse().unwrap_or(421));
            }
        }
    }

    fn said(&self) -> String {
        format!("Remote host said: {}", self.text)
    }

    /// Deliver one message; `Ok` carries the result, `Err` a dead connection.
    fn message(&mut self, sender: &[u8], recip: &[u8], body: &[u8]) -> Result<(u8, String), Dead> {
        let mut c = b"MAIL FROM:<".to_vec();
        c.extend_from_slice(sender);
        c.extend_from_slice(b">\r\n");
        self.send(&c)?;
        let code = self.code()?;
        if code >= 400 {
            return self.fail(code, "Sender rejected. ");
        }
        let mut c = b"RCPT TO:<".to_vec();
        c.extend_from_slice(recip);
        c.extend_from_slice(b">\r\n");
        self.send(&c)?;
        let code = self.code()?;
        if code >= 400 {
            return self.fail(code, "Recipient rejected. ");
        }
        self.send(b"DATA\r\n")?;
        let code = self.code()?;
        if code >= 400 {
            return self.fail(code, "DATA rejected. ");
        }
        let mut out = Vec::with_capacity(body.len() + body.len() / 40 + 8);
        let mut rest = body;
        while !rest.is_empty() {
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            rest = next;
        }
        out.extend_from_slice(b".\r\n");
        self.send(&out)?;
        let code = match self.code() {
            Ok(c) => c,
            Err(Dead(t)) => {
                return Err(Dead(format!(
                    "{t} after the message was sent. Possible duplicate!"
                )));
            }
        };
        if code >= 400 {
            return self.fail(code, "Message rejected. ");
        }
        Ok((b'K', format!("Message accepted. {}", self.said())))
    }

    fn fail(&mut self, code: u16, what: &str) -> Result<(u8, String), Dead> {
        let text = format!("{what}{}", self.said());
        self.send(b"RSET\r\n")?;
        self.code()?;
        Ok((if code >= 500 { b'D' } else { b'Z' }, text))
    }
}

/// serialsmtp's work on one connection: deliver each named file (relative to `dir`) and call
/// `report` for each result. Stops at the first dead connection (that message gets a `Z`).
pub fn deliver<R: Read, W: Write>(
    r: R,
    w: W,
    dir: &Path,
    prefix: &[u8],
    helohost: &str,
    names: &mut dyn Iterator<Item = String>,
    report: &mut dyn FnMut(Outcome),
) -> Result<(), String> {
    let mut c = Conn {
        r: BufReader::new(r),
        w: BufWriter::new(w),
        text: String::new(),
    };
    let greet = (|| -> Result<(), Dead> {
        if c.code()? / 100 != 2 {
            return Err(Dead(format!("greeting failed. {}", c.said())));
        }
        c.send(format!("HELO {helohost}\r\n").as_bytes())?;
        if c.code()? / 100 != 2 {
            return Err(Dead(format!("my name was rejected. {}", c.said())));
        }
        Ok(())
    })();
    if let Err(Dead(t)) = greet {
        return Err(t);
    }
    for name in names {
        let data = match std::fs::read(dir.join(&name)) {
            Ok(d) => d,
            Err(e) => {
                report(Outcome {
                    name,
                    status: b'Z',
                    text: format!("Unable to read message: {e}"),
                });
                continue;
            }
        };
        let Some((sender, recip, off)) = envelope(&data, prefix) else {
            continue;
        };
        match c.message(&sender, &recip, &data[off..]) {
            Ok((status, text)) => report(Outcome { name, status, text }),
            Err(Dead(t)) => {
                report(Outcome {
                    name,
                    status: b'Z',
                    text: t.clone(),
                });
                return Err(t);
            }
        }
    }
    let _ = c.send(b"QUIT\r\n");
    let _ = c.code();
    Ok(())
}

/// One delivery attempt over the selected items, reporting each result.
type Round<'a> = dyn FnMut(&[Item], &mut dyn FnMut(Outcome)) -> Result<(), String> + 'a;

/// Rounds of delivery while they make progress: `round` gets the current selection and
/// reports results; returns the number of messages removed.
fn rounds(
    dir: &Path,
    prefix: &[u8],
    policy: &Policy,
    log: &str,
    round: &mut Round<'_>,
) -> Result<usize, String> {
    let mut removed = 0;
    let mut tried = std::collections::HashSet::new();
    loop {
        let items: Vec<Item> = scan(dir, prefix)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|i| !tried.contains(&i.name))
            .collect();
        if items.is_empty() {
            return Ok(removed);
        }
        let mut answered = 0;
        let mut progress = false;
        let res = round(&items, &mut |o: Outcome| {
            answered += 1;
            tried.insert(o.name.clone());
            if apply(dir, &items, &o, policy, prefix, log) {
                removed += 1;
            }
            progress = true;
        });
        let done = !progress || answered >= items.len();
        match res {
            Err(e) if done => return Err(e),
            Err(e) => eprintln!("{log}: warning: {e}; trying again"),
            Ok(()) if done => return Ok(removed),
            Ok(()) => {}
        }
    }
}

fn usage(log: &str, text: &str) -> i32 {
    eprintln!("{log}: usage: {text}");
    100
}

/// `maildirsmtp DIR PREFIX HOST[:PORT] HELOHOST`.
pub fn maildirsmtp_main() -> i32 {
    let log = "maildirsmtp";
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        return usage(log, "maildirsmtp dir prefix host[:port] helohost");
    }
    let (dir, prefix, host, helo) = (PathBuf::from(&args[0]), &args[1], &args[2], &args[3]);
    let (h, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.trim_matches(['[', ']']).to_string(), p),
            Err(_) => return usage(log, "port must be a number"),
        },
        _ => (host.trim_matches(['[', ']']).to_string(), 25),
    };
    let policy = Policy {
        bounce: true,
        lifetime: Some(LIFETIME),
    };
    let res = rounds(
        &dir,
        prefix.as_bytes(),
        &policy,
        log,
        &mut |items, report| {
            let stream =
                connect(&h, port).map_err(|e| format!("unable to connect to {h}:{port}: {e}"))?;
            let _ = stream.set_read_timeout(Some(TIMEOUT));
            let _ = stream.set_write_timeout(Some(TIMEOUT));
            let w = stream.try_clone().map_err(|e| e.to_string())?;
            let mut names = items.iter().map(|i| i.name.clone());
            deliver(stream, w, &dir, prefix.as_bytes(), helo, &mut names, report)
        },
    );
    match res {
        Err(e) => {
            eprintln!("{log}: fatal: {e}");
            111
        }
        Ok(_) => 0,
    }
}

fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for sa in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&sa, Duration::from_secs(60)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `maildirserial [-b] [-t LIFETIME] [--] DIR PREFIX CLIENT [ARG…]`.
pub fn maildirserial_main() -> i32 {
    let log = "maildirserial";
    let u = "maildirserial [ -b ] [ -t lifetime ] dir prefix client [ arg ... ]";
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut policy = Policy {
        bounce: false,
        lifetime: None,
    };
    while let Some(a) = args.first().cloned() {
        if a == "--" {
            args.remove(0);
            break;
        } else if a == "-b" {
            policy.bounce = true;
            args.remove(0);
        } else if a == "-t" && args.len() > 1 {
            match args[1].parse() {
                Ok(t) => policy.lifetime = Some(t),
                Err(_) => return usage(log, u),
            }
            args.drain(..2);
        } else if let Some(t) = a.strip_prefix("-t") {
            match t.parse() {
                Ok(t) => policy.lifetime = Some(t),
                Err(_) => return usage(log, u),
            }
            args.remove(0);
        } else if a.starts_with('-') && a.len() > 1 {
            return usage(log, u);
        } else {
            break;
        }
    }
    if args.len() < 3 {
        return usage(log, u);
    }
    let dir = PathBuf::from(&args[0]);
    let prefix = args[1].clone();
    let client = args[2..].to_vec();
    let res = rounds(
        &dir,
        prefix.as_bytes(),
        &policy,
        log,
        &mut |items, report| run_client(&dir, &client, items, report),
    );
    match res {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("{log}: fatal: {e}");
            111
        }
    }
}

/// Run the client once and read its results.
fn run_client(
    dir: &Path,
    client: &[String],
    items: &[Item],
    report: &mut dyn FnMut(Outcome),
) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(&client[0])
        .args(&client[1..])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("unable to run {}: {e}", client[0]))?;
    let mut names = Vec::new();
    for i in items {
        names.extend_from_slice(i.name.as_bytes());
        names.push(0);
    }
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut s) = stdin {
            let _ = s.write_all(&names);
        }
    });
    if let Some(so) = child.stdout.take() {
        let mut r = BufReader::new(so);
        loop {
            let mut name = Vec::new();
            match r.read_until(0, &mut name) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if name.pop() != Some(0) {
                break;
            }
            let mut rest = Vec::new();
            if r.read_until(b'\n', &mut rest).is_err() || rest.is_empty() {
                break;
            }
            if rest.last() == Some(&b'\n') {
                rest.pop();
            }
            let status = rest[0];
            if !matches!(status, b'K' | b'Z' | b'D') {
                continue;
            }
            report(Outcome {
                name: String::from_utf8_lossy(&name).into_owned(),
                status,
                text: String::from_utf8_lossy(&rest[1..]).into_owned(),
            });
        }
    }
    let _ = writer.join();
    let st = child.wait().map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {st}", client[0]))
    }
}

/// `serialsmtp PREFIX HELOHOST`: SMTP on fds 6/7, names on fd 0, results on fd 1.
pub fn serialsmtp_main() -> i32 {
    let log = "serialsmtp";
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        return usage(log, "serialsmtp prefix helohost");
    }
    for fd in [6, 7] {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            eprintln!("{log}: fatal: descriptor {fd} is not open: run me under tcpclient");
            return 111;
        }
    }
    // SAFETY: fds 6 and 7 were checked open above; tcpclient hands them to us and nothing
    // else in this process owns them, so each File is their only owner.
    let (r, w) = unsafe { (File::from_raw_fd(6), File::from_raw_fd(7)) };
    for f in [&r, &w] {
        let s = socket2::SockRef::from(f);
        let _ = s.set_read_timeout(Some(TIMEOUT));
        let _ = s.set_write_timeout(Some(TIMEOUT));
    }
    let mut input = Vec::new();
    if io::stdin().read_to_end(&mut input).is_err() {
        eprintln!("{log}: fatal: unable to read file names");
        return 111;
    }
    let mut names = input
        .split(|&c| c == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect::<Vec<_>>()
        .into_iter();
    let stdout = io::stdout();
    let mut res = Vec::new();
    let r = deliver(
        r,
        w,
        Path::new("."),
        args[0].as_bytes(),
        &args[1],
        &mut names,
        &mut |o| {
            res.extend_from_slice(o.name.as_bytes());
            res.push(0);
            res.push(o.status);
            res.extend_from_slice(o.text.replace('\n', " ").as_bytes());
            res.push(b'\n');
        },
    );
    let mut so = stdout.lock();
    let _ = so.write_all(&res);
    let _ = so.flush();
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{log}: warning: {e}");
            111
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_lines() {
        let m = b"Return-Path: <a@b.org>\nDelivered-To: alias-out-u@x.net\nSubject: s\n\nhi\n";
        let (s, r, off) = envelope(m, b"alias-out-").unwrap();
        assert_eq!(s, b"a@b.org");
        assert_eq!(r, b"u@x.net");
        assert_eq!(&m[off..], b"Subject: s\n\nhi\n");
        assert!(envelope(m, b"other-").is_none());
        let (s, _, _) = envelope(b"Return-Path: <>\nDelivered-To: p-u@x\n\n", b"p-").unwrap();
        assert!(s.is_empty());
        assert!(envelope(b"Subject: x\n\n", b"").is_none());
    }
}
