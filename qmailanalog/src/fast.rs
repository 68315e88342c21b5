//! The integrated `qmailanalog zoverall` fast path: matchup (strict mode) and zoverall in
//! one state machine that keeps only numbers.
//!
//! zoverall reads nothing of a record but its kind and a few numbers (stamps, bytes,
//! counts), so this path keeps no sender or recipient text at all: open messages are
//! `id → (birth, bytes, k, d, z)` and open deliveries `id → (message, start)` in hash maps
//! keyed by the integers themselves. The usual line shapes (`starting delivery`,
//! `delivery`, `new msg`, `info msg`, `end msg`, `status:`) are recognised by their exact
//! byte patterns, straight on the raw line (numeric or tai64n stamp); anything else — extra
//! blanks, odd words, short lines, lines of other programs — goes through the generic
//! field split, which follows [`crate::matchup::Matchup`] rule for rule. Output, counts and
//! warnings are exactly those of the generic path (tests compare them with
//! `matchup | zoverall`).

use crate::awk::num;
use crate::input::{Stamp, push_stamp};
use crate::matchup::{Counts, find_sep, scan_ulong};
use crate::reports::Overall;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100000001b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // fibonacci hashing: the high bits (which the table uses) depend on every bit
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Map<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[derive(Clone, Copy)]
struct Msg {
    birth: f64,
    bytes: u64,
    k: u64,
    d: u64,
    z: u64,
}

#[derive(Clone, Copy)]
struct Del {
    msg: u64,
    start: f64,
}

/// The first field of a line, for awk's value of it (computed only when a record needs it).
#[derive(Clone, Copy)]
pub enum StampText<'a> {
    /// the numeric stamp as written
    Text(&'a [u8]),
    /// a numeric stamp's digits as one number M and the count F after the point, with
    /// the stamp as written (it reads M / 10^F)
    Digits(u64, usize, &'a [u8]),
    /// a tai64n stamp, which matchup sees as `SECS.NNNNNNNNN`
    Tai(Stamp),
}

impl StampText<'_> {
    fn value(self) -> f64 {
        match self {
            StampText::Text(t) => numeric_value(t),
            StampText::Digits(m, frac, t) => {
                // exact operands, one correctly rounded division: what num() gives
                if m <= 1 << 53 && frac < POW10.len() {
                    m as f64 / POW10[frac]
                } else {
                    num(t)
                }
            }
            StampText::Tai(t) => tai_value(t),
        }
    }
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// awk's value of a numeric stamp `DIGITS[.DIGITS]` (as `Stamper::peek` accepted it):
/// while the digits make an integer of at most 2^53, one correctly rounded division of
/// exact operands, which is what `num` returns; otherwise `num` itself.
fn numeric_value(t: &[u8]) -> f64 {
    let mut m: u64 = 0;
    let mut n = 0usize;
    let mut frac = 0usize;
    let mut dot = false;
    for &c in t {
        if c == b'.' {
            dot = true;
        } else {
            m = m.wrapping_mul(10).wrapping_add((c - b'0') as u64);
            n += 1;
            frac += dot as usize;
        }
    }
    if n <= 19 && m <= 1 << 53 && frac < POW10.len() {
        m as f64 / POW10[frac]
    } else {
        num(t)
    }
}

/// awk's value of `SECS.NNNNNNNNN` (what matchup sees for a tai64n stamp): the correctly
/// rounded (ties to even) binary value of SECS + NANOS/10^9, computed in integers — the
/// same double the decimal parse gives, without writing and parsing the text.
fn tai_value(t: Stamp) -> f64 {
    let (secs, nanos) = t;
    if secs != 0 && secs < 1 << 53 && nanos < 1_000_000_000 {
        let bits = 64 - secs.leading_zeros(); // 2^(bits-1) <= value < 2^bits
        let shift = 53 - bits; // fraction bits of a 53-bit mantissa
        if shift <= 34 {
            // nanos << shift < 2^30 * 2^34: fits
            let x = (nanos as u64) << shift;
            let mut q = x / 1_000_000_000;
            let r = x % 1_000_000_000;
            if r * 2 > 1_000_000_000 || (r * 2 == 1_000_000_000 && q & 1 == 1) {
                q += 1;
            }
            // mantissa <= 2^53: exact, and scaling by a power of two is exact
            let mant = (secs << shift) + q;
            return mant as f64 / (1u64 << shift) as f64;
        }
    }
    let mut buf = Vec::with_capacity(32);
    push_stamp(&mut buf, t);
    num(&buf)
}

/// A qmail-send line in its usual shape, as [`parse`] reads it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ev {
    Starting {
        d: u64,
        m: u64,
    },
    /// `kind`: b'k', b'd', b'z' or b'?' (a result matchup does not know)
    Delivery {
        d: u64,
        kind: u8,
    },
    New(u64),
    End(u64),
    Info {
        m: u64,
        bytes: u64,
    },
    /// `status: WORD…` (true when WORD is `exiting`)
    Status {
        exiting: bool,
    },
    /// `status: local …` (concurrency: matchup ignores it)
    StatusLocal,
    /// anything else: use [`FastOverall::line`]
    Other,
}

