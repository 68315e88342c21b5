//! The z reports and x selectors over matchup records.
//!
//! Each report consumes matchup output lines (already split into awk fields) and prints the
//! same text as qmailanalog 0.70's awk + sort + columnt pipeline for it: the same
//! explanatory paragraph, column layout, number formatting (`%.2f`, `%.6f`, awk's `%.6g`)
//! and sort order (GNU sort in a C/C.UTF-8 locale). The same objects serve the separate
//! `zTOOL < matchup-output` programs and the integrated `qmailanalog` command.

use crate::awk::{self, Fields, fmt_f, fmt_num, num};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// A report fed with matchup output lines.
pub trait Report {
    /// One matchup output line (no newline) and its awk fields; streaming reports append
    /// their output to `out`.
    fn rec(&mut self, line: &[u8], f: &Fields, out: &mut Vec<u8>);
    /// Append the final output.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// The zoverall report, which can take typed records (see `Matchup::typed`).
    fn as_overall(&mut self) -> Option<&mut Overall> {
        None
    }
}

/// Names of the reports, as accepted by `qmailanalog REPORT` and used for the programs.
pub const REPORTS: &[&str] = &[
    "zoverall",
    "zddist",
    "zdeferrals",
    "zfailures",
    "zrecipients",
    "zrhosts",
    "zrxdelay",
    "zsenders",
    "zsendmail",
    "zsuccesses",
    "zsuids",
    "xqp",
    "xrecipient",
    "xsender",
    "matchup",
];

/// Build a report by name; `arg` is the x tools' argument.
pub fn by_name(name: &str, arg: Option<&str>) -> Option<Box<dyn Report>> {
    let need = |a: Option<&str>| a.map(|s| s.as_bytes().to_vec());
    Some(match name {
        "zoverall" => Box::new(Overall::default()),
        "zddist" => Box::new(Ddist::default()),
        "zdeferrals" => Box::new(Reasons::new(Reason::Deferral)),
        "zfailures" => Box::new(Reasons::new(Reason::Failure)),
        "zsuccesses" => Box::new(Reasons::new(Reason::Success)),
        "zrecipients" => Box::new(Recipients::new(RecipKind::Recipient)),
        "zrhosts" => Box::new(Recipients::new(RecipKind::Host)),
        "zrxdelay" => Box::new(Recipients::new(RecipKind::Rxdelay)),
        "zsenders" => Box::new(Senders::new(false)),
        "zsuids" => Box::new(Senders::new(true)),
        "zsendmail" => Box::new(Sendmail),
        "xqp" => Box::new(Select::new(SelectKind::Qp, need(arg)?)),
        "xrecipient" => Box::new(Select::new(SelectKind::Recipient, need(arg)?)),
        "xsender" => {
            let mut x = b"<".to_vec();
            x.extend_from_slice(need(arg)?.as_slice());
            x.push(b'>');
            Box::new(Select::new(SelectKind::Sender, x))
        }
        "matchup" => Box::new(Passthrough),
        _ => return None,
    })
}

/// Whether the named report needs an argument.
pub fn needs_arg(name: &str) -> bool {
    matches!(name, "xqp" | "xrecipient" | "xsender")
}

fn push_line(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(p);
    }
}

/// Header line + data lines through columnt, optionally with `tr _ ' '`.
fn table(out: &mut Vec<u8>, header: &str, rows: Vec<Vec<u8>>, tr: bool) {
    let mut lines = Vec::with_capacity(rows.len() + 1);
    lines.push(header.as_bytes().to_vec());
    lines.extend(rows);
    let mut t = awk::columnt(&lines);
    if tr {
        for c in t.iter_mut() {
            if *c == b'_' {
                *c = b' ';
            }
        }
    }
    out.extend_from_slice(&t);
}

// ---------------------------------------------------------------- zoverall

/// zoverall: basic statistics.
#[derive(Default, Debug, Clone)]
pub struct Overall {
    pub messages: f64,
    pub recips: f64,
    pub tries: f64,
    pub deliveries: f64,
    pub succ: f64,
    pub fail: f64,
    pub mbytes: f64,
    pub rbytes: f64,
    pub qtime: f64,
    pub ddelay: f64,
    pub xdelay: f64,
    pub first: f64,
    pub last: f64,
    pub seen: bool,
}

