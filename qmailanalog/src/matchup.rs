//! matchup: pairs qmail-send's "starting delivery" / "delivery" lines and "info msg" /
//! "end msg" lines into qmailanalog's `d` and `m` records.
//!
//! Input lines carry a numeric timestamp as their first field (`SECS.FRACTION text`); the
//! caller converts tai64n stamps first (see `input`). Behaviour follows qmailanalog 0.70's
//! matchup exactly in the default ("compat") mode: first 20 fields split on space, tab and
//! newline, recipients and senders lower-cased, `warning:`/`alert:` lines copied, every
//! other unknown line copied with a `? ` prefix, open state written at the end in matchup's
//! own input format (the fd-5 "pending" file) so the next run can continue it.
//!
//! Differences in "strict" mode (used by the integrated `qmailanalog` command, never by the
//! `matchup` program): lines too short for their kind are dropped and counted instead of
//! being read with empty fields, and "status: exiting" closes the open deliveries (qmail-send
//! only exits once they are done, so any left over belong to a crashed run). Every oddity
//! (gaps where a message's or delivery's start is missing, lines from other programs,
//! reused delivery numbers) is counted in [`Counts`] in both modes.

use crate::awk::{Fields, num};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Write};

/// Receives matchup's output lines (without the newline) with their awk fields.
pub trait Sink {
    fn emit(&mut self, line: &[u8], fields: &Fields);
    /// With [`Matchup::typed`] set, `d` records come here instead of [`Sink::emit`]:
    /// result (`k`, `d` or `z`) and awk's numeric values of the BIRTH, DSTART and DDONE
    /// fields (what a report parsing the text would get).
    fn typed_d(&mut self, _result: u8, _birth: f64, _dstart: f64, _ddone: f64) {}
    /// `m` records in typed mode: BIRTH, DONE, BYTES, NK, ND, NZ.
    fn typed_m(&mut self, _birth: f64, _done: f64, _bytes: u64, _k: u64, _d: u64, _z: u64) {}
}

/// Writes matchup's output as text.
pub struct WriteSink<W: Write> {
    pub w: W,
    pub err: Option<io::Error>,
}

impl<W: Write> Sink for WriteSink<W> {
    fn emit(&mut self, line: &[u8], _fields: &Fields) {
        if self.err.is_some() {
            return;
        }
        let r = self.w.write_all(line).and_then(|_| self.w.write_all(b"\n"));
        if let Err(e) = r {
            self.err = Some(e);
        }
    }
}

/// Oddities seen while matching.
#[derive(Default, Debug, Clone)]
pub struct Counts {
    /// "delivery D: …" with no open "starting delivery D" (its start is not in the log).
    pub delivery_without_start: u64,
    /// Deliveries reported for a message whose "info msg" is not in the log (the record
    /// carries "?" for the sender, qp and uid, as qmailanalog does).
    pub delivery_without_info: u64,
    /// "end msg N" for a message whose "info msg" is not in the log.
    pub end_without_info: u64,
    /// "starting delivery D" while D was still open (a qmail-send restart without
    /// "status: exiting", or lost lines); the older one is dropped.
    pub delivery_restarted: u64,
    /// Open deliveries dropped at "status: exiting" (strict mode).
    pub delivery_dropped_at_exit: u64,
    /// Lines whose second field is not a qmail-send keyword (copied with "? ").
    pub foreign: u64,
    /// Lines too short for their keyword (strict mode drops them).
    pub malformed: u64,
    /// Delivery results that are neither success, failure, deferral nor "report mangled".
    pub odd_result: u64,
}

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
        // fibonacci hashing spreads sequential inode/delivery numbers
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

type IdMap = HashMap<u64, usize, BuildHasherDefault<IdHasher>>;

struct Msg {
    id: u64,
    bytes: u64,
    qp: u64,
    uid: u64,
    k: u64,
    d: u64,
    z: u64,
    /// birth stamp followed by the sender
    text: Vec<u8>,
    birth_len: usize,
    /// awk's value of the birth stamp (typed mode)
    birth_f: f64,
}

impl Msg {
    fn birth(&self) -> &[u8] {
        &self.text[..self.birth_len]
    }
    fn sender(&self) -> &[u8] {
        &self.text[self.birth_len..]
    }
}