/// Read `rest` (the text after the stamp, from the space that follows it) when it is in
/// one of the usual shapes. A pure function of the bytes, so it can run ahead in the
/// reading thread.
pub fn parse(rest: &[u8]) -> Ev {
    let Some(r) = rest.strip_prefix(b" ") else {
        return Ev::Other;
    };
    match r.first() {
        Some(b's') => {
            if let Some(r) = r.strip_prefix(b"starting delivery ") {
                let (d, n) = digits(r);
                let Some(r) = r[n..].strip_prefix(b": msg ") else {
                    return Ev::Other;
                };
                if n == 0 {
                    return Ev::Other;
                }
                let (m, n) = digits(r);
                let Some(r) = r[n..].strip_prefix(b" to ") else {
                    return Ev::Other;
                };
                if n == 0 || !word_at(r, 0) {
                    return Ev::Other;
                }
                // channel and recipient: two words are all strict mode needs
                let Some(p) = memchr::memchr3(b' ', b'\t', b'\n', r) else {
                    return Ev::Other;
                };
                if !word_at(r, p + 1) {
                    return Ev::Other;
                }
                return Ev::Starting { d, m };
            }
            if let Some(r) = r.strip_prefix(b"status: ") {
                if r.starts_with(b"local ") {
                    return Ev::StatusLocal;
                }
                if !word_at(r, 0) {
                    return Ev::Other;
                }
                let e = find_sep(r, 0);
                return Ev::Status {
                    exiting: &r[..e] == b"exiting",
                };
            }
            Ev::Other
        }
        Some(b'd') => {
            let Some(r) = r.strip_prefix(b"delivery ") else {
                return Ev::Other;
            };
            let (d, n) = digits(r);
            let Some(r) = r[n..].strip_prefix(b": ") else {
                return Ev::Other;
            };
            if n == 0 || !word_at(r, 0) {
                return Ev::Other;
            }
            // a prefix of the whole rest is a prefix of its first word (none of these
            // prefixes holds a separator)
            let kind = if r.starts_with(b"succ") {
                b'k'
            } else if r.starts_with(b"fail") {
                b'd'
            } else if r.starts_with(b"defer") || r.starts_with(b"report") {
                b'z'
            } else {
                b'?'
            };
            Ev::Delivery { d, kind }
        }
        Some(b'n') | Some(b'e') => {
            let (is_new, r) = match r.strip_prefix(b"new msg ") {
                Some(r) => (true, r),
                None => match r.strip_prefix(b"end msg ") {
                    Some(r) => (false, r),
                    None => return Ev::Other,
                },
            };
            if !word_at(r, 0) {
                return Ev::Other;
            }
            let (m, _) = digits(r);
            if is_new { Ev::New(m) } else { Ev::End(m) }
        }
        Some(b'i') => {
            let Some(r) = r.strip_prefix(b"info msg ") else {
                return Ev::Other;
            };
            let (m, n) = digits(r);
            let Some(r) = r[n..].strip_prefix(b": bytes ") else {
                return Ev::Other;
            };
            if n == 0 {
                return Ev::Other;
            }
            let (bytes, n) = digits(r);
            let Some(r) = r[n..].strip_prefix(b" from ") else {
                return Ev::Other;
            };
            if n == 0 || !word_at(r, 0) {
                return Ev::Other;
            }
            // sender, "qp", QP, "uid", UID: the twelve words strict mode needs
            let Some(p) = memchr::memchr(b' ', r) else {
                return Ev::Other;
            };
            let Some(r) = r[p..].strip_prefix(b" qp ") else {
                return Ev::Other;
            };
            if !word_at(r, 0) {
                return Ev::Other;
            }
            let Some(p) = memchr::memchr(b' ', r) else {
                return Ev::Other;
            };
            let Some(r) = r[p..].strip_prefix(b" uid ") else {
                return Ev::Other;
            };
            if !word_at(r, 0) {
                return Ev::Other;
            }
            Ev::Info { m, bytes }
        }
        _ => Ev::Other,
    }
}

/// matchup (strict) + zoverall, numbers only.
#[derive(Default)]
pub struct FastOverall {
    msgs: Map<Msg>,
    dels: Map<Del>,
    /// When false, records are matched but not counted (lines before `--since`).
    pub emit: bool,
    pub counts: Counts,
    pub overall: Overall,
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n')
}

