//! TAI64N labels as daemontools writes them: 8-byte big-endian TAI64 (2^62 + 10 + unix
//! seconds; later leap seconds ignored, as daemontools does) and 4-byte big-endian nanoseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Encode a time as the 12-byte TAI64N label.
pub fn encode(t: SystemTime) -> [u8; 12] {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    crate::shared::tai_encode(d.as_secs(), d.subsec_nanos())
}

/// Decode a 12-byte TAI64N label; labels before the epoch map to the epoch, nanoseconds
/// beyond 999999999 are clamped.
pub fn decode(b: &[u8; 12]) -> SystemTime {
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[..8]);
    let secs = crate::shared::tai_unix_secs(u64::from_be_bytes(s));
    let mut n = [0u8; 4];
    n.copy_from_slice(&b[8..]);
    let nanos = u32::from_be_bytes(n).min(999_999_999);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// Seconds from `then` to `now` as svstat prints them: the difference of the whole-second
/// labels (nanoseconds ignored, as daemontools does), never negative.
pub fn seconds_since(then: SystemTime, now: SystemTime) -> u64 {
    let s = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    s(now).saturating_sub(s(then))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip() {
        let t = UNIX_EPOCH + Duration::new(1_704_067_200, 123);
        let e = encode(t);
        assert_eq!(&e[..7], &[0x40, 0, 0, 0, 0x65, 0x92, 0]);
        assert_eq!(decode(&e), t);
    }
}
