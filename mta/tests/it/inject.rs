//! qmail-inject and sendmail, run as programs in a temporary QMAILHOME with a capture script as
//! QMAILQUEUE (message and envelope written to files), plus one run through the real qmail-queue
//! when it is built.

use rqmail_tests::{bin, run_with_input, tempdir, write_exec};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

struct Home {
    _dir: rqmail_tests::TempDir,
    home: PathBuf,
    cap: PathBuf,
}

impl Home {
    /// A home with control/me and a capture qmail-queue exiting with `code`.
    fn new(code: i32) -> Home {
        let dir = tempdir();
        let home = dir.path().join("qmail");
        std::fs::create_dir_all(home.join("control")).unwrap();
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::write(home.join("control/me"), "mail.example.org\n").unwrap();
        let cap = dir.path().join("cap");
        write_exec(
            &home.join("bin/capture-queue"),
            &format!(
                "#!/bin/sh\ncat > {0}.msg || exit 54\ncat <&1 > {0}.env || exit 54\nexit {code}\n",
                cap.display()
            ),
        );
        for b in ["qmail-inject", "sendmail"] {
            std::os::unix::fs::symlink(bin(b), home.join("bin").join(b)).unwrap();
        }
        Home {
            _dir: dir,
            home,
            cap,
        }
    }

    fn control(&self, name: &str, text: &str) {
        std::fs::write(self.home.join("control").join(name), text).unwrap();
    }

    /// A command with a clean environment for `prog` (a path).
    fn cmd(&self, prog: &Path) -> Command {
        let mut c = Command::new(prog);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("QMAILHOME", &self.home)
            .env("QMAILQUEUE", self.home.join("bin/capture-queue"))
            .env("USER", "joe");
        c
    }

    fn inject(&self, args: &[&str], envs: &[(&str, &str)], input: &str) -> Output {
        let mut c = self.cmd(&bin("qmail-inject"));
        c.args(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        run_with_input(&mut c, Some(input.as_bytes()), LONG)
    }

    fn message(&self) -> String {
        std::fs::read_to_string(format!("{}.msg", self.cap.display())).expect("nothing queued")
    }

    /// (sender, recipients) from the captured envelope.
    fn envelope(&self) -> (String, Vec<String>) {
        let e = std::fs::read(format!("{}.env", self.cap.display())).expect("no envelope");
        assert!(e.ends_with(b"\0\0"), "envelope not terminated: {e:?}");
        let parts: Vec<String> = e[..e.len() - 2]
            .split(|&b| b == 0)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        let sender = parts[0].strip_prefix('F').expect("F first").to_string();
        let rcpts = parts[1..]
            .iter()
            .map(|r| r.strip_prefix('T').expect("T").to_string())
            .collect();
        (sender, rcpts)
    }

    fn queued(&self) -> bool {
        Path::new(&format!("{}.env", self.cap.display())).exists()
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let head = msg.split("\n\n").next().unwrap_or("");
    head.lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim_start())
}

#[test]
fn header_fixing_and_recipients_from_the_header() {
    let h = Home::new(0);
    let o = h.inject(
        &[],
        &[("QMAILNAME", "Joe User")],
        "To: bob, \"Al B\" <al@host>\nCc: carol@example.net\nBcc: secret@hidden.example\n\
         Subject: hi\nContent-Length: 5\nReturn-Path: <bounces@lists.example>\n\nbody line\n",
    );
    ok(&o);
    let m = h.message();
    let (sender, rcpts) = h.envelope();
    assert_eq!(sender, "bounces@lists.example");
    assert_eq!(
        rcpts,
        [
            "bob@mail.example.org",
            "al@host.mail.example.org",
            "carol@example.net",
            "secret@hidden.example"
        ]
    );
    assert_eq!(
        header(&m, "To"),
        Some("bob@mail.example.org, \"Al B\" <al@host.mail.example.org>")
    );
    assert_eq!(
        header(&m, "From"),
        Some("\"Joe User\" <joe@mail.example.org>")
    );
    for gone in ["Bcc", "Content-Length", "Return-Path"] {
        assert!(header(&m, gone).is_none(), "{gone} kept:\n{m}");
    }
    let date = header(&m, "Date").expect("Date added");
    let re_date = |d: &str| {
        let w: Vec<&str> = d.split(' ').collect();
        w.len() == 5
            && w[0].parse::<u32>().is_ok()
            && !w[0].starts_with('0')
            && w[1].len() == 3
            && w[2].len() == 4
            && w[3].len() == 8
            && w[4] == "-0000"
    };
    assert!(re_date(date), "{date}");
    let id = header(&m, "Message-ID").expect("Message-ID added");
    let inner = id
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix(".qmail@mail.example.org>"));
    let (stamp, pid) = inner.and_then(|s| s.split_once('.')).expect(id);
    assert!(
        stamp.len() == 14 && stamp.chars().all(|c| c.is_ascii_digit()),
        "{id}"
    );
    assert!(pid.parse::<u32>().is_ok(), "{id}");
    assert!(m.ends_with("\n\nbody line\n"), "{m}");
    assert_eq!(header(&m, "Subject"), Some("hi"));
}

