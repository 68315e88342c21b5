//! The small pieces of awk, `sort` and `columnt` behaviour the original report scripts
//! depend on, reproduced so our reports match theirs byte for byte: awk's default field
//! splitting, its string→number conversion (longest numeric prefix) and number→string
//! conversion (integers as integers, everything else `%.6g`), C's `%g`, GNU `sort`'s
//! key selection and numeric comparison (C.UTF-8 collation = byte order), and
//! `columnt`'s right-aligned columns.

use std::cmp::Ordering;

/// A line split into awk fields (default FS: runs of space, tab, newline).
#[derive(Default, Debug, Clone)]
pub struct Fields {
    spans: Vec<(usize, usize)>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields {
            spans: Vec::with_capacity(16),
        }
    }

    /// Split `line` the way awk does with the default field separator.
    pub fn split(&mut self, line: &[u8]) {
        self.spans.clear();
        let mut i = 0;
        let n = line.len();
        while i < n {
            while i < n && is_awk_space(line[i]) {
                i += 1;
            }
            if i >= n {
                break;
            }
            let s = i;
            while i < n && !is_awk_space(line[i]) {
                i += 1;
            }
            self.spans.push((s, i));
        }
    }

    pub fn clear(&mut self) {
        self.spans.clear();
    }

    pub fn push(&mut self, start: usize, end: usize) {
        self.spans.push((start, end));
    }

    /// Number of fields (awk's NF).
    pub fn nf(&self) -> usize {
        self.spans.len()
    }

    /// awk's `$i` (1-based); empty when missing.
    pub fn get<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        match i.checked_sub(1).and_then(|j| self.spans.get(j)) {
            Some(&(s, e)) => line.get(s..e).unwrap_or(b""),
            None => b"",
        }
    }
}

fn is_awk_space(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\n'
}

/// awk's string→number: the longest prefix (after leading blanks) that reads as a decimal
/// number; 0 when there is none.
pub fn num(s: &[u8]) -> f64 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
        i += 1;
    }
    if let Some(x) = fast_num(&s[i..]) {
        return x;
    }
    let start = i;
    let end = numeric_prefix_end(s, i);
    if end == start {
        return 0.0;
    }
    std::str::from_utf8(&s[start..end])
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(0.0)
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path: `[-]digits[.digits]` whose digits fit exactly in an f64 mantissa
/// converts exactly by one correctly rounded division. `None` when it does not apply.
fn fast_num(s: &[u8]) -> Option<f64> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut m: u64 = 0;
    let mut digits = 0u32;
    let mut frac = 0usize;
    let mut seen_dot = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() {
            if digits >= 19 {
                return None;
            }
            m = m * 10 + (c - b'0') as u64;
            if m > 0 {
                digits += 1;
            }
            if seen_dot {
                frac += 1;
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else if c == b'e' || c == b'E' {
            return None;
        } else {
            break;
        }
        i += 1;
    }
    if i == 0 || (i == 1 && seen_dot) || m > (1u64 << 53) || frac > 22 {
        return None;
    }
    let x = m as f64 / POW10[frac];
    Some(if neg { -x } else { x })
}

/// End of the longest `[+-]digits[.digits][e[+-]digits]` prefix starting at `i` (== `i`
/// when there is no number there).
fn numeric_prefix_end(s: &[u8], mut i: usize) -> usize {
    let start = i;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        i += 1;
    }
    let mut digits = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        let mut j = i + 1;
        let mut fd = 0;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
            fd += 1;
        }
        if digits + fd > 0 {
            i = j;
            digits += fd;
        }
    }
    if digits == 0 {
        return start;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        let ds = j;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if j > ds {
            i = j;
        }
    }
    i
}

/// Whether awk would treat this field as a number in a comparison (the whole text, apart
/// from surrounding blanks, is a number).
pub fn looks_numeric(s: &[u8]) -> bool {
    let t = trim_blanks(s);
    !t.is_empty() && numeric_prefix_end(t, 0) == t.len()
}

fn trim_blanks(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && matches!(s[a], b' ' | b'\t' | b'\n') {
        a += 1;
    }
    while b > a && matches!(s[b - 1], b' ' | b'\t' | b'\n') {
        b -= 1;
    }
    &s[a..b]
}

