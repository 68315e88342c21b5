//! The programs' `main`s: `matchup`, the `z…`/`x…` tools over matchup output, and the
//! integrated `qmailanalog [REPORT] [INPUT…]`.

use crate::awk::Fields;
use crate::html::{Html, gap_notes};
use crate::input::{self, InputCounts, Stamp, Stamper};
use crate::matchup::{Matchup, Sink, WriteSink};
use crate::reports::{self, Report};
use std::io::{self, BufRead, Write};

/// Exit code for fatal errors, as in qmailanalog.
pub const FATAL: i32 = 111;

fn die(prog: &str, msg: &str) -> ! {
    eprintln!("{prog}: fatal: {msg}");
    std::process::exit(FATAL);
}

/// Open fd 5 for writing, if the caller gave us one.
fn fd5() -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl(F_GETFD) only queries the descriptor table; it touches no memory.
    let open = unsafe { libc::fcntl(5, libc::F_GETFD) } != -1;
    if !open {
        return None;
    }
    // SAFETY: fd 5 is open (checked above) and was handed to us by the caller for exactly
    // this purpose; nothing else in this process uses or closes it, so the File is its
    // only owner.
    Some(unsafe { std::fs::File::from_raw_fd(5) })
}

/// `matchup`: qmail-send log (numeric or tai64n stamps) on stdin → records on stdout,
/// open state on fd 5.
pub fn matchup_main() -> i32 {
    let mut m = Matchup::new(false);
    let stdout = io::stdout();
    let mut sink = WriteSink {
        w: io::BufWriter::with_capacity(1 << 16, stdout.lock()),
        err: None,
    };
    let mut stamper = Stamper::default();
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let mut partial = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => die("matchup", &format!("unable to read input: {e}")),
        }
        if line.last() != Some(&b'\n') {
            // like the original: an unterminated last line is kept for the next run
            partial = line.clone();
            break;
        }
        line.pop();
        if line.first() == Some(&b'@') {
            // tai64n-stamped (multilog `t`): convert the stamp to SECS.NANOSECONDS
            if let Some(s) = stamper.stamp(&line) {
                let t = s.text.to_vec();
                m.line(&t, &mut sink);
                continue;
            }
        }
        m.line(&line, &mut sink);
        if let Some(e) = sink.err.take() {
            die("matchup", &format!("unable to write output: {e}"));
        }
    }
    if let Err(e) = sink.w.flush().and(match sink.err.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }) {
        die("matchup", &format!("unable to write output: {e}"));
    }
    match fd5() {
        Some(mut f) => {
            if let Err(e) = m.write_pending(&mut f, &partial) {
                die("matchup", &format!("unable to write fd 5: {e}"));
            }
        }
        None => {
            let (msgs, dels) = m.open();
            if msgs + dels > 0 || !partial.is_empty() {
                eprintln!(
                    "matchup: warning: fd 5 is not open: state of {msgs} open message(s) and {dels} open deliveries not saved"
                );
            }
        }
    }
    0
}

/// A z/x tool: matchup output on stdin → report on stdout.
pub fn ztool_main(name: &str) -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = args.first().map(String::as_str);
    if reports::needs_arg(name) && arg.is_none() {
        eprintln!(
            "usage: {name} {}",
            match name {
                "xqp" => "QP",
                "xsender" => "SENDER",
                _ => "RECIPIENT",
            }
        );
        return 100;
    }
    let Some(mut rep) = reports::by_name(name, arg) else {
        die(name, "unknown report");
    };
    let stdout = io::stdout();
    let mut w = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut out = Vec::with_capacity(1 << 16);
    let mut f = Fields::new();
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => die(name, &format!("unable to read input: {e}")),
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        f.split(&line);
        rep.rec(&line, &f, &mut out);
        if out.len() >= 1 << 15 {
            if let Err(e) = w.write_all(&out) {
                die(name, &format!("unable to write output: {e}"));
            }
            out.clear();
        }
    }
    rep.finish(&mut out);
    if let Err(e) = w.write_all(&out).and_then(|_| w.flush()) {
        die(name, &format!("unable to write output: {e}"));
    }
    0
}

const USAGE: &str =
    "usage: qmailanalog [REPORT [ARG]] [--since WHEN] [--until WHEN] [--html FILE] [-q] [INPUT ...]
REPORT: zoverall (default) zddist zdeferrals zfailures zrecipients zrhosts zrxdelay
        zsenders zsendmail zsuccesses zsuids matchup | xqp QP | xsender ADDR | xrecipient CHAN.ADDR