const OVERALL_HEAD: &str = "Basic statistics

qtime is the time spent by a message in the queue.

ddelay is the latency for a successful delivery to one recipient---the
end of successful delivery, minus the time when the message was queued.

xdelay is the latency for a delivery attempt---the time when the attempt
finished, minus the time when it started. The average concurrency is the
total xdelay for all deliveries divided by the time span; this is a good
measure of how busy the mailer is.

";

impl Report for Overall {
    fn rec(&mut self, line: &[u8], f: &Fields, _out: &mut Vec<u8>) {
        if line.starts_with(b"m") {
            self.m(
                num(f.get(line, 2)),
                num(f.get(line, 3)),
                num(f.get(line, 4)),
                num(f.get(line, 5)),
                num(f.get(line, 6)),
                num(f.get(line, 7)),
            );
        } else if line.starts_with(b"d") {
            let kind = if line.starts_with(b"d k") {
                b'k'
            } else if line.starts_with(b"d d") {
                b'd'
            } else {
                b'z'
            };
            self.d(
                kind,
                num(f.get(line, 3)),
                num(f.get(line, 4)),
                num(f.get(line, 5)),
            );
        }
    }

    fn as_overall(&mut self) -> Option<&mut Overall> {
        Some(self)
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(OVERALL_HEAD.as_bytes());
        out.extend_from_slice(self.text().as_bytes());
    }
}

impl Overall {
    /// One `m` record: BIRTH, DONE, BYTES, NK, ND, NZ (awk's values of the fields).
    #[inline]
    pub fn m(&mut self, birth: f64, done: f64, bytes: f64, k: f64, d: f64, z: f64) {
        self.messages += 1.0;
        self.mbytes += bytes;
        self.rbytes += bytes * k;
        self.qtime += done - birth;
        self.recips += k + d;
        self.tries += k + d + z;
        if !self.seen || birth < self.first {
            self.first = birth;
        }
        if !self.seen || done > self.last {
            self.last = done;
        }
        self.seen = true;
    }

    /// One `d` record: `kind` is b'k' (line starts "d k"), b'd' ("d d") or anything else;
    /// BIRTH, DSTART, DDONE.
    #[inline]
    pub fn d(&mut self, kind: u8, birth: f64, dstart: f64, ddone: f64) {
        if kind == b'k' {
            self.succ += 1.0;
            self.ddelay += ddone - birth;
        }
        if kind == b'd' {
            self.fail += 1.0;
        }
        self.deliveries += 1.0;
        self.xdelay += ddone - dstart;
        if !self.seen || birth < self.first {
            self.first = birth;
        }
        if !self.seen || ddone > self.last {
            self.last = ddone;
        }
        self.seen = true;
    }

    /// The "Label: value" lines (everything after the preamble).
    pub fn text(&self) -> String {
        self.rows()
            .iter()
            .map(|(l, v)| {
                if l.is_empty() {
                    "\n".to_string()
                } else {
                    format!("{l} {v}\n")
                }
            })
            .collect()
    }

    /// (label, value) rows as zoverall prints them; ("", "") is the blank line.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut r: Vec<(String, String)> = Vec::new();
        let mut p = |l: &str, v: String| r.push((l.to_string(), v));
        p("Completed messages:", fmt_num(self.messages));
        if self.messages != 0.0 {
            p("Recipients for completed messages:", fmt_num(self.recips));
            p(
                "Total delivery attempts for completed messages:",
                fmt_num(self.tries),
            );
            p(
                "Average delivery attempts per completed message:",
                fmt_num(self.tries / self.messages),
            );
            p("Bytes in completed messages:", fmt_num(self.mbytes));
            p("Bytes weighted by success:", fmt_num(self.rbytes));
            p(
                "Average message qtime (s):",
                fmt_num(self.qtime / self.messages),
            );
        }
        p("", String::new());
        p("Total delivery attempts:", fmt_num(self.deliveries));
        if self.deliveries != 0.0 {
            p("  success:", fmt_num(self.succ));
            p("  failure:", fmt_num(self.fail));
            p(
                "  deferral:",
                fmt_num(self.deliveries - self.succ - self.fail),
            );
            p("Total ddelay (s):", fmt_f(self.ddelay, 6));
            if self.succ != 0.0 {
                p(
                    "Average ddelay per success (s):",
                    fmt_f(self.ddelay / self.succ, 6),
                );
            }
            p("Total xdelay (s):", fmt_f(self.xdelay, 6));
            p(
                "Average xdelay per delivery attempt (s):",
                fmt_f(self.xdelay / self.deliveries, 6),
            );
            if self.last > self.first {
                p(
                    "Time span (days):",
                    fmt_num((self.last - self.first) / 86400.0),
                );
                p(
                    "Average concurrency:",
                    fmt_num(self.xdelay / (self.last - self.first)),
                );
            }
        }
        r
    }
}

