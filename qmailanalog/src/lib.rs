//! qmailanalog: matchup and the z/x report tools over qmail-send logs, plus the integrated
//! `qmailanalog` command that reads multilog directories directly.
//!
//! * `matchup` — qmail-send log → `d`/`m` records (qmailanalog 0.70's format), open state
//!   to fd 5. Accepts tai64n-stamped lines too (converted to `SECS.NANOSECONDS`).
//! * `zoverall`, `zddist`, `zdeferrals`, `zfailures`, `zrecipients`, `zrhosts`, `zrxdelay`,
//!   `zsenders`, `zsendmail`, `zsuccesses`, `zsuids` — reports over matchup output, byte for
//!   byte what the original awk/sort/columnt scripts print (C.UTF-8 sort order).
//! * `xqp`, `xrecipient`, `xsender` — select matchup records.
//! * `qmailanalog [REPORT] [INPUT…]` — matchup and a report in one streaming pass over
//!   multilog directories, files or stdin, with `--since`/`--until` and `--html FILE`;
//!   `zoverall` alone runs on a numbers-only state machine ([`fast`]), as a two-thread
//!   pipeline that reads regular files through read-only maps ([`mapped`]).
//!
//! Deliberate differences from the original: `matchup` without fd 5 warns instead of
//! failing; the integrated command drops (and counts) truncated/malformed lines and closes
//! open deliveries at "status: exiting"; every oddity is counted and reported on stderr.

pub mod awk;
pub mod cli;
pub mod fast;
pub mod genlog;
pub mod html;
pub mod input;
pub mod mapped;
pub mod matchup;
pub mod reports;

/// A small xorshift generator for the unit tests' random inputs (deterministic per seed).
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