struct Del {
    id: u64,
    msg: u64,
    /// start stamp, channel, recipient
    text: Vec<u8>,
    start_len: usize,
    chan_len: usize,
    /// awk's value of the start stamp (typed mode)
    start_f: f64,
}

impl Del {
    fn start(&self) -> &[u8] {
        &self.text[..self.start_len]
    }
    fn chan(&self) -> &[u8] {
        &self.text[self.start_len..self.start_len + self.chan_len]
    }
    fn recip(&self) -> &[u8] {
        &self.text[self.start_len + self.chan_len..]
    }
}

const NFIELDS: usize = 20;

/// Builds an output record and its awk fields at once (no re-splitting). The fields are
/// exact unless a part was empty (then the caller re-splits the text as awk would).
struct Em<'a> {
    out: &'a mut Vec<u8>,
    f: &'a mut Fields,
    exact: bool,
    glued: bool,
}

impl<'a> Em<'a> {
    fn new(out: &'a mut Vec<u8>, f: &'a mut Fields) -> Em<'a> {
        out.clear();
        f.clear();
        Em {
            out,
            f,
            exact: true,
            glued: false,
        }
    }
    /// Text with no field boundary after it (matchup's "?" result is glued to the next field).
    fn raw(&mut self, d: &[u8]) {
        self.out.extend_from_slice(d);
        self.glued = true;
        self.exact = false;
    }
    fn start(&mut self) -> usize {
        if !self.out.is_empty() && !self.glued {
            self.out.push(b' ');
        }
        self.glued = false;
        self.out.len()
    }
    fn field(&mut self, d: &[u8]) {
        let s = self.start();
        self.out.extend_from_slice(d);
        self.exact &= !d.is_empty();
        self.f.push(s, self.out.len());
    }
    fn num(&mut self, n: u64) {
        let s = self.start();
        push_ulong(self.out, n);
        self.f.push(s, self.out.len());
    }
    fn join(&mut self, a: &[u8], b: &[u8]) {
        let s = self.start();
        self.out.extend_from_slice(a);
        self.out.push(b'.');
        self.out.extend_from_slice(b);
        self.f.push(s, self.out.len());
    }
    fn exact(&self) -> bool {
        self.exact
    }
}

/// The matching state machine.
pub struct Matchup {
    msgs: Vec<Msg>,
    msg_idx: IdMap,
    dels: Vec<Del>,
    del_idx: IdMap,
    out: Vec<u8>,
    ofields: Fields,
    f: [(usize, usize); NFIELDS],
    /// text buffers of finished messages and deliveries, reused
    spare: Vec<Vec<u8>>,
    /// Strict mode (see the module docs).
    pub strict: bool,
    /// When false, records are computed but not passed on (lines before `--since`).
    pub emit: bool,
    /// Pass `d`/`m` records as numbers ([`Sink::typed_d`], [`Sink::typed_m`]) instead of
    /// text — for reports that only need those numbers (zoverall). Records that would not
    /// split into the usual fields still go out as text.
    pub typed: bool,
    pub counts: Counts,
}

impl Default for Matchup {
    fn default() -> Self {
        Self::new(false)
    }
}

/// Index of the first space, tab, newline or NUL at or after `i` (or `line.len()`),
/// eight bytes at a time: all four are below 0x21, and so are few other bytes.
pub(crate) fn find_sep(line: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = line.len();
    while i + 8 <= n {
        let mut w = [0u8; 8];
        w.copy_from_slice(&line[i..i + 8]);
        let x = u64::from_le_bytes(w);
        // high bit set in the lowest byte < 0x21 (exact for the first such byte)
        let m = x.wrapping_sub(ONES.wrapping_mul(0x21)) & !x & HIGH;
        if m == 0 {
            i += 8;
            continue;
        }
        let p = i + (m.trailing_zeros() / 8) as usize;
        if matches!(line[p], b' ' | b'\t' | b'\n' | 0) {
            return p;
        }
        // another control byte: not a separator, look further
        i = p + 1;
    }
    while i < n && !matches!(line[i], b' ' | b'\t' | b'\n' | 0) {
        i += 1;
    }
    i
}

