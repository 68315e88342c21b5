//! Reading qmail-send logs as they lie on disk: multilog directories (every rotated
//! `@<tai64n>.s` / `.u` file in stamp order, then `current`), plain files and stdin, with
//! tai64n (`@4000…`) or numeric (`SECS.FRACTION`) stamps, in large chunks and one line at a
//! time, in bounded memory.
//!
//! Bad input never stops the run: lines without a stamp, unterminated last lines,
//! non-UTF-8 bytes, stamps going backwards and files that vanish (multilog deleting an old
//! file while we read) are counted in [`InputCounts`] and summarised on stderr.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Longest line kept (qmail-send's lines are a few kB at most).
pub const MAX_LINE: usize = 16 << 20;

/// A point in time: UNIX seconds and nanoseconds.
pub type Stamp = (u64, u32);

/// One input to read.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::Stdin => "(stdin)".to_string(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

/// What went wrong or looked odd in the input.
#[derive(Default, Debug, Clone)]
pub struct InputCounts {
    pub files: u64,
    pub bytes: u64,
    pub lines: u64,
    /// Lines without a tai64n or numeric stamp (skipped).
    pub unstamped: u64,
    /// Last lines of a file without a newline (skipped: multilog always ends a line).
    pub truncated: u64,
    /// Lines longer than the limit (dropped).
    pub overlong: u64,
    /// Lines holding bytes that are not UTF-8 (processed as bytes).
    pub non_utf8: u64,
    /// Lines whose stamp is earlier than an earlier line's (processed).
    pub out_of_order: u64,
    /// Lines outside --since/--until.
    pub outside_window: u64,
    /// qmail-send lines without any stamp, given the time of the line before.
    pub bare: u64,
    /// Files that could not be opened or read, with the reason.
    pub missing: Vec<String>,
    /// Index (in the expanded source list) and line number of the line being processed.
    pub source: usize,
    pub line_no: u64,
    pub first: Option<Stamp>,
    pub last: Option<Stamp>,
    /// Set by [`for_each_line`] while the line given to its callback lies in a chunk of
    /// input that is all ASCII (then the line needs no UTF-8 check of its own).
    pub chunk_ascii: bool,
}

/// The files of a multilog directory in the order they were written: rotated files
/// (`@` + 24 hex digits + `.s` or `.u`) by stamp, then `current`.
pub fn multilog_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut rotated = Vec::new();
    let mut current = None;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(n) = name.to_str() else { continue };
        if n == "current" {
            current = Some(e.path());
        } else if is_rotated_name(n) {
            rotated.push((n.to_string(), e.path()));
        }
    }
    rotated.sort();
    let mut v: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    v.extend(current);
    Ok(v)
}

fn is_rotated_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() == 27
        && b[0] == b'@'
        && b[1..25].iter().all(|c| c.is_ascii_hexdigit())
        && (n.ends_with(".s") || n.ends_with(".u"))
}

/// Expand command-line inputs: directories become their multilog files, "-" is stdin.
/// Inputs that do not exist are recorded in `counts.missing`.
pub fn expand(args: &[String], counts: &mut InputCounts) -> Vec<Source> {
    let mut v = Vec::new();
    if args.is_empty() {
        v.push(Source::Stdin);
    }
    for a in args {
        if a == "-" {
            v.push(Source::Stdin);
            continue;
        }
        let p = Path::new(a);
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => match multilog_files(p) {
                Ok(files) => v.extend(files.into_iter().map(Source::File)),
                Err(e) => counts
                    .missing
                    .push(format!("{a}: cannot list directory: {e}")),
            },
            Ok(_) => v.push(Source::File(p.to_path_buf())),
            Err(e) => counts.missing.push(format!("{a}: {e}")),
        }
    }
    v
}

