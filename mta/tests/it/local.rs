//! Local delivery: qmail-local run directly (every .qmail line form, lookups, failures), the
//! users database tools, and end to end through qmail-send → qmail-lspawn → qmail-local.

use rqmail_tests::{bin, external, run_with_input, tempdir, write_exec};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const MSG: &[u8] = b"From: alice\nSubject: hi\n\nFrom the body\n>From quoted\n";

/// A temporary qmail home with a user's home directory and a fake qmail-queue.
struct Box {
    _dir: rqmail_tests::TempDir,
    root: PathBuf,
    qhome: PathBuf,
    home: PathBuf,
}

impl Box {
    fn new() -> Box {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        chmod(&root, 0o755);
        let qhome = root.join("qmail");
        std::fs::create_dir_all(qhome.join("control")).unwrap();
        std::fs::create_dir_all(qhome.join("bin")).unwrap();
        let home = root.join("home");
        std::fs::create_dir(&home).unwrap();
        chmod(&home, 0o755);
        // The fake qmail-queue saves each injection as qq.N.msg / qq.N.env.
        write_exec(
            &root.join("fakeqq"),
            &format!(
                "#!/bin/sh\nn=$$\ncat > {0}/qq.$n.msg\ncat <&1 > {0}/qq.$n.env\nexit ${{FAKEQQ_EXIT:-0}}\n",
                root.display()
            ),
        );
        Box {
            _dir: dir,
            root,
            qhome,
            home,
        }
    }

    fn maildirmake(&self, rel: &str) -> PathBuf {
        let p = self.home.join(rel);
        let o = run_with_input(
            Command::new(bin("maildirmake")).arg(&p),
            None,
            Duration::from_secs(30),
        );
        assert!(o.status.success(), "{o:?}");
        p
    }

    fn dotqmail(&self, name: &str, text: &str) {
        let p = self.home.join(name);
        std::fs::write(&p, text).unwrap();
        chmod(&p, 0o644);
    }

    fn cmd(&self, extra_env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(bin("qmail-local"));
        c.env("QMAILHOME", &self.qhome)
            .env("QMAILQUEUE", self.root.join("fakeqq"))
            .env_remove("DEFAULT");
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c
    }

    /// qmail-local -- user home local dash ext example.org sender ./Maildir/
    fn deliver(&self, local: &str, dash: &str, ext: &str, sender: &str, msg: &[u8]) -> Output {
        self.deliver_env(local, dash, ext, sender, msg, &[])
    }

    fn deliver_env(
        &self,
        local: &str,
        dash: &str,
        ext: &str,
        sender: &str,
        msg: &[u8],
        env: &[(&str, &str)],
    ) -> Output {
        let mut c = self.cmd(env);
        c.arg("--")
            .arg("bob")
            .arg(&self.home)
            .arg(local)
            .arg(dash)
            .arg(ext)
            .arg("example.org")
            .arg(sender)
            .arg("./Maildir/");
        run_with_input(&mut c, Some(msg), Duration::from_secs(60))
    }

