//! qmail-pop3d MAILDIR: the transaction half of POP3, run by checkpassword as the user.
//!
//! As qmail-pop3d: refuses to run as uid 0; chdir(MAILDIR) or
//! `-ERR this user has no $HOME/Maildir`; removes tmp/ files last accessed more than 36 hours
//! ago; lists new/ and cur/ (names starting with `.` skipped, files modified in the current
//! second or later skipped) in mtime order; answers STAT (the count includes messages marked
//! deleted, the bytes do not), LIST, UIDL (the file name without new/ or cur/ and without its
//! `:2,…` info, so it survives the new→cur move), RETR, TOP, DELE (marks only), LAST (the
//! highest message number deleted), RSET, NOOP and QUIT with qmail's texts. Output turns LF
//! into CRLF, doubles a leading `.`, and adds an empty line before the final `.`. QUIT unlinks
//! the marked messages, moves the rest from new/ to `cur/NAME:2,`, fsyncs both directories and
//! says `+OK `; a dropped connection or the 20-minute timeout changes nothing.
//!
//! Deliberate differences: sizes (STAT, LIST) are the exact number of octets RETR sends for
//! the message (stored bytes plus one CR per line), where qmail reports the stored size with
//! bare LFs; and `CAPA` is answered (TOP, UIDL, USER).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::popup::split_command;
use crate::smtpd::netio::NetIo;

/// One message of the listing.
#[derive(Debug, Clone)]
pub struct Msg {
    /// Path relative to the Maildir: `new/NAME` or `cur/NAME:2,…`.
    pub path: String,
    /// The size in octets as sent (CRLF line ends).
    pub size: u64,
    pub deleted: bool,
}

impl Msg {
    /// UIDL: the base name without the `:info` part.
    pub fn unique(&self) -> &str {
        let name = self.path.split_once('/').map(|x| x.1).unwrap_or(&self.path);
        name.split(':').next().unwrap_or(name)
    }
}

/// Octets sent for a file: its bytes, plus a CR for every LF, plus CRLF if the last line has
/// no LF.
pub fn crlf_size(path: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 65536];
    let mut size = 0u64;
    let mut last = b'\n';
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64 + memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        size += 2;
    }
    Ok(size)
}

/// Remove tmp/ files not accessed for 36 hours.
fn clean_tmp(now: SystemTime) {
    let Ok(rd) = std::fs::read_dir("tmp") else {
        return;
    };
    for e in rd.flatten() {
        if let Ok(md) = e.metadata()
            && let Ok(at) = md.accessed()
            && now.duration_since(at).unwrap_or_default() > Duration::from_secs(36 * 3600)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// List new/ and cur/ of the current directory as qmail's maildir_scan.
pub fn scan(now: SystemTime) -> std::io::Result<Vec<Msg>> {
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut found: Vec<(i64, String)> = Vec::new();
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(sub)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = format!("{sub}/{name}");
            let Ok(md) = std::fs::metadata(&path) else {
                continue;
            };
            if !md.is_file() {
                continue;
            }
            use std::os::unix::fs::MetadataExt;
            let mtime = md.mtime();
            if mtime >= now_secs as i64 {
                continue; // maybe still being delivered this second
            }
            found.push((mtime, path));
        }
    }
    found.sort();
    let mut msgs = Vec::with_capacity(found.len());
    for (_, path) in found {
        let Ok(size) = crlf_size(Path::new(&path)) else {
            continue; // vanished meanwhile
        };
        msgs.push(Msg {
            path,
            size,
            deleted: false,
        });
    }
    Ok(msgs)
}

/// Send a message: LF → CRLF, leading dots doubled; `limit` = Some(n): header plus n body
/// lines. Ends with the extra empty line and ".".
fn blast(io: &mut NetIo, file: std::fs::File, limit: Option<u64>) -> Result<(), ()> {
    let mut r = BufReader::with_capacity(65536, file);
    let mut line = Vec::new();
    let mut in_header = true;
    let mut body_left = limit;
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(|_| ())?;
        if n == 0 {
            break;
        }
        let had_lf = line.last() == Some(&b'\n');
        if had_lf {
            line.pop();
        }
        if !in_header && let Some(left) = body_left.as_mut() {
            if *left == 0 {
                break;
            }
            *left -= 1;
        }
        if line.is_empty() {
            in_header = false;
        }
        if line.first() == Some(&b'.') {
            io.out(".");
        }
        io.out(&line);
        io.out("\r\n");
        if io.pending_output() >= 65536 {
            io.flush().map_err(|_| ())?;
        }
        if !had_lf {
            break;
        }
    }
    io.out("\r\n.\r\n");
    Ok(())
}

/// A POP3 transaction session over `msgs` in the current directory (the Maildir).
pub struct Session {
    io: NetIo,
    msgs: Vec<Msg>,
    last: usize,
}

enum Num {
    Ok(usize),
    Err(&'static str),
}

impl Session {
    pub fn new(io: NetIo, msgs: Vec<Msg>) -> Session {
        Session { io, msgs, last: 0 }
    }