/// The value of eight ASCII hex digits (either case) loaded little-endian (first digit
/// most significant), or `None` when a byte is not a hex digit.
#[inline]
pub(crate) fn hex8(x: u64) -> Option<u32> {
    const H: u64 = 0x8080_8080_8080_8080;
    const fn rep(b: u8) -> u64 {
        0x0101_0101_0101_0101 * b as u64
    }
    if x & H != 0 {
        return None;
    }
    // every byte is below 0x80, so none of these sums carries into the next byte; bit 7 of
    // a byte of `x + rep(0x80 - lo)` is set when it is >= lo, of `x + rep(0x7f - hi)` when
    // it is > hi
    let digit = x.wrapping_add(rep(0x80 - b'0')) & !x.wrapping_add(rep(0x7f - b'9')) & H;
    let l = x | rep(0x20); // lower case
    let alpha = l.wrapping_add(rep(0x80 - b'a')) & !l.wrapping_add(rep(0x7f - b'f')) & H;
    if digit | alpha != H {
        return None;
    }
    let v = (x & rep(0x0f)) + (alpha >> 7) * 9;
    // neighbouring nibbles into bytes, bytes into 16-bit values, then the halves
    let v = ((v << 4) | (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = ((v << 8) | (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((((v << 16) | (v >> 32)) & 0xFFFF_FFFF) as u32)
}

/// Eight bytes of `s` from `at`, little-endian (the caller checked the length).
#[inline]
pub(crate) fn load8(s: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parse a tai64n label (`@` + 24 hex digits) into UNIX time.
#[inline]
pub fn parse_tai64n(s: &[u8]) -> Option<Stamp> {
    if s.len() < 25 || s[0] != b'@' {
        return None;
    }
    let hi = hex8(load8(s, 1))?;
    let lo = hex8(load8(s, 9))?;
    let nanos = hex8(load8(s, 17))?;
    if nanos >= 1_000_000_000 {
        return None;
    }
    let secs = ((hi as u64) << 32) | lo as u64;
    // daemontools labels: 2^62 + 10 + UNIX seconds
    let unix = secs.checked_sub((1u64 << 62) + 10)?;
    Some((unix, nanos))
}

/// Parse a numeric stamp `SECS[.FRACTION]` (the whole of `s`).
pub fn parse_numeric(s: &[u8]) -> Option<Stamp> {
    let mut secs: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if i >= 19 {
            return None;
        }
        secs = secs * 10 + (s[i] - b'0') as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut nanos: u32 = 0;
    if i < s.len() {
        if s[i] != b'.' {
            return None;
        }
        i += 1;
        let mut digits = 0;
        while i < s.len() {
            let c = s[i];
            if !c.is_ascii_digit() {
                return None;
            }
            if digits < 9 {
                nanos = nanos * 10 + (c - b'0') as u32;
                digits += 1;
            }
            i += 1;
        }
        while digits < 9 {
            nanos *= 10;
            digits += 1;
        }
    }
    Some((secs, nanos))
}

/// Parse a --since/--until argument: `@4000…` tai64n, UNIX seconds, or a UTC date
/// `YYYY-MM-DD[ HH:MM[:SS]]` (also with `T` and a trailing `Z`).
pub fn parse_when(s: &str) -> Option<Stamp> {
    if s.starts_with('@') {
        return parse_tai64n(s.as_bytes());
    }
    if let Some(t) = parse_numeric(s.as_bytes()) {
        return Some(t);
    }
    let t = s.trim_end_matches('Z').replace('T', " ");
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(&t, fmt) {
            return u64::try_from(d.and_utc().timestamp()).ok().map(|x| (x, 0));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d") {
        let dt = d.and_hms_opt(0, 0, 0)?;
        return u64::try_from(dt.and_utc().timestamp()).ok().map(|x| (x, 0));
    }
    None
}

/// Write `secs.nnnnnnnnn` (what tai64nfrac gives) into `out`.
pub fn push_stamp(out: &mut Vec<u8>, t: Stamp) {
    let mut buf = [0u8; 32];
    let mut i = 20;
    let mut n = t.0;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..20]);
    out.push(b'.');
    let mut f = t.1;
    let mut d = [0u8; 9];
    for k in (0..9).rev() {
        d[k] = b'0' + (f % 10) as u8;
        f /= 10;
    }
    out.extend_from_slice(&d);
}

/// Whether all eight bytes of `x` are ASCII digits.
#[inline]
pub(crate) fn all_digits(x: u64) -> bool {
    const HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    // high nibble 3, and still 3 after adding 6 (0x30..=0x39 only); no carry crosses a
    // byte once every high nibble is 3
    x & HI == THREES && (x.wrapping_add(0x0606_0606_0606_0606) & HI) == THREES
}

/// How many of the eight bytes of `x` (loaded little-endian) are ASCII digits before the
/// first that is not.
#[inline]
pub(crate) fn leading_digits(x: u64) -> usize {
    const HI: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    // a byte is a digit when its high nibble is 3 and stays 3 after adding 6; a carry out
    // of a byte only comes from one that is not a digit, and only bytes after it see it
    let bad = ((x & HI) ^ THREES) | ((x.wrapping_add(0x0606_0606_0606_0606) & HI) ^ THREES);
    (bad.trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits loaded little-endian (first digit most significant).
#[inline]
pub(crate) fn eight_digits(x: u64) -> u64 {
    let x = x.wrapping_sub(0x3030_3030_3030_3030);
    // neighbouring digits into two-digit values, then pairs of those, then the halves
    let x = (x.wrapping_mul(10) + (x >> 8)) & 0x00FF_00FF_00FF_00FF;
    let x = (x.wrapping_mul(100) + (x >> 16)) & 0x0000_FFFF_0000_FFFF;
    (x.wrapping_mul(10000) + (x >> 32)) & 0xFFFF_FFFF
}

/// A line that starts in the shape of the usual numeric stamp (ten characters, `.`, six
/// characters, then a space or tab), as two little-endian words of eight characters: the
/// first eight, then the last two before the point and the six after it. The characters
/// are not checked to be digits ([`all_digits`] does that).
#[inline(always)]
pub(crate) fn numeric_stamp_words(raw: &[u8]) -> Option<(u64, u64)> {
    if raw.len() < 18 || raw[10] != b'.' || (raw[17] != b' ' && raw[17] != b'\t') {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&raw[..8]);
    let mut b = [0u8; 8];
    b[..2].copy_from_slice(&raw[8..10]);
    b[2..].copy_from_slice(&raw[11..17]);
    Some((u64::from_le_bytes(a), u64::from_le_bytes(b)))
}

/// The usual numeric stamp, `DDDDDDDDDD.DDDDDD` and a space or tab, read eight digits at a
/// time; `None` for any other shape (the general scan then reads it).
#[inline]
fn usual_numeric_stamp(raw: &[u8]) -> Option<Peeked> {
    let (a, b) = numeric_stamp_words(raw)?;
    if !all_digits(a) || !all_digits(b) {
        return None;
    }
    let (hi, lo) = (eight_digits(a), eight_digits(b)); // 8 digits, then 2 + 6
    let secs = hi * 100 + lo / 1_000_000;
    let frac = lo % 1_000_000;
    Some(Peeked {
        when: (secs, (frac * 1000) as u32),
        off: 17,
        digits: Some((hi * 100_000_000 + lo, 6)),
    })
}

/// What [`Stamper::peek`] found.
pub struct Peeked {
    pub when: Stamp,
    /// where the text after the stamp starts
    pub off: usize,
    /// numeric stamps: all digits as one number and how many follow the point
    pub digits: Option<(u64, usize)>,
}

/// A stamped line, ready for matchup: the numeric-stamped text and its time.
pub struct Stamped<'a> {
    pub text: &'a [u8],
    pub when: Stamp,
    /// the text after the stamp (starting with its separator)
    pub rest: &'a [u8],
}

/// Converts raw log lines into numeric-stamped lines. Understands tai64n (`@4000…`),
/// numeric (`SECS.FRACTION`) and splogger/syslog lines (`… TAG: SECS.FRACTION text`);
/// bare qmail-send lines (multilog without `t`) get the time of the line before.
#[derive(Default)]
pub struct Stamper {
    buf: Vec<u8>,
    /// the time of the last stamped line (bare lines get it)
    pub(crate) last: Option<Stamp>,
    /// bare qmail-send lines given the previous line's time
    pub bare: u64,
}

/// First words of qmail-send's own lines.
fn is_qmail_send_line(raw: &[u8]) -> bool {
    let w = raw.split(|&c| c == b' ').next().unwrap_or(b"");
    matches!(
        w,
        b"status:"
            | b"new"
            | b"info"
            | b"starting"
            | b"delivery"
            | b"end"
            | b"bounce"
            | b"triple"
            | b"warning:"
            | b"alert:"
    )
}

/// Where the `SECS.FRACTION` of a splogger line starts (after "TAG: ").
fn syslog_offset(raw: &[u8]) -> Option<usize> {
    let lim = raw.len().min(256);
    let mut from = 0;
    while let Some(p) = memchr::memchr(b':', &raw[from..lim]) {
        let at = from + p + 2;
        if raw.get(from + p + 1) == Some(&b' ') && raw.get(at).is_some_and(u8::is_ascii_digit) {
            let end = memchr::memchr(b' ', &raw[at..]).map_or(raw.len(), |e| at + e);
            if raw[at..end].contains(&b'.') && parse_numeric(&raw[at..end]).is_some() {
                return Some(at);
            }
        }
        from += p + 1;
    }
    None
}

impl Stamper {
    /// The quick look at a line with its own stamp: a numeric stamp followed by a space or
    /// tab, or a tai64n stamp followed by a space, tab or nothing. Returns the time, where
    /// the text after the stamp starts in `raw` (what [`Stamper::stamp`] calls `rest`) and,
    /// for a numeric stamp of at most 19 digits, its digits as one integer M and the count F
    /// of digits after the point (the stamp reads M / 10^F); remembers the time for bare
    /// lines, as `stamp` does. `None` for every other line (then use `stamp`). Copies
    /// nothing.
    #[inline]
    pub fn peek(&mut self, raw: &[u8]) -> Option<Peeked> {
        let first = *raw.first()?;
        let p = if first == b'@' {
            let t = parse_tai64n(raw)?;
            if raw.len() > 25 && raw[25] != b' ' && raw[25] != b'\t' {
                return None;
            }
            Peeked {
                when: t,
                off: 25,
                digits: None,
            }
        } else if first.is_ascii_digit() {
            if let Some(p) = usual_numeric_stamp(raw) {
                self.last = Some(p.when);
                return Some(p);
            }
            // parse_numeric's rules, in the same scan that finds the stamp's end
            let n = raw.len();
            let mut i = 0;
            let mut secs: u64 = 0;
            while i < n && raw[i].is_ascii_digit() {
                if i >= 19 {
                    return None;
                }
                secs = secs * 10 + (raw[i] - b'0') as u64;
                i += 1;
            }
            let mut all = i; // digits so far
            let mut m = secs;
            let mut frac = 0usize;
            let mut nanos: u32 = 0;
            if i < n && raw[i] == b'.' {
                i += 1;
                while i < n && raw[i].is_ascii_digit() {
                    let d = raw[i] - b'0';
                    if frac < 9 {
                        nanos = nanos * 10 + d as u32;
                    }
                    m = m.wrapping_mul(10).wrapping_add(d as u64);
                    frac += 1;
                    all += 1;
                    i += 1;
                }
                for _ in frac..9 {
                    nanos *= 10;
                }
            }
            if i < n && raw[i] != b' ' && raw[i] != b'\t' {
                return None;
            }
            Peeked {
                when: (secs, nanos),
                off: i,
                digits: (all <= 19).then_some((m, frac)),
            }
        } else {
            return None;
        };
        self.last = Some(p.when);
        Some(p)
    }

    /// `None` for a line without a usable stamp.
    pub fn stamp<'a>(&'a mut self, raw: &'a [u8]) -> Option<Stamped<'a>> {
        let first = *raw.first()?;
        if first == b'@' {
            if let Some(t) = parse_tai64n(raw) {
                let rest = raw.get(25..).unwrap_or(b"");
                if rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t' {
                    self.last = Some(t);
                    self.buf.clear();
                    push_stamp(&mut self.buf, t);
                    self.buf.extend_from_slice(rest);
                    return Some(Stamped {
                        text: &self.buf,
                        when: t,
                        rest,
                    });
                }
            }
            return None;
        }
        let mut at = 0;
        if !first.is_ascii_digit() {
            if is_qmail_send_line(raw) {
                let t = self.last.unwrap_or((0, 0));
                self.bare += 1;
                self.buf.clear();
                push_stamp(&mut self.buf, t);
                let n = self.buf.len();
                self.buf.push(b' ');
                self.buf.extend_from_slice(raw);
                return Some(Stamped {
                    text: &self.buf,
                    when: t,
                    rest: &self.buf[n..],
                });
            }
            at = syslog_offset(raw)?;
        }
        let raw = &raw[at..];
        let end = memchr::memchr2(b' ', b'\t', raw).unwrap_or(raw.len());
        let t = parse_numeric(&raw[..end])?;
        self.last = Some(t);
        Some(Stamped {
            text: raw,
            when: t,
            rest: &raw[end..],
        })
    }
}

/// What the reader thread hands over.
enum Chunk {
    Data(Vec<u8>),
    Err(String),
}

const CHUNK: usize = 1 << 20;

/// Cuts a stream of chunks into lines: a line continued in the next chunk is carried over
/// (up to [`MAX_LINE`]; the rest of a longer one is dropped and counted).
#[derive(Default)]
struct LineSplitter {
    carry: Vec<u8>,
    skipping: bool,
}

impl LineSplitter {
    /// Hand every line completed in `data` to `f`.
    #[inline]
    fn chunk(
        &mut self,
        data: &[u8],
        counts: &mut InputCounts,
        f: &mut impl FnMut(&[u8], &mut InputCounts),
    ) {
        counts.bytes += data.len() as u64;
        let ascii = data.is_ascii();
        counts.chunk_ascii = false; // a line continued from the chunk before
        let mut start = 0;
        if self.skipping || !self.carry.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(p) => {
                    counts.lines += 1;
                    counts.line_no += 1;
                    if self.skipping {
                        self.skipping = false;
                    } else {
                        self.carry.extend_from_slice(&data[..p]);
                        f(&self.carry, counts);
                    }
                    self.carry.clear();
                    start = p + 1;
                }
                None => {
                    if !self.skipping {
                        self.carry.extend_from_slice(data);
                        if self.carry.len() > MAX_LINE {
                            // keep memory bounded: the rest of this line is dropped
                            counts.overlong += 1;
                            self.skipping = true;
                            self.carry = Vec::new();
                        }
                    }
                    return;
                }
            }
        }
        counts.chunk_ascii = ascii;
        let from = start;
        for nl in memchr::memchr_iter(b'\n', &data[from..]) {
            let nl = from + nl;
            counts.lines += 1;
            counts.line_no += 1;
            f(&data[start..nl], counts);
            start = nl + 1;
        }
        self.carry.extend_from_slice(&data[start..]);
        if self.carry.len() > MAX_LINE {
            counts.overlong += 1;
            self.skipping = true;
            self.carry = Vec::new();
        }
    }

    /// The end of a source: an unterminated last line is counted and dropped.
    fn end(&mut self, counts: &mut InputCounts) {
        if !self.carry.is_empty() || self.skipping {
            counts.lines += 1;
            counts.truncated += 1;
        }
        self.carry.clear();
        self.skipping = false;
    }
}

/// Calls `f(start, end, ascii)` for every line of `data` that ends with a newline
/// (`data[start..end]`, the newline at `end`), where `ascii` is true when the line holds
/// only ASCII bytes (then it needs no UTF-8 check); returns where the unterminated rest
/// starts. One pass over the bytes, 64 at a time: the newline and high-bit masks of a
/// block come from four 16-byte compares, and the lines are read off their bits.
#[inline]
pub fn scan_lines(data: &[u8], f: impl FnMut(usize, usize, bool)) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: this CPU has AVX2 (checked just above).
        return unsafe { scan_lines_avx2(data, f) };
    }
    scan_lines_with::<false>(data, f)
}