#[test]
fn recipient_strategies() {
    let msg = "To: hdr@example.net\nSubject: s\n\nx\n";
    let cases: &[(&[&str], &[&str])] = &[
        (&["arg@example.com"], &["arg@example.com"]),
        (&["-a", "arg@example.com"], &["arg@example.com"]),
        (&["-h", "arg@example.com"], &["hdr@example.net"]),
        (
            &["-H", "arg@example.com"],
            &["arg@example.com", "hdr@example.net"],
        ),
        (&["-A"], &["hdr@example.net"]),
        (&[], &["hdr@example.net"]),
    ];
    for (args, want) in cases {
        let h = Home::new(0);
        ok(&h.inject(args, &[], msg));
        assert_eq!(h.envelope().1, *want, "{args:?}");
    }
}

#[test]
fn control_files_and_environment() {
    let h = Home::new(0);
    h.control("defaultdomain", "dd.example\n");
    h.control("defaulthost", "dh.example\n");
    h.control("plusdomain", "pd.example\n");
    h.control("idhost", "ids.example\n");
    let o = h.inject(
        &["u1", "u2@vax", "u3@vax+", "u4@[10.0.0.1]", "u5@a.b."],
        &[
            ("MAILUSER", "mu"),
            ("MAILHOST", "mh.example"),
            ("MAILNAME", "Mail Name"),
        ],
        "Subject: s\n\nx\n",
    );
    ok(&o);
    let (sender, rcpts) = h.envelope();
    assert_eq!(
        rcpts,
        [
            "u1@dh.example",
            "u2@vax.dd.example",
            "u3@vax.pd.example",
            "u4@[10.0.0.1]",
            "u5@a.b"
        ]
    );
    assert_eq!(sender, "mu@mh.example");
    let m = h.message();
    assert_eq!(header(&m, "From"), Some("\"Mail Name\" <mu@mh.example>"));
    assert!(
        header(&m, "Message-ID")
            .unwrap()
            .ends_with(".qmail@ids.example>")
    );
    assert_eq!(header(&m, "Cc"), Some("recipient list not shown: ;"));

    // QMAIL* beat MAIL*; QMAILSUSER/QMAILSHOST make the envelope sender; env overrides controls.
    let h = Home::new(0);
    h.control("defaulthost", "dh.example\n");
    ok(&h.inject(
        &["x"],
        &[
            ("QMAILUSER", "qu"),
            ("MAILUSER", "mu"),
            ("QMAILHOST", "qh.example"),
            ("QMAILSUSER", "bounce"),
            ("QMAILSHOST", "bh.example"),
            ("QMAILDEFAULTHOST", "env.example"),
            ("QMAILIDHOST", "envid.example"),
        ],
        "Subject: s\n\nx\n",
    ));
    let (sender, rcpts) = h.envelope();
    assert_eq!(sender, "bounce@bh.example");
    assert_eq!(rcpts, ["x@env.example"]);
    let m = h.message();
    assert_eq!(header(&m, "From"), Some("qu@qh.example"));
    assert!(
        header(&m, "Message-ID")
            .unwrap()
            .ends_with(".qmail@envid.example>")
    );

    // Without control files other than me, everything defaults to me.
    let h = Home::new(0);
    ok(&h.inject(&["bob"], &[], "\n"));
    assert_eq!(
        h.envelope(),
        (
            "joe@mail.example.org".to_string(),
            vec!["bob@mail.example.org".to_string()]
        )
    );
}

