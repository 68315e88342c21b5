//! qmail-smtpd: the observed transcripts byte for byte, relay control, bad input, qmail-queue
//! exit codes, timeouts, and real SMTP clients over tcpserver.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rqmail_tests::{Proc, TempDir, bin, external, must, run_with_input, tempdir, write_exec};

const T: &str = "/work/shared/reference/qmail-transcripts";

fn transcript(name: &str) -> Vec<u8> {
    let p = Path::new(T).join(name);
    match std::fs::read(&p) {
        Ok(b) => b,
        Err(_) => std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/it/transcripts")
                .join(name),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    }
}

/// A qmail home with the controls of the transcripts and a capturing $QMAILQUEUE.
pub struct Home {
    pub dir: TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempdir();
        let c = dir.path().join("control");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("me"), "mail.example.org\n").unwrap();
        std::fs::write(c.join("rcpthosts"), "example.org\nmail.example.org\n").unwrap();
        std::fs::write(
            c.join("badmailfrom"),
            "spammer@bogus.invalid\n@evil.example\n",
        )
        .unwrap();
        std::fs::write(c.join("databytes"), "2000\n").unwrap();
        std::fs::create_dir_all(dir.path().join("queued")).unwrap();
        // The fake qmail-queue keeps a message only when the envelope arrived complete
        // (ends in two NULs), like the real one.
        write_exec(
            &dir.path().join("qq"),
            &format!(
                "#!/bin/sh\nd={q}/.tmp.$$\ncat > $d.msg || exit 54\ncat <&1 > $d.env || exit 54\n\
                 if [ \"$(tail -c 2 $d.env | od -An -tx1 | tr -d ' \\n')\" != 0000 ]; then rm -f $d.msg $d.env; exit 54; fi\n\
                 mv $d.msg {q}/$$.msg && mv $d.env {q}/$$.env\nexit ${{QQEXIT:-0}}\n",
                q = dir.path().join("queued").display()
            ),
        );
        Home { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn control(&self, name: &str, text: &str) {
        std::fs::write(self.path().join("control").join(name), text).unwrap();
    }
    pub fn rm_control(&self, name: &str) {
        let _ = std::fs::remove_file(self.path().join("control").join(name));
    }
    /// Queued (message, envelope) pairs.
    pub fn queued(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let q = self.path().join("queued");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&q)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "env"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|e| {
                (
                    std::fs::read(e.with_extension("msg")).unwrap(),
                    std::fs::read(&e).unwrap(),
                )
            })
            .collect()
    }
    /// Anything left behind by the fake queue (half-written messages).
    pub fn leftovers(&self) -> usize {
        std::fs::read_dir(self.path().join("queued"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp")
            })
            .count()
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin("qmail-smtpd"));
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QMAILHOME", self.path())
            .env("QMAILQUEUE", self.path().join("qq"))
            .env("TCPREMOTEIP", "192.0.2.9")
            .env("TCPREMOTEHOST", "client.example.net")
            .env("TCPLOCALIP", "127.0.0.1")
            .env("TCPLOCALHOST", "mail.example.org");
        c
    }
}

fn run(mut c: Command, input: &[u8]) -> std::process::Output {
    run_with_input(&mut c, Some(input), Duration::from_secs(60))
}