/// [`scan_lines`] compiled for AVX2 (two 32-byte compares a block instead of four).
///
/// # Safety
/// Only for a CPU with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_lines_avx2(data: &[u8], f: impl FnMut(usize, usize, bool)) -> usize {
    scan_lines_with::<true>(data, f)
}

#[inline(always)]
fn scan_lines_with<const AVX2: bool>(data: &[u8], mut f: impl FnMut(usize, usize, bool)) -> usize {
    let mut start = 0; // start of the current line
    let mut high = false; // a byte >= 0x80 seen in the current line (before this block)
    let n = data.len();
    let mut at = 0;
    while at < n {
        let (mut nl, hi) = if at + 64 <= n {
            masks::<AVX2>(&data[at..at + 64])
        } else {
            // the last bytes, padded with zeros (neither newlines nor high)
            let mut tail = [0u8; 64];
            tail[..n - at].copy_from_slice(&data[at..]);
            masks::<AVX2>(&tail)
        };
        let mut from_bit = 0u32; // first bit of the current line within the block
        while nl != 0 {
            let bit = nl.trailing_zeros();
            let end = at + bit as usize;
            // high bits of this line within the block: bits from_bit..bit
            let line_hi = high || (hi != 0 && hi & range_mask(from_bit, bit) != 0);
            f(start, end, !line_hi);
            start = end + 1;
            high = false;
            from_bit = bit + 1;
            nl &= nl - 1;
        }
        high |= hi != 0 && hi & !range_mask(0, from_bit) != 0;
        at += 64;
    }
    start
}