/// Leading decimal digits of `s` (qmail's scan_ulong) and how many there were.
#[inline]
fn digits(s: &[u8]) -> (u64, usize) {
    let mut r: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        r = r.wrapping_mul(10).wrapping_add((s[i] - b'0') as u64);
        i += 1;
    }
    (r, i)
}

/// `s` starts with a word (a byte that is not a blank).
#[inline]
fn word_at(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(|&c| !is_blank(c))
}

impl FastOverall {
    pub fn new() -> FastOverall {
        FastOverall {
            emit: true,
            ..Default::default()
        }
    }

    /// Gap events so far (as `cli::gap_total` counts them for the generic path).
    pub fn gaps(&self) -> u64 {
        self.counts.delivery_without_start
            + self.counts.delivery_without_info
            + self.counts.end_without_info
    }

    /// A line in its usual shape: `rest` is the text after the stamp, starting with the
    /// single space that follows it. Returns false (having done nothing) when the line is
    /// not in a shape this recognises; the caller then uses [`FastOverall::line`].
    #[inline]
    pub fn quick(&mut self, stamp: StampText, rest: &[u8]) -> bool {
        self.apply(parse(rest), stamp)
    }

    /// Act on a parsed line; false for [`Ev::Other`] (nothing done).
    #[inline]
    pub fn apply(&mut self, ev: Ev, stamp: StampText) -> bool {
        match ev {
            Ev::Starting { d, m } => self.starting(d, m, stamp.value()),
            Ev::Delivery { d, kind } => self.delivery(d, kind, stamp),
            Ev::New(m) => {
                self.msgs.remove(&m);
            }
            Ev::End(m) => self.end(m, stamp),
            Ev::Info { m, bytes } => self.info(m, bytes, stamp.value()),
            Ev::Status { exiting } => {
                if exiting {
                    self.exiting();
                }
            }
            Ev::StatusLocal => {}
            Ev::Other => return false,
        }
        true
    }

    /// Any line, numeric-stamped text as matchup reads it (the generic field split).
    pub fn line(&mut self, line: &[u8]) {
        const NF: usize = 12;
        let mut f = [(line.len(), line.len()); NF];
        let n = line.len();
        let mut k = 0;
        let mut nf = 0;
        for (i, slot) in f.iter_mut().enumerate() {
            while k < n && is_blank(line[k]) {
                k += 1;
            }
            let s = k;
            k = find_sep(line, k);
            let e = k;
            if k < n && line[k] == 0 {
                // a C string ends at the NUL: the rest of the word is skipped
                while k < n && !is_blank(line[k]) {
                    k += 1;
                }
            }
            *slot = (s, e);
            if k > s {
                nf = i + 1;
            }
        }
        let field = |i: usize| &line[f[i].0..f[i].1];
        let kw = field(1);
        let need = match kw {
            b"starting" => 9,
            b"delivery" | b"new" | b"end" => 4,
            b"info" => 12,
            b"extra" => 6,
            _ => 0,
        };
        if nf < need {
            self.counts.malformed += 1;
            return;
        }
        let stamp = StampText::Text(field(0));
        match kw {
            b"status:" => {
                if field(2) == b"exiting" {
                    self.exiting();
                }
            }
            b"starting" => self.starting(scan_ulong(field(3)), scan_ulong(field(5)), stamp.value()),
            b"delivery" => {
                let what = field(3);
                let kind = if what.starts_with(b"succ") {
                    b'k'
                } else if what.starts_with(b"fail") {
                    b'd'
                } else if what.starts_with(b"defer") || what.starts_with(b"report") {
                    b'z'
                } else {
                    b'?'
                };
                self.delivery(scan_ulong(field(2)), kind, stamp)
            }
            b"new" => {
                self.msgs.remove(&scan_ulong(field(3)));
            }
            b"end" => self.end(scan_ulong(field(3)), stamp),
            b"info" => self.info(scan_ulong(field(3)), scan_ulong(field(5)), stamp.value()),
            b"extra" => {
                if let Some(msg) = self.msgs.get_mut(&scan_ulong(field(2))) {
                    msg.k = scan_ulong(field(3));
                    msg.z = scan_ulong(field(4));
                    msg.d = scan_ulong(field(5));
                }
            }
            b"running" | b"exiting" => self.dels.clear(),
            b"number" | b"local" | b"remote" | b"warning:" | b"alert:" => {}
            b"bounce" | b"triple" => {}
            _ => self.counts.foreign += 1,
        }
    }

