//! Timestamps: TAI64N labels as daemontools writes them (`@` + 24 lowercase hex digits), and
//! the ISO 8601 prefix of our `T` action.
//!
//! daemontools counts TAI64 seconds as 2^62 + 10 + unix seconds (the TAI−UTC offset of 1972,
//! later leap seconds ignored); the `tai64` crate's own epoch uses 37 s, so we build the label
//! ourselves and only use the crate's byte encoding.

use std::time::{SystemTime, UNIX_EPOCH};

use tai64::{Tai64, Tai64N};

/// TAI64 label of unix second 0, as daemontools counts it.
pub const TAI_UNIX_EPOCH: u64 = (1 << 62) + 10;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Unix seconds and nanoseconds now (0 for a clock before 1970).
#[inline]
pub fn now_unix() -> (u64, u32) {
    // clock_gettime directly: this runs once per log line, and SystemTime's conversions
    // cost as much as the clock read itself.
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME) {
        Ok(ts) if ts.tv_sec() >= 0 => (ts.tv_sec() as u64, ts.tv_nsec() as u32),
        Ok(_) => (0, 0),
        Err(_) => match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs(), d.subsec_nanos()),
            Err(_) => (0, 0),
        },
    }
}

/// `@` + 24 hex digits for unix time `(secs, nanos)`.
pub fn tai64n_label(secs: u64, nanos: u32) -> [u8; 25] {
    let t = Tai64N(Tai64(TAI_UNIX_EPOCH.wrapping_add(secs)), nanos);
    let bytes = t.to_bytes();
    let mut out = [0u8; 25];
    out[0] = b'@';
    for (i, b) in bytes.iter().enumerate() {
        out[1 + 2 * i] = HEX[(b >> 4) as usize];
        out[2 + 2 * i] = HEX[(b & 15) as usize];
    }
    out
}

/// Hands out per-line time stamps that never go backwards, even when the system clock is
/// stepped back: a stamp earlier than the previous one is replaced by the previous one.
#[derive(Default)]
pub struct Clock {
    last: (u64, u32),
    iso_sec: Option<u64>,
    iso_text: [u8; 19],
    /// `@` + the 16 hex digits of the seconds of `label_sec`.
    label_sec: Option<u64>,
    label_head: [u8; 17],
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            last: (0, 0),
            iso_sec: None,
            iso_text: [b'0'; 19],
            label_sec: None,
            label_head: [b'0'; 17],
        }
    }

    /// [`tai64n_label`] with the seconds part cached (it changes once a second).
    #[inline]
    pub fn label(&mut self, secs: u64, nanos: u32) -> [u8; 25] {
        if self.label_sec != Some(secs) {
            self.label_head
                .copy_from_slice(&tai64n_label(secs, 0)[..17]);
            self.label_sec = Some(secs);
        }
        let mut out = [0u8; 25];
        out[..17].copy_from_slice(&self.label_head);
        for i in 0..8 {
            out[17 + i] = HEX[((nanos >> (28 - 4 * i)) & 15) as usize];
        }
        out
    }

    /// The current time, clamped to be no earlier than the last one returned.
    pub fn now(&mut self) -> (u64, u32) {
        let t = now_unix();
        if t > self.last {
            self.last = t;
        }
        self.last
    }

    /// A time strictly later than the last one returned (used for file names, which must
    /// sort in creation order).
    pub fn now_strict(&mut self) -> (u64, u32) {
        let t = now_unix();
        self.last = if t > self.last {
            t
        } else if self.last.1 < 999_999_999 {
            (self.last.0, self.last.1 + 1)
        } else {
            (self.last.0 + 1, 0)
        };
        self.last
    }

    /// Append the `T` prefix for `(secs, nanos)`: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ ` (UTC).
    pub fn push_iso(&mut self, out: &mut Vec<u8>, secs: u64, nanos: u32) {
        if self.iso_sec != Some(secs) {
            let dt = chrono::DateTime::from_timestamp(secs.min(i64::MAX as u64) as i64, 0)
                .unwrap_or_default();
            let s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
            let b = s.as_bytes();
            if b.len() == 19 {
                self.iso_text.copy_from_slice(b);
            }
            self.iso_sec = Some(secs);
        }
        out.extend_from_slice(&self.iso_text);
        let mut frac = [b'.', 0, 0, 0, 0, 0, 0, 0, 0, 0, b'Z', b' '];
        let mut n = nanos;
        for i in (1..10).rev() {
            frac[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&frac);
    }
}

/// Length of the `T` prefix.
pub const ISO_LEN: usize = 19 + 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_of_2024() {
        // 2024-01-01 00:00:00 UTC = unix 1704067200
        let l = tai64n_label(1704067200, 0);
        assert_eq!(&l, b"@400000006592008a00000000");
    }

    #[test]
    fn cached_label() {
        let mut c = Clock::new();
        for (s, n) in [
            (1704067200, 0),
            (1704067200, 999_999_999),
            (1704067201, 12345),
        ] {
            assert_eq!(c.label(s, n), tai64n_label(s, n));
        }
    }

    #[test]
    fn iso() {
        let mut c = Clock::new();
        let mut v = Vec::new();
        c.push_iso(&mut v, 1704067200, 5);
        assert_eq!(v, b"2024-01-01T00:00:00.000000005Z ");
        assert_eq!(v.len(), ISO_LEN);
    }
}
