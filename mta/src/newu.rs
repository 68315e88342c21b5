//! qmail-newu: compile `QMAILHOME/users/assign` into `QMAILHOME/users/cdb` (qmail-users(5)).
//!
//! assign lines: `=local:user:uid:gid:home:dash:ext:` (exact address) and
//! `+prefix:user:uid:gid:home:dash:pre:` (every address starting with prefix); the file ends
//! with a line `.`. The cdb format is qmail-newu's (see [`crate::users`]), so qmail's own
//! qmail-lspawn could read ours and the other way round.
//!
//! The new database is written to users/cdb.tmp (mode 0644), fsynced, renamed over users/cdb,
//! and — unlike qmail, which relied on BSD's synchronous directory updates — the users directory
//! is fsynced after the rename. Also unlike qmail, errors name the offending line, and uid/gid
//! fields must be numbers, and a line must start with `=` or `+` (qmail treated any other first
//! character like `=`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One compiled users/cdb record.
pub type Record = (Vec<u8>, Vec<u8>);

/// Parse users/assign text into cdb records (the last one is the wildcard-characters record).
pub fn compile(text: &[u8]) -> Result<Vec<Record>, String> {
    let mut recs = Vec::new();
    let mut wild: Vec<u8> = Vec::new();
    let mut rest = text;
    let mut lineno = 0usize;
    loop {
        lineno += 1;
        if rest.is_empty() {
            return Err(format!(
                "bad format in users/assign: line {lineno}: missing the final \".\" line"
            ));
        }
        let (line, complete) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let l = &rest[..i];
                rest = &rest[i + 1..];
                (l, true)
            }
            None => {
                let l = rest;
                rest = &[];
                (l, false)
            }
        };
        if line.first() == Some(&b'.') {
            break;
        }
        let bad = |why: &str| {
            format!(
                "bad format in users/assign: line {lineno}: {why}: {:?}",
                String::from_utf8_lossy(line)
            )
        };
        if !complete {
            return Err(bad("last line lacks a newline"));
        }
        if line.contains(&0) {
            return Err(bad("NUL byte"));
        }
        let kind = match line.first() {
            Some(b'=') => b'=',
            Some(b'+') => b'+',
            _ => return Err(bad("line must start with = or +")),
        };
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(bad("no colon"));
        };
        let name = &line[1..colon];
        let mut key = Vec::with_capacity(name.len() + 2);
        key.push(b'!');
        key.extend(name.iter().map(|c| c.to_ascii_lowercase()));
        if kind == b'+' {
            if let Some(&last) = name.last()
                && !wild.contains(&last)
            {
                wild.push(last);
            }
        } else {
            key.push(0);
        }
        let fields: Vec<&[u8]> = line[colon + 1..].split(|&c| c == b':').collect();
        if fields.len() < 7 {
            return Err(bad("expected 7 colon-terminated fields after the address"));
        }
        for (i, what) in [(1, "uid"), (2, "gid")] {
            let ok = !fields[i].is_empty() && fields[i].iter().all(u8::is_ascii_digit);
            if !ok
                || std::str::from_utf8(fields[i])
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .is_none()
            {
                return Err(bad(&format!("{what} is not a number")));
            }
        }
        if fields[3].first() != Some(&b'/') {
            return Err(bad("home directory must be an absolute path"));
        }
        let data = fields[..6].join(&0u8);
        recs.push((key, data));
    }
    recs.push((Vec::new(), wild));
    Ok(recs)
}

/// Build `users/cdb` under a qmail home from its `users/assign`.
pub fn newu(qmail_home: &Path) -> Result<(), String> {
    let users = qmail_home.join("users");
    let assign = users.join("assign");
    let text =
        std::fs::read(&assign).map_err(|e| format!("unable to read {}: {e}", assign.display()))?;
    let recs = compile(&text)?;
    let tmp = users.join("cdb.tmp");
    let werr = |e: std::io::Error| format!("unable to write {}: {e}", tmp.display());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| format!("unable to open {}: {e}", tmp.display()))?;
    let keep = file.try_clone().map_err(werr)?;
    let mut make = cdb2::CDBMake::new(file).map_err(werr)?;
    for (k, v) in &recs {
        make.add(k, v).map_err(werr)?;
    }
    make.finish().map_err(werr)?;
    let mut keep = keep;
    keep.flush().map_err(werr)?;
    keep.sync_all().map_err(werr)?;
    drop(keep);
    let cdb = users.join("cdb");
    std::fs::rename(&tmp, &cdb)
        .map_err(|e| format!("unable to move {} to {}: {e}", tmp.display(), cdb.display()))?;
    crate::util::fsync_dir(&users)
        .map_err(|e| format!("unable to fsync {}: {e}", users.display()))?;
    Ok(())
}

/// The qmail-newu program: exit 0, or 111 with "qmail-newu: fatal: …" on stderr.
pub fn main() -> i32 {
    if std::env::args_os().len() > 1 {
        eprintln!("qmail-newu: usage: qmail-newu (compiles $QMAILHOME/users/assign)");
        return 100;
    }
    match newu(&crate::home::qmail_home()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("qmail-newu: fatal: {e}");
            111
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_exact_and_wildcard_lines() {
        let r = compile(b"=Joe:joe:1001:100:/home/joe:::\n+list-:lists:1002:100:/home/l:-:l-:\n+:alias:7:7:/q/alias:-::\n.\n").unwrap();
        assert_eq!(
            r[0],
            (
                b"!joe\0".to_vec(),
                b"joe\x001001\x00100\x00/home/joe\x00\x00".to_vec()
            )
        );
        assert_eq!(
            r[1],
            (
                b"!list-".to_vec(),
                b"lists\x001002\x00100\x00/home/l\x00-\x00l-".to_vec()
            )
        );
        assert_eq!(r[2].0, b"!".to_vec());
        assert_eq!(r[3], (Vec::new(), b"-".to_vec()));
        for (bad, what) in [
            (&b"=joe:joe:1001:100:/home/joe::\n.\n"[..], "line 1"),
            (b"=joe:joe:x:100:/home/joe:::\n.\n", "uid"),
            (b"\n.\n", "line 1"),
            (b"=a:a:1:1:/a:::\n", "line 2"),
            (b"=a:a:1:1:/a:::\n*b:b:1:1:/b:::\n.\n", "line 2"),
        ] {
            let e = compile(bad).unwrap_err();
            assert!(e.contains(what), "{e}");
        }
    }
}
