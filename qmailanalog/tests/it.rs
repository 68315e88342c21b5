//! Integration tests for matchup, the z/x tools and the integrated `qmailanalog`.
//!
//! First the reference sample (qmailanalog 0.70's own outputs, copied into tests/sample/):
//! every tool must reproduce it byte for byte. Then generated logs, checked against the
//! generator's truth and against an independent awk + sort implementation
//! (bench/qmailanalog/ref/), real multilog directories, gaps, bad input, time windows and
//! the HTML page rendered in headless Chromium.

use qmailanalog::genlog::{self, Params, StampStyle, Truth};
use rqmail_tests::{bin, external, run_with_input, tempdir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const TOOLS: &[&str] = &[
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
];

fn sample(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sample")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ref_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/qmailanalog/ref")
}

fn tool(name: &str, args: &[&str], input: &[u8]) -> Output {
    let out = run_with_input(
        Command::new(bin(name)).args(args),
        Some(input),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout_of(name: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    tool(name, args, input).stdout
}

#[track_caller]
fn same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        panic!(
            "{what}: output differs\n--- got ---\n{}\n--- want ---\n{}",
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(want)
        );
    }
}

/// matchup with fd 5 redirected to a file: (stdout, pending).
fn matchup_fd5(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let d = tempdir();
    let pend = d.path().join("pending");
    let out = run_with_input(
        Command::new("/bin/sh")
            .arg("-c")
            .arg("exec \"$0\" 5>\"$1\"")
            .arg(bin("matchup"))
            .arg(&pend),
        Some(input),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "matchup failed: {out:?}");
    (out.stdout, std::fs::read(&pend).expect("pending"))
}

fn generate(p: &Params) -> (Vec<u8>, Truth) {
    let mut v = Vec::new();
    let t = genlog::generate(p, &mut v).expect("generate");
    (v, t)
}

/// Value of "Label: value" in zoverall output.
fn overall_value(out: &[u8], label: &str) -> String {
    let s = String::from_utf8_lossy(out);
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{label}: ")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {label:?} in\n{s}"))
}

/// Rewrite numeric stamps as tai64n stamps (`SECS.USECS` → `@4000…`).
fn to_tai64n(log: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in log.split_inclusive(|&c| c == b'\n') {
        let s = String::from_utf8_lossy(line);
        let (stamp, rest) = s.split_once(' ').expect("stamped line");
        let (secs, frac) = stamp.split_once('.').unwrap_or((stamp, "0"));
        let secs: u64 = secs.parse().expect("secs");
        let nanos: u64 = format!("{frac:0<9}")[..9].parse().expect("frac");
        out.extend_from_slice(
            format!("@{:016x}{:08x} {rest}", secs + (1u64 << 62) + 10, nanos).as_bytes(),
        );
    }
    out
}

// ------------------------------------------------------------------ the reference sample

#[test]
fn sample_matchup_output_and_pending_state() {
    let (out, pending) = matchup_fd5(&sample("qmail-send.log"));
    same("matchup stdout", &out, &sample("matchup.out"));
    same("matchup fd 5", &pending, &sample("pending.out"));
}

#[test]
fn sample_every_report_byte_for_byte() {
    let m = sample("matchup.out");
    for t in TOOLS {
        same(t, &stdout_of(t, &[], &m), &sample(&format!("{t}.out")));
    }
    same(
        "xqp",
        &stdout_of("xqp", &["30250"], &m),
        &sample("xqp-30250.out"),
    );
    same(
        "xsender",
        &stdout_of("xsender", &["alice@example.org"], &m),
        &sample("xsender-alice.out"),
    );
    same(
        "xrecipient",
        &stdout_of("xrecipient", &["remote.dave@slow.example.com"], &m),
        &sample("xrecipient-dave.out"),
    );
}