/// Replace the variable parts ("250 ok TIME qp PID", the Received date) for comparison.
fn norm(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b).into_owned();
    s.lines()
        .map(|l| {
            if l.starts_with("250 ok ") && l.contains(" qp ") {
                "250 ok TIME qp PID\r".to_string()
            } else if l.starts_with("  by ") && l.contains(" with SMTP; ") {
                let (a, _) = l.split_once("; ").unwrap();
                format!("{a}; DATE")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// qmail's EHLO answer with our deliberate SIZE addition.
fn with_size(expected: &[u8], size: &str) -> Vec<u8> {
    let s = String::from_utf8_lossy(expected).replace(
        "250 8BITMIME\r\n",
        &format!("250-8BITMIME\r\n250 SIZE {size}\r\n"),
    );
    s.into_bytes()
}

#[test]
fn transcript_1_session_byte_for_byte() {
    let h = Home::new();
    let out = run(h.cmd(), &transcript("smtpd-1.client-input.txt"));
    assert_eq!(out.status.code(), Some(0));
    let want = with_size(&transcript("smtpd-1.server-output.txt"), "2000");
    assert_eq!(norm(&out.stdout), norm(&want));
    // The accept line has the real form.
    let s = String::from_utf8_lossy(&out.stdout);
    let acc = s.lines().find(|l| l.starts_with("250 ok ")).unwrap();
    let f: Vec<&str> = acc.trim_end().split(' ').collect();
    assert_eq!(f.len(), 5, "{acc}");
    assert!(f[2].parse::<u64>().unwrap() > 1_700_000_000 && f[3] == "qp");
    f[4].parse::<u32>().unwrap();
    let q = h.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(
        norm(&q[0].0),
        norm(&transcript("smtpd-1.queued-message.txt"))
    );
    let env: Vec<u8> = transcript("smtpd-1.queued-envelope.txt")
        .iter()
        .filter(|&&c| c != b'\n')
        .map(|&c| if c == b'|' { 0 } else { c })
        .collect();
    assert_eq!(q[0].1, env);
    // The refusals are logged with their reasons.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("badmailfrom"), "{err}");
    assert!(err.contains("victim@elsewhere.example"), "{err}");
}

#[test]
fn transcript_2_helo_databytes_bare_lf() {
    let h = Home::new();
    let mut c = h.cmd();
    c.env("RELAYCLIENT", "@relay.example");
    let out = run(c, &transcript("smtpd-2.client-input.txt"));
    assert_eq!(
        out.status.code(),
        Some(1),
        "bare LF ends the session with exit 1"
    );
    assert_eq!(out.stdout, transcript("smtpd-2.server-output.txt"));
    assert!(h.queued().is_empty(), "neither message may be queued");
    assert_eq!(h.leftovers(), 0);
}

#[test]
fn transcript_3_localiphost_relayclient_hops() {
    let h = Home::new();
    let mut c = h.cmd();
    c.env("RELAYCLIENT", "@relay.example");
    let out = run(c, &transcript("smtpd-3.client-input.txt"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        norm(&out.stdout),
        norm(&transcript("smtpd-3.server-output.txt"))
    );
    let q = h.queued();
    assert_eq!(q.len(), 1, "the looping message is not queued");
    let env: Vec<u8> = transcript("smtpd-3.first-message-envelope.txt")
        .iter()
        .filter(|&&c| c != b'\n')
        .map(|&c| if c == b'|' { 0 } else { c })
        .collect();
    assert_eq!(q[0].1, env);
    // HELO x differs from the remote host name: it appears in the Received line.
    let msg = String::from_utf8_lossy(&q[0].0);
    assert!(
        msg.starts_with("Received: from client.example.net (HELO x) (192.0.2.9)\n  by mail.example.org with SMTP; "),
        "{msg}"
    );
    assert!(msg.ends_with("\nSubject: ok\n\nhi\n"), "{msg}");
}

#[test]
fn received_line_with_remoteinfo_and_unsafe_characters() {
    let h = Home::new();
    let mut c = h.cmd();
    c.env("TCPREMOTEINFO", "joe user")
        .env_remove("TCPLOCALHOST");
    let out = run(
        c,
        b"HELO evil<host>\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(out.status.code(), Some(0));
    let q = h.queued();
    let msg = String::from_utf8_lossy(&q[0].0);
    assert!(
        msg.starts_with("Received: from client.example.net (HELO evil?host?) (joe?user@192.0.2.9)\n  by 127.0.0.1 with SMTP; "),
        "{msg}"
    );
}

/// One RCPT per line after MAIL; returns the RCPT replies.
fn rcpt_replies(
    h: &Home,
    relay: Option<&str>,
    rcpts: &[&str],
) -> (Vec<String>, std::process::Output) {
    let mut input = String::from("EHLO x\r\nMAIL FROM:<a@b.example>\r\n");
    for r in rcpts {
        input.push_str(&format!("RCPT TO:{r}\r\n"));
    }
    input.push_str("QUIT\r\n");
    let mut c = h.cmd();
    if let Some(r) = relay {
        c.env("RELAYCLIENT", r);
    }
    let out = run(c, input.as_bytes());
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<String> = s.lines().map(|l| l.to_string()).collect();
    // 220, 4 EHLO lines, MAIL's 250, then one per RCPT, then 221.
    assert_eq!(lines.len(), 1 + 4 + 1 + rcpts.len() + 1, "{s}");
    (lines[6..6 + rcpts.len()].to_vec(), out)
}

const RELAY_BATTERY: &[&str] = &[
    "<victim@elsewhere.example>",
    "<user%elsewhere.example@example.org>",
    "<elsewhere.example!user@example.org>",
    "<\"victim@elsewhere.example\"@example.org>",
    "<victim\\@elsewhere.example@example.org>",
    "<@example.org:victim@elsewhere.example>",
    "<@example.org,@mail.example.org:victim@elsewhere.example>",
    "<victim@elsewhere.example.>",
    "<victim@example.org.>",
    "<victim@EXAMPLE.ORG.elsewhere.example>",
    "<victim@Elsewhere.EXAMPLE>",
    "<victim@evilexample.org>",
    "<victim@example.org.evil>",
    "<victim@sub.example.org>",
    "<victim@[192.0.2.77]>",
    "<user%elsewhere.example@[127.0.0.1]>",
    "<elsewhere.example!user>",
    "<user%elsewhere.example>",
    "<\"victim@elsewhere.example\">",
    "victim@elsewhere.example",
    "<victim@elsewhere.example> NOTIFY=NEVER",
];

const REFUSED: &str = "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)";

#[test]
fn relay_battery_refused_with_rcpthosts() {
    assert!(RELAY_BATTERY.len() >= 15);
    let h = Home::new();
    let (replies, out) = rcpt_replies(&h, None, RELAY_BATTERY);
    for (r, a) in replies.iter().zip(RELAY_BATTERY) {
        assert_eq!(r, REFUSED, "RCPT TO:{a}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("refused relaying").count(),
        RELAY_BATTERY.len(),
        "{err}"
    );
    // Our own domains, in any case, and addresses without a domain, are accepted.
    let ok = [
        "<bob@example.org>",
        "<BOB@Example.ORG>",
        "<bob@MAIL.EXAMPLE.ORG>",
        "<bob@[127.0.0.1]>",
        "<postmaster>",
        "<@elsewhere.example:bob@example.org>",
    ];
    let (replies, _) = rcpt_replies(&h, None, &ok);
    assert!(replies.iter().all(|r| r == "250 ok"), "{replies:?}");
}

#[test]
fn relay_refused_when_rcpthosts_missing_or_empty() {
    let h = Home::new();
    h.rm_control("rcpthosts");
    let mut all: Vec<&str> = RELAY_BATTERY.to_vec();
    all.push("<bob@example.org>");
    all.push("<bob@mail.example.org>");
    let (replies, out) = rcpt_replies(&h, None, &all);
    assert!(replies.iter().all(|r| r == REFUSED), "{replies:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rcpthosts is missing"), "{err}");
    // qmail would have been an open relay; we still take local addresses without a domain.
    let (replies, _) = rcpt_replies(&h, None, &["<postmaster>"]);
    assert_eq!(replies, ["250 ok"]);

    h.control("rcpthosts", "# nothing here\n\n");
    let (replies, _) = rcpt_replies(&h, None, &all);
    assert!(replies.iter().all(|r| r == REFUSED), "{replies:?}");
}

#[test]
fn relayclient_accepts_the_battery() {
    let h = Home::new();
    let mut input = String::from("HELO x\r\nMAIL FROM:<a@b.example>\r\n");
    for r in RELAY_BATTERY {
        input.push_str(&format!("RCPT TO:{r}\r\n"));
    }
    input.push_str("DATA\r\nSubject: relayed\r\n\r\nok\r\n.\r\nQUIT\r\n");
    let mut c = h.cmd();
    c.env("RELAYCLIENT", "");
    let out = run(c, input.as_bytes());
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        s.matches("250 ok\r\n").count(),
        1 + RELAY_BATTERY.len(),
        "{s}"
    );
    assert!(!s.contains("553"), "{s}");
    let q = h.queued();
    assert_eq!(q.len(), 1);
    let env = String::from_utf8_lossy(&q[0].1);
    assert!(env.contains("Tvictim@elsewhere.example\0"), "{env:?}");
    assert!(
        env.contains("Tuser%elsewhere.example@example.org\0"),
        "{env:?}"
    );
    assert!(
        env.contains("Tvictim@elsewhere.example@example.org\0"),
        "{env:?}"
    );
    assert!(
        env.contains("Tuser%elsewhere.example@mail.example.org\0"),
        "{env:?}"
    );
    let rcpts = q[0]
        .1
        .split(|&c| c == 0)
        .filter(|f| f.first() == Some(&b'T'))
        .count();
    assert_eq!(rcpts, RELAY_BATTERY.len());
}

#[test]
fn wildcards_and_morercpthosts() {
    let h = Home::new();
    h.control("rcpthosts", "example.org\n.wild.example\n");
    let mut w = cdb2::CDBWriter::create(h.path().join("control/morercpthosts.cdb")).unwrap();
    w.add(b"more.example", b"").unwrap();
    w.finish().unwrap();
    let (r, _) = rcpt_replies(
        &h,
        None,
        &[
            "<a@x.wild.example>",
            "<a@y.x.WILD.example>",
            "<a@wild.example>",
            "<a@more.example>",
            "<a@sub.more.example>",
            "<a@MORE.example>",
        ],
    );
    assert_eq!(
        r,
        ["250 ok", "250 ok", REFUSED, "250 ok", REFUSED, "250 ok"]
    );
}

#[test]
fn badmailfrom_domain_and_case() {
    let h = Home::new();
    let out = run(
        h.cmd(),
        b"MAIL FROM:<Someone@EVIL.example>\r\nRCPT TO:<bob@example.org>\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.org>\r\nQUIT\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "220 mail.example.org ESMTP\r\n250 ok\r\n553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n250 ok\r\n250 ok\r\n221 mail.example.org\r\n"
    );
}

#[test]
fn verbs_are_case_insensitive_and_unknown_ones_get_502() {
    let h = Home::new();
    let out = run(
        h.cmd(),
        b"noop\r\nNoOp hi\r\nvrfy x\r\nEXPN x\r\n\r\nSTARTTLS\r\nAUTH PLAIN x\r\nhelo   spaced\r\nquit\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "220 mail.example.org ESMTP\r\n250 ok\r\n250 ok\r\n252 send some mail, i'll try my best\r\n502 unimplemented (#5.5.1)\r\n502 unimplemented (#5.5.1)\r\n502 unimplemented (#5.5.1)\r\n502 unimplemented (#5.5.1)\r\n250 mail.example.org\r\n221 mail.example.org\r\n"
    );
}

#[test]
fn smtpgreeting_and_localiphost_controls() {
    let h = Home::new();
    h.control("smtpgreeting", "mx.example.org ready  \n");
    h.control("localiphost", "lip.example.org\n");
    let out = run(
        h.cmd(),
        b"MAIL FROM:<a@[127.0.0.1]>\r\nRCPT TO:<bob@[127.0.0.1]>\r\nQUIT\r\n",
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("220 mx.example.org ready ESMTP\r\n"), "{s}");
    assert!(s.ends_with("221 mx.example.org ready\r\n"), "{s}");
    // bob@lip.example.org is not in rcpthosts.
    assert!(s.contains(REFUSED), "{s}");
}

#[test]
fn missing_me_gives_421() {
    let h = Home::new();
    h.rm_control("me");
    let out = run(h.cmd(), b"QUIT\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "421 unable to read controls (#4.3.0)\r\n"
    );
    assert_ne!(out.status.code(), Some(0));
    h.control("me", "x.example\n");
    h.control("databytes", "lots\n");
    let out = run(h.cmd(), b"QUIT\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "421 unable to read controls (#4.3.0)\r\n"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("databytes"));
}

fn one_message(body: &[u8]) -> Vec<u8> {
    let mut v = b"HELO client.example.net\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n".to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn bare_lf_in_header_or_after_dot_is_refused() {
    for body in [
        &b"Subject: x\nfoo\r\n.\r\nQUIT\r\n"[..],
        b"ok\r\n.\nQUIT\r\n",
        b"ok\r\n\n.\r\n",
        b"\n",
    ] {
        let h = Home::new();
        let out = run(h.cmd(), &one_message(body));
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            s.ends_with("354 go ahead\r\n451 See https://cr.yp.to/docs/smtplf.html.\r\n"),
            "{body:?}: {s}"
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(h.queued().is_empty());
        assert_eq!(h.leftovers(), 0);
    }
}

#[test]
fn lone_cr_kept_and_dot_handling() {
    let h = Home::new();
    let out = run(
        h.cmd(),
        &one_message(b"a\rb\r\n..\r\n...x\r\n.\rz\r\n\r\r\n.\r\nQUIT\r\n"),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let q = h.queued();
    let msg = &q[0].0;
    let body = &msg[msg.iter().position(|&c| c == b'\n').unwrap() + 1..];
    let body = &body[body.iter().position(|&c| c == b'\n').unwrap() + 1..];
    // ".\rz" keeps its dot (qmail's state machine), "\r\r\n" keeps one CR.
    assert_eq!(body, b"a\rb\n.\n..x\n.\rz\n\r\n");
}

#[test]
fn one_megabyte_lines() {
    let h = Home::new();
    h.control("databytes", "0\n");
    let big = "a".repeat(1 << 20);
    let mut input = format!("NOOP {big}\r\nMAIL FROM:<{big}@x>\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<{big}@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: long\r\n\r\n").into_bytes();
    input.extend_from_slice(big.as_bytes());
    input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    let out = run(h.cmd(), &input);
    let s = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        &lines[..7],
        [
            "220 mail.example.org ESMTP",
            "250 ok",
            "555 syntax error (#5.5.4)",
            "250 ok",
            "555 syntax error (#5.5.4)",
            "250 ok",
            "354 go ahead"
        ]
    );
    assert!(lines[7].starts_with("250 ok "), "{s}");
    let q = h.queued();
    assert_eq!(q.len(), 1);
    assert!(
        q[0].0
            .ends_with(format!("Subject: long\n\n{big}\n").as_bytes())
    );
    // With a databytes limit the same line is refused and nothing is queued.
    let h = Home::new();
    h.control("databytes", "100000\n");
    let out = run(h.cmd(), &input);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("354 go ahead\r\n552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n221 "),
        "{s}"
    );
    assert!(h.queued().is_empty());
    assert_eq!(h.leftovers(), 0);
}

#[test]
fn databytes_counts_stored_bytes_and_env_overrides() {
    // 2000 stored bytes exactly pass (Received excluded; CRLF counts as one byte).
    let line = "x".repeat(99);
    let body: String = (0..20).map(|_| format!("{line}\r\n")).collect();
    let input = one_message(format!("{body}.\r\nQUIT\r\n").as_bytes());
    let h = Home::new();
    let out = run(h.cmd(), &input);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\r\n250 ok "));
    assert_eq!(h.queued().len(), 1);
    let mut c = h.cmd();
    c.env("DATABYTES", "1999");
    let out = run(c, &input);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("552 sorry, that message size exceeds my databytes limit (#5.3.4)")
    );
    assert_eq!(h.queued().len(), 1);
    // SIZE= over the limit is refused at MAIL; under it is fine.
    let out = run(
        h.cmd(),
        b"EHLO x\r\nMAIL FROM:<a@b> SIZE=2001\r\nMAIL FROM:<a@b> SIZE=2000 BODY=8BITMIME\r\nQUIT\r\n",
    );
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.ends_with("250 SIZE 2000\r\n552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n250 ok\r\n221 mail.example.org\r\n"), "{s}");
}

#[test]
fn ten_thousand_recipients() {
    let h = Home::new();
    let mut input = String::from("MAIL FROM:<a@b.example>\r\n");
    for i in 0..10_000 {
        input.push_str(&format!("RCPT TO:<user{i}@example.org>\r\n"));
    }
    input.push_str("DATA\r\nSubject: many\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    let out = run(h.cmd(), input.as_bytes());
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.matches("250 ok\r\n").count(), 10_001);
    assert!(s.contains("354 go ahead\r\n250 ok "));
    let q = h.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1.iter().filter(|&&c| c == 0).count(), 10_002);
    assert!(q[0].1.ends_with(b"Tuser9999@example.org\0\0"));
}

#[test]
fn recipient_cap() {
    let h = Home::new();
    let mut input = String::from("MAIL FROM:<a@b.example>\r\n");
    for i in 0..20_001 {
        input.push_str(&format!("RCPT TO:<u{i}@example.org>\r\n"));
    }
    input.push_str("QUIT\r\n");
    let out = run(h.cmd(), input.as_bytes());
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s.matches("250 ok\r\n").count(), 20_001);
    assert!(s.ends_with("452 too many recipients (#4.5.3)\r\n221 mail.example.org\r\n"));
}

#[test]
fn client_vanishing_mid_data_queues_nothing() {
    let h = Home::new();
    let out = run(
        h.cmd(),
        &one_message(b"Subject: half\r\n\r\nsome text\r\nmore"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("354 go ahead\r\n"));
    assert!(h.queued().is_empty());
    assert_eq!(h.leftovers(), 0);
    // Also right after ".\r" of the terminator.
    let out = run(h.cmd(), &one_message(b"x\r\n.\r"));
    assert_eq!(out.status.code(), Some(1));
    assert!(h.queued().is_empty());
}

#[test]
fn binary_garbage() {
    let h = Home::new();
    let mut g: Vec<u8> = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        g.push((x >> 16) as u8);
    }
    let mut input = g.clone();
    input.extend_from_slice(
        b"\r\nMAIL FROM:<a\0b@c>\r\nRCPT TO:<bob@example.org\0x@evil>\r\nQUIT\r\n",
    );
    let out = run(h.cmd(), &input);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.starts_with("220 mail.example.org ESMTP\r\n"));
    assert!(
        s.ends_with("250 ok\r\n250 ok\r\n221 mail.example.org\r\n"),
        "{s}"
    );
    assert!(
        s.lines().skip(1).all(|l| l.starts_with("250")
            || l.starts_with("502")
            || l.starts_with("503")
            || l.starts_with("555")
            || l.starts_with("221")
            || l.starts_with("252")
            || l.starts_with("214")
            || l.starts_with("553")),
        "{s}"
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(h.queued().is_empty());
    // Garbage as the only input, then EOF.
    let out = run(h.cmd(), &g);
    assert!(out.status.code().is_some(), "no crash by signal");
}

#[test]
fn queue_exit_codes_become_replies() {
    for (code, reply) in [
        ("53", "451 qq write error or disk full (#4.3.0)"),
        (
            "31",
            "554 mail server permanently rejected message (#5.3.0)",
        ),
        ("11", "554 envelope address too long for qq (#5.1.3)"),
        ("81", "451 qq internal bug (#4.3.0)"),
        ("99", "451 qq temporary problem (#4.3.0)"),
    ] {
        let h = Home::new();
        let mut c = h.cmd();
        c.env("QQEXIT", code);
        let out = run(c, &one_message(b"x\r\n.\r\nQUIT\r\n"));
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(
            s.contains(&format!("354 go ahead\r\n{reply}\r\n221 ")),
            "{code}: {s}"
        );
    }
    let h = Home::new();
    let mut c = h.cmd();
    c.env("QMAILQUEUE", h.path().join("no-such-program"));
    let out = run(c, &one_message(b"QUIT\r\n"));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.ends_with("250 ok\r\n451 qqt failure (#4.3.0)\r\n221 mail.example.org\r\n"),
        "{s}"
    );
}

#[test]
fn read_timeout_says_451_and_exits() {
    let h = Home::new();
    h.control("timeoutsmtpd", "1\n");
    let mut c = h.cmd();
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut p = Proc::spawn(&mut c);
    let mut stdin = p.child.stdin.take().unwrap();
    stdin
        .write_all(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nhalf a mess")
        .unwrap();
    let st = p
        .wait_timeout(Duration::from_secs(30))
        .expect("qmail-smtpd must time out");
    assert_eq!(st.code(), Some(1));
    let mut out = String::new();
    p.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.ends_with("354 go ahead\r\n451 timeout (#4.4.2)\r\n"),
        "{out}"
    );
    assert!(h.queued().is_empty());
    drop(stdin);
}

#[test]
fn client_that_never_reads_cannot_hang_the_server() {
    // The client sends 100,000 NOOPs without reading a reply: replies pile up in the pipe;
    // the write timeout must end the server.
    let h = Home::new();
    h.control("timeoutsmtpd", "1\n");
    let mut c = h.cmd();
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut p = Proc::spawn(&mut c);
    let mut stdin = p.child.stdin.take().unwrap();
    let _keep_stdout = p.child.stdout.take().unwrap();
    let writer = std::thread::spawn(move || {
        let noops = "NOOP\r\n".repeat(100_000);
        let _ = stdin.write_all(noops.as_bytes());
        stdin
    });
    let st = p
        .wait_timeout(Duration::from_secs(60))
        .expect("server must give up");
    assert_eq!(st.code(), Some(1));
    drop(writer);
}

// ---- real clients over sockets ----

/// Our tcpserver when it is built (after ucspi merges), else Debian's.
pub fn tcpserver() -> Option<PathBuf> {
    let ours = rqmail_tests::bin_dir().join("tcpserver");
    if ours.exists() {
        return Some(ours);
    }
    external("/usr/bin/tcpserver")
}

/// A running `tcpserver 127.0.0.1 PORT prog…`.
pub struct Server {
    pub port: u16,
    /// Killed (with its children) on drop.
    pub _proc: Proc,
}

pub fn serve(
    envs: &[(&str, &Path)],
    extra_env: &[(&str, &str)],
    rules: Option<&Path>,
    prog: &[&Path],
) -> Option<Server> {
    let tcpserver = tcpserver()?;
    for attempt in 0..5 {
        let port = rqmail_tests::free_port();
        let mut c = Command::new(&tcpserver);
        c.arg("-H").arg("-R").arg("-l").arg("localhost");
        if let Some(r) = rules {
            c.arg("-x").arg(r);
        }
        c.arg("127.0.0.1").arg(port.to_string()).args(prog);
        for (k, v) in envs {
            c.env(k, v);
        }
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut p = Proc::spawn(&mut c);
        let up = rqmail_tests::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if up {
            return Some(Server { port, _proc: p });
        }
        p.kill_group();
        eprintln!("tcpserver did not come up on {port} (attempt {attempt})");
    }
    panic!("tcpserver never came up");
}

fn smtp_server(h: &Home, relay_rules: bool) -> Option<Server> {
    let rules = if relay_rules {
        let txt = h.path().join("tcp.smtp");
        std::fs::write(&txt, "127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n").unwrap();
        let cdb = h.path().join("tcp.smtp.cdb");
        let tcprules = rqmail_tests::bin_dir().join("tcprules");
        let tcprules = if tcprules.exists() {
            tcprules
        } else {
            external("/usr/bin/tcprules")?
        };
        let out = run_with_input(
            Command::new(tcprules)
                .arg(&cdb)
                .arg(h.path().join("tcp.smtp.tmp")),
            Some(&std::fs::read(&txt).unwrap()),
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{out:?}");
        Some(cdb)
    } else {
        None
    };
    let smtpd = bin("qmail-smtpd");
    serve(
        &[
            ("QMAILHOME", h.path()),
            ("QMAILQUEUE", &h.path().join("qq")),
        ],
        &[("PATH", "/usr/bin:/bin")],
        rules.as_deref(),
        &[&smtpd],
    )
}

fn python(script: &str, args: &[&str]) -> std::process::Output {
    let py = external("/usr/bin/python3").expect("python3");
    let out = run_with_input(
        Command::new(py).arg("-c").arg(script).args(args),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn python_smtplib_plain_and_pipelined() {
    if external("/usr/bin/python3").is_none() {
        return;
    }
    let h = Home::new();
    h.control("databytes", "0\n");
    let Some(s) = smtp_server(&h, false) else {
        return;
    };
    let port = s.port.to_string();
    python(
        r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
code, msg = s.ehlo("py.example")
assert code == 250, (code, msg)
assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("size"), s.esmtp_features
refused = s.sendmail("alice@example.net", ["bob@example.org", "carol@mail.example.org"],
    "Subject: from python\r\n\r\nline\r\n.starts with dot\r\n")
assert refused == {}, refused
try:
    s.sendmail("alice@example.net", ["victim@elsewhere.example"], "Subject: relay\r\n\r\nno\r\n")
    raise SystemExit("relay accepted")
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients["victim@elsewhere.example"]
    assert code == 553 and b"rcpthosts" in text, e.recipients
s.quit()
"#,
        &[&port],
    );
    // Pipelined: everything in one write, replies read afterwards.
    python(
        r#"
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = c.makefile("rb")
assert f.readline().startswith(b"220 ")
c.sendall(b"EHLO pipe.example\r\n")
while True:
    l = f.readline()
    if l[3:4] == b" ": break
c.sendall(b"MAIL FROM:<p@example.net>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n")
got = [f.readline() for _ in range(5)]
assert got == [b"250 ok\r\n", b"250 ok\r\n", b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n", b"250 ok\r\n", b"354 go ahead\r\n"], got
c.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
a = f.readline(); q = f.readline()
assert a.startswith(b"250 ok ") and b" qp " in a, a
assert q == b"221 mail.example.org\r\n", q
"#,
        &[&port],
    );
    must(Duration::from_secs(20), "two messages queued", || {
        h.queued().len() == 2
    });
    let q = h.queued();
    let all: Vec<String> = q
        .iter()
        .map(|(m, e)| {
            format!(
                "{}|{}",
                String::from_utf8_lossy(m),
                String::from_utf8_lossy(e)
            )
        })
        .collect();
    let py = all
        .iter()
        .find(|m| m.contains("Subject: from python"))
        .unwrap();
    assert!(
        py.starts_with(
            "Received: from unknown (HELO py.example) (127.0.0.1)\n  by localhost with SMTP; "
        ),
        "{py}"
    );
    assert!(py.contains("\nline\n.starts with dot\n|Falice@example.net\0Tbob@example.org\0Tcarol@mail.example.org\0\0"), "{py:?}");
    let pp = all
        .iter()
        .find(|m| m.contains("Subject: pipelined"))
        .unwrap();
    assert!(
        pp.ends_with("|Fp@example.net\0Tbob@example.org\0Tdave@example.org\0\0"),
        "{pp:?}"
    );
}

#[test]
fn swaks_plain_and_pipelined_and_relay_rules() {
    let Some(swaks) = external("/usr/bin/swaks") else {
        return;
    };
    let h = Home::new();
    let Some(s) = smtp_server(&h, false) else {
        return;
    };
    let port = s.port.to_string();
    let sw = |extra: &[&str]| {
        let mut c = Command::new(&swaks);
        c.args([
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--from",
            "sw@example.net",
            "--helo",
            "swaks.example",
            "--timeout",
            "30",
        ]);
        c.args(extra);
        run_with_input(&mut c, None, Duration::from_secs(60))
    };
    let out = sw(&[
        "--to",
        "bob@example.org",
        "--header",
        "Subject: swaks plain",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = sw(&[
        "--to",
        "bob@example.org",
        "--pipeline",
        "--header",
        "Subject: swaks pipe",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = sw(&["--to", "victim@elsewhere.example"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("<** 553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
    );
    must(Duration::from_secs(20), "swaks messages queued", || {
        h.queued().len() == 2
    });
    drop(s);
    // With tcprules giving 127.0.0.1 RELAYCLIENT="", relaying works.
    let Some(s) = smtp_server(&h, true) else {
        return;
    };
    let port2 = s.port.to_string();
    let mut c = Command::new(&swaks);
    c.args([
        "--server",
        "127.0.0.1",
        "--port",
        &port2,
        "--from",
        "sw@example.net",
        "--to",
        "victim@elsewhere.example,user%x@example.org",
        "--timeout",
        "30",
    ]);
    let out = run_with_input(&mut c, None, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    must(Duration::from_secs(20), "relayed message queued", || {
        h.queued().len() == 3
    });
    assert!(
        h.queued()
            .iter()
            .any(|(_, e)| e.ends_with(b"Tvictim@elsewhere.example\0Tuser%x@example.org\0\0"))
    );
}

#[test]
fn curl_smtp() {
    let Some(curl) = external("/usr/bin/curl") else {
        return;
    };
    let h = Home::new();
    let Some(s) = smtp_server(&h, false) else {
        return;
    };
    let mail = h.path().join("mail.txt");
    std::fs::write(
        &mail,
        "From: c@example.net\r\nSubject: via curl\r\n\r\nHello from curl.\r\n..\r\n",
    )
    .unwrap();
    let out = run_with_input(
        Command::new(&curl)
            .args(["-sS", "--max-time", "30"])
            .arg(format!("smtp://127.0.0.1:{}/curl.example", s.port))
            .args([
                "--mail-from",
                "c@example.net",
                "--mail-rcpt",
                "bob@example.org",
                "-T",
            ])
            .arg(&mail),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    must(Duration::from_secs(20), "curl message queued", || {
        h.queued().len() == 1
    });
    let (m, e) = &h.queued()[0];
    let m = String::from_utf8_lossy(m);
    assert!(
        m.contains("(HELO curl.example)")
            && m.ends_with("Subject: via curl\n\nHello from curl.\n..\n"),
        "{m}"
    );
    assert_eq!(e, b"Fc@example.net\0Tbob@example.org\0\0");
    // Relaying refused.
    let out = run_with_input(
        Command::new(&curl)
            .args(["-sS", "--max-time", "30"])
            .arg(format!("smtp://127.0.0.1:{}", s.port))
            .args([
                "--mail-from",
                "c@example.net",
                "--mail-rcpt",
                "v@elsewhere.example",
                "-T",
            ])
            .arg(&mail),
        None,
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("553"),
        "{out:?}"
    );
}

/// The relay battery over a real socket: refused from 127.0.0.1 without rules, accepted when
/// tcprules gives 127.0.0.1 RELAYCLIENT="".
#[test]
fn relay_battery_over_tcpserver_with_and_without_tcprules() {
    if external("/usr/bin/python3").is_none() {
        return;
    }
    let script = r#"
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = c.makefile("rb")
assert f.readline().startswith(b"220 ")
c.sendall(b"HELO battery.example\r\nMAIL FROM:<b@example.net>\r\n")
assert f.readline() == b"250 mail.example.org\r\n"
assert f.readline() == b"250 ok\r\n"
for r in sys.argv[2:]:
    c.sendall(b"RCPT TO:" + r.encode() + b"\r\n")
    print(f.readline().decode().rstrip("\r\n"))
c.sendall(b"QUIT\r\n")
assert f.readline() == b"221 mail.example.org\r\n"
"#;
    for rules in [false, true] {
        let h = Home::new();
        let Some(s) = smtp_server(&h, rules) else {
            return;
        };
        let port = s.port.to_string();
        let mut args = vec![port.as_str()];
        args.extend_from_slice(RELAY_BATTERY);
        let out = python(script, &args);
        let replies: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let want = if rules { "250 ok" } else { REFUSED };
        assert_eq!(replies.len(), RELAY_BATTERY.len());
        for (r, a) in replies.iter().zip(RELAY_BATTERY) {
            assert_eq!(r, want, "rules={rules}: RCPT TO:{a}");
        }
    }
}