/// Newline and high-bit masks of a 64-byte block, with AVX2 when `AVX2`.
#[inline(always)]
fn masks<const AVX2: bool>(block: &[u8]) -> (u64, u64) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: AVX2 is only true in scan_lines_avx2, which runs only on a CPU with AVX2.
        return unsafe { masks64_avx2(block) };
    }
    masks64(block)
}

/// Bits `from..to` (0 <= from <= to <= 64) of a u64.
#[inline]
fn range_mask(from: u32, to: u32) -> u64 {
    let below_to = if to >= 64 { u64::MAX } else { (1u64 << to) - 1 };
    let below_from = if from >= 64 {
        u64::MAX
    } else {
        (1u64 << from) - 1
    };
    below_to & !below_from
}

/// Newline mask and high-bit mask of 64 bytes (bit i for byte i).
#[cfg(target_arch = "x86_64")]
#[inline]
fn masks64(block: &[u8]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    assert!(block.len() >= 64);
    let mut m = 0u64;
    let mut h = 0u64;
    // SAFETY: SSE2 is part of the x86_64 baseline (every x86_64 CPU has it), so the
    // intrinsics are always available; each 16-byte load starts at 16 * k <= 48, and
    // 48 + 16 <= 64 <= block.len() (asserted above), so it reads inside `block`; loadu
    // has no alignment requirement.
    unsafe {
        let nl = _mm_set1_epi8(b'\n' as i8);
        for k in 0..4 {
            let v = _mm_loadu_si128(block.as_ptr().add(16 * k) as *const __m128i);
            let e = _mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) as u32 as u64;
            let x = _mm_movemask_epi8(v) as u32 as u64;
            m |= e << (16 * k);
            h |= x << (16 * k);
        }
    }
    (m, h)
}