    /// The injections the fake qmail-queue received: (message, envelope).
    fn injections(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(&self.root).unwrap() {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if n.starts_with("qq.") && n.ends_with(".msg") {
                let env = p.with_extension("env");
                v.push((
                    std::fs::read(&p).unwrap(),
                    std::fs::read(env).unwrap_or_default(),
                ));
            }
        }
        v
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn transcript_list_default_maildir_mbox_program() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    b.dotqmail(
        ".qmail-list-default",
        "# comment\n./Maildir/\n./Mailbox\n|echo \"prog sees EXT=$EXT EXT2=$EXT2 DEFAULT=$DEFAULT HOST2=$HOST2 NEWSENDER=$NEWSENDER RECIPIENT=$RECIPIENT LOCAL=$LOCAL\"\n",
    );
    // -n prints the plan.
    let mut c = b.cmd(&[]);
    c.args(["-n", "bob"]).arg(&b.home).args([
        "bob-list-foo.bar",
        "-",
        "list-foo.bar",
        "example.org",
        "alice@example.net",
        "./Mailbox",
    ]);
    let o = run_with_input(&mut c, None, Duration::from_secs(30));
    assert_eq!(code(&o), 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "maildir ./Maildir/\nmbox ./Mailbox\nprogram echo \"prog sees EXT=$EXT EXT2=$EXT2 DEFAULT=$DEFAULT HOST2=$HOST2 NEWSENDER=$NEWSENDER RECIPIENT=$RECIPIENT LOCAL=$LOCAL\"\ndid 2+0+1\n"
    );
    let o = b.deliver(
        "bob-list-foo.bar",
        "-",
        "list-foo.bar",
        "alice@example.net",
        MSG,
    );
    assert_eq!(code(&o), 0, "{}", out(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "prog sees EXT=list-foo.bar EXT2=foo.bar DEFAULT=foo.bar HOST2=example NEWSENDER=alice@example.net RECIPIENT=bob-list-foo.bar@example.org LOCAL=bob-list-foo.bar\ndid 2+0+1\n"
    );
    let new = files_in(&md.join("new"));
    assert_eq!(new.len(), 1);
    assert!(files_in(&md.join("tmp")).is_empty());
    let delivered = std::fs::read(&new[0]).unwrap();
    assert_eq!(
        delivered,
        [
            &b"Return-Path: <alice@example.net>\nDelivered-To: bob-list-foo.bar@example.org\n"[..],
            MSG
        ]
        .concat()
    );
    assert_eq!(
        std::fs::metadata(&new[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mbox = std::fs::read_to_string(b.home.join("Mailbox")).unwrap();
    let (first, rest) = mbox.split_once('\n').unwrap();
    assert!(first.starts_with("From alice@example.net "), "{first}");
    // "Thu Nov 26 14:39:25 2026": asctime-like, two-digit day.
    let date = &first["From alice@example.net ".len()..];
    assert_eq!(date.len(), 24, "{date}");
    assert_eq!(
        rest,
        "Return-Path: <alice@example.net>\nDelivered-To: bob-list-foo.bar@example.org\nFrom: alice\nSubject: hi\n\n>From the body\n>>From quoted\n\n"
    );
    // Feeding the delivered message back in: it is looping.
    let o = b.deliver(
        "bob-list-foo.bar",
        "-",
        "list-foo.bar",
        "alice@example.net",
        &delivered,
    );
    assert_eq!(code(&o), 100);
    assert_eq!(
        out(&o),
        "This message is looping: it already has my Delivered-To line. (#5.4.6)\n"
    );
    assert_eq!(files_in(&md.join("new")).len(), 1);
}

#[test]
fn real_readers_parse_maildir_and_mbox() {
    let Some(py) = external("/usr/bin/python3") else {
        return;
    };
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    b.dotqmail(".qmail", "./Maildir/\n./mbox\n");
    for (i, sender) in ["alice@example.net", "", "b ob@example.net"]
        .iter()
        .enumerate()
    {
        let msg = format!(
            "From: a{i}\nSubject: message {i}\n\nFrom the start\n>From quoted\nno final newline"
        );
        let o = b.deliver("bob", "", "", sender, msg.as_bytes());
        assert_eq!(code(&o), 0, "{}", out(&o));
    }
    let script = r#"
import mailbox, sys
mb = mailbox.mbox(sys.argv[1])
md = mailbox.Maildir(sys.argv[2], factory=None)
for box in (mb, md):
    msgs = sorted(box, key=lambda m: m['Subject'])
    print(len(msgs))
    for m in msgs:
        print(m['Subject'], '|', m['Return-Path'], '|', m['Delivered-To'], '|', repr(m.get_payload()))
    if box is mb:
        print([m.get_from().split(' ')[0] for m in msgs])
"#;
    let o = run_with_input(
        Command::new(py)
            .arg("-c")
            .arg(script)
            .arg(b.home.join("mbox"))
            .arg(&md),
        None,
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let expected_body = "'>From the start\\n>>From quoted\\nno final newline\\n'";
    let md_body = "'From the start\\n>From quoted\\nno final newline'";
    let want = format!(
        "3\n\
message 0 | <alice@example.net> | bob@example.org | {expected_body}\n\
message 1 | <> | bob@example.org | {expected_body}\n\
message 2 | <\"b ob\"@example.net> | bob@example.org | {expected_body}\n\
['alice@example.net', 'MAILER-DAEMON', 'b-ob@example.net']\n\
3\n\
message 0 | <alice@example.net> | bob@example.org | {md_body}\n\
message 1 | <> | bob@example.org | {md_body}\n\
message 2 | <\"b ob\"@example.net> | bob@example.org | {md_body}\n"
    );
    assert_eq!(text, want);
}

#[test]
fn which_dot_qmail_extensions_defaults_colons_case() {
    let b = Box::new();
    b.maildirmake("Maildir");
    let show = "|echo \"$0 EXT=$EXT DEFAULT=${DEFAULT-unset}\"\n";
    b.dotqmail(".qmail-frank:berbig", &show.replace("$0", "frank"));
    b.dotqmail(".qmail-foo-default", &show.replace("$0", "foo-default"));
    b.dotqmail(
        ".qmail-foo-bar-default",
        &show.replace("$0", "foo-bar-default"),
    );
    b.dotqmail(".qmail-default", &show.replace("$0", "default"));
    b.dotqmail(".qmail-exact", &show.replace("$0", "exact"));
    let cases = [
        ("Frank.Berbig", "frank EXT=Frank.Berbig DEFAULT=unset"),
        ("exact", "exact EXT=exact DEFAULT=unset"),
        ("EXACT", "exact EXT=EXACT DEFAULT=unset"),
        ("foo-x", "foo-default EXT=foo-x DEFAULT=x"),
        (
            "foo-bar-Baz.Q",
            "foo-bar-default EXT=foo-bar-Baz.Q DEFAULT=Baz.Q",
        ),
        ("foo-bar", "foo-default EXT=foo-bar DEFAULT=bar"),
        ("other-thing", "default EXT=other-thing DEFAULT=other-thing"),
    ];
    for (ext, want) in cases {
        let o = b.deliver(&format!("bob-{ext}"), "-", ext, "a@b.c", MSG);
        assert_eq!(code(&o), 0, "{ext}: {}", out(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{want}\ndid 0+0+1\n"),
            "{ext}"
        );
    }
    // Without .qmail-default, an unknown extension bounces.
    std::fs::remove_file(b.home.join(".qmail-default")).unwrap();
    let o = b.deliver("bob-nosuch", "-", "nosuch", "a@b.c", MSG);
    assert_eq!(code(&o), 100);
    assert_eq!(out(&o), "Sorry, no mailbox here by that name. (#5.1.1)\n");
}

#[test]
fn default_delivery_when_no_or_empty_dot_qmail() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    let o = b.deliver("bob", "", "", "a@b.c", MSG);
    assert_eq!((code(&o), out(&o).as_str()), (0, "did 1+0+0\n"));
    assert_eq!(files_in(&md.join("new")).len(), 1);
    b.dotqmail(".qmail", "");
    let o = b.deliver("bob", "", "", "a@b.c", MSG);
    assert_eq!((code(&o), out(&o).as_str()), (0, "did 1+0+0\n"));
    assert_eq!(files_in(&md.join("new")).len(), 2);
    // defaultdelivery may itself be an mbox.
    let mut c = b.cmd(&[]);
    c.arg("bob")
        .arg(&b.home)
        .args(["bob", "", "", "example.org", "a@b.c", "./Mailbox"]);
    let o = run_with_input(&mut c, Some(MSG), Duration::from_secs(30));
    assert_eq!((code(&o), out(&o).as_str()), (0, "did 1+0+0\n"));
    assert!(b.home.join("Mailbox").exists());
}

#[test]
fn unsafe_modes_defer() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    b.dotqmail(".qmail", "./Maildir/\n");
    for mode in [0o664, 0o666, 0o646] {
        chmod(&b.home.join(".qmail"), mode);
        let o = b.deliver("bob", "", "", "a@b.c", MSG);
        assert_eq!(code(&o), 111, "{mode:o}");
        assert_eq!(out(&o), "Uh-oh: .qmail file is writable. (#4.7.0)\n");
    }
    chmod(&b.home.join(".qmail"), 0o644);
    for mode in [0o775, 0o757] {
        chmod(&b.home, mode);
        let o = b.deliver("bob", "", "", "a@b.c", MSG);
        assert_eq!(code(&o), 111);
        assert_eq!(out(&o), "Uh-oh: home directory is writable. (#4.7.0)\n");
    }
    chmod(&b.home, 0o1755);
    let o = b.deliver("bob", "", "", "a@b.c", MSG);
    assert_eq!(code(&o), 111);
    assert_eq!(
        out(&o),
        "Home directory is sticky: user is editing his .qmail file. (#4.2.1)\n"
    );
    chmod(&b.home, 0o755);
    assert!(files_in(&md.join("new")).is_empty());
    // The x bit makes a .qmail forward-only.
    b.dotqmail(".qmail", "a@b.c\n./Maildir/\n");
    chmod(&b.home.join(".qmail"), 0o744);
    let o = b.deliver("bob", "", "", "a@b.c", MSG);
    assert_eq!(code(&o), 111);
    assert_eq!(
        out(&o),
        "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n"
    );
    b.dotqmail(".qmail", "+list\nc@d.e\n|true\n");
    let o = b.deliver("bob", "", "", "a@b.c", MSG);
    assert_eq!(code(&o), 111);
    assert_eq!(
        out(&o),
        "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n"
    );
    assert!(b.injections().is_empty());
    assert!(files_in(&md.join("new")).is_empty());
}

#[test]
fn programs_exit_codes_and_environment() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    let cases: [(&str, i32, &str, usize); 7] = [
        ("|exit 0\n./Maildir/\n", 0, "did 1+0+1\n", 1),
        ("|exit 99\n./Maildir/\n", 0, "did 0+0+1\n", 0),
        ("|echo nope; exit 100\n./Maildir/\n", 100, "nope\n", 0),
        ("|echo later; exit 111\n./Maildir/\n", 111, "later\n", 0),
        ("|exit 64\n./Maildir/\n", 100, "", 0),
        ("|exit 3\n./Maildir/\n", 111, "", 0),
        (
            "|kill -9 $$\n./Maildir/\n",
            111,
            "Aack, child crashed. (#4.3.0)\n",
            0,
        ),
    ];
    for (qmail, want_code, want_out, delivered) in cases {
        b.dotqmail(".qmail-p", qmail);
        let before = files_in(&md.join("new")).len();
        let o = b.deliver("bob-p", "-", "p", "a@b.c", MSG);
        assert_eq!(
            (code(&o), out(&o).as_str()),
            (want_code, want_out),
            "{qmail}"
        );
        assert_eq!(
            files_in(&md.join("new")).len() - before,
            delivered,
            "{qmail}"
        );
    }
    // The program reads the message (without Return-Path/Delivered-To) and sees the environment.
    b.dotqmail(
        ".qmail-env-default",
        "|cat > prog.out; env > prog.env; pwd > prog.pwd\n",
    );
    let o = b.deliver("bob-env-X.y", "-", "env-X.y", "a@b.c", MSG);
    assert_eq!(code(&o), 0, "{}", out(&o));
    assert_eq!(std::fs::read(b.home.join("prog.out")).unwrap(), MSG);
    assert_eq!(
        std::fs::read_to_string(b.home.join("prog.pwd"))
            .unwrap()
            .trim(),
        b.home.to_str().unwrap()
    );
    let env = std::fs::read_to_string(b.home.join("prog.env")).unwrap();
    let home = format!("HOME={}", b.home.display());
    for want in [
        "SENDER=a@b.c",
        "NEWSENDER=a@b.c",
        "RECIPIENT=bob-env-X.y@example.org",
        "USER=bob",
        &home,
        "HOST=example.org",
        "HOST2=example",
        "HOST3=example",
        "LOCAL=bob-env-X.y",
        "EXT=env-X.y",
        "EXT2=X.y",
        "EXT3=",
        "DEFAULT=X.y",
        "DTLINE=Delivered-To: bob-env-X.y@example.org",
        "RPLINE=Return-Path: <a@b.c>",
        "UFLINE=From a@b.c ",
    ] {
        assert!(
            env.lines()
                .any(|l| l == want || (want.ends_with(' ') && l.starts_with(want))),
            "missing {want} in\n{env}"
        );
    }
}

#[test]
fn forwards_are_injected_last_in_one_call() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    b.dotqmail(
        ".qmail-fw",
        "&carol@example.org\n./Maildir/\ndave@example.com\n",
    );
    let o = b.deliver("bob-fw", "-", "fw", "a@b.c", MSG);
    assert_eq!(code(&o), 0);
    // "qp N": the pid of the qmail-queue that took the forwards (the fake one names its files
    // after its pid).
    let text = out(&o);
    let qp = text
        .strip_prefix("did 1+2+0\nqp ")
        .and_then(|t| t.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(b.root.join(format!("qq.{qp}.msg")).exists(), "{text}");
    let inj = b.injections();
    assert_eq!(inj.len(), 1);
    assert_eq!(
        inj[0].0,
        [&b"Delivered-To: bob-fw@example.org\n"[..], MSG].concat()
    );
    assert_eq!(
        inj[0].1,
        b"Fa@b.c\0Tcarol@example.org\0Tdave@example.com\0\0"
    );
    assert_eq!(files_in(&md.join("new")).len(), 1);

    // A later program failure stops the forwards too.
    b.dotqmail(".qmail-fw2", "&carol@example.org\n|exit 100\n");
    let o = b.deliver("bob-fw2", "-", "fw2", "a@b.c", MSG);
    assert_eq!(code(&o), 100);
    assert_eq!(b.injections().len(), 1);

    // Exit 99 stops later lines but forwards already seen still go.
    b.dotqmail(
        ".qmail-stop",
        "&carol@example.org\n|exit 99\n&never@example.org\n./Maildir/\n",
    );
    let o = b.deliver("bob-stop", "-", "stop", "a@b.c", MSG);
    assert_eq!(code(&o), 0);
    assert!(out(&o).starts_with("did 0+1+1\nqp "), "{}", out(&o));
    let inj = b.injections();
    assert_eq!(inj.len(), 2);
    assert!(
        inj.iter()
            .any(|(_, e)| e == b"Fa@b.c\0Tcarol@example.org\0\0")
    );
    assert_eq!(files_in(&md.join("new")).len(), 1);

    // qmail-queue failures.
    let o = b.deliver_env("bob-fw", "-", "fw", "a@b.c", MSG, &[("FAKEQQ_EXIT", "53")]);
    assert_eq!(code(&o), 111);
    assert!(
        out(&o).ends_with("Unable to forward message: qq write error or disk full (#4.3.0).\n"),
        "{}",
        out(&o)
    );
    let o = b.deliver_env("bob-fw", "-", "fw", "a@b.c", MSG, &[("FAKEQQ_EXIT", "31")]);
    assert_eq!(code(&o), 100);
    assert!(out(&o).ends_with(
        "Unable to forward message: mail server permanently rejected message (#5.3.0).\n"
    ));
}

#[test]
fn owner_files_set_the_forward_sender() {
    let b = Box::new();
    b.dotqmail(".qmail-list", "&m1@example.com\n");
    b.dotqmail(".qmail-list-owner", "&owner@example.com\n");
    let o = b.deliver("bob-list", "-", "list", "a@b.c", MSG);
    assert_eq!(code(&o), 0, "{}", out(&o));
    b.dotqmail(".qmail-list-owner-default", "&owner@example.com\n");
    let o = b.deliver("bob-list", "-", "list", "a@b.c", MSG);
    assert_eq!(code(&o), 0);
    // The null sender and #@[] are never rewritten.
    let o = b.deliver("bob-list", "-", "list", "", MSG);
    assert_eq!(code(&o), 0);
    let mut envs: Vec<Vec<u8>> = b.injections().into_iter().map(|(_, e)| e).collect();
    envs.sort();
    let mut want = vec![
        b"Fbob-list-owner@example.org\0Tm1@example.com\0\0".to_vec(),
        b"Fbob-list-owner-@example.org-@[]\0Tm1@example.com\0\0".to_vec(),
        b"F\0Tm1@example.com\0\0".to_vec(),
    ];
    want.sort();
    assert_eq!(envs, want);
}

#[test]
fn malformed_lines_and_missing_maildir_defer_without_delivery() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    for (text, want) in [
        (
            "./Maildir/\nJoe Smith <joe@example.org>\n",
            "Uh-oh: .qmail-x line 2: malformed forward address: Joe Smith <joe@example.org>. (#4.7.0)\n",
        ),
        (
            "./Maildir/\n+frobnicate\n",
            "Uh-oh: .qmail-x line 2: unknown instruction: +frobnicate. (#4.7.0)\n",
        ),
        (
            "\n./Maildir/\n",
            "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n",
        ),
        (
            "&a@b,c@d\n",
            "Uh-oh: .qmail-x line 1: malformed forward address: &a@b,c@d. (#4.7.0)\n",
        ),
    ] {
        b.dotqmail(".qmail-x", text);
        let o = b.deliver("bob-x", "-", "x", "a@b.c", MSG);
        assert_eq!((code(&o), out(&o).as_str()), (111, want));
    }
    assert!(files_in(&md.join("new")).is_empty());
    assert!(b.injections().is_empty());
    b.dotqmail(".qmail-x", "./Nosuch/\n");
    let o = b.deliver("bob-x", "-", "x", "a@b.c", MSG);
    assert_eq!(code(&o), 111);
    assert!(
        out(&o).starts_with("Unable to chdir to maildir. (#4.2.1)\n"),
        "{}",
        out(&o)
    );
    // An mbox in a directory that does not exist.
    b.dotqmail(".qmail-x", "./nodir/mbox\n");
    let o = b.deliver("bob-x", "-", "x", "a@b.c", MSG);
    assert_eq!(code(&o), 111);
    assert!(
        out(&o).starts_with("Unable to open ./nodir/mbox: "),
        "{}",
        out(&o)
    );
    assert!(out(&o).ends_with(". (#4.2.1)\n"));
}

#[test]
fn program_that_never_exits_times_out() {
    let b = Box::new();
    std::fs::write(b.qhome.join("control/timeoutlocal"), "1\n").unwrap();
    b.dotqmail(".qmail-slow", "|sleep 600\n");
    let t0 = std::time::Instant::now();
    let o = b.deliver("bob-slow", "-", "slow", "a@b.c", MSG);
    assert_eq!(code(&o), 111);
    assert_eq!(
        out(&o),
        "Timeout on program delivery: killed after 1 seconds. (#4.3.0)\n"
    );
    assert!(t0.elapsed() < Duration::from_secs(50));
}

#[test]
fn huge_message_to_a_full_disk_leaves_nothing_half_written() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    b.dotqmail(".qmail", "./mbox\n");
    // A first small message fits.
    let o = b.deliver("bob", "", "", "a@b.c", MSG);
    assert_eq!(code(&o), 0, "{}", out(&o));
    let mbox_before = std::fs::read(b.home.join("mbox")).unwrap();
    // A 2 MB message against a 1 MB file size limit (the "disk" fills up mid-write).
    let mut huge = b"Subject: huge\n\n".to_vec();
    while huge.len() < 2 << 20 {
        huge.extend_from_slice(
            b"0123456789012345678901234567890123456789012345678901234567890123456789\n",
        );
    }
    let msgfile = b.root.join("huge");
    std::fs::write(&msgfile, &huge).unwrap();
    for (qmail, check_mbox) in [("./mbox\n", true), ("./Maildir/\n", false)] {
        b.dotqmail(".qmail", qmail);
        let script = format!(
            "trap '' XFSZ; ulimit -f 1024; exec {} -- bob {} bob '' '' example.org a@b.c ./Maildir/ < {}",
            bin("qmail-local").display(),
            b.home.display(),
            msgfile.display()
        );
        let o = run_with_input(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .env("QMAILHOME", &b.qhome),
            None,
            Duration::from_secs(60),
        );
        assert_eq!(code(&o), 111, "{}", out(&o));
        if check_mbox {
            assert_eq!(
                out(&o),
                "Unable to write ./mbox: File too large. (#4.3.0)\n"
            );
            assert_eq!(std::fs::read(b.home.join("mbox")).unwrap(), mbox_before);
        } else {
            assert!(
                out(&o).starts_with("Temporary error on maildir delivery. (#4.3.0)\n"),
                "{}",
                out(&o)
            );
            assert!(out(&o).contains("File too large"), "{}", out(&o));
            assert!(files_in(&md.join("new")).is_empty());
            assert!(files_in(&md.join("tmp")).is_empty());
        }
    }
}

#[test]
fn message_on_a_pipe_or_a_file() {
    let b = Box::new();
    let md = b.maildirmake("Maildir");
    b.dotqmail(".qmail", "./Maildir/\n|cat > copy\n");
    // run_with_input feeds a pipe.
    let o = b.deliver("bob", "", "", "a@b.c", MSG);
    assert_eq!(code(&o), 0, "{}", out(&o));
    assert_eq!(std::fs::read(b.home.join("copy")).unwrap(), MSG);
    // A regular file, as qmail-lspawn gives it.
    let f = b.root.join("m");
    std::fs::write(&f, MSG).unwrap();
    let mut c = b.cmd(&[]);
    c.arg("bob")
        .arg(&b.home)
        .args(["bob", "", "", "example.org", "a@b.c", "./Maildir/"])
        .stdin(std::fs::File::open(&f).unwrap());
    let o = c.output().unwrap();
    assert_eq!(code(&o), 0, "{}", out(&o));
    assert_eq!(files_in(&md.join("new")).len(), 2);
}

#[test]
fn maildirmake_modes_and_errors() {
    let d = tempdir();
    let p = d.path().join("M");
    let o = run_with_input(
        Command::new(bin("maildirmake")).arg(&p),
        None,
        Duration::from_secs(30),
    );
    assert!(o.status.success());
    for sub in ["", "tmp", "new", "cur"] {
        let m = std::fs::metadata(p.join(sub)).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.permissions().mode() & 0o7777, 0o700, "{sub}");
    }
    let o = run_with_input(
        Command::new(bin("maildirmake")).arg(&p),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 111);
    assert!(
        out(&o).starts_with("maildirmake: fatal: unable to mkdir "),
        "{}",
        out(&o)
    );
    let o = run_with_input(
        &mut Command::new(bin("maildirmake")),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 100);
}

#[test]
fn qmail_newu_and_lookup() {
    let d = tempdir();
    let q = d.path();
    std::fs::create_dir(q.join("users")).unwrap();
    std::fs::write(
        q.join("users/assign"),
        "=joe:joe:1001:1001:/home/joe:::\n+joe-:joe:1001:1001:/home/joe:-::\n+lists-:lists:1002:1002:/home/lists:-:l-:\n.\n",
    )
    .unwrap();
    let o = run_with_input(
        Command::new(bin("qmail-newu")).env("QMAILHOME", q),
        None,
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        std::fs::metadata(q.join("users/cdb"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    assert!(!q.join("users/cdb.tmp").exists());
    let a = mta::users::lookup_in(q, "Joe").unwrap().unwrap();
    assert_eq!(
        (
            a.user.as_str(),
            a.uid,
            a.gid,
            a.home.to_str().unwrap(),
            a.dash.as_str(),
            a.ext.as_str()
        ),
        ("joe", 1001, 1001, "/home/joe", "", "")
    );
    let a = mta::users::lookup_in(q, "joe-Foo.Bar").unwrap().unwrap();
    assert_eq!((a.dash.as_str(), a.ext.as_str()), ("-", "Foo.Bar"));
    let a = mta::users::lookup_in(q, "lists-qmail").unwrap().unwrap();
    assert_eq!(
        (a.user.as_str(), a.uid, a.ext.as_str()),
        ("lists", 1002, "l-qmail")
    );
    // Real cdb tools read our file.
    if let Some(cdbget) = external("/usr/bin/cdbget") {
        let o = Command::new(cdbget)
            .arg("!lists-")
            .stdin(std::fs::File::open(q.join("users/cdb")).unwrap())
            .output()
            .unwrap();
        assert_eq!(o.stdout, b"lists\x001002\x001002\x00/home/lists\x00-\x00l-");
    }
    // Unknown addresses fall to the alias user (QMAILHOME/ids names it).
    std::fs::write(q.join("ids"), "alias:7790:7791\n").unwrap();
    let a = mta::users::lookup_in(q, "postmaster").unwrap().unwrap();
    assert_eq!(
        (
            a.user.as_str(),
            a.uid,
            a.gid,
            a.dash.as_str(),
            a.ext.as_str()
        ),
        ("alias", 7790, 7791, "-", "postmaster")
    );
    assert_eq!(a.home, q.join("alias"));
    // A bad assign keeps the old cdb and names the line.
    std::fs::write(
        q.join("users/assign"),
        "=joe:joe:1001:1001:/home/joe:::\n=bad:line\n.\n",
    )
    .unwrap();
    let o = run_with_input(
        Command::new(bin("qmail-newu")).env("QMAILHOME", q),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 111);
    assert!(
        out(&o).starts_with("qmail-newu: fatal: bad format in users/assign: line 2"),
        "{}",
        out(&o)
    );
    assert!(mta::users::lookup_in(q, "lists-x").unwrap().unwrap().user == "lists");
}

#[test]
fn checkperms_finds_unsafe_homes_and_skips_system_accounts() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root to chown test homes");
        return;
    }
    let d = tempdir();
    let r = d.path();
    chmod(r, 0o755);
    let q = r.join("qmail");
    std::fs::create_dir_all(q.join("users")).unwrap();
    std::fs::create_dir_all(q.join("control")).unwrap();
    let mk = |name: &str, uid: u32, mode: u32| -> PathBuf {
        let h = r.join(name);
        std::fs::create_dir(&h).unwrap();
        chmod(&h, mode);
        std::os::unix::fs::chown(&h, Some(uid), Some(uid)).unwrap();
        h
    };
    let maildir = |h: &Path, uid: u32| {
        let o = Command::new(bin("maildirmake"))
            .arg(h.join("Maildir"))
            .output()
            .unwrap();
        assert!(o.status.success());
        for s in ["", "tmp", "new", "cur"] {
            std::os::unix::fs::chown(h.join("Maildir").join(s), Some(uid), Some(uid)).unwrap();
        }
    };
    let good = mk("good", 5001, 0o755);
    maildir(&good, 5001);
    let wr = mk("wr", 5002, 0o775);
    maildir(&wr, 5002);
    let dq = mk("dq", 5003, 0o755);
    maildir(&dq, 5003);
    std::fs::write(dq.join(".qmail"), "./Maildir/\n./mbox\n").unwrap();
    chmod(&dq.join(".qmail"), 0o666);
    let md = mk("md", 5004, 0o755);
    maildir(&md, 5005); // owned by someone else
    let nomd = mk("nomd", 5006, 0o700);
    let sys = mk("sys", 105, 0o777);
    let nolog = mk("nolog", 5007, 0o777);
    let excl = mk("excl", 5008, 0o777);
    let virt = mk("virt", 5009, 0o777);
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/bash\ngood:x:5001:5001::{}:/bin/sh\nwr:x:5002:5002::{}:/bin/sh\ndq:x:5003:5003::{}:/bin/sh\nmd:x:5004:5004::{}:/bin/sh\nnomd:x:5006:5006::{}:/bin/sh\nsys:x:105:105::{}:/bin/sh\nnolog:x:5007:5007::{}:/usr/sbin/nologin\nexcl:x:5008:5008::{}:/bin/sh\n",
        good.display(),
        wr.display(),
        dq.display(),
        md.display(),
        nomd.display(),
        sys.display(),
        nolog.display(),
        excl.display()
    );
    std::fs::write(r.join("passwd"), passwd).unwrap();
    std::fs::write(q.join("users/exclude"), "excl\n").unwrap();
    std::fs::write(
        q.join("users/assign"),
        format!("=virt:virt:5009:5009:{}:::\n.\n", virt.display()),
    )
    .unwrap();
    let o = run_with_input(
        Command::new(bin("qmail-checkperms"))
            .arg("-p")
            .arg(r.join("passwd"))
            .env("QMAILHOME", &q),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 1, "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let users: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    for u in ["good", "sys", "nolog", "excl"] {
        assert!(!users.contains(&u), "{u} reported:\n{text}");
    }
    for (u, what) in [
        ("wr", "writable by group or others (mode 0775)"),
        ("dq", ".qmail is writable by group or others"),
        ("md", "is owned by uid 5005, not 5004"),
        ("nomd", "Maildir/ is missing"),
        ("virt", "writable by group or others (mode 0777)"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{u}: ")) && l.contains(what)),
            "{u}: {what} not in\n{text}"
        );
    }
    // Fixed up, the report is clean.
    std::fs::write(
        r.join("passwd"),
        format!("good:x:5001:5001::{}:/bin/sh\n", good.display()),
    )
    .unwrap();
    std::fs::remove_file(q.join("users/assign")).unwrap();
    let o = run_with_input(
        Command::new(bin("qmail-checkperms"))
            .arg("-p")
            .arg(r.join("passwd"))
            .env("QMAILHOME", &q),
        None,
        Duration::from_secs(30),
    );
    assert_eq!((code(&o), out(&o).as_str()), (0, ""));
}

#[test]
fn pw2u_then_newu_then_lookup() {
    let b = Box::new();
    std::fs::create_dir_all(b.qhome.join("users")).unwrap();
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&b.home, Some(6001), None).unwrap();
    }
    let uid = std::fs::metadata(&b.home).unwrap().uid();
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/sh\nbob:x:{uid}:77::{}:/bin/sh\n",
        b.home.display()
    );
    std::fs::write(b.qhome.join("ids"), "alias:7790:7791\n").unwrap();
    std::fs::write(b.qhome.join("users/subusers"), "frank:bob:fr:\n").unwrap();
    std::fs::write(b.qhome.join("users/append"), "=info:bob:1:1:/x:-:info:\n").unwrap();
    let o = run_with_input(
        Command::new(bin("qmail-pw2u")).env("QMAILHOME", &b.qhome),
        Some(passwd.as_bytes()),
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", out(&o));
    let h = b.home.display();
    let q = b.qhome.display();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "=bob:bob:{uid}:77:{h}:::\n+bob-:bob:{uid}:77:{h}:-::\n+:alias:7790:7791:{q}/alias:-::\n=frank:bob:{uid}:77:{h}:-:fr:\n+frank-:bob:{uid}:77:{h}:-:fr-:\n=info:bob:1:1:/x:-:info:\n.\n"
        )
    );
    std::fs::write(b.qhome.join("users/assign"), &o.stdout).unwrap();
    let o = run_with_input(
        Command::new(bin("qmail-newu")).env("QMAILHOME", &b.qhome),
        None,
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", out(&o));
    let a = mta::users::lookup_in(&b.qhome, "frank-berbig")
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.user.as_str(), a.uid, a.dash.as_str(), a.ext.as_str()),
        ("bob", uid, "-", "fr-berbig")
    );
    let a = mta::users::lookup_in(&b.qhome, "nobody-known")
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.user.as_str(), a.uid, a.ext.as_str()),
        ("alias", 7790, "nobody-known")
    );
}