INPUT:  multilog directory (its @*.s/@*.u files in stamp order, then current), log file,
        or - for stdin (the default); lines stamped @4000... (tai64n) or SECS.FRACTION
WHEN:   @4000... | UNIX seconds | YYYY-MM-DD[ HH:MM[:SS]] (UTC)
";

/// Feeds matchup records to the chosen report and the HTML collector.
struct Drive<'a> {
    report: Option<Box<dyn Report>>,
    html: Option<Html>,
    out: Vec<u8>,
    w: &'a mut dyn Write,
    err: Option<io::Error>,
}

impl Sink for Drive<'_> {
    fn emit(&mut self, line: &[u8], fields: &Fields) {
        if let Some(r) = self.report.as_mut() {
            r.rec(line, fields, &mut self.out);
        }
        if let Some(h) = self.html.as_mut() {
            h.rec(line, fields, &mut self.out);
        }
        if self.out.len() >= 1 << 16 {
            self.flush();
        }
    }

    fn typed_d(&mut self, result: u8, birth: f64, dstart: f64, ddone: f64) {
        if let Some(o) = self.report.as_mut().and_then(|r| r.as_overall()) {
            o.d(result, birth, dstart, ddone);
        }
    }

    fn typed_m(&mut self, birth: f64, done: f64, bytes: u64, k: u64, d: u64, z: u64) {
        if let Some(o) = self.report.as_mut().and_then(|r| r.as_overall()) {
            o.m(birth, done, bytes as f64, k as f64, d as f64, z as f64);
        }
    }
}

impl Drive<'_> {
    fn flush(&mut self) {
        if self.err.is_none()
            && let Err(e) = self.w.write_all(&self.out)
        {
            self.err = Some(e);
        }
        self.out.clear();
    }
}

