//! qmail-qread and qmail-qstat: queue inspection.
//!
//! qmail-qread lists every preprocessed message: a line "D Mon YYYY HH:MM:SS GMT  #N  SIZE
//! <SENDER> " (+ "bouncing" when bounce text waits), the time being the message's birth (info
//! mtime), then one line per recipient, "\tlocal\tADDR" or "\tremote\tADDR", prefixed by
//! "  done" once delivered. Unprintable bytes show as '_'. qmail-qstat prints "messages in queue:
//! N" (files under mess/) and "messages in queue but not yet preprocessed: M" (files in todo/).

use std::io::Write;
use std::path::Path;

const SPLIT: u64 = crate::install::SPLIT;

fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if (32..127).contains(&c) {
                c as char
            } else {
                '_'
            }
        })
        .collect()
}

fn ids_in(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            v.push(n);
        }
    }
    Ok(v)
}

/// The listing of one message.
fn describe(q: &Path, id: u64) -> std::io::Result<String> {
    let s = id % SPLIT;
    let info = q.join(format!("info/{s}/{id}"));
    let md = std::fs::metadata(&info)?;
    let data = std::fs::read(&info)?;
    let sender = data.strip_prefix(b"F").unwrap_or(&data);
    let sender = sender.split(|&b| b == 0).next().unwrap_or(&[]);
    let birth: chrono::DateTime<chrono::Utc> = md.modified()?.into();
    let size = std::fs::metadata(q.join(format!("mess/{s}/{id}")))?.len();
    let mut out = format!(
        "{}  #{id}  {size}  <{}> ",
        birth.format("%-d %b %Y %H:%M:%S GMT"),
        printable(sender)
    );
    if q.join(format!("bounce/{id}")).exists() {
        out.push_str("bouncing");
    }
    out.push('\n');
    for chan in ["local", "remote"] {
        let data = match std::fs::read(q.join(format!("{chan}/{s}/{id}"))) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for rec in data.split(|&b| b == 0) {
            let Some((&t, addr)) = rec.split_first() else {
                continue;
            };
            if t == b'D' {
                out.push_str("  done");
            } else if t != b'T' {
                continue;
            }
            out.push_str(&format!("\t{chan}\t{}\n", printable(addr)));
        }
    }
    Ok(out)
}

/// qmail-qread's main.
pub fn qread_main() -> i32 {
    let q = crate::home::queue_dir();
    let mut out = std::io::stdout().lock();
    for s in 0..SPLIT {
        let ids = match ids_in(&q.join(format!("info/{s}"))) {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "qmail-qread: fatal: unable to read {}: {e}",
                    q.join(format!("info/{s}")).display()
                );
                return 111;
            }
        };
        for id in ids {
            match describe(&q, id) {
                Ok(t) => {
                    let _ = out.write_all(t.as_bytes());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // finished meanwhile
                Err(e) => {
                    let _ = writeln!(out, "warning: trouble with #{id}: {e}");
                }
            }
        }
    }
    0
}

fn count(dir: &Path) -> std::io::Result<usize> {
    Ok(std::fs::read_dir(dir)?.count())
}

/// qmail-qstat's main.
pub fn qstat_main() -> i32 {
    let q = crate::home::queue_dir();
    let mut mess = 0;
    for s in 0..SPLIT {
        match count(&q.join(format!("mess/{s}"))) {
            Ok(n) => mess += n,
            Err(e) => {
                eprintln!(
                    "qmail-qstat: fatal: unable to read {}: {e}",
                    q.join(format!("mess/{s}")).display()
                );
                return 111;
            }
        }
    }
    let todo = match count(&q.join("todo")) {
        Ok(n) => n,
        Err(e) => {
            eprintln!(
                "qmail-qstat: fatal: unable to read {}: {e}",
                q.join("todo").display()
            );
            return 111;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "messages in queue: {mess}");
    let _ = writeln!(out, "messages in queue but not yet preprocessed: {todo}");
    0
}
