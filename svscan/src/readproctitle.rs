//! `readproctitle ARG… DOTS`: reads its standard input forever and keeps the most recent
//! bytes visible in its own command line (in place of the last argument, which must be at
//! least five bytes long and reserves the room), so `ps` shows the last errors of svscan's
//! services. Exit 100 without a message on bad arguments, 0 at end of input.
//!
//! The argument area is found through `/proc/self/stat` (arg_start/arg_end) and rewritten
//! through `/proc/self/mem`, so no raw pointer is touched. When that is not possible the input
//! is still read and discarded, so writers never block.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

/// Address range of the last argument in our own memory, checked against its bytes.
fn last_arg_area(last: &[u8]) -> Option<(std::fs::File, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); arg_end is field 49.
    let arg_end: u64 = fields.get(49 - 3)?.trim().parse().ok()?;
    let start = arg_end.checked_sub(last.len() as u64 + 1)?;
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .ok()?;
    let mut cur = vec![0u8; last.len()];
    mem.read_exact_at(&mut cur, start).ok()?;
    (cur == last).then_some((mem, start))
}

pub fn main(args: Vec<OsString>) -> i32 {
    let Some(last) = args.last().filter(|_| args.len() >= 2) else {
        return 100;
    };
    let mut buf = last.as_bytes().to_vec();
    if buf.len() < 5 {
        return 100;
    }
    let area = last_arg_area(&buf);
    let mut stdin = std::io::stdin().lock();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stdin.read(&mut chunk) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return 111,
        };
        let l = buf.len();
        if n >= l {
            buf.copy_from_slice(&chunk[n - l..n]);
        } else {
            buf.copy_within(n.., 0);
            buf[l - n..].copy_from_slice(&chunk[..n]);
        }
        if let Some((mem, at)) = &area {
            let _ = mem.write_all_at(&buf, *at);
        }
    }
}
