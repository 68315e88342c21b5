//! The integrated `qmailanalog zoverall` fast path: matchup (strict mode) and zoverall in
//! one state machine that keeps only numbers.
//!
//! zoverall reads nothing of a record but its kind and a few numbers (stamps, bytes,
//! counts), so this path keeps no sender or recipient text at all: open messages are
//! `id → (birth, bytes, k, d, z)` and open deliveries `id → (message, start)` in small
//! open-addressing maps keyed by the integers themselves. The usual line shapes (`starting
//! delivery`, `delivery`, `new msg`, `info msg`, `end msg`, `status:`) are recognised by
//! their exact byte patterns, straight on the raw line (numeric or tai64n stamp); anything
//! else — extra blanks, odd words, short lines, lines of other programs — goes through the
//! generic field split, which follows [`crate::matchup::Matchup`] rule for rule. Output,
//! counts and warnings are exactly those of the generic path (tests compare them with
//! `matchup | zoverall`).
//!
//! [`run`] works as a two-thread pipeline (see there): the calling thread reads the input
//! (regular files through read-only maps, see [`crate::mapped`]; anything else with
//! `read()`), cuts it into lines, reads the stamps and keeps the window and order
//! bookkeeping; a second thread parses the lines that matter and applies them to the state
//! machine, in input order. Short-lived helper threads map the next window of a file and
//! unmap old ones meanwhile. Memory stays bounded (a few batches and windows in flight).

use crate::awk::num;
use crate::input::{Stamp, push_stamp, read_some};
use crate::mapped::{Mapping, WINDOW};
use crate::matchup::{Counts, find_sep, scan_ulong};
use crate::reports::Overall;
use std::io::{self, Read};
use std::sync::Arc;

/// A map from ids (message or delivery numbers) to small values: open addressing with
/// linear probing and backward-shift deletion, Fibonacci hashing, at most half full. The
/// maps hold the messages and deliveries in flight (a few thousand), so they live in the
/// cache, and a probe is a multiply, a shift and usually one compare.
#[derive(Clone)]
struct Map<V: Copy> {
    slots: Vec<Slot<V>>,
    len: usize,
    /// 64 - log2(slots.len())
    shift: u32,
}

#[derive(Clone, Copy)]
struct Slot<V: Copy> {
    key: u64,
    used: bool,
    val: Option<V>,
}

impl<V: Copy> Default for Map<V> {
    fn default() -> Self {
        Map::with_bits(6)
    }
}

impl<V: Copy> Map<V> {
    fn with_bits(bits: u32) -> Self {
        Map {
            slots: vec![
                Slot {
                    key: 0,
                    used: false,
                    val: None,
                };
                1 << bits
            ],
            len: 0,
            shift: 64 - bits,
        }
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `key`, if any.
    #[inline]
    fn find(&self, key: u64) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let s = &self.slots[i];
            if !s.used {
                return None;
            }
            if s.key == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        let i = self.find(key)?;
        self.slots[i].val.as_mut()
    }