/// awk's `a == b` between a field and a command-line variable: numeric when both look
/// numeric, byte comparison otherwise.
pub fn awk_eq(a: &[u8], b: &[u8]) -> bool {
    if looks_numeric(a) && looks_numeric(b) {
        num(a) == num(b)
    } else {
        a == b
    }
}

/// C's `printf("%.*g", prec, x)`.
pub fn fmt_g(x: f64, prec: usize) -> String {
    let p = prec.max(1);
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let e = format!("{:.*e}", p - 1, x);
    let (mant, exp) = match e.split_once('e') {
        Some((m, x)) => (m.to_string(), x.parse::<i32>().unwrap_or(0)),
        None => (e.clone(), 0),
    };
    if exp < -4 || exp >= p as i32 {
        let m = strip_zeros(&mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// C's `printf("%.*f", prec, x)`.
pub fn fmt_f(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    format!("{x:.prec$}")
}

/// awk's number→string for `print` and concatenation, as mawk 1.3.4 (the awk the reference
/// outputs were made with) does it: integral values within ±2147483647 print as integers,
/// everything else with `%.6g` (so 13384945634 bytes print as `1.33849e+10`).
pub fn fmt_num(x: f64) -> String {
    if x.is_finite() && x == x.trunc() && x.abs() <= 2147483647.0 {
        format!("{}", x as i64)
    } else {
        fmt_g(x, 6)
    }
}

/// Start of `sort -kN`'s key (no `-b`, no `-t`): field N including its leading blanks.
pub fn sort_key(line: &[u8], field: usize) -> &[u8] {
    let mut i = 0;
    for _ in 1..field {
        while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
            i += 1;
        }
        while i < line.len() && line[i] != b' ' && line[i] != b'\t' {
            i += 1;
        }
    }
    &line[i..]
}

/// GNU `sort -n`'s comparison of two keys (leading blanks skipped, optional '-', digits,
/// optional fraction; anything else ends the number; no number = 0). Exact, no floats.
pub fn numcmp(a: &[u8], b: &[u8]) -> Ordering {
    let pa = parse_gnu_num(a);
    let pb = parse_gnu_num(b);
    match (pa.neg, pb.neg) {
        (false, false) => cmp_mag(&pa, &pb),
        (true, true) => cmp_mag(&pb, &pa),
        (true, false) => {
            if pa.is_zero() && pb.is_zero() {
                Ordering::Equal
            } else {
                Ordering::Less
            }
        }
        (false, true) => {
            if pa.is_zero() && pb.is_zero() {
                Ordering::Equal
            } else {
                Ordering::Greater
            }
        }
    }
}

struct GnuNum<'a> {
    neg: bool,
    int: &'a [u8],
    frac: &'a [u8],
}

impl GnuNum<'_> {
    fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }
}

fn parse_gnu_num(s: &[u8]) -> GnuNum<'_> {
    let mut i = 0;
    while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && s[i] == b'-' {
        neg = true;
        i += 1;
    }
    while i < s.len() && s[i] == b'0' {
        i += 1;
    }
    let is = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let int = &s[is..i];
    let mut frac: &[u8] = b"";
    if i < s.len() && s[i] == b'.' {
        let fs = i + 1;
        let mut j = fs;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        let mut fe = j;
        while fe > fs && s[fe - 1] == b'0' {
            fe -= 1;
        }
        frac = &s[fs..fe];
    }
    GnuNum { neg, int, frac }
}

fn cmp_mag(a: &GnuNum, b: &GnuNum) -> Ordering {
    a.int
        .len()
        .cmp(&b.int.len())
        .then_with(|| a.int.cmp(b.int))
        .then_with(|| a.frac.cmp(b.frac))
}

/// `sort -kN` (text) with the last-resort whole-line comparison.
pub fn sort_text_key(lines: &mut [Vec<u8>], field: usize) {
    lines.sort_by(|a, b| {
        sort_key(a, field)
            .cmp(sort_key(b, field))
            .then_with(|| a.cmp(b))
    });
}