/// [`masks64`] with two 32-byte compares.
///
/// # Safety
/// Only for a CPU with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn masks64_avx2(block: &[u8]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    assert!(block.len() >= 64);
    // SAFETY: the caller promises AVX2; the two 32-byte loads start at 0 and 32, and
    // 32 + 32 <= 64 <= block.len() (asserted above), so they read inside `block`; loadu
    // has no alignment requirement.
    unsafe {
        let nl = _mm256_set1_epi8(b'\n' as i8);
        let p = block.as_ptr() as *const __m256i;
        let v0 = _mm256_loadu_si256(p);
        let v1 = _mm256_loadu_si256(p.add(1));
        let e0 = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v0, nl)) as u32 as u64;
        let e1 = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v1, nl)) as u32 as u64;
        let h0 = _mm256_movemask_epi8(v0) as u32 as u64;
        let h1 = _mm256_movemask_epi8(v1) as u32 as u64;
        (e0 | e1 << 32, h0 | h1 << 32)
    }
}

/// Newline mask and high-bit mask of 64 bytes (bit i for byte i).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn masks64(block: &[u8]) -> (u64, u64) {
    let mut m = 0u64;
    let mut h = 0u64;
    for (i, &c) in block.iter().take(64).enumerate() {
        m |= ((c == b'\n') as u64) << i;
        h |= ((c >> 7) as u64) << i;
    }
    (m, h)
}