#[test]
fn qmailinject_flags() {
    let msg = "From: Someone <some@one.example>\nMessage-ID: <old@id>\nReturn-Path: <rp@x.example>\nTo: t@x.example\n\nb\n";
    // s: Return-Path dropped (sender from the user); f: From replaced; i: Message-ID replaced.
    let h = Home::new(0);
    ok(&h.inject(
        &[],
        &[("QMAILINJECT", "sfi"), ("QMAILHOST", "me.example")],
        msg,
    ));
    let m = h.message();
    assert_eq!(h.envelope().0, "joe@me.example");
    assert_eq!(header(&m, "From"), Some("joe@me.example"));
    assert_ne!(header(&m, "Message-ID"), Some("<old@id>"));
    assert_eq!(m.matches("Message-ID:").count(), 1, "{m}");
    // c: the name as a comment.
    let h = Home::new(0);
    ok(&h.inject(
        &["t@x.example"],
        &[("QMAILINJECT", "c"), ("NAME", "Joe Q")],
        "\n",
    ));
    assert_eq!(
        header(&h.message(), "From"),
        Some("joe@mail.example.org (Joe Q)")
    );
    // r: VERP sender; m: per-message sender.
    let h = Home::new(0);
    ok(&h.inject(&["t@x.example"], &[("QMAILINJECT", "r")], "\n"));
    assert_eq!(h.envelope().0, "joe-@mail.example.org-@[]");
    let h = Home::new(0);
    ok(&h.inject(&["t@x.example"], &[("QMAILINJECT", "m")], "\n"));
    let s = h.envelope().0;
    let local = s.strip_suffix("@mail.example.org").expect(&s);
    let (t, p) = local
        .strip_prefix("joe-")
        .and_then(|r| r.split_once('.'))
        .expect(&s);
    assert!(t.parse::<u64>().is_ok() && p.parse::<u32>().is_ok(), "{s}");
}

#[test]
fn sender_option_and_resent_fields() {
    let h = Home::new(0);
    ok(&h.inject(
        &["-f", "boss", "-h"],
        &[],
        "Return-Path: <ignored@x.example>\nTo: a@x.example\nResent-To: r1@y.example, r2\nResent-Bcc: r3@y.example\n\nb\n",
    ));
    let (sender, rcpts) = h.envelope();
    assert_eq!(sender, "boss@mail.example.org");
    assert_eq!(
        rcpts,
        ["r1@y.example", "r2@mail.example.org", "r3@y.example"]
    );
    let m = h.message();
    assert!(header(&m, "Resent-Date").is_some(), "{m}");
    assert!(header(&m, "Resent-Message-ID").is_some(), "{m}");
    assert_eq!(header(&m, "Resent-From"), Some("joe@mail.example.org"));
    assert!(header(&m, "Resent-Bcc").is_none());
    assert!(
        header(&m, "Date").is_none(),
        "plain Date is not added in resent mode: {m}"
    );
    // -f '' gives the null sender.
    let h = Home::new(0);
    ok(&h.inject(&["-f", "", "a@x.example"], &[], "\n"));
    assert_eq!(h.envelope().0, "");
}

#[test]
fn print_mode_and_errors() {
    let h = Home::new(0);
    let o = h.inject(&["-n"], &[], "To: a@x.example\nSubject: s\n\nb\n");
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("Return-Path: <joe@mail.example.org>\nDate: "),
        "{out}"
    );
    assert!(!h.queued());

    let h = Home::new(0);
    let o = h.inject(&[], &[], "Subject: nobody\n\nb\n");
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "qmail-inject: fatal: no recipients\n"
    );
    assert!(!h.queued());

    let o = h.inject(&["a@x.example"], &[], "From: \"unterminated <a@b>\n\nb\n");
    assert_eq!(o.status.code(), Some(100));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unable to parse this line"));
    assert!(!h.queued());

    let o = h.inject(&["-z"], &[], "");
    assert_eq!(o.status.code(), Some(100));

    for (code, exit, text) in [
        (
            53,
            111,
            "qmail-inject: fatal: qq write error or disk full (#4.3.0)\n",
        ),
        (
            31,
            100,
            "qmail-inject: fatal: mail server permanently rejected message (#5.3.0)\n",
        ),
    ] {
        let h = Home::new(code);
        let o = h.inject(&["a@x.example"], &[], "\n");
        assert_eq!(o.status.code(), Some(exit));
        assert_eq!(String::from_utf8_lossy(&o.stderr), text);
    }
    let h = Home::new(0);
    let mut c = h.cmd(&bin("qmail-inject"));
    c.env("QMAILQUEUE", h.home.join("bin/nonexistent"))
        .arg("a@x.example");
    let o = run_with_input(&mut c, Some(b"\n"), LONG);
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "qmail-inject: fatal: unable to run qmail-queue\n"
    );
}

#[test]
fn header_without_blank_line_and_body_bytes_kept() {
    let h = Home::new(0);
    let body = "line one\r\nÜmlaut \u{0}nul\n.\n..dots\n";
    let o = h.inject(
        &["a@x.example"],
        &[],
        &format!("Subject: x\nnot a header line\n{body}"),
    );
    ok(&o);
    let m = h.message();
    assert!(
        m.ends_with(&format!("Subject: x\n\nnot a header line\n{body}")),
        "{m:?}"
    );
}