    fn exiting(&mut self) {
        self.counts.delivery_dropped_at_exit += self.dels.len() as u64;
        self.dels.clear();
    }

    #[inline]
    fn starting(&mut self, d: u64, m: u64, start: f64) {
        if self.dels.insert(d, Del { msg: m, start }).is_some() {
            self.counts.delivery_restarted += 1;
        }
    }

    /// `kind` as in [`Ev::Delivery`].
    #[inline]
    fn delivery(&mut self, d: u64, kind: u8, stamp: StampText) {
        let Some(del) = self.dels.remove(&d) else {
            self.counts.delivery_without_start += 1;
            return;
        };
        let msg = self.msgs.get_mut(&del.msg);
        let birth = match msg {
            Some(m) => {
                match kind {
                    b'k' => m.k += 1,
                    b'd' => m.d += 1,
                    b'z' => m.z += 1,
                    _ => {}
                }
                Some(m.birth)
            }
            None => {
                self.counts.delivery_without_info += 1;
                None
            }
        };
        if kind == b'?' {
            // matchup writes "?…", which zoverall does not count
            self.counts.odd_result += 1;
            return;
        }
        if self.emit {
            self.overall
                .d(kind, birth.unwrap_or(del.start), del.start, stamp.value());
        }
    }

    #[inline]
    fn end(&mut self, m: u64, stamp: StampText) {
        let Some(msg) = self.msgs.remove(&m) else {
            self.counts.end_without_info += 1;
            return;
        };
        if self.emit {
            self.overall.m(
                msg.birth,
                stamp.value(),
                msg.bytes as f64,
                msg.k as f64,
                msg.d as f64,
                msg.z as f64,
            );
        }
    }

    #[inline]
    fn info(&mut self, m: u64, bytes: u64, birth: f64) {
        self.msgs.insert(
            m,
            Msg {
                birth,
                bytes,
                k: 0,
                d: 0,
                z: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_values_equal_awk_num_of_the_text() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut samples: Vec<Stamp> = vec![
            (1, 0),
            (1, 500_000_000),
            (1_700_000_000, 0),
            (1_700_000_000, 999_999_999),
            (1_700_000_000, 1),
            ((1 << 31) - 1, 500_000_000),
            (1 << 31, 123_456_789),
            (4_000_000_000, 987_654_321),
            ((1 << 53) - 1, 999_999_999),
        ];
        for _ in 0..200_000 {
            let r = next();
            let secs = match r % 4 {
                0 => 1_600_000_000 + next() % 200_000_000,
                1 => 1 + next() % 100_000,
                2 => next() % (1 << 40),
                _ => next() >> (next() % 64),
            };
            samples.push((secs, (next() % 1_000_000_000) as u32));
        }
        for t in samples {
            let mut text = Vec::new();
            push_stamp(&mut text, t);
            assert_eq!(
                tai_value(t).to_bits(),
                num(&text).to_bits(),
                "{}",
                String::from_utf8_lossy(&text)
            );
            // the same text as a numeric stamp, and shorter fractions
            for cut in [text.len(), text.len() - 3, text.len() - 6, text.len() - 9] {
                let s = &text[..cut];
                let s = s.strip_suffix(b".").unwrap_or(s);
                assert_eq!(
                    numeric_value(s).to_bits(),
                    num(s).to_bits(),
                    "{}",
                    String::from_utf8_lossy(s)
                );
                let mut line = s.to_vec();
                line.extend_from_slice(b" new msg 1");
                let Some(p) = crate::input::Stamper::default().peek(&line) else {
                    assert_eq!(crate::input::parse_numeric(s), None);
                    continue;
                };
                assert_eq!(p.off, s.len());
                assert_eq!(Some(p.when), crate::input::parse_numeric(s));
                if let Some((m, f)) = p.digits {
                    assert_eq!(
                        StampText::Digits(m, f, s).value().to_bits(),
                        num(s).to_bits(),
                        "{}",
                        String::from_utf8_lossy(s)
                    );
                }
            }
        }
    }

    #[test]
    fn tai64n_labels_take_hex_digits_only() {
        use crate::input::parse_tai64n;
        let ok = b"@400000006553f1000000000a rest";
        assert_eq!(parse_tai64n(ok), Some((0x6553f100 - 10, 10)));
        assert_eq!(
            parse_tai64n(b"@400000006553F1000000000A"),
            Some((0x6553f100 - 10, 10))
        );
        for bad in [
            &b"@400000006553g1000000000a"[..],
            b"@400000006553f100000000:a",
            b"@400000006553f10000000 0a",
            b"@400000006553f1003b9aca00",
            b"@000000000000000000000000",
            b"@400000006553f100",
        ] {
            assert_eq!(parse_tai64n(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
