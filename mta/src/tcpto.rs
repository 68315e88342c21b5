//! The cache of unreachable hosts (`QMAILHOME/queue/lock/tcpto`), `qmail-tcpto` (prints it)
//! and `qmail-tcpok` (clears it).
//!
//! Format, as qmail's tcpto.c: the file holds 64 records of 16 bytes (1024 bytes, created by
//! qmail-install, all zero). A record is bytes 0–3 the IPv4 address, byte 4 the number of
//! consecutive connection time-outs (capped at 10), bytes 8–11 the time (little-endian Unix
//! seconds) of the last one. Every access holds an exclusive `flock` on the file.
//! qmail-remote skips an address whose record shows at least two time-outs, the last less than
//! about an hour ago (`(60 + (pid & 31)) << 6` seconds, so concurrent deliveries retry at
//! different moments); a successful connection clears the count; a refused connection (not a
//! time-out) leaves the record alone. A new time-out takes a free record, or else the one that
//! expires first.
//!
//! Where we differ on purpose: qmail only knows IPv4. An IPv6 address is stored as a 32-bit
//! FNV-1a hash of its 16 bytes in bytes 0–3 with byte 5 set to 6 (qmail leaves bytes 5–7 zero,
//! so IPv4 records stay byte-compatible). A hash collision can only make us skip a host for an
//! hour that shares a record with a dead one; it never loses mail. A missing or unreadable file
//! disables the cache, as in qmail.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

const RECORDS: usize = 64;
const RECLEN: usize = 16;

/// `QMAILHOME/queue/lock/tcpto`.
pub fn path() -> PathBuf {
    crate::home::queue_dir().join("lock").join("tcpto")
}

/// The 4-byte key and family marker of an address.
fn key(ip: &IpAddr) -> ([u8; 4], u8) {
    match ip {
        IpAddr::V4(v4) => (v4.octets(), 0),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return (v4.octets(), 0);
            }
            let mut h: u32 = 0x811c_9dc5;
            for b in v6.octets() {
                h ^= u32::from(b);
                h = h.wrapping_mul(0x0100_0193);
            }
            (h.to_le_bytes(), 6)
        }
    }
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn rec_when(r: &[u8]) -> u32 {
    u32::from_le_bytes([r[8], r[9], r[10], r[11]])
}

fn rec_matches(r: &[u8], k: &([u8; 4], u8)) -> bool {
    r[0..4] == k.0 && r[5] == k.1
}

/// The cache as used by one qmail-remote run.
pub struct Tcpto {
    path: PathBuf,
    /// The last checked address had a record (qmail's `flagwasthere`).
    was_there: bool,
}

impl Default for Tcpto {
    fn default() -> Self {
        Self::new()
    }
}

impl Tcpto {
    pub fn new() -> Tcpto {
        Tcpto {
            path: path(),
            was_there: false,
        }
    }

    pub fn at(path: impl Into<PathBuf>) -> Tcpto {
        Tcpto {
            path: path.into(),
            was_there: false,
        }
    }

    /// Lock the file and read its records; `None` when the cache is unusable.
    fn load(&self) -> Option<(Flock<File>, Vec<u8>)> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .ok()?;
        let mut f = Flock::lock(f, FlockArg::LockExclusive).ok()?;
        let mut buf = vec![0u8; RECORDS * RECLEN];
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        buf.truncate(got - got % RECLEN);
        if buf.is_empty() {
            return None;
        }
        Some((f, buf))
    }

    fn store(f: &mut Flock<File>, i: usize, rec: &[u8]) {
        // A failed write only loses cache state, never mail; qmail ignores it too.
        if f.seek(SeekFrom::Start((i * RECLEN) as u64)).is_ok() {
            let _ = f.write_all(rec);
        }
    }

    /// Should `ip` be skipped because it timed out repeatedly a short while ago?
    pub fn is_dead(&mut self, ip: &IpAddr) -> bool {
        self.was_there = false;
        let Some((_lock, buf)) = self.load() else {
            return false;
        };
        let k = key(ip);
        for r in buf.chunks(RECLEN) {
            if rec_matches(r, &k) {
                self.was_there = true;
                if r[4] >= 2 {
                    let backoff = (60 + (std::process::id() & 31)) << 6;
                    return now().wrapping_sub(rec_when(r)) < backoff;
                }
                return false;
            }
        }
        false
    }

    /// Record the outcome of a connection attempt to `ip`: `timed_out` true for a time-out,
    /// false for a success.
    pub fn record(&mut self, ip: &IpAddr, timed_out: bool) {
        if !timed_out && !self.was_there {
            return;
        }
        let Some((mut f, mut buf)) = self.load() else {
            return;
        };
        let k = key(ip);
        let n = buf.len() / RECLEN;
        let t = now();
        for i in 0..n {
            let r = &mut buf[i * RECLEN..(i + 1) * RECLEN];
            if rec_matches(r, &k) {
                if !timed_out {
                    r[4] = 0;
                } else {
                    if r[4] != 0 && t < rec_when(r).saturating_add(120) {
                        return;
                    }
                    r[4] = (r[4] + 1).min(10);
                    r[8..12].copy_from_slice(&t.to_le_bytes());
                }
                let rec = r.to_vec();
                Self::store(&mut f, i, &rec);
                return;
            }
        }
        if !timed_out {
            return;
        }
        let slot = (0..n)
            .find(|&i| buf[i * RECLEN + 4] == 0)
            .unwrap_or_else(|| {
                (0..n)
                    .min_by_key(|&i| {
                        let r = &buf[i * RECLEN..(i + 1) * RECLEN];
                        u64::from(rec_when(r)) + (u64::from(r[4]) << 10)
                    })
                    .unwrap_or(0)
            });
        let mut rec = [0u8; RECLEN];
        rec[0..4].copy_from_slice(&k.0);
        rec[4] = 1;
        rec[5] = k.1;
        rec[8..12].copy_from_slice(&t.to_le_bytes());
        Self::store(&mut f, slot, &rec);
    }
}