/// qmail's scan_ulong: leading decimal digits, wrapping.
pub(crate) fn scan_ulong(s: &[u8]) -> u64 {
    let mut r: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            break;
        }
        r = r.wrapping_mul(10).wrapping_add((c - b'0') as u64);
    }
    r
}

fn push_ulong(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

impl Matchup {
    pub fn new(strict: bool) -> Matchup {
        Matchup {
            msgs: Vec::new(),
            msg_idx: IdMap::default(),
            dels: Vec::new(),
            del_idx: IdMap::default(),
            out: Vec::with_capacity(512),
            ofields: Fields::new(),
            f: [(0, 0); NFIELDS],
            spare: Vec::new(),
            strict,
            emit: true,
            typed: false,
            counts: Counts::default(),
        }
    }

    /// Messages and deliveries still open.
    pub fn open(&self) -> (usize, usize) {
        (self.msgs.len(), self.dels.len())
    }

    /// Split fields `from..to` starting at byte `*j`; `*nf` becomes the count of non-empty
    /// fields so far.
    fn split(&mut self, line: &[u8], from: usize, to: usize, j: &mut usize, nf: &mut usize) {
        let n = line.len();
        let mut k = *j;
        for i in from..to {
            while k < n && matches!(line[k], b' ' | b'\t' | b'\n') {
                k += 1;
            }
            let s = k;
            k = find_sep(line, k);
            let mut e = k;
            if k < n && line[k] == 0 {
                // the original works on C strings: the field ends at the NUL, the rest of
                // the word is skipped
                e = k;
                while k < n && !matches!(line[k], b' ' | b'\t' | b'\n') {
                    k += 1;
                }
            }
            self.f[i] = (s, e);
            if k > s {
                *nf = i + 1;
            }
        }
        *j = k;
    }

    fn field<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.f[i];
        &line[s..e]
    }

    /// Process one input line (without its newline).
    pub fn line(&mut self, line: &[u8], sink: &mut dyn Sink) {
        // Split lazily: the keyword first, then only as many fields as it uses (the
        // original splits 20 and reads at most 12; the rest never matter).
        let mut j = 0;
        let mut nf = 0;
        self.split(line, 0, 2, &mut j, &mut nf);
        let need = match self.field(line, 1) {
            b"starting" => 9,
            b"delivery" => 4,
            b"new" | b"end" => 4,
            b"info" => 12,
            b"extra" => 6,
            _ => 0,
        };
        let want = match self.field(line, 1) {
            b"delivery" => 5,
            b"status:" => 3,
            _ => need,
        };
        if want > 2 {
            self.split(line, 2, want, &mut j, &mut nf);
        }
        for i in want.max(2)..NFIELDS.min(12) {
            self.f[i] = (line.len(), line.len());
        }
        let kw = self.field(line, 1);
        if nf < need {
            self.counts.malformed += 1;
            if self.strict {
                return;
            }
        }
        match kw {
            b"status:" => {
                if self.strict && self.field(line, 2) == b"exiting" {
                    self.counts.delivery_dropped_at_exit += self.dels.len() as u64;
                    self.clear();
                }
            }
            b"starting" => self.starting(line),
            b"delivery" => self.delivery(line, sink),
            b"new" => self.newmsg(line),
            b"end" => self.endmsg(line, sink),
            b"info" => self.info(line),
            b"extra" => self.extra(line),
            b"running" | b"exiting" => self.clear(),
            b"number" | b"local" | b"remote" => {}
            b"warning:" | b"alert:" => self.copy(line, b"", sink),
            _ => {
                if kw != b"bounce" && kw != b"triple" {
                    self.counts.foreign += 1;
                }
                self.copy(line, b"? ", sink)
            }
        }
    }

    fn copy(&mut self, line: &[u8], prefix: &[u8], sink: &mut dyn Sink) {
        if !self.emit {
            return;
        }
        self.out.clear();
        self.out.extend_from_slice(prefix);
        self.out.extend_from_slice(line);
        self.ofields.split(&self.out);
        sink.emit(&self.out, &self.ofields);
    }

    fn clear(&mut self) {
        self.dels.clear();
        self.del_idx.clear();
    }

    fn recycle(&mut self, mut v: Vec<u8>) {
        if self.spare.len() < 1024 && v.capacity() <= 256 {
            v.clear();
            self.spare.push(v);
        }
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_else(|| Vec::with_capacity(64))
    }

    fn msg_find(&self, m: u64) -> Option<usize> {
        self.msg_idx.get(&m).copied()
    }

    fn msg_kill(&mut self, i: usize) {
        let id = self.msgs[i].id;
        let old = self.msgs.swap_remove(i);
        self.recycle(old.text);
        self.msg_idx.remove(&id);
        if i < self.msgs.len() {
            self.msg_idx.insert(self.msgs[i].id, i);
        }
    }

    fn del_kill(&mut self, i: usize) {
        let id = self.dels[i].id;
        let old = self.dels.swap_remove(i);
        self.recycle(old.text);
        self.del_idx.remove(&id);
        if i < self.dels.len() {
            self.del_idx.insert(self.dels[i].id, i);
        }
    }

    fn starting(&mut self, line: &[u8]) {
        let d = scan_ulong(self.field(line, 3));
        let m = scan_ulong(self.field(line, 5));
        let start = self.field(line, 0);
        let chan = self.field(line, 7);
        let recip = self.field(line, 8);
        let mut text = self.buffer();
        text.extend_from_slice(start);
        text.extend_from_slice(chan);
        let at = text.len();
        text.extend_from_slice(recip);
        text[at..].make_ascii_lowercase();
        let del = Del {
            id: d,
            msg: m,
            start_f: if self.typed { num(start) } else { 0.0 },
            text,
            start_len: start.len(),
            chan_len: chan.len(),
        };
        match self.del_idx.get(&d) {
            Some(&i) => {
                self.counts.delivery_restarted += 1;
                self.dels[i] = del;
            }
            None => {
                self.del_idx.insert(d, self.dels.len());
                self.dels.push(del);
            }
        }
    }

    fn delivery(&mut self, line: &[u8], sink: &mut dyn Sink) {
        let d = scan_ulong(self.field(line, 2));
        let Some(dpos) = self.del_idx.get(&d).copied() else {
            self.counts.delivery_without_start += 1;
            return;
        };
        let m = self.dels[dpos].msg;
        let mpos = self.msg_find(m);
        let what = self.field(line, 3);
        let (result, reason): (&[u8], &[u8]) = if what.starts_with(b"succ") {
            if let Some(i) = mpos {
                self.msgs[i].k += 1;
            }
            (b"d k ", self.field(line, 4))
        } else if what.starts_with(b"fail") {
            if let Some(i) = mpos {
                self.msgs[i].d += 1;
            }
            (b"d d ", self.field(line, 4))
        } else if what.starts_with(b"defer") {
            if let Some(i) = mpos {
                self.msgs[i].z += 1;
            }
            (b"d z ", self.field(line, 4))
        } else if what.starts_with(b"report") {
            if let Some(i) = mpos {
                self.msgs[i].z += 1;
            }
            (b"d z ", b"report_mangled")
        } else {
            self.counts.odd_result += 1;
            (b"?", b"")
        };
        if self.emit && self.typed && result != b"?" {
            let del = &self.dels[dpos];
            let ddone = num(&line[self.f[0].0..self.f[0].1]);
            let birth = mpos.map_or(del.start_f, |i| self.msgs[i].birth_f);
            sink.typed_d(result[2], birth, del.start_f, ddone);
        } else if self.emit {
            let del = &self.dels[dpos];
            let stamp = &line[self.f[0].0..self.f[0].1];
            let mut e = Em::new(&mut self.out, &mut self.ofields);
            if result == b"?" {
                e.raw(result);
            } else {
                e.field(&result[..1]);
                e.field(&result[2..3]);
            }
            match mpos {
                Some(i) => {
                    let msg = &self.msgs[i];
                    e.field(msg.birth());
                    e.field(del.start());
                    e.field(stamp);
                    e.num(msg.bytes);
                    e.field(msg.sender());
                    e.join(del.chan(), del.recip());
                    e.num(msg.qp);
                    e.num(msg.uid);
                    e.field(reason);
                }
                None => {
                    e.field(del.start());
                    e.field(del.start());
                    e.field(stamp);
                    e.field(b"0");
                    e.field(b"?");
                    e.join(del.chan(), del.recip());
                    e.field(b"?");
                    e.field(b"?");
                    e.field(reason);
                }
            }
            if !e.exact() {
                self.ofields.split(&self.out);
            }
            sink.emit(&self.out, &self.ofields);
        }
        if mpos.is_none() {
            self.counts.delivery_without_info += 1;
        }
        self.del_kill(dpos);
    }

    fn newmsg(&mut self, line: &[u8]) {
        let m = scan_ulong(self.field(line, 3));
        if let Some(i) = self.msg_find(m) {
            self.msg_kill(i);
        }
    }

    fn endmsg(&mut self, line: &[u8], sink: &mut dyn Sink) {
        let m = scan_ulong(self.field(line, 3));
        let Some(i) = self.msg_find(m) else {
            self.counts.end_without_info += 1;
            return;
        };
        if self.emit && self.typed {
            let msg = &self.msgs[i];
            let done = num(&line[self.f[0].0..self.f[0].1]);
            sink.typed_m(msg.birth_f, done, msg.bytes, msg.k, msg.d, msg.z);
        } else if self.emit {
            let msg = &self.msgs[i];
            let mut e = Em::new(&mut self.out, &mut self.ofields);
            e.field(b"m");
            e.field(msg.birth());
            e.field(&line[self.f[0].0..self.f[0].1]);
            for n in [msg.bytes, msg.k, msg.d, msg.z] {
                e.num(n);
            }
            e.field(msg.sender());
            e.num(msg.qp);
            e.num(msg.uid);
            if !e.exact() {
                self.ofields.split(&self.out);
            }
            sink.emit(&self.out, &self.ofields);
        }
        self.msg_kill(i);
    }

    fn info(&mut self, line: &[u8]) {
        let m = scan_ulong(self.field(line, 3));
        let birth = self.field(line, 0);
        let sender = self.field(line, 7);
        let mut text = self.buffer();
        text.extend_from_slice(birth);
        let at = text.len();
        text.extend_from_slice(sender);
        text[at..].make_ascii_lowercase();
        let msg = Msg {
            id: m,
            bytes: scan_ulong(self.field(line, 5)),
            qp: scan_ulong(self.field(line, 9)),
            uid: scan_ulong(self.field(line, 11)),
            k: 0,
            d: 0,
            z: 0,
            birth_f: if self.typed { num(birth) } else { 0.0 },
            text,
            birth_len: birth.len(),
        };
        match self.msg_find(m) {
            Some(i) => self.msgs[i] = msg,
            None => {
                self.msg_idx.insert(m, self.msgs.len());
                self.msgs.push(msg);
            }
        }
    }

    fn extra(&mut self, line: &[u8]) {
        let m = scan_ulong(self.field(line, 2));
        if let Some(i) = self.msg_find(m) {
            let k = scan_ulong(self.field(line, 3));
            let z = scan_ulong(self.field(line, 4));
            let d = scan_ulong(self.field(line, 5));
            let msg = &mut self.msgs[i];
            msg.k = k;
            msg.z = z;
            msg.d = d;
        }
    }

    /// The open state in matchup's input format (what the original writes to fd 5),
    /// followed by `partial` (an unterminated last input line, kept for the next run).
    pub fn write_pending(&self, w: &mut dyn Write, partial: &[u8]) -> io::Result<()> {
        let mut out = Vec::new();
        for m in &self.msgs {
            out.extend_from_slice(m.birth());
            out.extend_from_slice(b" info msg ");
            push_ulong(&mut out, m.id);
            out.extend_from_slice(b": bytes ");
            push_ulong(&mut out, m.bytes);
            out.extend_from_slice(b" from ");
            out.extend_from_slice(m.sender());
            out.extend_from_slice(b" qp ");
            push_ulong(&mut out, m.qp);
            out.extend_from_slice(b" uid ");
            push_ulong(&mut out, m.uid);
            out.push(b'\n');
            out.extend_from_slice(m.birth());
            out.extend_from_slice(b" extra ");
            push_ulong(&mut out, m.id);
            for n in [m.k, m.z, m.d] {
                out.push(b' ');
                push_ulong(&mut out, n);
            }
            out.push(b'\n');
        }
        for d in &self.dels {
            out.extend_from_slice(d.start());
            out.extend_from_slice(b" starting delivery ");
            push_ulong(&mut out, d.id);
            out.extend_from_slice(b": msg ");
            push_ulong(&mut out, d.msg);
            out.extend_from_slice(b" to ");
            out.extend_from_slice(d.chan());
            out.push(b' ');
            out.extend_from_slice(d.recip());
            out.push(b'\n');
        }
        out.extend_from_slice(partial);
        w.write_all(&out)?;
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<(String, Vec<String>)>);
    impl Sink for Collect {
        fn emit(&mut self, line: &[u8], f: &Fields) {
            let fields = (1..=f.nf())
                .map(|i| String::from_utf8_lossy(f.get(line, i)).into_owned())
                .collect();
            self.0
                .push((String::from_utf8_lossy(line).into_owned(), fields));
        }
    }

    fn run(strict: bool, log: &[u8]) -> (Vec<(String, Vec<String>)>, Counts) {
        let mut m = Matchup::new(strict);
        let mut c = Collect(Vec::new());
        for l in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            m.line(l, &mut c);
        }
        (c.0, m.counts)
    }

    #[test]
    fn fields_built_while_emitting_equal_awk_split() {
        let (out, _) = run(
            false,
            b"1 info msg 5: bytes 10 from <A@X> qp 3 uid 4\n2 starting delivery 7: msg 5 to local B@Y\n3 delivery 7: success:\n4 end msg 5\n",
        );
        for (line, fields) in &out {
            let mut f = Fields::new();
            f.split(line.as_bytes());
            let want: Vec<String> = (1..=f.nf())
                .map(|i| String::from_utf8_lossy(f.get(line.as_bytes(), i)).into_owned())
                .collect();
            assert_eq!(&want, fields, "{line}");
        }
        assert_eq!(out[0].0, "d k 1 2 3 10 <a@x> local.b@y 3 4 ");
        assert_eq!(out[1].0, "m 1 4 10 1 0 0 <a@x> 3 4");
    }

    #[test]
    fn find_sep_matches_the_byte_loop() {
        let samples: &[&[u8]] = &[
            b"",
            b"abc",
            b"abcdefghijkl mn",
            b"abcdefgh\x01\x1fijk\tz",
            b"\x7f\xff\xfe\x80abcdefghij\x00k",
            b"0123456789abcdefghijklmnop\n",
            b"a\rb\x0bcdefghijklmnopqrstu v",
        ];
        for s in samples {
            for start in 0..=s.len() {
                let want = (start..s.len())
                    .find(|&i| matches!(s[i], b' ' | b'\t' | b'\n' | 0))
                    .unwrap_or(s.len());
                assert_eq!(find_sep(s, start), want, "{s:?} from {start}");
            }
        }
    }

    #[test]
    fn nul_ends_a_field_like_a_c_string() {
        let (out, _) = run(
            false,
            b"1 info msg 5: bytes 10 from <a\0zz@x> qp 3 uid 4\n2 end msg 5\n",
        );
        assert_eq!(out[0].0, "m 1 2 10 0 0 0 <a 3 4");
    }

    #[test]
    fn odd_result_and_short_lines() {
        let (out, c) = run(
            false,
            b"1 starting delivery 1: msg 9 to local a@b\n2 delivery 1: weird: x\n3 info msg\n4 end msg 0\n",
        );
        // unknown result: "?" glued to the stamp, as the original prints it
        assert_eq!(out[0].0, "?1 1 2 0 ? local.a@b ? ? ");
        assert_eq!(out[0].1[0], "?1");
        // compat mode reads the short info line with empty fields (message 0)
        assert_eq!(out[1].0, "m 3 4 0 0 0 0  0 0");
        assert_eq!(c.odd_result, 1);
        assert_eq!(c.malformed, 1);
        // strict mode drops it
        let (out, c) = run(true, b"3 info msg\n4 end msg 0\n");
        assert!(out.is_empty());
        assert_eq!((c.malformed, c.end_without_info), (1, 1));
    }
}