fn sendmail(h: &Home, args: &[&str], envs: &[(&str, &str)], input: &str) -> Output {
    let mut c = h.cmd(&h.home.join("bin/sendmail"));
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    run_with_input(&mut c, Some(input.as_bytes()), LONG)
}

#[test]
fn sendmail_like_cron_php_and_git() {
    // cron: -FCronDaemon -i -B8BITMIME -oem USER
    let h = Home::new(0);
    ok(&sendmail(
        &h,
        &["-FCron Daemon", "-i", "-B8BITMIME", "-oem", "root"],
        &[],
        "To: someone-else@x.example\nSubject: cron\n\nout\n",
    ));
    let (sender, rcpts) = h.envelope();
    assert_eq!(sender, "joe@mail.example.org");
    assert_eq!(
        rcpts,
        ["root@mail.example.org"],
        "without -t the header is not used"
    );
    assert_eq!(
        header(&h.message(), "From"),
        Some("\"Cron Daemon\" <joe@mail.example.org>")
    );

    // PHP mail(): -t -i -f sender
    let h = Home::new(0);
    ok(&sendmail(
        &h,
        &["-t", "-i", "-f", "www@web.example", "-odi", "-oi"],
        &[("NAME", "dropped by -f")],
        "To: a@x.example\nCc: b@y.example\nBcc: c@z.example\nSubject: php\n\nb\n",
    ));
    let (sender, rcpts) = h.envelope();
    assert_eq!(sender, "www@web.example");
    assert_eq!(rcpts, ["a@x.example", "b@y.example", "c@z.example"]);
    let m = h.message();
    assert_eq!(header(&m, "From"), Some("www@web.example"));
    assert!(header(&m, "Bcc").is_none());

    // git send-email: -i -f sender -F name? (names kept with -f) and recipients as arguments.
    let h = Home::new(0);
    ok(&sendmail(
        &h,
        &[
            "-i",
            "-fdev@git.example",
            "-F",
            "Dev Eloper",
            "--",
            "list@lists.example",
        ],
        &[],
        "From: Dev <dev@git.example>\nTo: list@lists.example\n\npatch\n",
    ));
    assert_eq!(
        h.envelope(),
        (
            "dev@git.example".to_string(),
            vec!["list@lists.example".to_string()]
        )
    );
}

#[test]
fn sendmail_modes_and_errors() {
    let h = Home::new(0);
    // -bp and mailq run qmail-qread; -bs runs qmail-smtpd with the sendmail-bs environment.
    write_exec(
        &h.home.join("bin/qmail-qread"),
        "#!/bin/sh\necho qread-ran\n",
    );
    write_exec(
        &h.home.join("bin/qmail-smtpd"),
        "#!/bin/sh\necho \"smtpd $PROTO $TCPREMOTEIP $TCPREMOTEINFO relay=[${RELAYCLIENT-unset}] $DATABYTES\"\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&sendmail(&h, &["-bp"], &[], "").stdout),
        "qread-ran\n"
    );
    std::os::unix::fs::symlink(bin("sendmail"), h.home.join("bin/mailq")).unwrap();
    let mut c = h.cmd(&h.home.join("bin/mailq"));
    assert_eq!(
        String::from_utf8_lossy(&run_with_input(&mut c, None, LONG).stdout),
        "qread-ran\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&sendmail(&h, &["-bs"], &[], "").stdout),
        "smtpd TCP 127.0.0.1 sendmail-bs relay=[] 0\n"
    );
    // Under tcpserver (PROTO set) the environment is left alone.
    assert_eq!(
        String::from_utf8_lossy(
            &sendmail(
                &h,
                &["-bs"],
                &[("PROTO", "TCP"), ("TCPREMOTEIP", "192.0.2.1")],
                ""
            )
            .stdout
        ),
        "smtpd TCP 192.0.2.1  relay=[unset] \n"
    );
    std::os::unix::fs::symlink(bin("sendmail"), h.home.join("bin/newaliases")).unwrap();
    let o = run_with_input(&mut h.cmd(&h.home.join("bin/newaliases")), None, LONG);
    assert_eq!(o.status.code(), Some(100));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "sendmail: fatal: please use fastforward/newaliases instead\n"
    );
    for bad in [&["-bz"][..], &["-q"], &["-f"]] {
        let o = sendmail(&h, bad, &[], "");
        assert_eq!(o.status.code(), Some(100), "{bad:?}");
        assert!(String::from_utf8_lossy(&o.stderr).starts_with("sendmail: usage: sendmail"));
    }
    std::fs::remove_file(h.home.join("bin/qmail-inject")).unwrap();
    let o = sendmail(&h, &["a@x.example"], &[], "\n");
    assert_eq!(o.status.code(), Some(111));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .starts_with("sendmail: fatal: unable to run qmail-inject")
    );
}