/// Open a source for reading; `None` (recorded in `counts.missing`) when it cannot be.
pub(crate) fn open(src: &Source, counts: &mut InputCounts) -> Option<Box<dyn Read + Send>> {
    match src {
        Source::Stdin => Some(Box::new(io::stdin())),
        Source::File(p) => open_file(p, counts).map(|f| Box::new(f) as Box<dyn Read + Send>),
    }
}

/// Open a file for reading; `None` (recorded in `counts.missing`) when it cannot be.
pub(crate) fn open_file(p: &Path, counts: &mut InputCounts) -> Option<File> {
    match File::open(p) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            counts.missing.push(format!(
                "{}: vanished before it could be read (rotated away?)",
                p.display()
            ));
            None
        }
        Err(e) => {
            counts.missing.push(format!("{}: {e}", p.display()));
            None
        }
    }
}

/// read(), retried when interrupted.
pub(crate) fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            x => return x,
        }
    }
}

/// Reads sources in order and hands every complete line (without its newline) to `f`,
/// recording oddities in `counts`. A second thread does the reading (1 MiB chunks, at
/// most a few in flight), so the kernel's copying overlaps the line processing.
pub fn for_each_line(
    sources: &[Source],
    counts: &mut InputCounts,
    mut f: impl FnMut(&[u8], &mut InputCounts),
) {
    let mut lines = LineSplitter::default();
    for (idx, src) in sources.iter().enumerate() {
        counts.source = idx;
        counts.line_no = 0;
        let Some(mut reader) = open(src, counts) else {
            continue;
        };
        counts.files += 1;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
            let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
            scope.spawn(move || {
                loop {
                    let mut b = back_rx
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                    b.resize(CHUNK, 0);
                    match read_some(&mut reader, &mut b) {
                        Ok(0) => return,
                        Ok(n) => {
                            b.truncate(n);
                            if tx.send(Chunk::Data(b)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Chunk::Err(e.to_string()));
                            return;
                        }
                    }
                }
            });
            for chunk in rx {
                let data = match chunk {
                    Chunk::Data(d) => d,
                    Chunk::Err(e) => {
                        counts
                            .missing
                            .push(format!("{}: read error: {e}", src.name()));
                        break;
                    }
                };
                lines.chunk(&data, counts, &mut f);
                let _ = back_tx.send(data);
            }
        });
        lines.end(counts);
    }
}

