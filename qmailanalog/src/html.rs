//! `--html FILE`: one self-contained HTML page — the zoverall table and inline SVG plots
//! (messages and bytes per hour, queue-time distribution, top failure and deferral
//! reasons, top senders, recipients and remote hosts). No scripts, no external resources:
//! a Content-Security-Policy forbids loading anything.
//!
//! The top-N tables are kept in bounded memory: each keeps at most a few thousand keys and
//! prunes the smallest counts when full (then the page says the counts are lower bounds).

use crate::awk::{Fields, num};
use crate::input::InputCounts;
use crate::matchup::Counts;
use crate::reports::{Overall, Report, host_of};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Counts per key with bounded memory (prunes to the `cap` largest when it holds `2*cap`).
pub struct TopK {
    map: HashMap<Vec<u8>, f64>,
    cap: usize,
    pub pruned: bool,
}

impl TopK {
    pub fn new(cap: usize) -> TopK {
        TopK {
            map: HashMap::new(),
            cap,
            pruned: false,
        }
    }

    pub fn add(&mut self, key: &[u8], n: f64) {
        match self.map.get_mut(key) {
            Some(v) => *v += n,
            None => {
                if self.map.len() >= 2 * self.cap {
                    let mut v: Vec<f64> = self.map.values().copied().collect();
                    v.sort_by(|a, b| b.total_cmp(a));
                    let cut = v[self.cap - 1];
                    let mut kept = 0;
                    self.map.retain(|_, c| {
                        let keep = *c > cut || (*c == cut && kept < self.cap);
                        if keep {
                            kept += 1;
                        }
                        keep
                    });
                    self.pruned = true;
                }
                self.map.insert(key.to_vec(), n);
            }
        }
    }

    pub fn top(&self, n: usize) -> Vec<(String, f64)> {
        let mut v: Vec<(&Vec<u8>, f64)> = self.map.iter().map(|(k, c)| (k, *c)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.into_iter()
            .take(n)
            .map(|(k, c)| (String::from_utf8_lossy(k).into_owned(), c))
            .collect()
    }
}

/// Queue-time buckets (upper bounds in seconds) for the distribution plot.
const QT_BUCKETS: &[(f64, &str)] = &[
    (1.0, "<1s"),
    (10.0, "1-10s"),
    (60.0, "10s-1m"),
    (600.0, "1-10m"),
    (3600.0, "10m-1h"),
    (6.0 * 3600.0, "1-6h"),
    (86400.0, "6h-1d"),
    (f64::INFINITY, ">1d"),
];

/// Collects everything the page shows.
pub struct Html {
    pub overall: Overall,
    per_hour: BTreeMap<i64, (f64, f64)>,
    qtime: Vec<f64>,
    failures: TopK,
    deferrals: TopK,
    senders: TopK,
    recipients: TopK,
    hosts: TopK,
}

impl Default for Html {
    fn default() -> Self {
        Html {
            overall: Overall::default(),
            per_hour: BTreeMap::new(),
            qtime: vec![0.0; QT_BUCKETS.len()],
            failures: TopK::new(2000),
            deferrals: TopK::new(2000),
            senders: TopK::new(5000),
            recipients: TopK::new(5000),
            hosts: TopK::new(5000),
        }
    }
}

impl Report for Html {
    fn rec(&mut self, line: &[u8], f: &Fields, out: &mut Vec<u8>) {
        self.overall.rec(line, f, out);
        if line.starts_with(b"m") {
            let done = num(f.get(line, 3));
            let q = done - num(f.get(line, 2));
            let hour = (done / 3600.0).floor() as i64;
            let e = self.per_hour.entry(hour).or_insert((0.0, 0.0));
            e.0 += 1.0;
            e.1 += num(f.get(line, 4));
            let b = QT_BUCKETS
                .iter()
                .position(|(lim, _)| q < *lim)
                .unwrap_or(QT_BUCKETS.len() - 1);
            self.qtime[b] += 1.0;
            self.senders.add(f.get(line, 8), 1.0);
        } else if line.starts_with(b"d") {
            let r = f.get(line, 8);
            self.recipients.add(r, 1.0);
            self.hosts.add(host_of(r), 1.0);
            if line.starts_with(b"d d") {
                self.failures.add(f.get(line, 11), 1.0);
            } else if line.starts_with(b"d z") {
                self.deferrals.add(f.get(line, 11), 1.0);
            }
        }
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 32 => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

fn human(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.1}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x == x.trunc() {
        format!("{x}")
    } else {
        format!("{x:.2}")
    }
}

/// A round axis maximum ≥ `max` that divides into 4 round ticks.
fn nice_top(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 4.0;
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let step = if max >= 4.0 {
        step.max(1.0).ceil()
    } else {
        step
    };
    step * 4.0
}

/// Vertical bar chart.
fn vbars(id: &str, title: &str, labels: &[String], values: &[f64], color: &str) -> String {
    let (w, h, left, bottom, top) = (900.0, 260.0, 60.0, 60.0, 30.0);
    let n = values.len().max(1) as f64;
    let max = nice_top(values.iter().copied().fold(0.0, f64::max));
    let plot_w = w - left - 10.0;
    let plot_h = h - bottom - top;
    let bw = plot_w / n;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><svg id="{id}" class="plot" role="img" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}"><title>{t}</title><text x="{x}" y="18" class="title">{t}</text>"#,
        t = esc(title),
        x = w / 2.0
    );
    let _ = write!(
        s,
        r#"<line x1="{left}" y1="{y0}" x2="{x2}" y2="{y0}" class="axis"/><line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" class="axis"/>"#,
        y0 = top + plot_h,
        x2 = w - 10.0
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = top + plot_h - plot_h * k as f64 / 4.0;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" class="ylab">{l}</text>"#,
            x = left - 4.0,
            y = y + 4.0,
            l = esc(&human(v))
        );
    }
    let every = ((n / 12.0).ceil() as usize).max(1);
    for (i, v) in values.iter().enumerate() {
        let bh = plot_h * v / max;
        let x = left + bw * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{bw2:.2}" height="{bh:.2}" fill="{color}"><title>{l}: {v}</title></rect>"#,
            y = top + plot_h - bh,
            bw2 = (bw * 0.85).max(0.5),
            l = esc(labels.get(i).map_or("", |s| s.as_str())),
            v = esc(&human(*v))
        );
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{x:.2}" y="{y}" class="xlab" transform="rotate(30 {x:.2} {y})">{l}</text>"#,
                x = x + bw / 2.0,
                y = top + plot_h + 14.0,
                l = esc(labels.get(i).map_or("", |s| s.as_str()))
            );
        }
    }
    if values.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" class="title">no data</text>"#,
            x = w / 2.0,
            y = h / 2.0
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