    /// qmail's msgno: a number from 1, not deleted.
    fn msgno(&self, arg: &[u8]) -> (Num, usize) {
        let digits = arg.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return (Num::Err("-ERR syntax error\r\n"), 0);
        }
        let n: u64 = std::str::from_utf8(&arg[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        if n == 0 {
            return (Num::Err("-ERR messages are counted from 1\r\n"), digits);
        }
        let i = (n - 1) as usize;
        if n > self.msgs.len() as u64 {
            return (Num::Err("-ERR not that many messages\r\n"), digits);
        }
        if self.msgs[i].deleted {
            return (Num::Err("-ERR already deleted\r\n"), digits);
        }
        (Num::Ok(i), digits)
    }

    /// Run until QUIT or the client goes away; returns the exit code.
    pub fn run(&mut self) -> i32 {
        self.io.out("+OK \r\n");
        loop {
            let line = match self.io.line(crate::popup::MAX_LINE) {
                Ok(l) => l,
                Err(_) => return 1,
            };
            let (verb, arg) = split_command(&line.text);
            match verb.as_slice() {
                b"quit" => return self.quit(),
                b"stat" => {
                    let bytes: u64 = self
                        .msgs
                        .iter()
                        .filter(|m| !m.deleted)
                        .map(|m| m.size)
                        .sum();
                    let r = format!("+OK {} {}\r\n", self.msgs.len(), bytes);
                    self.io.out(r);
                }
                b"list" | b"uidl" => {
                    let uidl = verb == b"uidl";
                    let show = |i: usize, m: &Msg| {
                        if uidl {
                            format!("{} {}", i + 1, m.unique())
                        } else {
                            format!("{} {}", i + 1, m.size)
                        }
                    };
                    if arg.is_empty() {
                        let mut out = String::from("+OK \r\n");
                        for (i, m) in self.msgs.iter().enumerate() {
                            if !m.deleted {
                                out.push_str(&show(i, m));
                                out.push_str("\r\n");
                            }
                        }
                        out.push_str(".\r\n");
                        self.io.out(out);
                    } else {
                        match self.msgno(&arg).0 {
                            Num::Ok(i) => {
                                let r = format!("+OK {}\r\n", show(i, &self.msgs[i]));
                                self.io.out(r);
                            }
                            Num::Err(e) => self.io.out(e),
                        }
                    }
                }
                b"retr" | b"top" => {
                    let (num, used) = self.msgno(&arg);
                    let i = match num {
                        Num::Ok(i) => i,
                        Num::Err(e) => {
                            self.io.out(e);
                            continue;
                        }
                    };
                    let limit = if verb == b"top" {
                        let mut rest = &arg[used..];
                        while rest.first() == Some(&b' ') {
                            rest = &rest[1..];
                        }
                        let d = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                        std::str::from_utf8(&rest[..d])
                            .ok()
                            .and_then(|s| s.parse().ok())
                    } else {
                        None
                    };
                    match std::fs::File::open(&self.msgs[i].path) {
                        Ok(f) => {
                            self.io.out("+OK \r\n");
                            if blast(&mut self.io, f, limit).is_err() {
                                return 1;
                            }
                        }
                        Err(_) => self.io.out("-ERR unable to open that message\r\n"),
                    }
                }
                b"dele" => match self.msgno(&arg).0 {
                    Num::Ok(i) => {
                        self.msgs[i].deleted = true;
                        self.last = self.last.max(i + 1);
                        self.io.out("+OK \r\n");
                    }
                    Num::Err(e) => self.io.out(e),
                },
                b"last" => {
                    let r = format!("+OK {}\r\n", self.last);
                    self.io.out(r);
                }
                b"rset" => {
                    self.msgs.iter_mut().for_each(|m| m.deleted = false);
                    self.last = 0;
                    self.io.out("+OK \r\n");
                }
                b"noop" => self.io.out("+OK \r\n"),
                b"capa" => self
                    .io
                    .out("+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\n.\r\n"),
                _ => self.io.out("-ERR unimplemented\r\n"),
            }
        }
    }

    fn quit(&mut self) -> i32 {
        let mut failed = false;
        for m in self.msgs.iter().filter(|m| m.deleted) {
            match std::fs::remove_file(&m.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => failed = true,
            }
        }
        for m in self.msgs.iter().filter(|m| !m.deleted) {
            if let Some(name) = m.path.strip_prefix("new/") {
                let _ = std::fs::rename(&m.path, format!("cur/{name}:2,"));
            }
        }
        let _ = crate::util::fsync_dir(Path::new("new"));
        let _ = crate::util::fsync_dir(Path::new("cur"));
        if failed {
            self.io
                .out("-ERR unable to unlink all deleted messages\r\n");
        } else {
            self.io.out("+OK \r\n");
        }
        let _ = self.io.flush();
        0
    }
}

/// The qmail-pop3d program: exit code.
pub fn main(args: Vec<String>) -> i32 {
    if nix::unistd::getuid().is_root() {
        let _ = writeln!(
            std::io::stderr(),
            "qmail-pop3d invoked as uid 0, terminating"
        );
        return 1;
    }
    let mut io = NetIo::stdio(Duration::from_secs(1200));
    let dir = match args.get(1) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "qmail-pop3d: usage: qmail-pop3d maildirname"
            );
            return 2;
        }
    };
    if std::env::set_current_dir(&dir).is_err() {
        io.out("-ERR this user has no $HOME/Maildir\r\n");
        let _ = io.flush();
        return 1;
    }
    let now = SystemTime::now();
    clean_tmp(now);
    let msgs = match scan(now) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "qmail-pop3d: unable to scan {}: {e}",
                dir.display()
            );
            io.out("-ERR unable to scan $HOME/Maildir\r\n");
            let _ = io.flush();
            return 1;
        }
    };
    let mut s = Session::new(io, msgs);
    s.run()
}