/// `qmailanalog`: read logs straight from disk and print a report in one pass.
pub fn qmailanalog_main() -> i32 {
    let prog = "qmailanalog";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut since: Option<Stamp> = None;
    let mut until: Option<Stamp> = None;
    let mut html_file: Option<String> = None;
    let mut quiet = false;
    let mut pos: Vec<String> = Vec::new();
    let mut i = 0;
    let mut only_pos = false;
    while i < args.len() {
        let a = &args[i];
        let value = |i: &mut usize, opt: &str| -> String {
            if let Some(v) = a.strip_prefix(&format!("{opt}=")) {
                return v.to_string();
            }
            *i += 1;
            match args.get(*i) {
                Some(v) => v.clone(),
                None => {
                    eprintln!("{prog}: {opt} needs a value\n{USAGE}");
                    std::process::exit(100);
                }
            }
        };
        if only_pos || !a.starts_with("--") && a != "-q" && a != "-h" {
            pos.push(a.clone());
        } else if a == "--" {
            only_pos = true;
        } else if a == "-h" || a == "--help" {
            print!("{USAGE}");
            return 0;
        } else if a == "-q" || a == "--quiet" {
            quiet = true;
        } else if a == "--since" || a.starts_with("--since=") {
            let v = value(&mut i, "--since");
            since = Some(input::parse_when(&v).unwrap_or_else(|| {
                eprintln!("{prog}: cannot read time {v:?}\n{USAGE}");
                std::process::exit(100)
            }));
        } else if a == "--until" || a.starts_with("--until=") {
            let v = value(&mut i, "--until");
            until = Some(input::parse_when(&v).unwrap_or_else(|| {
                eprintln!("{prog}: cannot read time {v:?}\n{USAGE}");
                std::process::exit(100)
            }));
        } else if a == "--html" || a.starts_with("--html=") {
            html_file = Some(value(&mut i, "--html"));
        } else {
            eprintln!("{prog}: unknown option {a}\n{USAGE}");
            return 100;
        }
        i += 1;
    }
    // the first positional names the report when it is one
    let mut report_name: Option<String> = None;
    let mut report_arg: Option<String> = None;
    if let Some(first) = pos.first()
        && reports::REPORTS.contains(&first.as_str())
    {
        let name = pos.remove(0);
        if reports::needs_arg(&name) {
            if pos.is_empty() {
                eprintln!("{prog}: {name} needs an argument\n{USAGE}");
                return 100;
            }
            report_arg = Some(pos.remove(0));
        }
        report_name = Some(name);
    }
    if report_name.is_none() && html_file.is_none() {
        report_name = Some("zoverall".to_string());
    }
    let report = match &report_name {
        Some(n) => match reports::by_name(n, report_arg.as_deref()) {
            Some(r) => Some(r),
            None => die(prog, &format!("unknown report {n}")),
        },
        None => None,
    };

    let mut counts = InputCounts::default();
    let sources = input::expand(&pos, &mut counts);
    let stdout = io::stdout();
    let mut w = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut drive = Drive {
        report,
        html: html_file.as_ref().map(|_| Html::default()),
        out: Vec::with_capacity(1 << 17),
        w: &mut w,
        err: None,
    };
    let mut m = Matchup::new(true);
    // zoverall alone only needs numbers: skip building the record text
    m.typed = drive.html.is_none()
        && drive
            .report
            .as_mut()
            .is_some_and(|r| r.as_overall().is_some());
    let mut stamper = Stamper::default();
    let mut latest: Option<Stamp> = None;
    let mut first_gap: Option<(usize, u64)> = None;
    if m.typed {
        // zoverall alone: the numbers-only state machine (same output, counts, warnings),
        // reading and stamping in this thread, parsing and matching in a second one
        let (fast, gap) = crate::fast::run(&sources, &mut counts, &mut stamper, since, until);
        first_gap = gap;
        m.counts = fast.counts.clone();
        if let Some(o) = drive.report.as_mut().and_then(|r| r.as_overall()) {
            *o = fast.overall.clone();
        }
    } else {
        input::for_each_line(&sources, &mut counts, |raw, counts| {
            if !raw.is_ascii() && std::str::from_utf8(raw).is_err() {
                counts.non_utf8 += 1;
            }
            let Some(s) = stamper.stamp(raw) else {
                if !raw.is_empty() {
                    counts.unstamped += 1;
                }
                return;
            };
            let Some(before) = input::window(counts, &mut latest, s.when, since, until) else {
                return;
            };
            if s.rest.starts_with(b" status: local ") {
                // concurrency status: matchup ignores it; skip the work
                return;
            }
            m.emit = !before;
            let gaps_before = gap_total(&m);
            m.line(s.text, &mut drive);
            if first_gap.is_none() && gap_total(&m) != gaps_before {
                first_gap = Some((counts.source, counts.line_no));
            }
        });
    }
    counts.bare = stamper.bare;
    if let Some(r) = drive.report.as_mut() {
        r.finish(&mut drive.out);
    }
    drive.flush();
    let werr = drive.err.take();
    let html = drive.html.take();
    drop(drive);
    if let Some(e) = werr.or_else(|| w.flush().err()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return 0;
        }
        die(prog, &format!("unable to write output: {e}"));
    }
    let mut warnings = counts.warnings();
    warnings.extend(gap_notes(&m.counts));
    if let Some((src, line)) = first_gap {
        warnings.push(format!(
            "first gap at {} line {line} (an older log file missing or rotated away?)",
            sources.get(src).map(|s| s.name()).unwrap_or_default()
        ));
    }
    if let (Some(h), Some(path)) = (html.as_ref(), html_file.as_ref()) {
        let title = match (&pos[..], counts.first, counts.last) {
            ([], _, _) => "qmailanalog report".to_string(),
            (p, Some(a), Some(b)) => format!(
                "qmailanalog report: {} ({} – {})",
                p.join(" "),
                fmt_time(a),
                fmt_time(b)
            ),
            (p, _, _) => format!("qmailanalog report: {}", p.join(" ")),
        };
        let page = h.render_with_notes(&title, warnings.clone());
        if let Err(e) = write_file_atomic(path, page.as_bytes()) {
            die(prog, &format!("unable to write {path}: {e}"));
        }
    }
    if !quiet {
        for w in &warnings {
            eprintln!("{prog}: warning: {w}");
        }
    }
    if counts.files == 0 && !counts.missing.is_empty() {
        return FATAL;
    }
    0
}

/// Gap events so far (see `matchup::Counts`).
fn gap_total(m: &Matchup) -> u64 {
    m.counts.delivery_without_start + m.counts.delivery_without_info + m.counts.end_without_info
}

fn fmt_time(t: Stamp) -> String {
    chrono::DateTime::from_timestamp(t.0 as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.0.to_string())
}

/// Write, fsync, rename into place.
fn write_file_atomic(path: &str, data: &[u8]) -> io::Result<()> {
    let p = std::path::Path::new(path);
    let dir = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, p)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