/// Horizontal bar chart of (label, value).
fn hbars(id: &str, title: &str, items: &[(String, f64)], color: &str) -> String {
    let row = 22.0;
    let (w, left, top) = (900.0, 420.0, 30.0);
    let h = top + row * items.len().max(1) as f64 + 10.0;
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-9);
    let plot_w = w - left - 70.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><svg id="{id}" class="plot" role="img" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}"><title>{t}</title><text x="{x}" y="18" class="title">{t}</text>"#,
        t = esc(title),
        x = w / 2.0
    );
    for (i, (l, v)) in items.iter().enumerate() {
        let y = top + row * i as f64;
        let bw = plot_w * v / max;
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty}" class="hlab">{l}</text><rect x="{left}" y="{y}" width="{bw:.2}" height="{bh}" fill="{color}"><title>{full}</title></rect><text x="{vx:.2}" y="{ty}" class="val">{v}</text>"#,
            lx = left - 6.0,
            ty = y + 15.0,
            l = esc(&short(l, 52)),
            bh = row - 6.0,
            full = esc(l),
            vx = left + bw + 4.0,
            v = esc(&human(*v))
        );
    }
    if items.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" class="title">none</text>"#,
            x = w / 2.0,
            y = top + 15.0
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

fn hour_label(h: i64) -> String {
    chrono::DateTime::from_timestamp(h.saturating_mul(3600), 0)
        .map(|d| d.format("%Y-%m-%d %H:00").to_string())
        .unwrap_or_else(|| h.to_string())
}

impl Html {
    /// Render the page; `input` and `gaps` give the notes about the input shown on it.
    pub fn render(&self, title: &str, input: &InputCounts, gaps: &Counts) -> String {
        let mut notes = input.warnings();
        notes.extend(gap_notes(gaps));
        self.render_with_notes(title, notes)
    }

