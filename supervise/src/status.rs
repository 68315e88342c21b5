//! The `supervise/status` file: exactly 18 bytes, as daemontools 0.76 writes it —
//! bytes 0–11 TAI64N of the last pid change, 12–15 pid (little-endian, 0 when down), 16 paused
//! flag, 17 want flag (`u`, `d`, or 0 when no wish is pending). Replaced atomically by writing
//! `status.new` and renaming it. Readiness (an s6 idea) lives in a separate file,
//! `supervise/ready` (12-byte TAI64N of the moment the service said it was ready, then the
//! pid it concerns, little-endian), so the 18 bytes stay readable by daemontools' svstat.

use crate::tai;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

pub use crate::shared::{READY_LEN, STATUS_LEN};

/// What the service wants, byte 17.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Up,
    Down,
    /// No pending wish (after `o`), or an unknown byte written by someone else.
    Nothing,
}

/// The decoded status file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// When the pid last changed.
    pub when: SystemTime,
    /// Pid of ./run, 0 when down.
    pub pid: u32,
    pub paused: bool,
    pub want: Want,
}

/// Why a status file could not be decoded.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    BadFormat,
}

impl Status {
    pub fn encode(&self) -> [u8; STATUS_LEN] {
        let want = match self.want {
            Want::Up => b'u',
            Want::Down => b'd',
            Want::Nothing => 0,
        };
        crate::shared::status_bytes(tai::encode(self.when), self.pid, self.paused, want)
    }

    /// Decode; anything but exactly 18 bytes is a bad format.
    pub fn decode(b: &[u8]) -> Result<Status, ReadError> {
        if b.len() != STATUS_LEN {
            return Err(ReadError::BadFormat);
        }
        let mut label = [0u8; 12];
        label.copy_from_slice(&b[..12]);
        let mut pid = [0u8; 4];
        pid.copy_from_slice(&b[12..16]);
        Ok(Status {
            when: tai::decode(&label),
            pid: u32::from_le_bytes(pid),
            paused: b[16] != 0,
            want: match b[17] {
                b'u' => Want::Up,
                b'd' => Want::Down,
                _ => Want::Nothing,
            },
        })
    }

    /// Read `SUPDIR/status`.
    pub fn read(supdir: &Path) -> Result<Status, ReadError> {
        let b = fs::read(supdir.join("status")).map_err(ReadError::Io)?;
        Status::decode(&b)
    }
}

/// Write `dir/NAME.new` then rename it over `dir/NAME`. On failure the error text says which
/// step failed in daemontools' words, naming the file as `shown/NAME.new` ("unable to open
/// …: access denied", "unable to rename … to NAME: …").
pub fn replace_file(dir: &Path, shown: &str, name: &str, data: &[u8]) -> Result<(), String> {
    let new = dir.join(format!("{name}.new"));
    let shown_new = format!("{shown}/{name}.new");
    let e = |what: &str, e: io::Error| format!("unable to {what}: {}", crate::errstr::err_str(&e));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&new)
        .map_err(|x| e(&format!("open {shown_new}"), x))?;
    f.write_all(data)
        .map_err(|x| e(&format!("write {shown_new}"), x))?;
    drop(f);
    fs::rename(&new, dir.join(name)).map_err(|x| e(&format!("rename {shown_new} to {name}"), x))
}

/// Readiness: when the service with `pid` reported ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    pub when: SystemTime,
    pub pid: u32,
}

impl Ready {
    pub fn encode(&self) -> [u8; READY_LEN] {
        crate::shared::ready_bytes(tai::encode(self.when), self.pid)
    }

    pub fn decode(b: &[u8]) -> Option<Ready> {
        if b.len() != READY_LEN {
            return None;
        }
        let mut label = [0u8; 12];
        label.copy_from_slice(&b[..12]);
        let mut pid = [0u8; 4];
        pid.copy_from_slice(&b[12..16]);
        Some(Ready {
            when: tai::decode(&label),
            pid: u32::from_le_bytes(pid),
        })
    }

    /// Read `SUPDIR/ready`; `None` when absent or malformed (then the service is not ready).
    pub fn read(supdir: &Path) -> Option<Ready> {
        fs::read(supdir.join("ready"))
            .ok()
            .and_then(|b| Ready::decode(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};
    #[test]
    fn layout() {
        let s = Status {
            when: UNIX_EPOCH + Duration::from_secs(1),
            pid: 0x01020304,
            paused: true,
            want: Want::Down,
        };
        let b = s.encode();
        assert_eq!(&b[12..], &[4, 3, 2, 1, 1, b'd']);
        assert_eq!(Status::decode(&b).unwrap(), s);
        assert!(matches!(
            Status::decode(&b[..17]),
            Err(ReadError::BadFormat)
        ));
    }
}