    /// Insert or replace; the value replaced.
    #[inline]
    fn insert(&mut self, key: u64, val: V) -> Option<V> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let s = &mut self.slots[i];
            if !s.used {
                *s = Slot {
                    key,
                    used: true,
                    val: Some(val),
                };
                self.len += 1;
                return None;
            }
            if s.key == key {
                return s.val.replace(val);
            }
            i = (i + 1) & mask;
        }
    }

    #[inline]
    fn remove(&mut self, key: u64) -> Option<V> {
        let mut hole = self.find(key)?;
        let val = self.slots[hole].val.take();
        let mask = self.mask();
        // move back every later entry of the run whose home is not between the hole and it
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            if !self.slots[j].used {
                break;
            }
            let h = self.home(self.slots[j].key);
            // distance from home to j and from the hole to j, around the ring
            if (j.wrapping_sub(h) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole].used = false;
        self.slots[hole].val = None;
        self.len -= 1;
        val
    }

    fn clear(&mut self) {
        if self.len > 0 {
            for s in &mut self.slots {
                s.used = false;
                s.val = None;
            }
            self.len = 0;
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let bits = 64 - self.shift + 1;
        let old = std::mem::replace(self, Map::with_bits(bits));
        for s in old.slots {
            if let (true, Some(v)) = (s.used, s.val) {
                self.insert(s.key, v);
            }
        }
    }
}

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
            // mantissa <= 2^53: exact, and scaling by a power of two (here a product
            // with 2^-shift, the same as dividing by 2^shift) is exact
            let mant = (secs << shift) + q;
            return mant as f64 * f64::from_bits((1023 - shift as u64) << 52);
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
/// one of the usual shapes. A pure function of the bytes.
#[inline(always)]
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
                // (a short word: a plain loop beats memchr's set-up)
                let Some(p) = r.iter().position(|&c| is_blank(c)) else {
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
    if s.len() >= 8 {
        // eight bytes at once: up to the first byte that is not a digit
        let mut a = [0u8; 8];
        a.copy_from_slice(&s[..8]);
        let x = u64::from_le_bytes(a);
        let n = crate::input::leading_digits(x);
        if n == 0 {
            return (0, 0);
        }
        if n < 8 {
            // the digits moved to the end, '0's in front: the same number
            let shift = 8 * (8 - n) as u32;
            let y = (x << shift) | (0x3030_3030_3030_3030u64 >> (64 - shift));
            return (crate::input::eight_digits(y), n);
        }
    }
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
                self.delivery(scan_ulong(field(2)), kind, stamp.value())
            }
            b"new" => {
                self.msgs.remove(scan_ulong(field(3)));
            }
            b"end" => self.end(scan_ulong(field(3)), stamp.value()),
            b"info" => self.info(scan_ulong(field(3)), scan_ulong(field(5)), stamp.value()),
            b"extra" => {
                if let Some(msg) = self.msgs.get_mut(scan_ulong(field(2))) {
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
    fn delivery(&mut self, d: u64, kind: u8, t: f64) {
        let Some(del) = self.dels.remove(d) else {
            self.counts.delivery_without_start += 1;
            return;
        };
        let msg = self.msgs.get_mut(del.msg);
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
                .d(kind, birth.unwrap_or(del.start), del.start, t);
        }
    }

    #[inline]
    fn end(&mut self, m: u64, t: f64) {
        let Some(msg) = self.msgs.remove(m) else {
            self.counts.end_without_info += 1;
            return;
        };
        if self.emit {
            self.overall.m(
                msg.birth,
                t,
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

/// A record of a line with its own stamp (tai64n or numeric), parsed by the other thread.
const R_STAMPED: u8 = 1;
/// A record of a line in the batch's `text`, already in matchup's numeric-stamped form
/// (lines the reading thread had to stamp the slow way): [`FastOverall::line`] reads it.
const R_TEXT: u8 = 2;

/// How the stamp of an `R_STAMPED` record reads (see [`StampText`]).
const S_TAI: u8 = 0;
const S_DIGITS: u8 = 1;
const S_TEXT: u8 = 2;

/// One line that matters, as the reading thread hands it to the matching thread: where
/// it lies, what its stamp is, and the `--since` verdict.
#[derive(Clone, Copy)]
struct Rec {
    /// the stamp's value as awk reads it (`R_STAMPED`)
    t: f64,
    /// tai64n: the seconds; numeric: all the stamp's digits as one number
    a: u64,
    /// tai64n: the nanoseconds; numeric: the number of digits after the point
    b: u32,
    /// the line is `store[line..end]`, its text after the stamp `store[rest..end]`, where
    /// `store` is the batch's `buf` or (flag `in_text`) its `text`
    line: u32,
    rest: u32,
    end: u32,
    /// line number, counted from the batch's `base`
    off: u32,
    kind: u8,
    stamp: u8,
    in_text: bool,
    /// false for lines before `--since` (matched but not counted)
    emit: bool,
}

/// One read's worth of input and the records of its lines (all of one source).
#[derive(Default)]
struct Batch {
    source: usize,
    /// line number of the line before the batch's first
    base: u64,
    /// the input: `buf[..len]`, or `map.bytes()[start..start + len]`
    buf: Vec<u8>,
    map: Option<Arc<Mapping>>,
    start: usize,
    len: usize,
    recs: Vec<Rec>,
    /// lines continued from the read before, and lines stamped the slow way
    text: Vec<u8>,
}

impl Batch {
    fn data(&self) -> &[u8] {
        let all = match &self.map {
            Some(m) => m.bytes(),
            None => &self.buf,
        };
        all.get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

/// Where the reading thread gets its bytes.
enum Input {
    Stream(Box<dyn Read + Send>),
    /// A file: its first `size` bytes (its size when opened) through maps, window by
    /// window, anything appended later with `read()`.
    File {
        file: Arc<std::fs::File>,
        size: u64,
        pos: u64,
        map: Option<(u64, Arc<Mapping>)>,
        /// the next window, being mapped by a helper thread
        next: Option<(u64, std::thread::JoinHandle<Option<Mapping>>)>,
        /// windows the batches are done with, unmapped by the next helper
        retire: Vec<Arc<Mapping>>,
        /// mapping failed: read() the rest
        no_map: bool,
    },
}

/// Map window `at` of `file` (its first `size` bytes) in a helper thread, which also
/// unmaps the windows in `retire`: that kernel work (page tables set up and torn down)
/// then overlaps the reading thread's.
fn map_ahead(
    file: &Arc<std::fs::File>,
    size: u64,
    at: u64,
    retire: Vec<Arc<Mapping>>,
) -> Option<(u64, std::thread::JoinHandle<Option<Mapping>>)> {
    let file = file.clone();
    let valid = (size - at).min(WINDOW as u64) as usize;
    std::thread::Builder::new()
        .spawn(move || {
            drop(retire);
            Mapping::new(&file, at, valid)
        })
        .ok()
        .map(|h| (at, h))
}

impl Input {
    /// The next piece of input into `b` (its length; 0 at the end).
    fn fill(&mut self, b: &mut Batch, read: usize) -> io::Result<usize> {
        let done = b.map.take();
        b.start = 0;
        b.len = 0;
        if let Input::File {
            file,
            size,
            pos,
            map,
            next,
            retire,
            no_map,
        } = self
        {
            retire.extend(done);
            if *pos < *size && !*no_map {
                let at = *pos / WINDOW as u64 * WINDOW as u64;
                if map.as_ref().is_none_or(|(m_at, _)| *m_at != at) {
                    // the batches still using the old window keep it mapped
                    retire.extend(map.take().map(|(_, m)| m));
                    let ahead = match next.take() {
                        Some((n_at, h)) if n_at == at => h.join().ok().flatten(),
                        Some((_, h)) => {
                            let _ = h.join();
                            None
                        }
                        None => None,
                    };
                    let m = ahead.or_else(|| {
                        let valid = (*size - at).min(WINDOW as u64) as usize;
                        Mapping::new(file, at, valid)
                    });
                    *map = m.map(|m| (at, Arc::new(m)));
                    let following = at + WINDOW as u64;
                    if map.is_some() && following < *size {
                        *next = map_ahead(file, *size, following, std::mem::take(retire));
                    }
                }
                if let Some((_, m)) = map {
                    let s = (*pos - at) as usize;
                    let n = (m.bytes().len() - s).min(read);
                    if n > 0 {
                        b.map = Some(m.clone());
                        b.start = s;
                        b.len = n;
                        *pos += n as u64;
                        return Ok(n);
                    }
                }
                *no_map = true;
            }
            *map = None;
        }
        if b.buf.len() != read {
            b.buf = vec![0; read];
        }
        let n = match self {
            Input::Stream(r) => read_some(r.as_mut(), &mut b.buf)?,
            Input::File { file, pos, .. } => {
                use std::os::unix::fs::FileExt;
                let n = loop {
                    match file.read_at(&mut b.buf, *pos) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        x => break x?,
                    }
                };
                *pos += n as u64;
                n
            }
        };
        b.len = n;
        Ok(n)
    }
}

/// Bytes read at a time: a batch stays inside a core's cache while both threads use it.
const READ: usize = 256 << 10;

/// `qmailanalog zoverall`: reads `sources` and returns the state machine after the last
/// line, with the place (source index, line number) of the first line that showed a gap.
///
/// Two threads. This one takes the input 256 KiB at a time (from a 4 MiB window mapped
/// from a regular file, else read into a buffer), cuts it into lines, reads the stamps,
/// keeps the `--since`/`--until` and order bookkeeping, drops concurrency reports
/// (`status: local …`) and, for every other line, hands a small record (where the line
/// lies, its stamp and the stamp's value) to the second thread together with the piece of
/// input. The second thread parses each line and applies it, in order, to the message and
/// delivery maps and the report. At most a few batches (and so windows) are in flight, so
/// memory stays bounded whatever the input's size. Counts and warnings are exactly those
/// of the generic path. A file cut short while it is read is reported in
/// `counts.missing`.
pub fn run(
    sources: &[crate::input::Source],
    counts: &mut crate::input::InputCounts,
    stamper: &mut crate::input::Stamper,
    since: Option<Stamp>,
    until: Option<Stamp>,
) -> (FastOverall, Option<(usize, u64)>) {
    run_sized(sources, counts, stamper, since, until, READ, true)
}

/// [`run`] reading `read` bytes at a time, through maps (`map`) or `read()` only.
fn run_sized(
    sources: &[crate::input::Source],
    counts: &mut crate::input::InputCounts,
    stamper: &mut crate::input::Stamper,
    since: Option<Stamp>,
    until: Option<Stamp>,
    read: usize,
    map: bool,
) -> (FastOverall, Option<(usize, u64)>) {
    let read = read.max(1);
    use crate::input::{MAX_LINE, Source, open_file};
    use std::sync::mpsc;
    // room for a few MiB of batches, so neither thread waits on the other for long
    let (tx, rx) = mpsc::sync_channel::<Batch>(16);
    let (back_tx, back_rx) = mpsc::channel::<Batch>();
    std::thread::scope(|scope| {
        let applier = scope.spawn(move || {
            let mut fast = FastOverall::new();
            let mut first_gap = None;
            let mut tmp = Vec::new();
            for b in rx {
                let data = b.data();
                for r in &b.recs {
                    let before = fast.gaps();
                    fast.record(r, data, &b.text, &mut tmp);
                    if first_gap.is_none() && fast.gaps() != before {
                        first_gap = Some((b.source, b.base + r.off as u64));
                    }
                }
                // (the reading thread lets go of the batch's window, and so unmaps it)
                if back_tx.send(b).is_err() {
                    break;
                }
            }
            (fast, first_gap)
        });
        let mut line = Stamping::new(stamper, since, until);
        let mut carry: Vec<u8> = Vec::new(); // start of a line continued in the next read
        let mut skipping = false; // inside an overlong line: drop bytes up to its newline
        'sources: for (idx, src) in sources.iter().enumerate() {
            counts.source = idx;
            counts.line_no = 0;
            let mut input = match src {
                Source::Stdin => Input::Stream(Box::new(io::stdin())),
                Source::File(p) => {
                    let Some(file) = open_file(p, counts) else {
                        continue;
                    };
                    // a FIFO or device is read as a stream
                    match file.metadata() {
                        Ok(m) if m.is_file() => Input::File {
                            file: Arc::new(file),
                            size: m.len(),
                            pos: 0,
                            map: None,
                            next: None,
                            retire: Vec::new(),
                            no_map: !map,
                        },
                        _ => Input::Stream(Box::new(file)),
                    }
                }
            };
            counts.files += 1;
            loop {
                let mut b = back_rx.try_recv().unwrap_or_default();
                b.recs.clear();
                b.text.clear();
                b.source = idx;
                b.base = counts.line_no;
                let n = match input.fill(&mut b, read) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        counts
                            .missing
                            .push(format!("{}: read error: {e}", src.name()));
                        break;
                    }
                };
                counts.bytes += n as u64;
                let base = b.base;
                let Batch {
                    buf,
                    map,
                    start: at,
                    recs,
                    text,
                    ..
                } = &mut b;
                let data = match map {
                    Some(m) => &m.bytes()[*at..*at + n],
                    None => &buf[..n],
                };
                let mut start = 0;
                if skipping || !carry.is_empty() {
                    match memchr::memchr(b'\n', data) {
                        Some(p) => {
                            counts.lines += 1;
                            counts.line_no += 1;
                            if skipping {
                                skipping = false;
                            } else {
                                // the whole line goes into the batch's text
                                carry.extend_from_slice(&data[..p]);
                                text.extend_from_slice(&carry);
                                line.line(&carry, 0, true, false, counts, recs, text, base);
                            }
                            carry.clear();
                            start = p + 1;
                        }
                        None => {
                            if !skipping {
                                carry.extend_from_slice(data);
                                if carry.len() > MAX_LINE {
                                    // keep memory bounded: the rest of this line is dropped
                                    counts.overlong += 1;
                                    skipping = true;
                                    carry = Vec::new();
                                }
                            }
                            continue;
                        }
                    }
                }
                let tail = start
                    + crate::input::scan_lines(&data[start..], |s, e, ascii| {
                        counts.lines += 1;
                        counts.line_no += 1;
                        let (s, e) = (start + s, start + e);
                        line.line(&data[s..e], s, false, ascii, counts, recs, text, base);
                    });
                start = tail;
                carry.extend_from_slice(&data[start..]);
                if carry.len() > MAX_LINE {
                    counts.overlong += 1;
                    skipping = true;
                    carry = Vec::new();
                }
                if tx.send(b).is_err() {
                    // the other thread is gone (it cannot fail, but do not spin)
                    break 'sources;
                }
            }
            if !carry.is_empty() || skipping {
                counts.lines += 1;
                counts.truncated += 1;
            }
            carry.clear();
            skipping = false;
            if let Input::File { file, size, .. } = &input {
                let now = file.metadata().map_or(*size, |m| m.len());
                if crate::mapped::take_shrunk() || now < *size {
                    counts.missing.push(format!(
                        "{}: cut short while being read ({size} bytes when opened, {now} now): what was past the cut read as zero bytes",
                        src.name()
                    ));
                }
            }
        }
        drop(tx);
        line.finish(counts);
        match applier.join() {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        }
    })
}

/// A stamp as one number that orders like it: nanoseconds since the epoch.
#[inline]
fn key(t: Stamp) -> u128 {
    t.0 as u128 * 1_000_000_000 + t.1 as u128
}

fn from_key(k: u128) -> Stamp {
    ((k / 1_000_000_000) as u64, (k % 1_000_000_000) as u32)
}

/// The window and order bookkeeping of [`crate::input::window`], on [`key`]s.
struct Window {
    /// the latest (so the greatest) stamp so far (0 before the first), the least, and
    /// whether there was any
    latest: u128,
    first: u128,
    any: bool,
    /// `--since` (0 when not given) and `--until` (u128::MAX when not given)
    since: u128,
    until: u128,
}

impl Window {
    /// `None` when the line is at or after `--until`, else whether it is before
    /// `--since`.
    #[inline(always)]
    fn check(&mut self, counts: &mut crate::input::InputCounts, k: u128) -> Option<bool> {
        // `latest` is the greatest stamp so far (what `last` is too); the least only
        // changes on the first line and on lines out of order
        if k < self.latest {
            counts.out_of_order += 1;
            self.first = self.first.min(k);
        } else {
            self.latest = k;
        }
        if !self.any {
            self.any = true;
            self.first = k;
        }
        if k >= self.until {
            counts.outside_window += 1;
            return None;
        }
        let before = k < self.since;
        counts.outside_window += before as u64;
        Some(before)
    }
}

/// The reading thread's look at each line: stamp, window, and the record.
struct Stamping<'a> {
    stamper: &'a mut crate::input::Stamper,
    win: Window,
    /// the stamp of the last stamped line, for bare lines (0 before the first)
    prev: u128,
    /// the seconds part (16 hex digits, as loaded) of the last good tai64n label and its
    /// UNIX seconds: the lines of one second share it
    tai_secs: Option<(u64, u64, u64)>,
    /// the first eight digits (as loaded) of the last usual numeric stamp and their value
    num_hi: Option<(u64, u64)>,
}

impl<'a> Stamping<'a> {
    fn new(
        stamper: &'a mut crate::input::Stamper,
        since: Option<Stamp>,
        until: Option<Stamp>,
    ) -> Self {
        Stamping {
            stamper,
            win: Window {
                latest: 0,
                first: u128::MAX,
                any: false,
                since: since.map_or(0, key),
                until: until.map_or(u128::MAX, key),
            },
            prev: 0,
            tai_secs: None,
            num_hi: None,
        }
    }

    /// A tai64n label (`raw` starts with `@` and holds at least 25 bytes): as
    /// [`crate::input::parse_tai64n`], reading the seconds only when they changed.
    #[inline(always)]
    fn tai(&mut self, raw: &[u8]) -> Option<Stamp> {
        use crate::input::{hex8, load8};
        let (a, b) = (load8(raw, 1), load8(raw, 9));
        let unix = match self.tai_secs {
            Some((ca, cb, unix)) if ca == a && cb == b => unix,
            _ => {
                let secs = ((hex8(a)? as u64) << 32) | hex8(b)? as u64;
                // daemontools labels: 2^62 + 10 + UNIX seconds
                let unix = secs.checked_sub((1u64 << 62) + 10)?;
                self.tai_secs = Some((a, b, unix));
                unix
            }
        };
        let nanos = hex8(load8(raw, 17))?;
        if nanos >= 1_000_000_000 {
            return None;
        }
        Some((unix, nanos))
    }

    /// Hand the first and last stamps over to `counts`, as `window` keeps them.
    fn finish(&mut self, counts: &mut crate::input::InputCounts) {
        if self.win.any {
            counts.first = Some(from_key(self.win.first));
            counts.last = Some(from_key(self.win.latest));
        }
        self.stamper.last = self.win.any.then(|| from_key(self.prev));
    }

    /// The stamp of a line in one of the usual shapes (`DDDDDDDDDD.DDDDDD` or a tai64n
    /// label, then a space or tab), as (key, where the rest starts, stamp kind, a, b) of
    /// a [`Rec`]; other stamps through [`crate::input::Stamper::peek`].
    #[inline(always)]
    fn stamp(&mut self, raw: &[u8]) -> Option<(u128, usize, u8, u64, u32)> {
        use crate::input::{all_digits, eight_digits, numeric_stamp_words};
        if let Some((a, b)) = numeric_stamp_words(raw) {
            let hi = match self.num_hi {
                Some((ca, v)) if ca == a => Some(v),
                _ if all_digits(a) => {
                    let v = eight_digits(a);
                    self.num_hi = Some((a, v));
                    Some(v)
                }
                _ => None,
            };
            if let Some(hi) = hi
                && all_digits(b)
            {
                // 16 digits, 6 after the point: microseconds
                let m = hi * 100_000_000 + eight_digits(b);
                return Some((m as u128 * 1000, 17, S_DIGITS, m, 6));
            }
        } else if raw.first() == Some(&b'@')
            && (raw.len() == 25 || raw.len() > 25 && (raw[25] == b' ' || raw[25] == b'\t'))
            && let Some(t) = self.tai(raw)
        {
            return Some((key(t), 25, S_TAI, t.0, t.1));
        }
        let p = self.stamper.peek(raw)?;
        let (stamp, a, b) = match p.digits {
            _ if raw[0] == b'@' => (S_TAI, p.when.0, p.when.1),
            Some((m, frac)) => (S_DIGITS, m, frac as u32),
            None => (S_TEXT, 0, 0),
        };
        Some((key(p.when), p.off, stamp, a, b))
    }

    /// One line: `raw` lies at `pos` in the batch's input (or, `in_text`, its text);
    /// `ascii` when it is known to hold only ASCII; `base` is the batch's.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn line(
        &mut self,
        raw: &[u8],
        pos: usize,
        in_text: bool,
        ascii: bool,
        counts: &mut crate::input::InputCounts,
        recs: &mut Vec<Rec>,
        text: &mut Vec<u8>,
        base: u64,
    ) {
        if !ascii && !raw.is_ascii() && std::str::from_utf8(raw).is_err() {
            counts.non_utf8 += 1;
        }
        let off = (counts.line_no - base) as u32;
        if let Some((k, at, stamp, a, b)) = self.stamp(raw) {
            self.prev = k;
            let Some(before) = self.win.check(counts, k) else {
                return;
            };
            if raw[at..].starts_with(b" status: local ") {
                // concurrency report: matchup ignores it
                return;
            }
            let stamp_text = &raw[..at];
            let t = match stamp {
                S_TAI => StampText::Tai((a, b)),
                S_DIGITS => StampText::Digits(a, b as usize, stamp_text),
                _ => StampText::Text(stamp_text),
            }
            .value();
            recs.push(Rec {
                t,
                a,
                b,
                line: pos as u32,
                rest: (pos + at) as u32,
                end: (pos + raw.len()) as u32,
                off,
                kind: R_STAMPED,
                stamp,
                in_text,
                emit: !before,
            });
        } else {
            // the slow way, with the time of the line before for a bare line
            self.stamper.last = Some(from_key(self.prev));
            let Some(s) = self.stamper.stamp(raw) else {
                if !raw.is_empty() {
                    counts.unstamped += 1;
                }
                return;
            };
            let k = key(s.when);
            self.prev = k;
            let Some(before) = self.win.check(counts, k) else {
                return;
            };
            if s.rest.starts_with(b" status: local ") {
                return;
            }
            let at = text.len();
            text.extend_from_slice(s.text);
            recs.push(Rec {
                t: 0.0,
                a: 0,
                b: 0,
                line: at as u32,
                rest: at as u32,
                end: text.len() as u32,
                off,
                kind: R_TEXT,
                stamp: S_TEXT,
                in_text: true,
                emit: !before,
            });
        }
    }
}