#[test]
fn sample_integrated_every_report() {
    let d = tempdir();
    let log = d.path().join("qmail-send.log");
    std::fs::write(&log, sample("qmail-send.log")).unwrap();
    let logs = log.to_str().unwrap();
    for t in TOOLS {
        let out = tool("qmailanalog", &[t, logs], b"");
        same(
            &format!("qmailanalog {t}"),
            &out.stdout,
            &sample(&format!("{t}.out")),
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    same(
        "qmailanalog matchup",
        &stdout_of("qmailanalog", &["matchup", logs], b""),
        &sample("matchup.out"),
    );
    same(
        "qmailanalog xqp",
        &stdout_of("qmailanalog", &["xqp", "30250", logs], b""),
        &sample("xqp-30250.out"),
    );
    same(
        "qmailanalog xsender",
        &stdout_of("qmailanalog", &["xsender", "alice@example.org", logs], b""),
        &sample("xsender-alice.out"),
    );
    same(
        "qmailanalog xrecipient",
        &stdout_of(
            "qmailanalog",
            &["xrecipient", "remote.dave@slow.example.com", logs],
            b"",
        ),
        &sample("xrecipient-dave.out"),
    );
    // stdin, default report
    same(
        "qmailanalog < log",
        &stdout_of("qmailanalog", &[], &sample("qmail-send.log")),
        &sample("zoverall.out"),
    );
}

#[test]
fn sample_as_tai64n_multilog_directory() {
    let tai = to_tai64n(&sample("qmail-send.log"));
    let lines: Vec<&[u8]> = tai.split_inclusive(|&c| c == b'\n').collect();
    let d = tempdir();
    let dir = d.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    // three chunks; create them newest first so directory order is not file order
    let chunks = [&lines[..20], &lines[20..45], &lines[45..]];
    let name_of = |chunk: &[&[u8]]| {
        let last = chunk.last().unwrap();
        format!("{}.s", String::from_utf8_lossy(&last[..25]))
    };
    std::fs::write(dir.join("current"), chunks[2].concat()).unwrap();
    std::fs::write(dir.join(name_of(chunks[1])), chunks[1].concat()).unwrap();
    std::fs::write(dir.join(name_of(chunks[0])), chunks[0].concat()).unwrap();
    std::fs::write(dir.join("lock"), b"").unwrap();
    std::fs::write(dir.join("state"), b"").unwrap();
    let dirs = dir.to_str().unwrap();
    for t in TOOLS.iter().filter(|t| **t != "zsendmail") {
        let out = tool("qmailanalog", &[t, dirs], b"");
        same(
            &format!("{t} on dir"),
            &out.stdout,
            &sample(&format!("{t}.out")),
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // matchup reads tai64n stamps too; its records give the same report
    let (m, pending) = matchup_fd5(&tai);
    assert!(
        String::from_utf8_lossy(&m).starts_with("d k 1700000010.100412000 1700000010.101002000 "),
        "{}",
        String::from_utf8_lossy(&m)
    );
    assert!(String::from_utf8_lossy(&pending).contains(" info msg 786440: bytes 640 "));
    same(
        "zoverall of tai64n matchup",
        &stdout_of("zoverall", &[], &m),
        &sample("zoverall.out"),
    );
}

// ------------------------------------------------------------------ generated logs

fn gen_params(seed: u64, messages: u64) -> Params {
    Params {
        seed,
        messages,
        gap_us: 300_000,
        senders: 15,
        users: 40,
        hosts: 6,
        ..Default::default()
    }
}

#[test]
fn generated_log_counts_match_the_truth() {
    let (log, truth) = generate(&gen_params(11, 400));
    assert!(truth.failures > 0 && truth.deferrals > 0, "{truth:?}");
    let out = stdout_of("qmailanalog", &["zoverall"], &log);
    assert_eq!(
        overall_value(&out, "Completed messages"),
        truth.completed.to_string()
    );
    assert_eq!(
        overall_value(&out, "Recipients for completed messages"),
        truth.recipients.to_string()
    );
    assert_eq!(
        overall_value(&out, "Bytes in completed messages"),
        truth.completed_bytes.to_string()
    );
    assert_eq!(
        overall_value(&out, "Total delivery attempts"),
        truth.attempts.to_string()
    );
    assert_eq!(
        overall_value(&out, "  success"),
        truth.successes.to_string()
    );
    assert_eq!(overall_value(&out, "  failure"), truth.failures.to_string());
    assert_eq!(
        overall_value(&out, "  deferral"),
        truth.deferrals.to_string()
    );
    // the per-reason reports add up to the same totals
    let m = stdout_of("matchup", &[], &log);
    let sum_del = |tool_name: &str| -> u64 {
        let o = String::from_utf8(stdout_of(tool_name, &[], &m)).unwrap();
        o.lines()
            .skip_while(|l| !l.starts_with("del "))
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum_del("zsuccesses"), truth.successes);
    assert_eq!(sum_del("zfailures"), truth.failures);
    assert_eq!(sum_del("zdeferrals"), truth.deferrals);
    // zrecipients: tries column sums to all attempts; zsenders: mess sums to messages
    let col_sum = |tool_name: &str, header: &str, col: usize| -> f64 {
        let o = String::from_utf8(stdout_of(tool_name, &[], &m)).unwrap();
        o.lines()
            .skip_while(|l| !l.trim_start().starts_with(header))
            .skip(1)
            .map(|l| {
                l.split_whitespace()
                    .nth(col)
                    .unwrap()
                    .parse::<f64>()
                    .unwrap()
            })
            .sum()
    };
    assert_eq!(col_sum("zrecipients", "sbytes", 2) as u64, truth.attempts);
    assert_eq!(col_sum("zrhosts", "sbytes", 2) as u64, truth.attempts);
    assert_eq!(col_sum("zrxdelay", "avg", 1) as u64, truth.attempts);
    assert_eq!(col_sum("zsenders", "mess", 0) as u64, truth.completed);
    assert_eq!(col_sum("zsuids", "mess", 0) as u64, truth.completed);
    assert_eq!(col_sum("zsenders", "mess", 1) as u64, truth.completed_bytes);
    // zsendmail: one line per record
    let sm = String::from_utf8(stdout_of("zsendmail", &[], &m)).unwrap();
    assert_eq!(
        sm.lines().filter(|l| l.contains(": to=")).count() as u64,
        truth.attempts
    );
    assert_eq!(
        sm.lines().filter(|l| l.contains(": from=")).count() as u64,
        truth.completed
    );
    // zddist: last line is the 100th percentile
    let dd = String::from_utf8(stdout_of("zddist", &[], &m)).unwrap();
    assert!(dd.trim_end().ends_with(" 100"), "{dd}");
    // x tools select exactly the lines about their subject
    let first_m = String::from_utf8_lossy(&m)
        .lines()
        .find(|l| l.starts_with("m "))
        .unwrap()
        .to_string();
    let f: Vec<&str> = first_m.split(' ').collect();
    let qp = f[8];
    let xq = String::from_utf8(stdout_of("xqp", &[qp], &m)).unwrap();
    assert!(xq.lines().all(|l| l.split(' ').nth(8) == Some(qp)), "{xq}");
    assert!(xq.contains(&first_m));
    let sender = f[7].trim_start_matches('<').trim_end_matches('>');
    let xs = String::from_utf8(stdout_of("xsender", &[sender], &m)).unwrap();
    assert!(xs.lines().count() >= 2 && xs.contains(&first_m), "{xs}");
    let a_recip = String::from_utf8_lossy(&m)
        .lines()
        .find(|l| l.starts_with("d "))
        .unwrap()
        .split(' ')
        .nth(7)
        .unwrap()
        .to_string();
    let xr = String::from_utf8(stdout_of("xrecipient", &[&a_recip], &m)).unwrap();
    assert!(!xr.is_empty());
    assert!(
        xr.lines()
            .all(|l| l.split(' ').nth(7) == Some(a_recip.as_str()))
    );
}

#[test]
fn generated_reports_match_the_awk_reference() {
    let Some(_awk) = external("/usr/bin/awk") else {
        return;
    };
    let (log, _) = generate(&gen_params(5, 600));
    let (m, pending) = matchup_fd5(&log);
    let d = tempdir();
    let pend2 = d.path().join("p");
    let r = run_with_input(
        Command::new("/usr/bin/awk")
            .arg("-v")
            .arg(format!("pending={}", pend2.display()))
            .arg("-f")
            .arg(ref_dir().join("matchup.awk")),
        Some(&log),
        Duration::from_secs(60),
    );
    same("matchup vs awk matchup", &m, &r.stdout);
    let mut a: Vec<&[u8]> = pending.split_inclusive(|&c| c == b'\n').collect();
    let p2 = std::fs::read(&pend2).unwrap_or_default();
    let mut b: Vec<&[u8]> = p2.split_inclusive(|&c| c == b'\n').collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "pending state differs");
    let refsh = ref_dir().join("ref.sh");
    let reference = |args: &[&str]| -> Vec<u8> {
        let o = run_with_input(
            Command::new("/bin/sh").arg(&refsh).args(args),
            Some(&m),
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "ref.sh {args:?}: {o:?}");
        o.stdout
    };
    for t in TOOLS {
        same(t, &stdout_of(t, &[], &m), &reference(&[t]));
    }
    let first_m = String::from_utf8_lossy(&m)
        .lines()
        .find(|l| l.starts_with("m "))
        .unwrap()
        .to_string();
    let f: Vec<&str> = first_m.split(' ').collect();
    let sender = f[7]
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    for (t, arg) in [
        ("xqp", f[8].to_string()),
        ("xsender", sender),
        ("xrecipient", "local.user3@example.org".to_string()),
    ] {
        let ours = stdout_of(t, &[&arg], &m);
        assert!(!ours.is_empty(), "{t} {arg} selected nothing");
        same(t, &ours, &reference(&[t, &arg]));
    }
}

#[test]
fn big_numbers_print_like_mawk() {
    let Some(_awk) = external("/usr/bin/awk") else {
        return;
    };
    // mawk prints integral values beyond ±2147483647 with %.6g; the reports do too
    let mut log = String::new();
    for i in 0..3u64 {
        let t = 1_700_000_000 + i * 10;
        log.push_str(&format!(
            "{t}.000001 new msg {i}\n{t}.000002 info msg {i}: bytes 3000000000 from <big@example.org> qp {i} uid 1\n\
             {t}.000003 starting delivery {i}: msg {i} to remote x@example.net\n\
             {t}.500000 delivery {i}: success: ok/\n{t}.600000 end msg {i}\n"
        ));
    }
    let m = stdout_of("matchup", &[], log.as_bytes());
    assert!(String::from_utf8_lossy(&m).contains(" 3000000000 <big@example.org> "));
    let o = stdout_of("zoverall", &[], &m);
    assert_eq!(overall_value(&o, "Bytes in completed messages"), "9e+09");
    let refsh = ref_dir().join("ref.sh");
    for t in TOOLS {
        let r = run_with_input(
            Command::new("/bin/sh").arg(&refsh).arg(t),
            Some(&m),
            Duration::from_secs(60),
        );
        same(t, &stdout_of(t, &[], &m), &r.stdout);
    }
}

#[test]
fn integrated_equals_matchup_pipeline_on_generated_multilog_dir() {
    let p = Params {
        stamps: StampStyle::Tai64n,
        ..gen_params(9, 500)
    };
    let (log, truth) = generate(&p);
    // split into rotated files by line count, named by the stamp of their last line
    let d = tempdir();
    let dir = d.path().join("main");
    std::fs::create_dir(&dir).unwrap();
    let lines: Vec<&[u8]> = log.split_inclusive(|&c| c == b'\n').collect();
    let chunks: Vec<&[&[u8]]> = lines.chunks(700).collect();
    for (i, c) in chunks.iter().enumerate().rev() {
        let name = if i + 1 == chunks.len() {
            "current".to_string()
        } else {
            format!(
                "{}.{}",
                String::from_utf8_lossy(&c.last().unwrap()[..25]),
                if i % 2 == 0 { "s" } else { "u" }
            )
        };
        std::fs::write(dir.join(name), c.concat()).unwrap();
    }
    let m = stdout_of("matchup", &[], &log);
    let dirs = dir.to_str().unwrap();
    for t in TOOLS {
        let out = tool("qmailanalog", &[t, dirs], b"");
        same(
            &format!("qmailanalog {t} DIR"),
            &out.stdout,
            &stdout_of(t, &[], &m),
        );
        assert!(
            out.stderr.is_empty(),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = stdout_of("qmailanalog", &["zoverall", dirs], b"");
    assert_eq!(
        overall_value(&out, "Completed messages"),
        truth.completed.to_string()
    );
    assert_eq!(
        overall_value(&out, "Total delivery attempts"),
        truth.attempts.to_string()
    );
}

#[test]
fn matchup_pending_state_continues_the_next_chunk() {
    let (log, _) = generate(&gen_params(21, 300));
    let lines: Vec<&[u8]> = log.split_inclusive(|&c| c == b'\n').collect();
    let half = lines.len() / 2;
    // cut the first part in the middle of a line, as a log being written can be
    let first: Vec<u8> = lines[..half].concat();
    let mut first = first;
    let mut second: Vec<u8> = lines[half..].concat();
    let cut: Vec<u8> = second.drain(..10).collect();
    first.extend_from_slice(&cut);
    let (m1, pending) = matchup_fd5(&first);
    assert!(
        pending.ends_with(&cut),
        "partial line kept in the pending state"
    );
    let mut next = pending.clone();
    next.extend_from_slice(&second);
    let (m2, _) = matchup_fd5(&next);
    let whole = stdout_of("matchup", &[], &log);
    let mut a: Vec<&[u8]> = m1
        .split(|&c| c == b'\n')
        .chain(m2.split(|&c| c == b'\n'))
        .filter(|l| !l.is_empty())
        .collect();
    let mut b: Vec<&[u8]> = whole
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a.len(), b.len());
    assert!(a == b, "records from two chunks differ from one pass");
}

#[test]
fn real_multilog_directory_with_rotations() {
    let Some(multilog) = external("/usr/bin/multilog") else {
        return;
    };
    let (log, truth) = generate(&gen_params(3, 250));
    // what qmail-send really writes: no stamps (multilog adds them)
    let mut bare = Vec::new();
    for l in log.split_inclusive(|&c| c == b'\n') {
        let sp = l.iter().position(|&c| c == b' ').unwrap();
        bare.extend_from_slice(&l[sp + 1..]);
    }
    let d = tempdir();
    let dir = d.path().join("log");
    let out = run_with_input(
        Command::new(multilog)
            .args(["t", "s4096", "n1000"])
            .arg(&dir),
        Some(&bare),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "multilog: {out:?}");
    let rotated = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('@')
        })
        .count();
    assert!(rotated > 5, "multilog rotated only {rotated} times");
    let o = tool("qmailanalog", &["zoverall", dir.to_str().unwrap()], b"");
    assert_eq!(
        overall_value(&o.stdout, "Completed messages"),
        truth.completed.to_string()
    );
    assert_eq!(
        overall_value(&o.stdout, "Total delivery attempts"),
        truth.attempts.to_string()
    );
    assert_eq!(
        overall_value(&o.stdout, "  failure"),
        truth.failures.to_string()
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// ------------------------------------------------------------------ gaps and bad input

#[test]
fn gaps_where_the_start_was_rotated_away_are_reported() {
    let (log, truth) = generate(&gen_params(8, 300));
    let lines: Vec<&[u8]> = log.split_inclusive(|&c| c == b'\n').collect();
    let d = tempdir();
    let dir = d.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    // the oldest 40% of the log has been deleted by multilog
    let kept: Vec<u8> = lines[lines.len() * 2 / 5..].concat();
    std::fs::write(dir.join("current"), &kept).unwrap();
    // a rotated file that is listed but gone when we open it (multilog deleted it)
    std::os::unix::fs::symlink(
        d.path().join("gone"),
        dir.join("@4000000065530000000000aa.s"),
    )
    .unwrap();
    let o = tool("qmailanalog", &["zoverall", dir.to_str().unwrap()], b"");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("@4000000065530000000000aa.s: vanished"),
        "{err}"
    );
    assert!(
        err.contains("\"starting delivery\" line is not in the log"),
        "{err}"
    );
    assert!(err.contains("\"info msg\" line is not in the log"), "{err}");
    assert!(
        err.contains("first gap at ") && err.contains("/log/current line "),
        "{err}"
    );
    let completed: u64 = overall_value(&o.stdout, "Completed messages")
        .parse()
        .unwrap();
    assert!(completed > 0 && completed < truth.completed, "{completed}");
    // the same lines through matchup | zoverall agree
    let m = stdout_of("matchup", &[], &kept);
    same("gap report", &o.stdout, &stdout_of("zoverall", &[], &m));
}

#[test]
fn qmail_send_restart_reuses_delivery_numbers() {
    let log = b"1700000000.000000 status: local 0/10 remote 0/20
1700000001.000000 new msg 10
1700000001.000100 info msg 10: bytes 100 from <a@x.org> qp 1 uid 5
1700000001.000200 starting delivery 1: msg 10 to local b@x.org
1700000002.000000 status: local 0/10 remote 0/20
1700000003.000000 new msg 11
1700000003.000100 info msg 11: bytes 200 from <c@x.org> qp 2 uid 6
1700000003.000200 starting delivery 1: msg 11 to remote d@y.org
1700000004.000000 delivery 1: success: ok/
1700000004.100000 end msg 11
1700000005.000000 starting delivery 2: msg 10 to local b@x.org
1700000005.500000 delivery 2: success: did_1+0+0/
1700000005.600000 end msg 10
1700000006.000000 starting delivery 3: msg 10 to local z@x.org
1700000007.000000 status: exiting
1700000008.000000 status: local 0/10 remote 0/20
1700000009.000000 delivery 3: success: did_1+0+0/
";
    let o = tool("qmailanalog", &["matchup"], log);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("d k 1700000003.000100 1700000003.000200 1700000004.000000 200 <c@x.org> remote.d@y.org 2 6 ok/"), "{s}");
    assert!(
        s.contains("m 1700000001.000100 1700000005.600000 100 1 0 0 <a@x.org> 1 5"),
        "{s}"
    );
    assert_eq!(s.lines().filter(|l| l.starts_with("d ")).count(), 2, "{s}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 delivery number(s) started again"), "{err}");
    assert!(
        err.contains("1 open deliveries dropped at \"status: exiting\""),
        "{err}"
    );
    assert!(
        err.contains("1 delivery result(s) whose \"starting delivery\""),
        "{err}"
    );
}

#[test]
fn bad_input_is_counted_and_reported_never_fatal() {
    let mut log = Vec::new();
    let sample_log = sample("qmail-send.log");
    let lines: Vec<&[u8]> = sample_log.split_inclusive(|&c| c == b'\n').collect();
    for (i, l) in lines.iter().enumerate() {
        log.extend_from_slice(l);
        match i {
            3 => {
                log.extend_from_slice(b"1700000010.101010 sshd[77]: Accepted publickey for root\n")
            }
            5 => log.extend_from_slice(b"no stamp on this line at all\n"),
            7 => log.extend_from_slice(b"1700000010.140230 \xff\xfe\x00 bytes\n"),
            9 => log.extend_from_slice(b"1600000000.000000 status: local 0/10 remote 0/20\n"),
            11 => log.extend_from_slice(b"1700000011.700000 starting delivery 77: msg\n"),
            13 => log.extend_from_slice(b"@4000000065534f8Z00000000 bad tai64n\n"),
            _ => {}
        }
    }
    // a 20 MB line without any newline inside, then the rest of the log
    let mut huge = b"1700001800.000002 warning: ".to_vec();
    huge.resize(20 << 20, b'x');
    huge.push(b'\n');
    log.extend_from_slice(&huge);
    log.extend_from_slice(b"1700001900.000000 new ms"); // cut off mid-line
    let d = tempdir();
    let f = d.path().join("send.log");
    std::fs::write(&f, &log).unwrap();
    let missing = d.path().join("no-such-dir");
    let o = run_with_input(
        Command::new(bin("qmailanalog")).args([
            "zoverall",
            f.to_str().unwrap(),
            missing.to_str().unwrap(),
        ]),
        None,
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{o:?}");
    same(
        "zoverall despite bad lines",
        &o.stdout,
        &sample("zoverall.out"),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "missing input:",
        "no-such-dir",
        "1 truncated line(s)",
        "1 line(s) longer than 16 MiB skipped",
        "2 line(s) without a tai64n or numeric timestamp",
        "1 line(s) with non-UTF-8 bytes",
        "1 line(s) with a timestamp earlier than the line before",
        "1 qmail-send line(s) too short",
        "2 line(s) not from qmail-send",
    ] {
        assert!(err.contains(want), "stderr lacks {want:?}:\n{err}");
    }
    // the separate tools survive the same garbage
    let (m, _) = matchup_fd5(&log);
    for t in TOOLS {
        tool(t, &[], &m);
        tool(t, &[], &log);
        tool(t, &[], b"\xff\xfe\n\n d k\nm\n\x00\x00");
    }
    // nothing readable at all: fatal exit, clear message
    let o = run_with_input(
        Command::new(bin("qmailanalog")).arg(missing.to_str().unwrap()),
        None,
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-dir"));
}

#[test]
fn splogger_syslog_lines_and_bare_lines_are_understood() {
    let log = sample("qmail-send.log");
    let mut syslog = Vec::new();
    let mut bare = Vec::new();
    for l in log.split_inclusive(|&c| c == b'\n') {
        syslog.extend_from_slice(b"Nov 14 22:13:20 mail qmail: ");
        syslog.extend_from_slice(l);
        bare.extend_from_slice(&l[l.iter().position(|&c| c == b' ').unwrap() + 1..]);
    }
    let o = tool("qmailanalog", &[], &syslog);
    same("syslog", &o.stdout, &sample("zoverall.out"));
    assert!(o.stderr.is_empty());
    // without stamps the counts still come out; times are unknown (zero)
    let o = tool("qmailanalog", &["zoverall"], &bare);
    assert_eq!(overall_value(&o.stdout, "Completed messages"), "7");
    assert_eq!(overall_value(&o.stdout, "Total delivery attempts"), "11");
    assert_eq!(overall_value(&o.stdout, "  deferral"), "3");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("72 qmail-send line(s) without a timestamp")
    );
}

#[test]
fn matchup_without_fd5_warns_but_succeeds() {
    let o = tool("matchup", &[], &sample("qmail-send.log"));
    same("stdout", &o.stdout, &sample("matchup.out"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fd 5 is not open"));
}

#[test]
fn since_until_select_a_time_window() {
    let (log, _) = generate(&gen_params(4, 400));
    let m = String::from_utf8(stdout_of("matchup", &[], &log)).unwrap();
    let since = 1_700_000_030.0;
    let until = 1_700_000_090.0;
    let inwin = |t: &str| {
        let t: f64 = t.parse().unwrap();
        t >= since && t < until
    };
    let msgs = m
        .lines()
        .filter(|l| l.starts_with("m ") && inwin(l.split(' ').nth(2).unwrap()))
        .count();
    let dels = m
        .lines()
        .filter(|l| l.starts_with("d ") && inwin(l.split(' ').nth(4).unwrap()))
        .count();
    assert!(msgs > 10 && dels > 10);
    for (s, u) in [
        ("1700000030", "1700000090"),
        ("2023-11-14 22:13:50", "2023-11-14T22:14:50Z"),
        ("@400000006553f12800000000", "@400000006553f16400000000"),
    ] {
        let o = tool(
            "qmailanalog",
            &["--since", s, "--until", u, "zoverall"],
            &log,
        );
        assert_eq!(
            overall_value(&o.stdout, "Completed messages"),
            msgs.to_string(),
            "{s}"
        );
        assert_eq!(
            overall_value(&o.stdout, "Total delivery attempts"),
            dels.to_string(),
            "{s}"
        );
    }
    let o = run_with_input(
        Command::new(bin("qmailanalog")).args(["--since", "yesterday-ish"]),
        Some(b""),
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(100));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read time"));
}

// ------------------------------------------------------------------ HTML

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = external("/usr/bin/chromium") else {
        return;
    };
    let (log, truth) = generate(&Params {
        stamps: StampStyle::Tai64n,
        ..gen_params(13, 800)
    });
    let d = tempdir();
    let dir = d.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("current"), &log).unwrap();
    let page = d.path().join("report.html");
    let o = tool(
        "qmailanalog",
        &["--html", page.to_str().unwrap(), dir.to_str().unwrap()],
        b"",
    );
    assert!(o.stdout.is_empty(), "--html alone prints no text report");
    let html = std::fs::read_to_string(&page).unwrap();
    // self-contained: no scripts, no external references
    assert!(!html.contains("<script"), "no JavaScript");
    for bad in ["src=\"http", "href=\"http", "url(", "@import"] {
        assert!(!html.contains(bad), "external resource {bad}");
    }
    assert!(html.contains(&format!("<td class=\"v\">{}</td>", truth.completed)));
    let ids = [
        "plot-messages",
        "plot-bytes",
        "plot-qtime",
        "plot-failures",
        "plot-deferrals",
        "plot-senders",
        "plot-recipients",
        "plot-rhosts",
    ];
    let url = format!("file://{}", page.display());
    let chrome = |extra: &[String]| -> Output {
        let prof = tempdir();
        let mut c = Command::new(&chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", prof.path().display()))
        .args(extra)
        .arg(&url);
        run_with_input(&mut c, None, Duration::from_secs(120))
    };
    let shot = d.path().join("shot.png");
    let o = chrome(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1000,3800".to_string(),
    ]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {o:?}"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot too small"
    );
    let dom = chrome(&["--dump-dom".to_string()]);
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    for id in ids {
        assert!(
            dom_text.contains(&format!("id=\"{id}\"")),
            "{id} missing from the rendered DOM"
        );
    }
    assert!(dom_text.contains("<rect"), "bars rendered");
    for out in [&o, &dom] {
        let err = String::from_utf8_lossy(&out.stderr);
        for l in err.lines() {
            assert!(
                !l.contains("CONSOLE") && !l.contains("Refused to") && !l.contains("Uncaught"),
                "console error: {l}"
            );
        }
    }
}

// ------------------------------------------------------------------ the zoverall fast path

/// Stamps of numeric lines rewritten as tai64n (the separator after the stamp kept); lines
/// without a numeric stamp stay as they are.
fn tai_where_numeric(log: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in log.split_inclusive(|&c| c == b'\n') {
        let end = line
            .iter()
            .position(|&c| c == b' ' || c == b'\t')
            .unwrap_or(line.len());
        let stamp = String::from_utf8_lossy(&line[..end]);
        let (secs, frac) = stamp.split_once('.').unwrap_or((&stamp, "0"));
        match (
            secs.parse::<u64>(),
            format!("{frac:0<9}")[..9].parse::<u64>(),
        ) {
            (Ok(secs), Ok(nanos)) if !frac.is_empty() => {
                out.extend_from_slice(
                    format!("@{:016x}{:08x}", secs + (1u64 << 62) + 10, nanos).as_bytes(),
                );
                out.extend_from_slice(&line[end..]);
            }
            _ => out.extend_from_slice(line),
        }
    }
    out
}

/// `qmailanalog zoverall` takes a numbers-only path (src/fast.rs); `qmailanalog matchup`
/// takes the generic one. On a log with gaps, a restart, reused delivery numbers, lines of
/// other programs and lines in unusual shapes, zoverall over the generic path's records
/// must equal the fast path's report, with the same warnings.
#[test]
fn zoverall_fast_path_equals_generic_matchup_on_odd_logs() {
    let (log, _) = generate(&gen_params(31, 400));
    let lines: Vec<&[u8]> = log.split_inclusive(|&c| c == b'\n').collect();
    // the oldest quarter rotated away: results and ends without their starts
    let lines = &lines[lines.len() / 4..];
    let mut odd = Vec::new();
    let mut last_start: Option<Vec<u8>> = None;
    for (i, l) in lines.iter().enumerate() {
        let stamp =
            String::from_utf8_lossy(&l[..l.iter().position(|&c| c == b' ').unwrap()]).into_owned();
        let s = stamp.as_str();
        match i % 97 {
            3 => odd.extend_from_slice(format!("{s} sshd[77]: Accepted key for root\n").as_bytes()),
            7 => odd.extend_from_slice(format!("{s} starting delivery 5: msg\n").as_bytes()),
            11 => odd.extend_from_slice(format!("{s} info msg 3: bytes\n").as_bytes()),
            13 => odd.extend_from_slice(format!("{s} delivery 4242:\n").as_bytes()),
            17 => odd.extend_from_slice(format!("{s}  new msg 77\n").as_bytes()),
            19 => odd.extend_from_slice(format!("{s} status:\texiting soon\n").as_bytes()),
            23 => odd.extend_from_slice(b"new msg 99999\n"),
            29 => {
                odd.extend_from_slice(format!("{s} warning: trouble ").as_bytes());
                odd.extend_from_slice(b"\xff\xfe\n");
            }
            31 => odd.extend_from_slice(format!("{s} bounce msg 5 qp 6\n").as_bytes()),
            37 => odd.extend_from_slice(
                format!("{s} info msg 424242: bytes 10 from <a b@c> qp 1 uid 2\n").as_bytes(),
            ),
            41 => odd.extend_from_slice(format!("{s} end msg 424242\n").as_bytes()),
            43 => odd.extend_from_slice(format!("{s} new msg 1\0 2\n").as_bytes()),
            47 => odd.extend_from_slice(b"Nov 26 10:00:00 host qmail: 1700000000.5 new msg 3\n"),
            _ => {}
        }
        if i == lines.len() / 2 {
            // qmail-send restarts without "status: exiting" (crash): numbers start over
            odd.extend_from_slice(format!("{s} status: local 0/10 remote 0/20\n").as_bytes());
            if let Some(st) = &last_start {
                odd.extend_from_slice(st);
            }
        }
        if i == lines.len() * 3 / 4 {
            odd.extend_from_slice(format!("{s} status: exiting\n").as_bytes());
        }
        let mut line = l.to_vec();
        if i % 89 == 5 {
            // odd but valid shapes: a tab after the stamp, blanks between words
            if let Some(p) = line.iter().position(|&c| c == b' ') {
                line[p] = b'\t';
            }
        } else if i % 89 == 9 {
            line = String::from_utf8_lossy(&line)
                .replacen(": ", ":  ", 1)
                .into_bytes();
        } else if i % 89 == 15 {
            line = String::from_utf8_lossy(&line)
                .replacen(" to ", " to\t", 1)
                .into_bytes();
        }
        if line.windows(9).any(|w| w == b" starting") {
            last_start = Some(line.clone());
        }
        odd.extend_from_slice(&line);
    }
    let tai = tai_where_numeric(&odd);
    assert!(tai.starts_with(b"@4000"));
    let d = tempdir();
    for (name, data) in [("numeric.log", &odd), ("tai.log", &tai)] {
        let f = d.path().join(name);
        std::fs::write(&f, data).unwrap();
        let f = f.to_str().unwrap();
        let since = format!("--since={}", 1_700_000_000 + 400 * 3 / 10 * 3 / 10);
        for extra in [&[][..], &[since.as_str()][..]] {
            let fast = tool("qmailanalog", &[&["zoverall"], extra, &[f]].concat(), b"");
            let generic = tool("qmailanalog", &[&["matchup"], extra, &[f]].concat(), b"");
            same(
                &format!("{name} {extra:?}: fast zoverall"),
                &fast.stdout,
                &stdout_of("zoverall", &[], &generic.stdout),
            );
            same(
                &format!("{name} {extra:?}: warnings"),
                &fast.stderr,
                &generic.stderr,
            );
            let err = String::from_utf8_lossy(&fast.stderr);
            for w in [
                "started again",
                "dropped at",
                "not in the log",
                "not from qmail-send",
            ] {
                assert!(err.contains(w), "{name}: no {w:?} in\n{err}");
            }
        }
    }
}