// ---------------------------------------------------------------------------------------------
// End to end: qmail-queue → qmail-send → qmail-lspawn → qmail-local in a temporary home.
// As root (CI) the qmail users and two mail users get unused numeric ids (QMAILHOME/ids and
// users/assign; /etc/passwd is never touched); otherwise everything runs as the invoking user.

struct System {
    _dir: rqmail_tests::TempDir,
    root: PathBuf,
    q: PathBuf,
    /// (name, uid, home)
    users: Vec<(String, u32, PathBuf)>,
    alias_uid: u32,
    log: PathBuf,
    send: Option<rqmail_tests::Proc>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chown_r(p: &Path, uid: u32) {
    if !is_root() {
        return;
    }
    for e in walkdir_all(p) {
        std::os::unix::fs::lchown(&e, Some(uid), Some(uid)).unwrap();
    }
}

fn walkdir_all(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            v.extend(walkdir_all(&e.unwrap().path()));
        }
    }
    v
}

/// The queue programs exist only once the queue work is merged; skip until then (but never
/// under CI).
fn queue_built() -> bool {
    let ok = [
        "qmail-install",
        "qmail-start",
        "qmail-send",
        "qmail-lspawn",
        "qmail-queue",
    ]
    .iter()
    .all(|n| rqmail_tests::bin_dir().join(n).exists());
    if !ok {
        assert!(!rqmail_tests::under_ci(), "queue programs are not built");
        eprintln!("skipping: the queue programs are not built yet");
    }
    ok
}