impl FastOverall {
    /// Apply one record of the reading thread (whose batch holds `data` and `text`);
    /// `tmp` is scratch space.
    #[inline]
    fn record(&mut self, r: &Rec, data: &[u8], text: &[u8], tmp: &mut Vec<u8>) {
        let store = if r.in_text { text } else { data };
        let (line, rest, end) = (r.line as usize, r.rest as usize, r.end as usize);
        let (Some(raw), Some(after)) = (store.get(line..end), store.get(rest..end)) else {
            return; // cannot happen: the reading thread made the positions
        };
        self.emit = r.emit;
        if r.kind == R_TEXT {
            self.line(raw);
            return;
        }
        match parse(after) {
            Ev::Starting { d, m } => self.starting(d, m, r.t),
            Ev::Delivery { d, kind } => self.delivery(d, kind, r.t),
            Ev::New(m) => {
                self.msgs.remove(m);
            }
            Ev::End(m) => self.end(m, r.t),
            Ev::Info { m, bytes } => self.info(m, bytes, r.t),
            Ev::Status { exiting } => {
                if exiting {
                    self.exiting();
                }
            }
            Ev::StatusLocal => {}
            Ev::Other => {
                if r.stamp == S_TAI {
                    // matchup's view of a tai64n line: SECS.NNNNNNNNN and the rest
                    tmp.clear();
                    push_stamp(tmp, (r.a, r.b));
                    tmp.extend_from_slice(after);
                    self.line(tmp);
                } else {
                    self.line(raw);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_values_equal_awk_num_of_the_text() {
        let mut next = crate::test_rng(0x1234_5678_9abc_def1);
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

    /// The reading thread's cuts (read sizes, maps or read(), window edges) change
    /// nothing: same report numbers, counts and first gap.
    #[test]
    fn reading_in_any_pieces_gives_the_same_result() {
        use crate::genlog::{Params, StampStyle, generate};
        use crate::input::{InputCounts, Source, Stamper};
        let d = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for (i, stamps) in [StampStyle::Numeric, StampStyle::Tai64n]
            .into_iter()
            .enumerate()
        {
            let mut log = Vec::new();
            let p = Params {
                seed: 7 + i as u64,
                messages: 6000,
                stamps,
                ..Params::default()
            };
            generate(&p, &mut log).unwrap();
            // odd lines: non-UTF-8, foreign, unstamped, a line without its start
            log.extend_from_slice(b"1700999999.5 warning: \xff\xfe odd\n");
            log.extend_from_slice(b"no stamp here\n");
            log.extend_from_slice(b"1700999999.6 delivery 99999999: success: x\n");
            log.extend_from_slice(b"1700999999.7 new msg 5"); // unterminated
            assert!(log.len() > WINDOW + 1000, "{}", log.len());
            let f = d.path().join(format!("log{i}"));
            std::fs::write(&f, &log).unwrap();
            sources.push(Source::File(f));
        }
        let mut want: Option<String> = None;
        for map in [true, false] {
            for read in [READ, 13, 100, 4096, 65536 + 3] {
                let mut counts = InputCounts::default();
                let mut st = Stamper::default();
                let (fast, gap) = run_sized(&sources, &mut counts, &mut st, None, None, read, map);
                counts.chunk_ascii = false;
                let got = format!("{:?} {:?} {gap:?} {counts:?}", fast.overall, fast.counts);
                match &want {
                    None => want = Some(got),
                    Some(w) => assert_eq!(&got, w, "read {read} map {map}"),
                }
            }
        }
        let w = want.unwrap();
        assert!(
            w.contains("non_utf8: 2") && w.contains("truncated: 2"),
            "{w}"
        );
    }

    #[test]
    fn digits_like_scan_ulong() {
        let naive = |s: &[u8]| {
            let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut r: u64 = 0;
            for &c in &s[..n] {
                r = r.wrapping_mul(10).wrapping_add((c - b'0') as u64);
            }
            (r, n)
        };
        for len in 0..24 {
            for tail in [
                &b""[..],
                b":",
                b": msg 1234567 to",
                b" ",
                b"\xff\xff\xff\xff\xff\xff\xff\xff",
            ] {
                let mut s: Vec<u8> = (0..len).map(|i| b"9081726354"[i % 10]).collect();
                s.extend_from_slice(tail);
                assert_eq!(digits(&s), naive(&s), "{}", String::from_utf8_lossy(&s));
            }
        }
    }

    #[test]
    fn id_map_agrees_with_hashmap() {
        let mut next = crate::test_rng(0x2545_f491_4f6c_dd1d);
        let mut ours: Map<u64> = Map::default();
        let mut std: std::collections::HashMap<u64, u64> = Default::default();
        for round in 0..200_000u64 {
            // few distinct keys (many collisions and long runs), sometimes huge ones
            let key = match next() % 4 {
                0 => next() % 64,
                1 => next() % 5000,
                2 => (next() % 64) << 58,
                _ => next() % 300,
            };
            match next() % 7 {
                0..=2 => assert_eq!(ours.insert(key, round), std.insert(key, round)),
                3..=4 => assert_eq!(ours.remove(key), std.remove(&key)),
                5 => assert_eq!(ours.get_mut(key).copied(), std.get(&key).copied()),
                _ => {
                    if round % 5000 == 0 {
                        ours.clear();
                        std.clear();
                    }
                }
            }
            assert_eq!(ours.len(), std.len());
        }
        for (k, v) in &std {
            assert_eq!(ours.get_mut(*k).copied(), Some(*v));
        }
    }

    #[test]
    fn tai64n_labels_with_the_seconds_remembered() {
        use crate::input::{Stamper, parse_tai64n};
        let mut st = Stamper::default();
        let mut s = Stamping::new(&mut st, None, None);
        let labels = [
            &b"@400000006553f1000000000a x"[..],
            b"@400000006553f1003b9ac9ff x",
            b"@400000006553f1003b9aca00 x", // nanos too big
            b"@400000006553f1000000000g x",
            b"@400000006553f1010000000a x",
            b"@400000006553F1010000000A x",
            b"@400000006553f10z0000000a x", // bad seconds
            b"@400000006553f10z0000000b x",
            b"@000000000000000000000000 x", // before 1970 + 10 s
            b"@400000006553f1010000000a x",
        ];
        for l in labels {
            assert_eq!(s.tai(l), parse_tai64n(l), "{}", String::from_utf8_lossy(l));
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
