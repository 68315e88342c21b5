//! Maildir delivery (maildir(5)) and `maildirmake`.
//!
//! A delivery writes the message to `tmp/NAME` (created with O_EXCL, mode 0600), fsyncs and
//! closes it, links it to `new/NAME`, removes `tmp/NAME` and then fsyncs `new/` — the directory
//! fsync is our deliberate improvement over qmail, which relied on BSD's synchronous directory
//! updates; without it a crash on Linux could lose a message already reported delivered.
//!
//! NAME is the modern unique form `SECONDS.MmicrosPpidQn.HOST` (the seconds first, as qmail's
//! `TIME.PID.HOST`, so readers sort it the same way; `/` and `:` in the host name are written
//! as `\057` and `\072` as maildir(5) asks). qmail waited 2 s and retried on a clash; we add the
//! microseconds and a per-process counter so names never clash inside one process, and still
//! retry on EEXIST.
//!
//! Differences on purpose: qmail forked a child with a 24 h alarm for each maildir delivery; we
//! write in-process (no alarm).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Why a maildir delivery failed; [`MaildirError::qmail_text`] gives qmail's report.
#[derive(Debug)]
pub enum MaildirError {
    /// The maildir (or its tmp/new) is missing or not a directory.
    NoDir(String),
    /// Reading the message failed.
    Read(io::Error),
    /// Anything else: creating, writing, fsyncing, linking.
    Write(String),
}

impl MaildirError {
    /// qmail-local's text for this failure (all temporary).
    pub fn qmail_text(&self) -> &'static str {
        match self {
            MaildirError::NoDir(_) => "Unable to chdir to maildir. (#4.2.1)",
            MaildirError::Read(_) => "Unable to read message. (#4.3.0)",
            MaildirError::Write(_) => "Temporary error on maildir delivery. (#4.3.0)",
        }
    }

    /// The detail behind it (names the file and the system error).
    pub fn detail(&self) -> String {
        match self {
            MaildirError::NoDir(s) | MaildirError::Write(s) => s.clone(),
            MaildirError::Read(e) => format!("unable to read message: {e}"),
        }
    }
}

/// The host part of a maildir name: gethostname with `/` and `:` escaped.
fn host_part() -> String {
    let h = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    h.replace('/', "\\057").replace(':', "\\072")
}

/// A fresh unique file name for tmp/ and new/.
pub fn unique_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        host_part()
    )
}

/// Deliver `prefix` followed by the whole of `msg` (read from its start) into maildir `dir`.
/// Returns the path of the new file in `new/`.
pub fn deliver(dir: &Path, prefix: &[u8], msg: &mut File) -> Result<PathBuf, MaildirError> {
    for sub in ["", "tmp", "new"] {
        let p = if sub.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(sub)
        };
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(MaildirError::NoDir(format!(
                    "{} is not a directory",
                    p.display()
                )));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(MaildirError::NoDir(format!("{}: {e}", p.display())));
            }
            Err(e) => {
                return Err(MaildirError::Write(format!(
                    "unable to stat {}: {e}",
                    p.display()
                )));
            }
        }
    }
    msg.seek(SeekFrom::Start(0)).map_err(MaildirError::Read)?;
    let mut tries = 0;
    let (name, tmp, file) = loop {
        let name = unique_name();
        let tmp = dir.join("tmp").join(&name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (name, tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 2 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => {
                return Err(MaildirError::Write(format!(
                    "unable to create {}: {e}",
                    tmp.display()
                )));
            }
        }
    };
    let cleanup = |e: MaildirError| {
        let _ = std::fs::remove_file(&tmp);
        e
    };
    let werr =
        |e: io::Error| MaildirError::Write(format!("unable to write {}: {e}", tmp.display()));
    let mut out = io::BufWriter::with_capacity(64 * 1024, file);
    out.write_all(prefix).map_err(werr).map_err(cleanup)?;
    copy_all(msg, &mut out, &tmp).map_err(cleanup)?;
    let file = out
        .into_inner()
        .map_err(|e| werr(e.into_error()))
        .map_err(cleanup)?;
    file.sync_all().map_err(werr).map_err(cleanup)?;
    drop(file);
    let new = dir.join("new").join(&name);
    std::fs::hard_link(&tmp, &new)
        .map_err(|e| {
            MaildirError::Write(format!(
                "unable to link {} to {}: {e}",
                tmp.display(),
                new.display()
            ))
        })
        .map_err(cleanup)?;
    let _ = std::fs::remove_file(&tmp);
    crate::util::fsync_dir(&dir.join("new"))
        .map_err(|e| MaildirError::Write(format!("unable to fsync {}/new: {e}", dir.display())))?;
    Ok(new)
}

/// Copy the rest of `from` to `to`; read errors and write errors are told apart.
fn copy_all(from: &mut File, to: &mut impl Write, name: &Path) -> Result<(), MaildirError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(MaildirError::Read(e)),
        };
        to.write_all(&buf[..n])
            .map_err(|e| MaildirError::Write(format!("unable to write {}: {e}", name.display())))?;
    }
}

/// maildirmake: create `dir` and its tmp, new and cur with mode 0700 (qmail's modes: it ran
/// under umask 077). Fails if `dir` already exists, as qmail's does.
pub fn make(dir: &Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    b.create(dir)
        .map_err(|e| format!("unable to mkdir {}: {e}", dir.display()))?;
    for sub in ["tmp", "new", "cur"] {
        let p = dir.join(sub);
        b.create(&p)
            .map_err(|e| format!("unable to mkdir {}: {e}", p.display()))?;
    }
    Ok(())
}

/// The maildirmake program: `maildirmake DIR`.
pub fn maildirmake_main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.len() != 1 || args[0].is_empty() {
        eprintln!("maildirmake: usage: maildirmake name");
        return 100;
    }
    match make(Path::new(&args[0])) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("maildirmake: fatal: {e}");
            111
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_with_prefix_and_unique_names() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join("Maildir");
        make(&md).unwrap();
        assert!(make(&md).is_err());
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"Subject: x\n\nbody\n").unwrap();
        let a = deliver(&md, b"Return-Path: <a@b>\n", &mut f).unwrap();
        let b = deliver(&md, b"", &mut f).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            std::fs::read(&a).unwrap(),
            b"Return-Path: <a@b>\nSubject: x\n\nbody\n"
        );
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
        let e = deliver(&d.path().join("nope"), b"", &mut f).unwrap_err();
        assert_eq!(e.qmail_text(), "Unable to chdir to maildir. (#4.2.1)");
    }
}