impl System {
    fn new() -> System {
        let dir = tempdir();
        let root = dir.path().to_path_buf();
        chmod(&root, 0o755);
        let q = root.join("qmail");
        std::fs::create_dir(&q).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let (alias_uid, ua, ub) = if is_root() {
            std::fs::write(
                q.join("ids"),
                "alias:7790:7780\nqmaild:7791:7781\nqmaill:7792:7781\nroot:0:0\nqmailp:7793:7781\n\
                 qmailq:7794:7780\nqmailr:7795:7780\nqmails:7796:7780\nqmail:4294967295:7780\n\
                 nofiles:4294967295:7781\n",
            )
            .unwrap();
            (7790, 7801, 7802)
        } else {
            (me, me, me)
        };
        let o = run_with_input(
            Command::new(bin("qmail-install")).arg(&q),
            None,
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "qmail-install: {}", out(&o));
        std::fs::write(q.join("control/me"), "example.org\n").unwrap();
        std::fs::write(q.join("control/locals"), "example.org\n").unwrap();
        let mut users = Vec::new();
        let mut assign = String::new();
        for (name, uid) in [("alice", ua), ("bob", ub)] {
            let home = root.join("home").join(name);
            std::fs::create_dir_all(&home).unwrap();
            chmod(&root.join("home"), 0o755);
            chmod(&home, 0o700);
            let o = Command::new(bin("maildirmake"))
                .arg(home.join("Maildir"))
                .output()
                .unwrap();
            assert!(o.status.success());
            chown_r(&home, uid);
            assign.push_str(&format!(
                "={name}:{name}:{uid}:{uid}:{h}:::\n+{name}-:{name}:{uid}:{uid}:{h}:-::\n",
                h = home.display()
            ));
            users.push((name.to_string(), uid, home));
        }
        assign.push_str(".\n");
        std::fs::write(q.join("users/assign"), assign).unwrap();
        let o = run_with_input(
            Command::new(q.join("bin/qmail-newu")).env("QMAILHOME", &q),
            None,
            Duration::from_secs(30),
        );
        assert!(o.status.success(), "qmail-newu: {}", out(&o));
        let log = root.join("send.log");
        let mut s = System {
            _dir: dir,
            root,
            q,
            users,
            alias_uid,
            log,
            send: None,
        };
        s.start();
        s
    }