// ---------------------------------------------------------------- zddist

/// A ddelay as awk printed it, ordered like `sort -n` (then byte order).
#[derive(PartialEq, Eq)]
struct NumKey(Vec<u8>);

impl Ord for NumKey {
    fn cmp(&self, o: &Self) -> Ordering {
        awk::numcmp(&self.0, &o.0).then_with(|| self.0.cmp(&o.0))
    }
}
impl PartialOrd for NumKey {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// zddist: distribution of ddelays of successful deliveries.
#[derive(Default)]
pub struct Ddist {
    seen: BTreeMap<NumKey, u64>,
    total: u64,
}

impl Report for Ddist {
    fn rec(&mut self, line: &[u8], f: &Fields, _out: &mut Vec<u8>) {
        if line.starts_with(b"d k") {
            let s = fmt_num(num(f.get(line, 5)) - num(f.get(line, 3)));
            *self.seen.entry(NumKey(s.into_bytes())).or_insert(0) += 1;
            self.total += 1;
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"Distribution of ddelays for successful deliveries

Meaning of each line: The first pct% of successful deliveries
all happened within doneby seconds. The average ddelay was avg.

",
        );
        let mut rows = Vec::new();
        if self.total > 0 {
            let x = self.total as f64;
            let mut mindel: Vec<Option<&[u8]>> = vec![None; 101];
            let mut totdel = vec![0f64; 101];
            let mut numdel = vec![0f64; 101];
            let mut cum = 0u64;
            for (k, n) in &self.seen {
                cum += n;
                let p = ((cum as f64 * 100.0) / x) as usize;
                let p = p.min(100);
                let d = k.0.as_slice();
                match mindel[p] {
                    None => mindel[p] = Some(d),
                    Some(m) if m == b"-1" => mindel[p] = Some(d),
                    Some(m) => {
                        if d < m {
                            mindel[p] = Some(d)
                        }
                    }
                }
                totdel[p] += num(d);
                numdel[p] += 1.0;
            }
            let (mut td, mut nd) = (0f64, 0f64);
            for p in 0..=100 {
                td += totdel[p];
                nd += numdel[p];
                if p >= 10
                    && nd > 0.0
                    && let Some(m) = mindel[p]
                    && m >= b"0".as_slice()
                {
                    let mut l = Vec::new();
                    push_line(
                        &mut l,
                        &[
                            fmt_f(num(m), 2).as_bytes(),
                            fmt_f(td / nd, 2).as_bytes(),
                            p.to_string().as_bytes(),
                        ],
                    );
                    rows.push(l);
                }
            }
        }
        table(out, "doneby avg pct", rows, false);
    }
}

// ---------------------------------------------------------------- zdeferrals & co

#[derive(Clone, Copy, PartialEq)]
pub enum Reason {
    Success,
    Failure,
    Deferral,
}

/// zsuccesses / zfailures / zdeferrals: deliveries and xdelay per reason.
pub struct Reasons {
    kind: Reason,
    map: HashMap<Vec<u8>, (f64, f64)>,
}

impl Reasons {
    pub fn new(kind: Reason) -> Reasons {
        Reasons {
            kind,
            map: HashMap::new(),
        }
    }
}

impl Report for Reasons {
    fn rec(&mut self, line: &[u8], f: &Fields, _out: &mut Vec<u8>) {
        let pfx: &[u8] = match self.kind {
            Reason::Success => b"d k",
            Reason::Failure => b"d d",
            Reason::Deferral => b"d z",
        };
        if line.starts_with(pfx) {
            let x = num(f.get(line, 5)) - num(f.get(line, 4));
            let reason = f.get(line, 11);
            match self.map.get_mut(reason) {
                Some(e) => {
                    e.0 += 1.0;
                    e.1 += x;
                }
                None => {
                    self.map.insert(reason.to_vec(), (1.0, x));
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let head: &[u8] = match self.kind {
            Reason::Success => {
                b"Reasons for success

One line per reason for successful delivery. Information on each line:
"
            }
            Reason::Failure => {
                b"Reasons for failure

One line per reason for delivery failure. Information on each line:
"
            }
            Reason::Deferral => {
                b"Reasons for deferral

One line per reason for deferral. Information on each line:
"
            }
        };
        out.extend_from_slice(head);
        out.extend_from_slice(
            b"* del is the number of deliveries that ended for this reason.
* xdelay is the total xdelay on those deliveries.

",
        );
        let mut rows: Vec<Vec<u8>> = self
            .map
            .iter()
            .map(|(r, (n, x))| {
                let mut l = Vec::new();
                push_line(
                    &mut l,
                    &[fmt_num(*n).as_bytes(), fmt_f(*x, 2).as_bytes(), r],
                );
                l
            })
            .collect();
        awk::sort_text_key(&mut rows, 2);
        table(out, "del xdelay reason", rows, true);
    }
}

impl Reasons {
    /// (reason, deliveries, xdelay), most deliveries first.
    pub fn top(&self) -> Vec<(Vec<u8>, f64, f64)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(r, (n, x))| (r.clone(), *n, *x))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

// ---------------------------------------------------------------- zrecipients & co

#[derive(Clone, Copy, PartialEq)]
pub enum RecipKind {
    Recipient,
    Host,
    Rxdelay,
}

#[derive(Default, Clone, Copy)]
pub struct RecipStat {
    pub xdelay: f64,
    pub sbytes: f64,
    pub succ: f64,
    pub fail: f64,
    pub temp: f64,
}

/// zrecipients / zrhosts / zrxdelay.
pub struct Recipients {
    kind: RecipKind,
    pub map: HashMap<Vec<u8>, RecipStat>,
}

impl Recipients {
    pub fn new(kind: RecipKind) -> Recipients {
        Recipients {
            kind,
            map: HashMap::new(),
        }
    }

    /// The recipients/rhosts helper's lines: "sbytes mess tries xdelay key".
    fn lines(&self) -> Vec<Vec<u8>> {
        self.map
            .iter()
            .map(|(k, s)| {
                let mut l = Vec::new();
                push_line(
                    &mut l,
                    &[
                        fmt_num(s.sbytes).as_bytes(),
                        fmt_num(s.succ + s.fail).as_bytes(),
                        fmt_num(s.succ + s.fail + s.temp).as_bytes(),
                        fmt_f(s.xdelay, 2).as_bytes(),
                        k,
                    ],
                );
                l
            })
            .collect()
    }
}

/// The host part of a recipient: the text after the last '@'.
pub fn host_of(r: &[u8]) -> &[u8] {
    match memchr::memrchr(b'@', r) {
        Some(i) => &r[i + 1..],
        None => r,
    }
}

impl Report for Recipients {
    fn rec(&mut self, line: &[u8], f: &Fields, _out: &mut Vec<u8>) {
        if !line.starts_with(b"d") {
            return;
        }
        let r = f.get(line, 8);
        let key = if self.kind == RecipKind::Host {
            host_of(r)
        } else {
            r
        };
        let x = num(f.get(line, 5)) - num(f.get(line, 4));
        let st = match self.map.get_mut(key) {
            Some(s) => s,
            None => self.map.entry(key.to_vec()).or_default(),
        };
        st.xdelay += x;
        match f.get(line, 2) {
            b"k" => {
                st.sbytes += num(f.get(line, 6));
                st.succ += 1.0;
            }
            b"d" => st.fail += 1.0,
            b"z" => st.temp += 1.0,
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let lines = self.lines();
        match self.kind {
            RecipKind::Recipient | RecipKind::Host => {
                let (head, hdr): (&[u8], &str) = if self.kind == RecipKind::Recipient {
                    (
                        b"Recipients

One line per recipient. Information on each line:
* sbytes is the number of bytes successfully delivered to this recipient.
* mess is the number of messages sent to this recipient (success plus failure).
* tries is the number of delivery attempts (success, failure, deferral).
* xdelay is the total xdelay incurred by this recipient.

",
                        "sbytes mess tries xdelay recipient",
                    )
                } else {
                    (
                        b"Recipient hosts

One line per recipient host. Information on each line:
* sbytes is the number of bytes successfully delivered to this host.
* mess is the number of messages sent to this host (success plus failure).
* tries is the number of delivery attempts (success, failure, deferral).
* xdelay is the total xdelay incurred by this host.

",
                        "sbytes mess tries xdelay host",
                    )
                };
                out.extend_from_slice(head);
                let mut rows = lines;
                awk::sort_text_key(&mut rows, 4);
                table(out, hdr, rows, false);
            }
            RecipKind::Rxdelay => {
                out.extend_from_slice(
                    b"Recipients in the best order for mailing lists

One line per recipient, sorted by avg. Information on each line:
* avg is the _average_ xdelay for the recipient.
* tries is the number of deliveries that avg is based on.

",
                );
                let mut f = Fields::new();
                let mut rows: Vec<Vec<u8>> = lines
                    .iter()
                    .map(|l| {
                        f.split(l);
                        let avg = num(f.get(l, 4)) / num(f.get(l, 3));
                        let mut o = Vec::new();
                        push_line(
                            &mut o,
                            &[fmt_f(avg, 2).as_bytes(), f.get(l, 3), f.get(l, 5)],
                        );
                        o
                    })
                    .collect();
                awk::sort_numeric_key(&mut rows, 1);
                table(out, "avg tries recipient", rows, false);
            }
        }
    }
}

// ---------------------------------------------------------------- zsenders / zsuids

#[derive(Default, Clone, Copy)]
pub struct SenderStat {
    pub messages: f64,
    pub succ: f64,
    pub fail: f64,
    pub temp: f64,
    pub mbytes: f64,
    pub sbytes: f64,
    pub rbytes: f64,
    pub xdelay: f64,
}

/// zsenders (key `uid/<sender>`) and zsuids (key uid).
pub struct Senders {
    uids: bool,
    pub map: HashMap<Vec<u8>, SenderStat>,
    key: Vec<u8>,
}

impl Senders {
    pub fn new(uids: bool) -> Senders {
        Senders {
            uids,
            map: HashMap::new(),
            key: Vec::new(),
        }
    }
}

impl Report for Senders {
    fn rec(&mut self, line: &[u8], f: &Fields, _out: &mut Vec<u8>) {
        let is_m = line.starts_with(b"m");
        if !is_m && !line.starts_with(b"d") {
            return;
        }
        self.key.clear();
        self.key.extend_from_slice(f.get(line, 10));
        if !self.uids {
            self.key.push(b'/');
            self.key
                .extend_from_slice(f.get(line, if is_m { 8 } else { 7 }));
        }
        let st = match self.map.get_mut(&self.key) {
            Some(s) => s,
            None => self.map.entry(self.key.clone()).or_default(),
        };
        if is_m {
            let bytes = num(f.get(line, 4));
            let (k, d, z) = (
                num(f.get(line, 5)),
                num(f.get(line, 6)),
                num(f.get(line, 7)),
            );
            st.messages += 1.0;
            st.succ += k;
            st.fail += d;
            st.temp += z;
            st.mbytes += bytes;
            st.sbytes += bytes * k;
            st.rbytes += bytes * (k + d);
        } else {
            st.xdelay += num(f.get(line, 5)) - num(f.get(line, 4));
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let (what, hdr) = if self.uids {
            ("uid", "mess bytes sbytes rbytes recips tries xdelay uid")
        } else {
            (
                "sender",
                "mess bytes sbytes rbytes recips tries xdelay sender",
            )
        };
        let title = if self.uids { "Sender uids" } else { "Senders" };
        out.extend_from_slice(
            format!(
                "{title}

One line per {p}. Information on each line:
* mess is the number of messages sent by this {what}.
* bytes is the number of bytes sent by this {what}.
* sbytes is the number of bytes successfully received from this {what}.
* rbytes is the number of bytes from this {what}, weighted by recipient.
* recips is the number of recipients (success plus failure).
* tries is the number of delivery attempts (success, failure, deferral).
* xdelay is the total xdelay incurred by this {what}.

",
                p = if self.uids { "sender uid" } else { "sender" }
            )
            .as_bytes(),
        );
        // only keys that completed a message are reported (the awk loop runs over messages[])
        let mut rows: Vec<Vec<u8>> = self
            .map
            .iter()
            .filter(|(_, s)| s.messages > 0.0)
            .map(|(k, s)| {
                let mut l = Vec::new();
                push_line(
                    &mut l,
                    &[
                        fmt_num(s.messages).as_bytes(),
                        fmt_num(s.mbytes).as_bytes(),
                        fmt_num(s.sbytes).as_bytes(),
                        fmt_num(s.rbytes).as_bytes(),
                        fmt_num(s.succ + s.fail).as_bytes(),
                        fmt_num(s.succ + s.fail + s.temp).as_bytes(),
                        fmt_f(s.xdelay, 6).as_bytes(),
                        k,
                    ],
                );
                l
            })
            .collect();
        awk::sort_numeric_key(&mut rows, 7);
        table(out, hdr, rows, false);
    }
}

// ---------------------------------------------------------------- zsendmail

/// zsendmail: sendmail-style log lines.
pub struct Sendmail;

impl Report for Sendmail {
    fn rec(&mut self, line: &[u8], f: &Fields, out: &mut Vec<u8>) {
        let g = |i| f.get(line, i);
        if line.starts_with(b"d") {
            let stat: &[u8] = match g(2) {
                b"k" => b"stat=Sent",
                b"d" => b"stat=Failed",
                _ => b"stat=Deferred",
            };
            let dd = fmt_f(num(g(5)) - num(g(3)), 6);
            let xd = fmt_f(num(g(5)) - num(g(4)), 6);
            for p in [
                g(5),
                b" qp ",
                g(9),
                b": to=",
                g(8),
                b", uid=",
                g(10),
                b", ddelay=",
                dd.as_bytes(),
                b", xdelay=",
                xd.as_bytes(),
                b", ",
                stat,
                b" (",
                g(11),
                b")\n",
            ] {
                out.extend_from_slice(p);
            }
        } else if line.starts_with(b"m") {
            let nr = fmt_num(num(g(5)) + num(g(6)));
            let qt = fmt_f(num(g(3)) - num(g(2)), 6);
            for p in [
                g(3),
                b" qp ",
                g(9),
                b": from=",
                g(8),
                b", uid=",
                g(10),
                b", size=",
                g(4),
                b", nrcpts=",
                nr.as_bytes(),
                b", deferrals=",
                g(7),
                b", qtime=",
                qt.as_bytes(),
                b"\n",
            ] {
                out.extend_from_slice(p);
            }
        } else {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

// ---------------------------------------------------------------- x tools

#[derive(Clone, Copy, PartialEq)]
pub enum SelectKind {
    Qp,
    Recipient,
    Sender,
}

/// xqp / xrecipient / xsender: the matchup lines about one qp, recipient or sender.
pub struct Select {
    kind: SelectKind,
    x: Vec<u8>,
}

impl Select {
    pub fn new(kind: SelectKind, x: Vec<u8>) -> Select {
        Select { kind, x }
    }
}

impl Report for Select {
    fn rec(&mut self, line: &[u8], f: &Fields, out: &mut Vec<u8>) {
        let d = line.starts_with(b"d");
        let m = line.starts_with(b"m");
        let hit = match self.kind {
            SelectKind::Qp => (d || m) && awk::awk_eq(f.get(line, 9), &self.x),
            SelectKind::Recipient => d && awk::awk_eq(f.get(line, 8), &self.x),
            SelectKind::Sender => {
                (d && awk::awk_eq(f.get(line, 7), &self.x))
                    || (m && awk::awk_eq(f.get(line, 8), &self.x))
            }
        };
        if hit {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

/// The matchup records themselves (`qmailanalog matchup DIR`).
pub struct Passthrough;

impl Report for Passthrough {
    fn rec(&mut self, line: &[u8], _f: &Fields, out: &mut Vec<u8>) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    fn finish(&mut self, _out: &mut Vec<u8>) {}
}