    /// Render the page with these notes about the input.
    pub fn render_with_notes(&self, title: &str, mut notes: Vec<String>) -> String {
        let mut s = String::new();
        s.push_str(
            r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
"#,
        );
        let _ = writeln!(s, "<title>{}</title>", esc(title));
        s.push_str(
            r#"<style>
body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table.overall{border-collapse:collapse}table.overall td{padding:2px 10px;border-bottom:1px solid #ddd}
table.overall td.v{text-align:right;font-family:monospace}
svg.plot{max-width:100%;height:auto;background:#fafafa;border:1px solid #ddd}
svg .title{font-size:14px;text-anchor:middle;font-weight:bold}
svg .axis{stroke:#555;stroke-width:1}
svg .ylab{font-size:11px;text-anchor:end}
svg .xlab{font-size:10px;text-anchor:start}
svg .hlab{font-size:12px;text-anchor:end;font-family:monospace}
svg .val{font-size:11px}
figure{margin:0.5em 0}
ul.notes li{color:#a40}
</style></head><body>
"#,
        );
        let _ = writeln!(s, "<h1>{}</h1>", esc(title));
        s.push_str("<h2>Basic statistics</h2>\n<table class=\"overall\" id=\"overall\">\n");
        for (l, v) in self.overall.rows() {
            if l.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"v\">{}</td></tr>",
                esc(l.trim().trim_end_matches(':')),
                esc(&v)
            );
        }
        s.push_str("</table>\n");

        if self.failures.pruned
            || self.deferrals.pruned
            || self.senders.pruned
            || self.recipients.pruned
            || self.hosts.pruned
        {
            notes.push(
                "some top lists had too many distinct keys: their counts are lower bounds"
                    .to_string(),
            );
        }
        if !notes.is_empty() {
            s.push_str("<h2>Input notes</h2>\n<ul class=\"notes\">\n");
            for n in notes {
                let _ = writeln!(s, "<li>{}</li>", esc(&n));
            }
            s.push_str("</ul>\n");
        }

        // per-hour series, merged into wider bins when long
        let (labels, msgs, bytes) = self.hour_series(240);
        s.push_str("<h2>Traffic</h2>\n");
        s.push_str(&vbars(
            "plot-messages",
            "Completed messages per hour",
            &labels,
            &msgs,
            "#3a6ea5",
        ));
        s.push_str(&vbars(
            "plot-bytes",
            "Bytes of completed messages per hour",
            &labels,
            &bytes,
            "#5a9e4b",
        ));
        s.push_str("<h2>Queue delay</h2>\n");
        let ql: Vec<String> = QT_BUCKETS.iter().map(|b| b.1.to_string()).collect();
        s.push_str(&vbars(
            "plot-qtime",
            "Messages by time in queue (qtime)",
            &ql,
            &self.qtime,
            "#b5762a",
        ));
        s.push_str("<h2>Reasons</h2>\n");
        s.push_str(&hbars(
            "plot-failures",
            "Top failure reasons",
            &pretty(self.failures.top(10)),
            "#c0392b",
        ));
        s.push_str(&hbars(
            "plot-deferrals",
            "Top deferral reasons",
            &pretty(self.deferrals.top(10)),
            "#d68910",
        ));
        s.push_str("<h2>Top talkers</h2>\n");
        s.push_str(&hbars(
            "plot-senders",
            "Top senders (completed messages)",
            &self.senders.top(10),
            "#3a6ea5",
        ));
        s.push_str(&hbars(
            "plot-recipients",
            "Top recipients (delivery attempts)",
            &self.recipients.top(10),
            "#7d3c98",
        ));
        s.push_str(&hbars(
            "plot-rhosts",
            "Top recipient hosts (delivery attempts)",
            &self.hosts.top(10),
            "#117a65",
        ));
        s.push_str("</body></html>\n");
        s
    }

    fn hour_series(&self, max_bins: usize) -> (Vec<String>, Vec<f64>, Vec<f64>) {
        let (Some((&lo, _)), Some((&hi, _))) = (
            self.per_hour.first_key_value(),
            self.per_hour.last_key_value(),
        ) else {
            return (vec![], vec![], vec![]);
        };
        let span = (hi as i128 - lo as i128 + 1).max(1);
        let width = ((span + max_bins as i128 - 1) / max_bins as i128).max(1);
        let bins = ((span + width - 1) / width) as usize;
        let mut labels = Vec::with_capacity(bins);
        let mut m = vec![0.0; bins];
        let mut b = vec![0.0; bins];
        for i in 0..bins {
            let h = lo as i128 + i as i128 * width;
            labels.push(hour_label(i64::try_from(h).unwrap_or(i64::MAX)));
        }
        for (&h, &(c, y)) in &self.per_hour {
            let i = (((h as i128 - lo as i128) / width) as usize).min(bins - 1);
            m[i] += c;
            b[i] += y;
        }
        (labels, m, b)
    }
}

fn pretty(v: Vec<(String, f64)>) -> Vec<(String, f64)> {
    v.into_iter()
        .map(|(k, c)| (k.replace('_', " "), c))
        .collect()
}

/// Sentences about gaps in the log, for stderr and the page.
pub fn gap_notes(c: &Counts) -> Vec<String> {
    let mut v = Vec::new();
    if c.delivery_without_start > 0 {
        v.push(format!(
            "{} delivery result(s) whose \"starting delivery\" line is not in the log (start rotated away or lost): not counted",
            c.delivery_without_start
        ));
    }
    if c.delivery_without_info > 0 {
        v.push(format!(
            "{} delivery attempt(s) of message(s) whose \"info msg\" line is not in the log: counted with sender ?",
            c.delivery_without_info
        ));
    }
    if c.end_without_info > 0 {
        v.push(format!(
            "{} message(s) ended whose \"info msg\" line is not in the log (start rotated away): not counted as completed",
            c.end_without_info
        ));
    }
    if c.delivery_restarted > 0 {
        v.push(format!(
            "{} delivery number(s) started again while still open (qmail-send restarted without \"status: exiting\"?): the older attempt is dropped",
            c.delivery_restarted
        ));
    }
    if c.delivery_dropped_at_exit > 0 {
        v.push(format!(
            "{} open deliveries dropped at \"status: exiting\"",
            c.delivery_dropped_at_exit
        ));
    }
    if c.malformed > 0 {
        v.push(format!(
            "{} qmail-send line(s) too short for their kind (truncated?) skipped",
            c.malformed
        ));
    }
    if c.odd_result > 0 {
        v.push(format!(
            "{} delivery line(s) with an unknown result",
            c.odd_result
        ));
    }
    if c.foreign > 0 {
        v.push(format!(
            "{} line(s) not from qmail-send (copied with \"? \")",
            c.foreign
        ));
    }
    v
}