/// `sort -n -kN` with the last-resort whole-line comparison.
pub fn sort_numeric_key(lines: &mut [Vec<u8>], field: usize) {
    lines.sort_by(|a, b| numcmp(sort_key(a, field), sort_key(b, field)).then_with(|| a.cmp(b)));
}

/// `columnt`: every column but the last right-aligned to its widest entry, columns joined by
/// two spaces (lines with fewer fields than the widest line keep the padding and separator
/// after their own last field, as the original does).
pub fn columnt(lines: &[Vec<u8>]) -> Vec<u8> {
    let split = |l: &[u8]| -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        let mut i = 0;
        while i < l.len() {
            while i < l.len() && (l[i] == b' ' || l[i] == b'\t') {
                i += 1;
            }
            if i >= l.len() {
                break;
            }
            let s = i;
            while i < l.len() && l[i] != b' ' && l[i] != b'\t' {
                i += 1;
            }
            v.push((s, i));
        }
        v
    };
    let parts: Vec<Vec<(usize, usize)>> = lines.iter().map(|l| split(l)).collect();
    let maxfield = parts
        .iter()
        .map(|p| p.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let mut width = vec![0usize; maxfield + 1];
    for p in &parts {
        for (i, &(s, e)) in p.iter().enumerate() {
            width[i] = width[i].max(e - s);
        }
    }
    let mut out = Vec::new();
    for (l, p) in lines.iter().zip(&parts) {
        for (i, &(s, e)) in p.iter().enumerate() {
            if i < maxfield {
                out.extend(std::iter::repeat_n(b' ', width[i].saturating_sub(e - s)));
            }
            out.extend_from_slice(&l[s..e]);
            if i < maxfield {
                out.extend_from_slice(b"  ");
            }
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_format() {
        assert_eq!(fmt_g(10.0 / 7.0, 6), "1.42857");
        assert_eq!(fmt_g(1601.799689, 6), "1601.8");
        assert_eq!(fmt_g(0.00001, 6), "1e-05");
        assert_eq!(fmt_g(1234567.0, 6), "1.23457e+06");
        assert_eq!(fmt_g(0.0202535, 6), "0.0202535");
        assert_eq!(fmt_g(100000.0, 6), "100000");
        assert_eq!(fmt_num(7.0), "7");
        assert_eq!(fmt_num(2147483647.0), "2147483647");
        assert_eq!(fmt_num(2147483648.0), "2.14748e+09");
        assert_eq!(fmt_num(-2147483648.0), "-2.14748e+09");
        assert_eq!(fmt_num(13384945634.0), "1.33849e+10");
        assert_eq!(fmt_num(229.2443), "229.244");
    }

    #[test]
    fn numbers() {
        assert_eq!(num(b"12abc"), 12.0);
        assert_eq!(num(b"?"), 0.0);
        assert_eq!(num(b" -1.5e2x"), -150.0);
        assert_eq!(num(b"1e"), 1.0);
        assert_eq!(
            num(b"1700000010.140221"),
            "1700000010.140221".parse::<f64>().unwrap()
        );
        assert_eq!(
            num(b"1700000010.140221537"),
            "1700000010.140221537".parse::<f64>().unwrap()
        );
        assert_eq!(num(b"0.1x"), 0.1);
        assert_eq!(num(b"."), 0.0);
        assert_eq!(num(b"-2.5"), -2.5);
        assert!(looks_numeric(b"30250"));
        assert!(!looks_numeric(b"30250x"));
        assert!(awk_eq(b"030250", b"30250"));
    }

    #[test]
    fn gnu_numeric() {
        assert_eq!(numcmp(b" 121.80", b" 60.0"), Ordering::Greater);
        assert_eq!(numcmp(b"-1", b"0"), Ordering::Less);
        assert_eq!(numcmp(b"-0", b"0.000"), Ordering::Equal);
        assert_eq!(numcmp(b"1e-05", b"1"), Ordering::Equal);
        assert_eq!(numcmp(b"abc", b"0"), Ordering::Equal);
        assert_eq!(numcmp(b"-2", b"-10"), Ordering::Greater);
        assert_eq!(sort_key(b"2 120.00 x", 2), b" 120.00 x");
    }
}
