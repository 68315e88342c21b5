//! `tcprules rules.cdb rules.tmp`: compile rules read on stdin into a cdb for `tcpserver -x`.
//!
//! Writes rules.tmp, fsyncs it, renames it over rules.cdb (atomic: both must be on one file
//! system) and fsyncs the directory. Exit 0 on success, 100 for a line it cannot parse (the
//! message names the line number and the line; rules.cdb is left untouched and rules.tmp
//! removed), 111 for system errors.

use crate::common::errtext;
use crate::rules::parse_all;
use std::io::Read;
use std::path::Path;

const FATAL: &str = "tcprules: fatal: ";

/// Write `records` to `tmp` as a cdb, fsync, rename over `cdb`, fsync the directory.
pub fn write_cdb(cdb: &Path, tmp: &Path, records: &crate::rules::Records) -> Result<(), String> {
    let what = |verb: &str, e: &std::io::Error| {
        format!("unable to {verb} {}: {}", tmp.display(), errtext(e))
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| what("create", &e))?;
    let sync = file.try_clone().map_err(|e| what("write", &e))?;
    let mut mk = cdb2::CDBMake::new(file).map_err(|e| what("write", &e))?;
    for (k, v) in records {
        mk.add(k, v).map_err(|e| what("write", &e))?;
    }
    mk.finish().map_err(|e| what("write", &e))?;
    sync.sync_all().map_err(|e| what("write", &e))?;
    drop(sync);
    std::fs::rename(tmp, cdb).map_err(|e| {
        format!(
            "unable to move {} to {}: {}",
            tmp.display(),
            cdb.display(),
            errtext(&e)
        )
    })?;
    let dir = match cdb.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The program; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    if args.len() < 2 {
        eprintln!("tcprules: usage: tcprules rules.cdb rules.tmp");
        return 100;
    }
    let (cdb, tmp) = (Path::new(&args[0]), Path::new(&args[1]));
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut input) {
        eprintln!("{FATAL}unable to read input: {}", errtext(&e));
        return 111;
    }
    let records = match parse_all(&input) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "{FATAL}unable to parse this line: {} (line {} of the input)",
                e.line, e.lineno
            );
            return 100;
        }
    };
    match write_cdb(cdb, tmp, &records) {
        Ok(()) => 0,
        Err(m) => {
            eprintln!("{FATAL}{m}");
            let _ = std::fs::remove_file(tmp);
            111
        }
    }
}