/// Window and order bookkeeping for a stamped line: `None` when it is at or after
/// `--until` (skip it), else whether it is before `--since`.
#[inline]
pub fn window(
    counts: &mut InputCounts,
    latest: &mut Option<Stamp>,
    when: Stamp,
    since: Option<Stamp>,
    until: Option<Stamp>,
) -> Option<bool> {
    match *latest {
        Some(l) if when < l => counts.out_of_order += 1,
        _ => *latest = Some(when),
    }
    if counts.first.is_none_or(|f| when < f) {
        counts.first = Some(when);
    }
    if counts.last.is_none_or(|l| when > l) {
        counts.last = Some(when);
    }
    if until.is_some_and(|u| when >= u) {
        counts.outside_window += 1;
        return None;
    }
    let before = since.is_some_and(|b| when < b);
    if before {
        counts.outside_window += 1;
    }
    Some(before)
}

impl InputCounts {
    /// Human-readable warnings for stderr (empty when the input was clean).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for m in &self.missing {
            w.push(format!("missing input: {m}"));
        }
        if self.truncated > 0 {
            w.push(format!(
                "{} truncated line(s) (no newline at the end of a file) skipped",
                self.truncated
            ));
        }
        if self.overlong > 0 {
            w.push(format!(
                "{} line(s) longer than {} MiB skipped",
                self.overlong,
                MAX_LINE >> 20
            ));
        }
        if self.unstamped > 0 {
            w.push(format!(
                "{} line(s) without a tai64n or numeric timestamp skipped",
                self.unstamped
            ));
        }
        if self.bare > 0 {
            w.push(format!(
                "{} qmail-send line(s) without a timestamp (multilog without t?) given the time of the line before",
                self.bare
            ));
        }
        if self.non_utf8 > 0 {
            w.push(format!("{} line(s) with non-UTF-8 bytes", self.non_utf8));
        }
        if self.out_of_order > 0 {
            w.push(format!(
                "{} line(s) with a timestamp earlier than the line before (out of order)",
                self.out_of_order
            ));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_lines_finds_every_line_and_its_bytes() {
        let mut next = crate::test_rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let len = (next() % 400) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| match next() % 16 {
                    0..=1 => b'\n',
                    2 if round % 3 == 0 => 0x80 | (next() as u8),
                    _ => b'a' + (next() % 26) as u8,
                })
                .collect();
            let mut got = Vec::new();
            let tail = scan_lines(&data, |s, e, ascii| got.push((s, e, ascii)));
            // and without AVX2, whatever this CPU has
            let mut plain = Vec::new();
            let tail2 = scan_lines_with::<false>(&data, |s, e, ascii| plain.push((s, e, ascii)));
            assert_eq!((&got, tail), (&plain, tail2));
            let mut want = Vec::new();
            let mut s = 0;
            for (i, &c) in data.iter().enumerate() {
                if c == b'\n' {
                    want.push((s, i, data[s..i].is_ascii()));
                    s = i + 1;
                }
            }
            assert_eq!(got, want, "{data:?}");
            assert_eq!(tail, s);
        }
    }

    #[test]
    fn leading_digits_eight_at_a_time() {
        for s in [
            &b"12345678"[..],
            b"1234567 ",
            b"1: msg 5",
            b" 1234567",
            b"99/99999",
            b"0:000000",
            b"123\xff5678",
            b"12345\xfa78",
            b"0000000:",
        ] {
            let x = u64::from_le_bytes(s.try_into().unwrap());
            let want = s.iter().take_while(|c| c.is_ascii_digit()).count();
            assert_eq!(leading_digits(x), want, "{}", String::from_utf8_lossy(s));
        }
        for c in 0..=255u8 {
            for pos in 0..8 {
                let mut b = *b"77777777";
                b[pos] = c;
                let want = b.iter().take_while(|c| c.is_ascii_digit()).count();
                assert_eq!(leading_digits(u64::from_le_bytes(b)), want, "{b:?}");
            }
        }
    }

    #[test]
    fn hex_digits_eight_at_a_time() {
        let naive = |b: &[u8; 8]| -> Option<u32> {
            let t = std::str::from_utf8(b).ok()?;
            if !t.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(t, 16).ok()
        };
        let bases: [&[u8; 8]; 4] = [b"400000A0", b"6553f100", b"FFFFffff", b"00000000"];
        for base in bases {
            assert_eq!(hex8(u64::from_le_bytes(*base)), naive(base));
            for pos in 0..8 {
                for c in 0..=255u8 {
                    let mut b = *base;
                    b[pos] = c;
                    assert_eq!(hex8(u64::from_le_bytes(b)), naive(&b), "{b:?}");
                }
            }
        }
    }

    #[test]
    fn eight_digits_at_a_time() {
        for s in [
            &b"00000000"[..],
            b"12345678",
            b"99999999",
            b"17000000",
            b"90000001",
        ] {
            let x = u64::from_le_bytes(s.try_into().unwrap());
            assert!(all_digits(x));
            let want: u64 = std::str::from_utf8(s).unwrap().parse().unwrap();
            assert_eq!(eight_digits(x), want);
        }
        for s in [
            &b"1234567/"[..],
            b"1234567:",
            b"a2345678",
            b"1234 678",
            b"\xb12345678",
        ] {
            assert!(!all_digits(u64::from_le_bytes(s.try_into().unwrap())));
        }
        let mut st = Stamper::default();
        let p = st.peek(b"1700000000.001500 new msg 1").unwrap();
        assert_eq!(
            (p.when, p.off, p.digits),
            (
                (1_700_000_000, 1_500_000),
                17,
                Some((1_700_000_000_001_500, 6))
            )
        );
    }
}