    fn start(&mut self) {
        let logf = std::fs::File::create(&self.log).unwrap();
        let mut c = Command::new(self.q.join("bin/qmail-start"));
        c.arg("./Maildir/")
            .env("QMAILHOME", &self.q)
            .env_remove("QMAILQUEUE")
            .env_remove("QMAILLOCAL")
            .stdin(std::process::Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        self.send = Some(rqmail_tests::Proc::spawn(&mut c));
        let log = self.log.clone();
        rqmail_tests::must(Duration::from_secs(30), "qmail-send status line", || {
            std::fs::read_to_string(&log)
                .map(|l| l.contains("status: local"))
                .unwrap_or(false)
        });
    }

    fn home(&self, name: &str) -> &Path {
        &self.users.iter().find(|u| u.0 == name).unwrap().2
    }

    fn uid(&self, name: &str) -> u32 {
        self.users.iter().find(|u| u.0 == name).unwrap().1
    }

    /// Write a file in a user's home owned by them, mode 0644.
    fn put(&self, name: &str, file: &str, text: &str) {
        let p = self.home(name).join(file);
        std::fs::write(&p, text).unwrap();
        chmod(&p, 0o644);
        chown_r(&p, self.uid(name));
    }

    fn put_alias(&self, file: &str, text: &str) {
        let p = self.q.join("alias").join(file);
        std::fs::write(&p, text).unwrap();
        chmod(&p, 0o644);
    }

    /// Queue a message with qmail-queue.
    fn inject(&self, sender: &str, rcpts: &[&str], msg: &[u8]) {
        let n = rand_name();
        let m = self.root.join(format!("in.{n}.msg"));
        let e = self.root.join(format!("in.{n}.env"));
        std::fs::write(&m, msg).unwrap();
        let mut env = format!("F{sender}\0").into_bytes();
        for r in rcpts {
            env.extend_from_slice(format!("T{r}\0").as_bytes());
        }
        env.push(0);
        std::fs::write(&e, env).unwrap();
        let o = run_with_input(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(format!(
                    "exec {} < {} 1< {}",
                    self.q.join("bin/qmail-queue").display(),
                    m.display(),
                    e.display()
                ))
                .env("QMAILHOME", &self.q),
            None,
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "qmail-queue: {}", out(&o));
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, what: &str) {
        rqmail_tests::must(Duration::from_secs(60), what, || {
            self.log_text().contains(what)
        });
    }

    fn wait_files(&self, dir: &Path, n: usize) -> Vec<PathBuf> {
        rqmail_tests::must(
            Duration::from_secs(60),
            &format!("{n} files in {}", dir.display()),
            || files_in(dir).len() >= n,
        );
        files_in(dir)
    }
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn msg(subject: &str) -> Vec<u8> {
    format!("From: carol@example.net\nSubject: {subject}\n\nbody of {subject}\nFrom here\n")
        .into_bytes()
}

#[test]
fn e2e_programs_run_as_their_owner_and_cannot_touch_other_maildirs() {
    if !queue_built() {
        return;
    }
    let s = System::new();
    let bob_md = s.home("bob").join("Maildir");
    s.put(
        "alice",
        ".qmail",
        &format!(
            "./Maildir/\n|id -u > uid.txt; id -g >> uid.txt; (echo evil > {0}/new/evil) 2>/dev/null; echo rc=$? >> uid.txt\n",
            bob_md.display()
        ),
    );
    s.inject("carol@example.net", &["alice@example.org"], &msg("one"));
    let a = s.wait_files(&s.home("alice").join("Maildir/new"), 1);
    s.wait_log("did_1+0+1/");
    let uid_txt = std::fs::read_to_string(s.home("alice").join("uid.txt")).unwrap();
    let ua = s.uid("alice");
    if is_root() {
        assert!(
            uid_txt.starts_with(&format!("{ua}\n{ua}\nrc=")),
            "{uid_txt}"
        );
        assert!(!uid_txt.ends_with("rc=0\n"), "{uid_txt}");
        assert!(!bob_md.join("new/evil").exists());
        assert_eq!(std::fs::metadata(&a[0]).unwrap().uid(), ua);
    }
    let text = std::fs::read_to_string(&a[0]).unwrap();
    assert!(
        text.starts_with("Return-Path: <carol@example.net>\nDelivered-To: alice@example.org\n"),
        "{text}"
    );
    // bob gets mail in his own Maildir, as his own uid.
    s.inject("carol@example.net", &["bob@example.org"], &msg("two"));
    let b = s.wait_files(&bob_md.join("new"), 1);
    assert_eq!(std::fs::metadata(&b[0]).unwrap().uid(), s.uid("bob"));
    let log = s.log_text();
    assert!(log.contains("delivery 1: success: did_1+0+1/"), "{log}");
}

#[test]
fn e2e_every_line_form_extensions_and_aliases() {
    if !queue_built() {
        return;
    }
    let s = System::new();
    let ah = s.home("alice").to_path_buf();
    // Comment, maildir, mbox, program and forward in one .qmail-ext file.
    s.put(
        "alice",
        ".qmail-ext",
        "# all forms\n./Maildir/\n./mbox\n|echo \"$EXT|$DEFAULT|$SENDER\" >> prog.txt\n&bob@example.org\n",
    );
    s.put(
        "alice",
        ".qmail-ext-default",
        "|echo \"$EXT|$DEFAULT\" >> default.txt\n",
    );
    s.inject(
        "carol@example.net",
        &["alice-ext@example.org"],
        &msg("forms"),
    );
    s.wait_files(&s.home("bob").join("Maildir/new"), 1);
    let md = files_in(&ah.join("Maildir/new"));
    assert_eq!(md.len(), 1);
    let mbox = std::fs::read_to_string(ah.join("mbox")).unwrap();
    assert!(mbox.starts_with("From carol@example.net "), "{mbox}");
    assert!(mbox.contains("\nDelivered-To: alice-ext@example.org\n"));
    assert!(mbox.contains("\n>From here\n"));
    assert_eq!(
        std::fs::read_to_string(ah.join("prog.txt")).unwrap(),
        "ext||carol@example.net\n"
    );
    // The forward keeps the sender and carries alice's Delivered-To line.
    let fwd = std::fs::read_to_string(&files_in(&s.home("bob").join("Maildir/new"))[0]).unwrap();
    assert!(
        fwd.starts_with("Return-Path: <carol@example.net>\nDelivered-To: bob@example.org\n"),
        "{fwd}"
    );
    assert!(
        fwd.contains("Delivered-To: alice-ext@example.org\n"),
        "{fwd}"
    );
    s.wait_log("did_2+1+1/qp_");
    // user-ext-more goes to .qmail-ext-default with DEFAULT=more.
    s.inject(
        "carol@example.net",
        &["alice-ext-More.Stuff@example.org"],
        &msg("more"),
    );
    rqmail_tests::must(Duration::from_secs(60), "default.txt", || {
        ah.join("default.txt").exists()
    });
    let t = std::fs::read_to_string(ah.join("default.txt")).unwrap();
    assert_eq!(
        t, "ext-More.Stuff|More.Stuff\n",
        "EXT and DEFAULT keep the case of the address"
    );
    // Aliases: postmaster, and frank.berbig → .qmail-frank:berbig, both in ~alias.
    let alias = s.q.join("alias");
    // The installer's default aliases: postmaster → root; root (uid 0 is never delivered to
    // directly, so root@ falls to ~alias/.qmail-root) → the admin.
    s.put_alias(".qmail-postmaster", "&root\n");
    s.put_alias(".qmail-root", "&alice@example.org\n");
    s.put_alias(".qmail-frank:berbig", "&bob@example.org\n");
    s.inject("carol@example.net", &["postmaster@example.org"], &msg("pm"));
    s.inject(
        "carol@example.net",
        &["Frank.Berbig@example.org"],
        &msg("frank"),
    );
    s.wait_files(&ah.join("Maildir/new"), 2);
    s.wait_files(&s.home("bob").join("Maildir/new"), 2);
    let all: String = files_in(&ah.join("Maildir/new"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        all.contains("Delivered-To: root@example.org\n")
            && all.contains("Delivered-To: postmaster@example.org\n"),
        "{all}"
    );
    let all: String = files_in(&s.home("bob").join("Maildir/new"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        all.contains("Delivered-To: Frank.Berbig@example.org\n"),
        "{all}"
    );
    let _ = (alias, s.alias_uid);
    // An unknown extension bounces to the sender.
    s.inject(
        "bob@example.org",
        &["alice-nosuch@example.org"],
        &msg("nosuch"),
    );
    s.wait_files(&s.home("bob").join("Maildir/new"), 3);
    s.wait_log("failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/");
    let bounce: String = files_in(&s.home("bob").join("Maildir/new"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        bounce.contains("Sorry, no mailbox here by that name. (#5.1.1)"),
        "{bounce}"
    );
}

#[test]
fn e2e_program_exit_codes_loops_and_readers() {
    if !queue_built() {
        return;
    }
    let s = System::new();
    let ah = s.home("alice").to_path_buf();
    let bob_new = s.home("bob").join("Maildir/new");
    s.put("alice", ".qmail-stop", "|exit 99\n./Maildir/\n");
    s.put("alice", ".qmail-hard", "|echo no such list; exit 100\n");
    s.put("alice", ".qmail-soft", "|echo try later; exit 111\n");
    s.put("alice", ".qmail-loop", "&alice-loop@example.org\n");
    s.inject("bob@example.org", &["alice-stop@example.org"], &msg("stop"));
    s.wait_log("did_0+0+1/");
    s.inject("bob@example.org", &["alice-soft@example.org"], &msg("soft"));
    s.wait_log("deferral: try_later/");
    s.inject("bob@example.org", &["alice-hard@example.org"], &msg("hard"));
    s.wait_log("failure: no_such_list/");
    s.inject("bob@example.org", &["alice-loop@example.org"], &msg("loop"));
    s.wait_log("This_message_is_looping:_it_already_has_my_Delivered-To_line._(#5.4.6)/");
    // A message arriving with our Delivered-To line already in it.
    s.inject(
        "bob@example.org",
        &["alice@example.org"],
        b"Delivered-To: alice@example.org\nSubject: old\n\nx\n",
    );
    let bounces = s.wait_files(&bob_new, 3);
    let all: String = bounces
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(all.contains("no such list"), "{all}");
    assert!(all.contains("This message is looping"), "{all}");
    assert!(files_in(&ah.join("Maildir/new")).is_empty());
    // Unsafe modes defer with a clear log line and deliver nothing.
    s.put("alice", ".qmail-open", "./Maildir/\n");
    chmod(&ah.join(".qmail-open"), 0o666);
    s.inject("bob@example.org", &["alice-open@example.org"], &msg("open"));
    s.wait_log("deferral: Uh-oh:_.qmail_file_is_writable._(#4.7.0)/");
    chmod(&ah, 0o770);
    s.inject("bob@example.org", &["alice@example.org"], &msg("grouphome"));
    s.wait_log("deferral: Uh-oh:_home_directory_is_writable._(#4.7.0)/");
    chmod(&ah, 0o700);
    assert!(files_in(&ah.join("Maildir/new")).is_empty());
    // Python's mailbox reads what we deliver.
    if let Some(py) = external("/usr/bin/python3") {
        let o = run_with_input(
            Command::new(py)
                .arg("-c")
                .arg("import mailbox,sys; m=mailbox.Maildir(sys.argv[1], factory=None); print(sorted(x['Subject'] for x in m))")
                .arg(s.home("bob").join("Maildir")),
            None,
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "{}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("failure notice"),
            "{}",
            out(&o)
        );
    }
}

#[test]
fn e2e_new_user_from_skel_receives_mail() {
    if !queue_built() {
        return;
    }
    let s = System::new();
    // The admin's /etc/skel (here a directory of the test): a Maildir and a .qmail using it.
    let skel = s.root.join("skel");
    std::fs::create_dir(&skel).unwrap();
    let o = Command::new(bin("maildirmake"))
        .arg(skel.join("Maildir"))
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::write(skel.join(".qmail"), "./Maildir/\n").unwrap();
    chmod(&skel.join(".qmail"), 0o644);
    // useradd -m copies skel into the new home and gives it to the new user.
    let home = s.root.join("home/dave");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&skel)
        .arg(&home)
        .output()
        .unwrap();
    assert!(o.status.success());
    chmod(&home, 0o700);
    let uid = if is_root() { 7803 } else { s.uid("alice") };
    chown_r(&home, uid);
    let mut assign = std::fs::read_to_string(s.q.join("users/assign")).unwrap();
    assign.truncate(assign.len() - 2); // drop ".\n"
    assign.push_str(&format!(
        "=dave:dave:{uid}:{uid}:{}:::\n.\n",
        home.display()
    ));
    std::fs::write(s.q.join("users/assign"), assign).unwrap();
    let o = run_with_input(
        Command::new(s.q.join("bin/qmail-newu")).env("QMAILHOME", &s.q),
        None,
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", out(&o));
    s.inject("carol@example.net", &["dave@example.org"], &msg("welcome"));
    let f = s.wait_files(&home.join("Maildir/new"), 1);
    assert_eq!(std::fs::metadata(&f[0]).unwrap().uid(), uid);
    assert!(
        std::fs::read_to_string(&f[0])
            .unwrap()
            .contains("Delivered-To: dave@example.org\n")
    );
}

#[test]
fn qmail_getpw_never_picks_root_and_falls_back_to_alias() {
    let d = tempdir();
    let q = d.path();
    std::fs::write(q.join("ids"), "alias:7790:7791\n").unwrap();
    let o = run_with_input(
        Command::new(bin("qmail-getpw"))
            .arg("Root-Stuff")
            .env("QMAILHOME", q),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 0, "{}", out(&o));
    let want = format!(
        "alias\x007790\x007791\x00{}/alias\x00-\x00Root-Stuff\x00",
        q.display()
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), want);
    let o = run_with_input(
        &mut Command::new(bin("qmail-getpw")),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), 100);
}