/// Through the real qmail-queue in a home made by qmail-install: the message lands in
/// queue/mess and its envelope in queue/todo.
#[test]
fn through_the_real_qmail_queue() {
    let dir = rqmail_tests::bin_dir();
    if !dir.join("qmail-queue").exists() || !dir.join("qmail-install").exists() {
        assert!(
            !rqmail_tests::under_ci(),
            "qmail-queue and qmail-install must be built under CI"
        );
        eprintln!("skipping: qmail-queue / qmail-install not built yet");
        return;
    }
    let t = tempdir();
    let home = t.path().join("qmail");
    let o = rqmail_tests::run(Command::new(bin("qmail-install")).arg(&home));
    ok(&o);
    std::fs::write(home.join("control/me"), "mail.example.org\n").unwrap();
    let mut c = Command::new(bin("qmail-inject"));
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("QMAILHOME", &home)
        .env("USER", "joe")
        .arg("-f")
        .arg("joe@example.org");
    let o = run_with_input(
        &mut c,
        Some(b"To: bob@x.example\nSubject: real queue\n\nhello\n"),
        LONG,
    );
    ok(&o);
    let files = |sub: &str| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        let mut stack = vec![home.join("queue").join(sub)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    v.push(std::fs::read(&p).unwrap());
                }
            }
        }
        v
    };
    let mess = files("mess");
    assert_eq!(mess.len(), 1, "one message in queue/mess");
    let m = String::from_utf8_lossy(&mess[0]);
    assert!(m.contains("\nSubject: real queue\n"), "{m}");
    assert!(m.contains("Message-ID: <"), "{m}");
    let todo = files("todo");
    assert_eq!(todo.len(), 1, "one envelope in queue/todo");
    let env = &todo[0];
    let has = |needle: &[u8]| env.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"Fjoe@example.org\0"), "{env:?}");
    assert!(has(b"Tbob@x.example\0"), "{env:?}");
}

/// 8-bit bytes in rewritten fields (Latin-1 or UTF-8 names) come out unchanged.
#[test]
fn eight_bit_header_bytes_survive_rewriting() {
    let h = Home::new(0);
    let mut input =
        b"To: J\xfcrgen <j>, \"J\xc3\xbcrgen\" <k@x.example>\nSubject: \xff\n\nb\n".to_vec();
    let mut c = h.cmd(&bin("qmail-inject"));
    let o = run_with_input(&mut c, Some(&input), LONG);
    ok(&o);
    let m = std::fs::read(format!("{}.msg", h.cap.display())).unwrap();
    input.clear();
    input.extend_from_slice(
        b"To: J\xfcrgen <j@mail.example.org>, \"J\xc3\xbcrgen\" <k@x.example>\nSubject: \xff\n\nb\n",
    );
    assert!(m.ends_with(&input), "{:?}", String::from_utf8_lossy(&m));
    assert_eq!(h.envelope().1, ["j@mail.example.org", "k@x.example"]);
}

/// QMAILMFTFILE: a message to a listed mailing list gets Mail-Followup-To with the To and Cc
/// addresses; one already there is kept; other messages get none.
#[test]
fn mail_followup_to_from_qmailmftfile() {
    let h = Home::new(0);
    let lists = h.home.join("lists");
    std::fs::write(&lists, "List@Lists.Example\n# comment\n").unwrap();
    let mft = lists.to_str().unwrap();
    ok(&h.inject(
        &[],
        &[("QMAILMFTFILE", mft)],
        "To: list@lists.example\nCc: bob@x.example\n\nb\n",
    ));
    let m = h.message();
    assert!(
        m.contains("Mail-Followup-To: bob@x.example,\n  list@lists.example\n"),
        "{m}"
    );
    let h = Home::new(0);
    ok(&h.inject(&[], &[("QMAILMFTFILE", mft)], "To: bob@x.example\n\nb\n"));
    assert!(!h.message().contains("Mail-Followup-To"));
    let h = Home::new(0);
    ok(&h.inject(
        &[],
        &[("QMAILMFTFILE", mft)],
        "To: list@lists.example\nMail-Followup-To: me@x.example\n\nb\n",
    ));
    assert_eq!(h.message().matches("Mail-Followup-To:").count(), 1);
}