/// The lines qmail-tcpto prints for a table: one per address with recorded time-outs,
/// "IP timed out S seconds ago; # recent timeouts: N".
pub fn describe(buf: &[u8], now: u32) -> String {
    let mut o = String::new();
    for r in buf.chunks_exact(RECLEN) {
        if r[4] == 0 {
            continue;
        }
        let who = if r[5] == 6 {
            format!(
                "IPv6 address with hash {:08x}",
                u32::from_le_bytes([r[0], r[1], r[2], r[3]])
            )
        } else {
            format!("{}.{}.{}.{}", r[0], r[1], r[2], r[3])
        };
        o.push_str(&format!(
            "{who} timed out {} seconds ago; # recent timeouts: {}\n",
            now.wrapping_sub(rec_when(r)),
            r[4]
        ));
    }
    o
}

/// `qmail-tcpto`: print the table.
pub fn tcpto_main() -> i32 {
    let p = path();
    let f = match OpenOptions::new().read(true).write(true).open(&p) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("qmail-tcpto: fatal: unable to open {}: {e}", p.display());
            return 111;
        }
    };
    let mut f = match Flock::lock(f, FlockArg::LockExclusive) {
        Ok(f) => f,
        Err((_, e)) => {
            eprintln!("qmail-tcpto: fatal: unable to lock {}: {e}", p.display());
            return 111;
        }
    };
    let mut buf = Vec::new();
    if let Err(e) = f.read_to_end(&mut buf) {
        eprintln!("qmail-tcpto: fatal: unable to read {}: {e}", p.display());
        return 111;
    }
    drop(f);
    print!("{}", describe(&buf, now()));
    0
}

/// `qmail-tcpok`: forget every recorded time-out (writes 1024 zero bytes under the lock).
pub fn tcpok_main() -> i32 {
    let p = path();
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("qmail-tcpok: fatal: unable to {what} {}: {e}", p.display());
        111
    };
    let f = match OpenOptions::new().write(true).open(&p) {
        Ok(f) => f,
        Err(e) => return fail("write", &e),
    };
    let mut f = match Flock::lock(f, FlockArg::LockExclusive) {
        Ok(f) => f,
        Err((_, e)) => return fail("lock", &e),
    };
    if let Err(e) = f
        .write_all(&[0u8; RECORDS * RECLEN])
        .and_then(|_| f.flush())
    {
        return fail("clear", &e);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, Tcpto) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tcpto");
        std::fs::write(&p, [0u8; 1024]).unwrap();
        (d, Tcpto::at(p))
    }

    fn age(path: &std::path::Path, secs: u32) {
        let mut b = std::fs::read(path).unwrap();
        for r in b.chunks_mut(16) {
            if r[4] != 0 {
                let w = rec_when(r) - secs;
                r[8..12].copy_from_slice(&w.to_le_bytes());
            }
        }
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn two_timeouts_mark_a_host_dead_and_success_clears_it() {
        let (_d, mut t) = cache();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(!t.is_dead(&ip));
        t.record(&ip, true);
        let b = std::fs::read(&t.path).unwrap();
        assert_eq!(&b[0..6], &[192, 0, 2, 7, 1, 0]);
        assert!(!t.is_dead(&ip), "one time-out is not enough");
        // A second time-out within 2 minutes does not count.
        t.record(&ip, true);
        assert_eq!(std::fs::read(&t.path).unwrap()[4], 1);
        age(&t.path.clone(), 200);
        t.record(&ip, true);
        assert_eq!(std::fs::read(&t.path).unwrap()[4], 2);
        assert!(t.is_dead(&ip));
        t.record(&ip, false);
        assert_eq!(std::fs::read(&t.path).unwrap()[4], 0);
        assert!(!t.is_dead(&ip));
    }

    #[test]
    fn ipv6_records_are_hashed_and_marked() {
        let (_d, mut t) = cache();
        let ip: IpAddr = "2001:db8::25".parse().unwrap();
        t.is_dead(&ip);
        t.record(&ip, true);
        let b = std::fs::read(&t.path).unwrap();
        assert_eq!(b[4], 1);
        assert_eq!(b[5], 6);
    }

    #[test]
    fn describe_lists_records_with_timeouts() {
        let mut b = vec![0u8; 1024];
        b[16..20].copy_from_slice(&[10, 0, 0, 1]);
        b[20] = 3;
        b[24..28].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            describe(&b, 1100),
            "10.0.0.1 timed out 100 seconds ago; # recent timeouts: 3\n"
        );
    }

    #[test]
    fn missing_file_disables_the_cache() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Tcpto::at(d.path().join("nope"));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        t.record(&ip, true);
        assert!(!t.is_dead(&ip));
        assert!(!d.path().join("nope").exists());
    }
}
