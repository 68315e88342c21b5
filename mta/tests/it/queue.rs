//! The queue end to end: qmail-install, qmail-queue, qmail-start → qmail-send, qmail-lspawn,
//! qmail-rspawn, qmail-clean, bounces, log lines, admin tools, bad input and crash safety.
//!
//! Every test builds its own qmail home with `qmail-install` in a temporary directory. As root
//! the qmail ids are unused numeric ids from `QMAILHOME/ids` and the mailbox owner is a numeric
//! uid from users/assign; otherwise everything runs as the invoking user. When the real
//! qmail-local is not built yet, a small shell stand-in (via `$QMAILLOCAL`) writes the Maildir.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rqmail_tests::{Proc, TempDir, bin, bin_dir, must, tempdir, wait_until, write_exec};

const LONG: Duration = Duration::from_secs(30);

const FAKE_LOCAL: &str = r#"#!/bin/sh
# stand-in for qmail-local: -- user home local dash ext domain sender defaultdelivery
shift
user=$1 home=$2 local=$3 dash=$4 ext=$5 domain=$6 sender=$7
if [ -n "$dash" ] && [ ! -e "$home/.qmail$dash$ext" ]; then
  echo "Sorry, no mailbox here by that name. (#5.1.1)"; exit 100
fi
cd "$home" || { echo "Unable to chdir to home."; exit 111; }
t=$(date +%s).$$.fake
{ echo "Return-Path: <$sender>"; echo "Delivered-To: $local@$domain"; cat; } > Maildir/tmp/$t || exit 111
mv Maildir/tmp/$t Maildir/new/$t || exit 111
echo "did 1+0+0"
exit 0
"#;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A qmail home in a temporary directory, with user alice and the alias user.
struct Q {
    _t: TempDir,
    top: PathBuf,
    home: PathBuf,
    fake_local: Option<PathBuf>,
    log: PathBuf,
    send: Option<Proc>,
    alias_uid: u32,
    alice_uid: u32,
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn maildir(p: &Path, uid: u32, gid: u32) {
    fs::create_dir_all(p).unwrap();
    chown(p, uid, gid);
    for s in ["tmp", "new", "cur"] {
        fs::create_dir_all(p.join(s)).unwrap();
        fs::set_permissions(p.join(s), fs::Permissions::from_mode(0o700)).unwrap();
        chown(&p.join(s), uid, gid);
    }
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).unwrap();
}

impl Q {
    fn new() -> Q {
        let t = tempdir();
        let top = t.path().to_path_buf();
        fs::set_permissions(&top, fs::Permissions::from_mode(0o755)).unwrap();
        let home = top.join("qmail");
        fs::create_dir(&home).unwrap();
        let root = is_root();
        let (me_uid, me_gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        if root {
            crate::common::write_test_ids(&home, 64000);
        }
        let out = Command::new(bin("qmail-install"))
            .arg(&home)
            .output()
            .unwrap();
        assert!(out.status.success(), "qmail-install: {out:?}");
        fs::write(home.join("control/me"), "example.org\n").unwrap();
        fs::write(home.join("control/locals"), "example.org\n").unwrap();
        let (alias_uid, alice_uid, gid) = if root {
            (64001, 64101, 64100)
        } else {
            (me_uid, me_uid, me_gid)
        };
        // alice
        let alice = top.join("alice");
        fs::create_dir(&alice).unwrap();
        fs::set_permissions(&alice, fs::Permissions::from_mode(0o755)).unwrap();
        chown(&alice, alice_uid, gid);
        maildir(&alice.join("Maildir"), alice_uid, gid);
        // the alias user takes postmaster
        let alias = home.join("alias");
        let agid = if root { 64000 } else { me_gid };
        maildir(&alias.join("Maildir"), alias_uid, agid);
        fs::write(alias.join(".qmail-postmaster"), "./Maildir/\n").unwrap();
        fs::set_permissions(
            alias.join(".qmail-postmaster"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        chown(&alias.join(".qmail-postmaster"), alias_uid, agid);
        fs::write(
            home.join("users/assign"),
            format!("=alice:alice:{alice_uid}:{gid}:{}:::\n.\n", alice.display()),
        )
        .unwrap();
        let out = Command::new(home.join("bin/qmail-newu"))
            .env("QMAILHOME", &home)
            .output()
            .unwrap();
        assert!(out.status.success(), "qmail-newu: {out:?}");
        let fake_local = if bin_dir().join("qmail-local").exists() {
            None
        } else {
            let p = top.join("fake-qmail-local");
            write_exec(&p, FAKE_LOCAL);
            Some(p)
        };
        let log = top.join("send.log");
        Q {
            _t: t,
            top,
            home,
            fake_local,
            log,
            send: None,
            alias_uid,
            alice_uid,
        }
    }

    fn alice_maildir(&self) -> PathBuf {
        self.top.join("alice/Maildir")
    }

    fn alias_maildir(&self) -> PathBuf {
        self.home.join("alias/Maildir")
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("QMAILHOME", &self.home);
        if let Some(f) = &self.fake_local {
            cmd.env("QMAILLOCAL", f);
        }
    }

    /// Start qmail-start (log appended to send.log).
    fn start_with(&mut self, extra_env: &[(&str, &str)]) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(self.home.join("bin/qmail-start"));
        self.env(&mut cmd);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let n = self.log_text().matches("status: local 0/").count();
        self.send = Some(Proc::spawn(&mut cmd));
        // Its first status line comes after the signal handlers are in place.
        let ok = wait_until(LONG, || {
            self.log_text().matches("status: local 0/").count() > n
        });
        if !ok {
            let t = self.log_text();
            let ps = Command::new("ps")
                .args(["-eo", "pid,pgid,stat,wchan:24,args"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let home = self.home.display().to_string();
            let mine: Vec<&str> = ps.lines().filter(|l| l.contains(&home)).collect();
            panic!(
                "qmail-send did not start; log ends:\n{}\nprocesses:\n{}",
                &t[t.len().saturating_sub(3000)..],
                mine.join("\n")
            );
        }
    }

    fn start(&mut self) {
        self.start_with(&[]);
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_lines(&self) -> Vec<String> {
        self.log_text().lines().map(str::to_string).collect()
    }

    fn wait_log(&self, what: &str) {
        let ok = wait_until(LONG, || self.log_lines().iter().any(|l| glob(what, l)));
        assert!(ok, "no log line {what:?} in:\n{}", self.log_text());
    }

    /// Run qmail-queue with `msg` on fd 0 and `env` on fd 1; its exit code.
    fn qq(&self, msg: &[u8], env: &[u8]) -> i32 {
        self.qq_with(msg, env, &[])
    }

    fn qq_with(&self, msg: &[u8], env: &[u8], vars: &[(&str, &str)]) -> i32 {
        let (r, mut w) = std::io::pipe().unwrap();
        let mut cmd = Command::new(self.home.join("bin/qmail-queue"));
        cmd.env("QMAILHOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(r))
            .stderr(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut p = Proc::spawn(&mut cmd);
        drop(cmd);
        let mut stdin = p.child.stdin.take().unwrap();
        let m = msg.to_vec();
        let t = std::thread::spawn(move || {
            let _ = stdin.write_all(&m);
        });
        let _ = w.write_all(env);
        drop(w);
        let st = p.wait_timeout(LONG).expect("qmail-queue finishes");
        let _ = t.join();
        st.code().unwrap_or(-1)
    }

    fn files(dir: &Path) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if let Ok(b) = fs::read(e.path()) {
                    v.push(b);
                }
            }
        }
        v
    }

    fn new_mail(&self, md: &Path) -> Vec<String> {
        Self::files(&md.join("new"))
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    fn wait_mail(&self, md: &Path, needle: &str) -> String {
        let mut found = String::new();
        must(
            LONG,
            &format!("mail containing {needle:?} in {}", md.display()),
            || match self.new_mail(md).into_iter().find(|m| m.contains(needle)) {
                Some(m) => {
                    found = m;
                    true
                }
                None => false,
            },
        );
        found
    }

    fn queue_files(&self, sub: &str) -> usize {
        walk(&self.home.join("queue").join(sub))
    }

    fn stop(&mut self) {
        if let Some(p) = self.send.as_mut() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            assert!(
                p.wait_timeout(LONG).is_some(),
                "qmail-send exits after TERM"
            );
        }
        self.send = None;
    }
}

fn walk(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                n += walk(&e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

/// Pattern match: `%` = one or more digits, `*` = anything, everything else literal.
fn glob(p: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some((b'%', rest)) => {
                let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
                (1..=n).any(|i| go(rest, &s[i..]))
            }
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(p.as_bytes(), s.as_bytes())
}

fn envelope(sender: &str, rcpts: &[&str]) -> Vec<u8> {
    let mut v = format!("F{sender}\0").into_bytes();
    for r in rcpts {
        v.extend_from_slice(format!("T{r}\0").as_bytes());
    }
    v.push(0);
    v
}

#[test]
fn install_is_idempotent_and_check_reports_wrong_modes() {
    let q = Q::new();
    let check = || {
        Command::new(bin("qmail-install"))
            .arg("--check")
            .arg(&q.home)
            .output()
            .unwrap()
    };
    let out = check();
    assert!(out.status.success(), "clean tree: {out:?}");
    for d in [
        "bin",
        "control",
        "users",
        "alias",
        "queue/pid",
        "queue/intd",
        "queue/todo",
        "queue/bounce",
        "queue/lock",
    ] {
        assert!(q.home.join(d).is_dir(), "{d}");
    }
    for d in ["mess", "info", "local", "remote"] {
        for i in [0, 22] {
            assert!(q.home.join(format!("queue/{d}/{i}")).is_dir());
        }
        assert!(!q.home.join(format!("queue/{d}/23")).exists());
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = fs::metadata(q.home.join("queue/lock/trigger")).unwrap();
    assert!(md.file_type().is_fifo());
    assert_eq!(md.mode() & 0o7777, 0o622);
    assert_eq!(
        fs::metadata(q.home.join("queue/lock/tcpto")).unwrap().len(),
        1024
    );
    assert_eq!(
        fs::metadata(q.home.join("queue/info")).unwrap().mode() & 0o7777,
        0o700
    );
    assert!(q.home.join("bin/qmail-queue").is_file());
    assert!(q.home.join("bin/qmail-send").is_file());
    if is_root() {
        assert_eq!(
            fs::metadata(q.home.join("queue/info")).unwrap().uid(),
            64007
        );
        assert_eq!(
            fs::metadata(q.home.join("queue/mess")).unwrap().uid(),
            64005
        );
        let qq = fs::metadata(q.home.join("bin/qmail-queue")).unwrap();
        assert_eq!((qq.uid(), qq.mode() & 0o7777), (64005, 0o4711));
    }
    fs::set_permissions(q.home.join("queue/todo"), fs::Permissions::from_mode(0o777)).unwrap();
    let out = check();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("queue/todo: mode is 0777, should be 0750"),
        "{text}"
    );
    // Running the installer again fixes it and keeps the queue's contents.
    assert_eq!(
        q.qq(
            b"Subject: kept\n\n",
            &envelope("a@b", &["alice@example.org"])
        ),
        0
    );
    let out = Command::new(bin("qmail-install"))
        .arg(&q.home)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(check().status.success());
    assert_eq!(q.queue_files("todo"), 1);
}

#[test]
fn local_delivery_with_return_path_delivered_to_and_log_lines() {
    let mut q = Q::new();
    q.start();
    let code = q.qq(
        b"From: bob@remote.test\nSubject: hello alice\n\nHi there.\n",
        &envelope("bob@remote.test", &["alice@example.org"]),
    );
    assert_eq!(code, 0);
    let m = q.wait_mail(&q.alice_maildir(), "Subject: hello alice");
    let lines: Vec<&str> = m.lines().collect();
    assert_eq!(lines[0], "Return-Path: <bob@remote.test>");
    assert_eq!(lines[1], "Delivered-To: alice@example.org");
    assert!(
        glob(
            "Received: (qmail % invoked by uid %); % * % %%:%%:%% -0000",
            lines[2]
        ),
        "{}",
        lines[2]
    );
    assert!(m.ends_with("Subject: hello alice\n\nHi there.\n"));
    q.wait_log("end msg %");
    let log = q.log_lines();
    let want = [
        "status: local 0/10 remote 0/20",
        "new msg %",
        "info msg %: bytes % from <bob@remote.test> qp % uid %",
        "starting delivery %: msg % to local alice@example.org",
        "status: local 1/10 remote 0/20",
        "delivery %: success: did_*",
        "end msg %",
    ];
    let mut at = 0;
    for w in want {
        let pos = log[at..]
            .iter()
            .position(|l| glob(w, l))
            .unwrap_or_else(|| panic!("no {w:?} after line {at} in {log:#?}"));
        at += pos + 1;
    }
    // The queue is empty again.
    must(LONG, "queue emptied", || q.queue_files("mess") == 0);
    assert_eq!(
        q.queue_files("info") + q.queue_files("local") + q.queue_files("todo"),
        0
    );
    q.stop();
    assert!(
        q.log_text()
            .contains("status: local 0/10 remote 0/20 exitasap\nstatus: exiting\n")
    );
}

#[test]
fn bounce_double_bounce_and_triple_bounce() {
    let mut q = Q::new();
    q.start();
    // 1. Unknown user: a bounce to the sender, in qmail's words.
    assert_eq!(
        q.qq(
            b"Subject: to nobody\n\nlost\n",
            &envelope("alice@example.org", &["alice-nobody@example.org"])
        ),
        0
    );
    let b = q.wait_mail(&q.alice_maildir(), "Subject: failure notice");
    assert!(b.contains("Return-Path: <>\n"), "{b}");
    assert!(
        b.contains(
            "From: MAILER-DAEMON@example.org\nTo: alice@example.org\nSubject: failure notice\n\n"
        ),
        "{b}"
    );
    assert!(
        b.contains(
            "Hi. This is the qmail-send program at example.org.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
<alice-nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n\
--- Below this line is a copy of the message.\n\nReturn-Path: <alice@example.org>\nReceived: (qmail "
        ),
        "{b}"
    );
    assert!(
        b.contains("invoked for bounce") || b.contains("invoked by uid"),
        "{b}"
    );
    assert!(b.ends_with("Subject: to nobody\n\nlost\n"), "{b}");
    q.wait_log("delivery %: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/");
    q.wait_log("bounce msg % qp %");

    // 2. A bounce that bounces: double bounce to postmaster (doublebounceto@doublebouncehost).
    assert_eq!(
        q.qq(
            b"Subject: bounce of something\n\nx\n",
            &envelope("", &["alice-nobody@example.org"])
        ),
        0
    );
    let d = q.wait_mail(&q.alias_maildir(), "but the bounce bounced!");
    assert!(d.contains("Return-Path: <#@[]>\n"), "{d}");
    assert!(d.contains("To: postmaster@example.org\n"), "{d}");
    assert!(
        d.contains(
            "Hi. This is the qmail-send program at example.org.\n\
I tried to deliver a bounce message to this address, but the bounce bounced!\n\n\
<alice-nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n\
--- Below this line is the original bounce.\n\nReturn-Path: <>\n"
        ),
        "{d}"
    );

    // 3. A double bounce that fails is dropped.
    assert_eq!(
        q.qq(
            b"Subject: dbl\n\nx\n",
            &envelope("#@[]", &["alice-nobody@example.org"])
        ),
        0
    );
    q.wait_log("triple bounce: discarding bounce/%");
    must(LONG, "queue emptied", || q.queue_files("mess") == 0);
    assert_eq!(q.queue_files("bounce"), 0);
}

#[test]
fn remote_mail_is_deferred_until_qmail_remote_works_then_alrm_retries() {
    let mut q = Q::new();
    let flag = q.top.join("remote-ok");
    let fake = q.top.join("fake-remote");
    write_exec(
        &fake,
        &format!(
            "#!/bin/sh\ncat >/dev/null\nif [ -e {} ]; then printf 'r\\0K192.0.2.25 accepted message.\\nRemote host said: 250 ok\\n\\0'; \
else printf 'ZSorry, I wasn'\\''t able to establish an SMTP connection. (#4.4.1)\\n\\0'; fi\nexit 0\n",
            flag.display()
        ),
    );
    let fake_s = fake.display().to_string();
    q.start_with(&[("QMAILREMOTE", &fake_s)]);
    assert_eq!(
        q.qq(
            b"Subject: out\n\nx\n",
            &envelope("alice@example.org", &["bob@remote.test"])
        ),
        0
    );
    q.wait_log("starting delivery %: msg % to remote bob@remote.test");
    q.wait_log(
        "delivery %: deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._(#4.4.1)/",
    );
    // Still queued, and qmail-qread shows it.
    let out = Command::new(q.home.join("bin/qmail-qread"))
        .env("QMAILHOME", &q.home)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        glob(
            "% * %%%% %%:%%:%% GMT  #%  %  <alice@example.org> \n\tremote\tbob@remote.test\n",
            &text
        ),
        "{text:?}"
    );
    let out = Command::new(q.home.join("bin/qmail-qstat"))
        .env("QMAILHOME", &q.home)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "messages in queue: 1\nmessages in queue but not yet preprocessed: 0\n"
    );
    // The retry time is in the remote file's mtime, 400 s after birth.
    fs::write(&flag, "").unwrap();
    q.send
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGALRM);
    q.wait_log("delivery %: success: 192.0.2.25_accepted_message./Remote_host_said:_250_ok/");
    q.wait_log("end msg %");
}

#[test]
fn rspawn_reports_missing_qmail_remote_as_deferral_and_keeps_mail() {
    let mut q = Q::new();
    let missing = q.top.join("no-such-qmail-remote").display().to_string();
    q.start_with(&[("QMAILREMOTE", &missing)]);
    assert_eq!(
        q.qq(b"Subject: r\n\n", &envelope("a@b.test", &["x@remote.test"])),
        0
    );
    q.wait_log("delivery %: deferral: Unable_to_run_qmail-remote./");
    q.stop();
    assert_eq!(q.queue_files("remote"), 1);
    assert_eq!(q.queue_files("mess"), 1);
    // A restart picks it up again from the queue (its retry time lies in the future).
    q.start_with(&[("QMAILREMOTE", &missing)]);
    q.send
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGALRM);
    must(LONG, "second attempt", || {
        q.log_text().matches("Unable_to_run_qmail-remote.").count() >= 2
    });
}

#[test]
fn hup_rereads_locals_and_virtualdomains_route_with_prefix() {
    let mut q = Q::new();
    let fake = q.top.join("fake-remote");
    write_exec(
        &fake,
        "#!/bin/sh\ncat >/dev/null\nprintf 'DSorry, no remote here. (#5.1.2)\\n\\0'\n",
    );
    let fake_s = fake.display().to_string();
    q.start_with(&[("QMAILREMOTE", &fake_s)]);
    fs::write(q.home.join("control/virtualdomains"), "virt.test:alice\n").unwrap();
    q.send
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGHUP);
    // alice-box@virt.test → local alice-box: alice's extension "box" has no .qmail → bounce
    // text shows the address without the prepend.
    std::thread::sleep(Duration::from_millis(300));
    let alice_home = q.top.join("alice");
    fs::write(alice_home.join(".qmail-box"), "./Maildir/\n").unwrap();
    fs::set_permissions(
        alice_home.join(".qmail-box"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    chown(
        &alice_home.join(".qmail-box"),
        q.alice_uid,
        fs::metadata(&alice_home)
            .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
            .unwrap(),
    );
    must(LONG, "virtual domain delivery", || {
        if q.qq(
            b"Subject: virt\n\n",
            &envelope("alice@example.org", &["box@virt.test"]),
        ) != 0
        {
            return false;
        }
        wait_until(Duration::from_secs(5), || {
            q.new_mail(&q.alice_maildir())
                .iter()
                .any(|m| m.contains("Subject: virt"))
        })
    });
    q.wait_log("starting delivery %: msg % to local alice-box@virt.test");
    let _ = q.alias_uid;
}

#[test]
fn qmail_queue_bad_input_gives_qmail_exit_codes() {
    let q = Q::new();
    let msg = b"Subject: x\n\nbody\n";
    // Envelope without the final \0: read error, nothing queued.
    assert_eq!(q.qq(msg, b"Fa@b\0Tc@d\0"), 54);
    assert_eq!(q.qq(msg, b"Fa@b\0Tc@d"), 54);
    assert_eq!(q.qq(msg, b""), 54);
    // Not starting with F / unknown record: envelope format error.
    assert_eq!(q.qq(msg, b"Ta@b\0\0"), 91);
    assert_eq!(q.qq(msg, b"Fa@b\0Xc@d\0\0"), 91);
    // A newline in the sender.
    assert_eq!(q.qq(msg, b"Fa\n@b\0Tc@d\0\0"), 91);
    // Too long an address.
    let long = format!("F{}@b\0\0", "x".repeat(1100));
    assert_eq!(q.qq(msg, long.as_bytes()), 11);
    assert_eq!(q.queue_files("todo"), 0);
    assert_eq!(q.queue_files("mess"), 0);
    assert_eq!(q.queue_files("intd"), 0);
    assert_eq!(q.queue_files("pid"), 0);
    // databytes: over the limit is a permanent refusal; $DATABYTES overrides the file.
    fs::write(q.home.join("control/databytes"), "10\n").unwrap();
    assert_eq!(q.qq(msg, &envelope("a@b", &["c@d"])), 31);
    assert_eq!(
        q.qq_with(msg, &envelope("a@b", &["c@d"]), &[("DATABYTES", "0")]),
        0
    );
    fs::write(q.home.join("control/databytes"), "nonsense\n").unwrap();
    assert_eq!(q.qq(msg, &envelope("a@b", &["c@d"])), 55);
    fs::remove_file(q.home.join("control/databytes")).unwrap();
    fs::create_dir(q.home.join("control/databytes")).unwrap(); // unreadable
    assert_eq!(q.qq(msg, &envelope("a@b", &["c@d"])), 55);
    fs::remove_dir(q.home.join("control/databytes")).unwrap();
    // Missing databytes = no limit; empty recipient list is accepted as in qmail.
    assert_eq!(q.qq(msg, &envelope("a@b", &[])), 0);
    assert_eq!(q.queue_files("todo"), 2);
    // Unwritable queue parts.
    let qd = q.home.join("queue");
    fs::rename(qd.join("pid"), qd.join("pid.off")).unwrap();
    assert_eq!(q.qq(msg, &envelope("a@b", &["c@d"])), 63);
    fs::rename(qd.join("pid.off"), qd.join("pid")).unwrap();
    fs::rename(qd.join("intd"), qd.join("intd.off")).unwrap();
    assert_eq!(q.qq(msg, &envelope("a@b", &["c@d"])), 65);
    fs::rename(qd.join("intd.off"), qd.join("intd")).unwrap();
    fs::rename(qd.join("todo"), qd.join("todo.off")).unwrap();
    assert_eq!(q.qq(msg, &envelope("a@b", &["c@d"])), 66);
    fs::rename(qd.join("todo.off"), qd.join("todo")).unwrap();
    fs::rename(&qd, q.home.join("queue.off")).unwrap();
    assert_eq!(q.qq(msg, &envelope("a@b", &["c@d"])), 62);
    fs::rename(q.home.join("queue.off"), &qd).unwrap();
    // Nothing half-made is left, and what was accepted is still there.
    assert_eq!(q.queue_files("todo"), 2);
    assert_eq!(q.queue_files("mess"), 2);
    assert_eq!(q.queue_files("intd"), 2);
    assert_eq!(q.queue_files("pid"), 0);
    // Missing home.
    let out = Command::new(q.home.join("bin/qmail-queue"))
        .env("QMAILHOME", q.top.join("nowhere"))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(out.code(), Some(61));
}

#[test]
fn empty_recipient_list_is_finished_cleanly() {
    let mut q = Q::new();
    q.start();
    assert_eq!(q.qq(b"Subject: none\n\n", &envelope("a@b.test", &[])), 0);
    q.wait_log("info msg %: bytes % from <a@b.test> qp % uid %");
    q.wait_log("end msg %");
    must(LONG, "queue emptied", || q.queue_files("mess") == 0);
}

#[test]
fn admin_tools_config_fast_and_showctl() {
    let q = Q::new();
    fs::remove_file(q.home.join("control/locals")).unwrap();
    let out = Command::new(q.home.join("bin/config-fast"))
        .env("QMAILHOME", &q.home)
        .arg("mail.example.com")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "Now qmail will refuse to accept SMTP messages except to mail.example.com.\n"
        ),
        "{text}"
    );
    let c = |n: &str| fs::read_to_string(q.home.join("control").join(n)).unwrap();
    assert_eq!(c("me"), "mail.example.com\n");
    assert_eq!(c("defaultdomain"), "example.com\n");
    assert_eq!(c("plusdomain"), "example.com\n");
    assert_eq!(c("locals"), "mail.example.com\n");
    assert_eq!(c("rcpthosts"), "mail.example.com\n");
    let out = Command::new(q.home.join("bin/qmail-showctl"))
        .env("QMAILHOME", &q.home)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("subdirectory split: 23.\n"), "{text}");
    assert!(
        text.contains("\nme: My name is mail.example.com.\n"),
        "{text}"
    );
    assert!(
        text.contains("\nconcurrencylocal: (Default.) Local concurrency is 10.\n"),
        "{text}"
    );
    assert!(
        text.contains("\nbatchremote: (Default.) Remote recipients of one message at one host sent together (one SMTP transaction): up to 100.\n"),
        "{text}"
    );
    assert!(
        text.contains("\nlocals: \nMessages for mail.example.com are delivered locally.\n"),
        "{text}"
    );
    let out = Command::new(q.home.join("bin/config-fast"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(100));
}

#[test]
fn second_qmail_send_refuses_to_start() {
    let mut q = Q::new();
    q.start();
    let out = Command::new(q.home.join("bin/qmail-start"))
        .env("QMAILHOME", &q.home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("alert: cannot start: qmail-send is already running"),
        "{text}"
    );
}

/// Crash safety: qmail-queue is SIGKILLed at random points and qmail-send (with its spawners and
/// deliveries) during delivery; afterwards every message whose qmail-queue exited 0 has been
/// delivered at least once, nothing partial was delivered, and leftovers are cleaned.
#[test]
fn crash_safety_under_random_sigkills() {
    use rand::Rng;
    let mut q = Q::new();
    let total: usize = std::env::var("RQMAIL_CRASH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let queue_kills = 50;
    let send_kills = 50;
    let mut rng = rand::rng();
    let pad = "x".repeat(3000);
    let body = |i: usize| format!("Subject: m{i}\n\n{pad}\nEND {i}\n");
    q.start();
    let mut accepted = Vec::new();
    let mut qkilled = 0;
    let mut skilled = 0;
    let kill_q_every = total / queue_kills;
    let kill_s_every = total / send_kills;
    for i in 0..total {
        let msg = body(i);
        let env = envelope("crash@remote.test", &["alice@example.org"]);
        if i % kill_q_every == kill_q_every / 2 && qkilled < queue_kills {
            // Start qmail-queue, feed part of it, kill it at a random moment.
            let (r, mut w) = std::io::pipe().unwrap();
            let mut cmd = Command::new(q.home.join("bin/qmail-queue"));
            cmd.env("QMAILHOME", &q.home)
                .stdin(Stdio::piped())
                .stdout(Stdio::from(r))
                .stderr(Stdio::null());
            let mut p = Proc::spawn(&mut cmd);
            drop(cmd);
            let mut stdin = p.child.stdin.take().unwrap();
            let cut = rng.random_range(0..msg.len());
            let _ = stdin.write_all(&msg.as_bytes()[..cut]);
            if rng.random_bool(0.5) {
                let _ = stdin.write_all(&msg.as_bytes()[cut..]);
                drop(stdin);
                let _ = w.write_all(&env[..rng.random_range(0..env.len())]);
            } else {
                drop(stdin);
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
            let _ = w.flush();
            p.kill_group();
            drop(w);
            qkilled += 1;
            continue;
        }
        if q.qq(msg.as_bytes(), &env) == 0 {
            accepted.push(i);
        }
        if i % kill_s_every == kill_s_every / 3 && skilled < send_kills {
            // Kill qmail-send, the spawners and running deliveries mid-flight; restart.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..20)));
            if let Some(mut p) = q.send.take() {
                p.kill_group();
            }
            skilled += 1;
            q.start();
        }
    }
    assert_eq!(accepted.len(), total - qkilled);
    // Everything accepted arrives.
    let mut seen = std::collections::HashSet::new();
    let deadline = Duration::from_secs(120);
    let ok = wait_until(deadline, || {
        for m in q.new_mail(&q.alice_maildir()) {
            if let Some(i) = m
                .split("Subject: m")
                .nth(1)
                .and_then(|r| r.split('\n').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                seen.insert(i);
            }
        }
        accepted.iter().all(|i| seen.contains(i))
    });
    let missing: Vec<_> = accepted
        .iter()
        .filter(|i| !seen.contains(i))
        .take(20)
        .collect();
    assert!(
        ok,
        "not delivered: {missing:?} ({} of {})",
        accepted.len() - seen.len().min(accepted.len()),
        accepted.len()
    );
    // Nothing half-written: every delivered message is whole.
    for m in q.new_mail(&q.alice_maildir()) {
        let i: usize = m
            .split("Subject: m")
            .nth(1)
            .and_then(|r| r.split('\n').next())
            .and_then(|n| n.parse().ok())
            .expect("delivered message has its subject");
        assert!(m.starts_with("Return-Path: <crash@remote.test>\nDelivered-To: alice@example.org\nReceived: (qmail "), "{m}");
        assert!(m.ends_with(&body(i)), "message {i} is not whole");
    }
    // Leftovers of killed qmail-queues: make them old and restart; they get cleaned.
    must(LONG, "todo processed", || q.queue_files("todo") == 0);
    q.stop();
    let old = nix::sys::time::TimeVal::new(
        (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            - 3 * 86400) as i64,
        0,
    );
    for sub in ["mess", "pid", "intd"] {
        for e in walkdir(&q.home.join("queue").join(sub)) {
            nix::sys::stat::utimes(&e, &old, &old).unwrap();
        }
    }
    q.start();
    must(LONG, "leftovers cleaned", || {
        q.queue_files("mess") == 0 && q.queue_files("pid") == 0 && q.queue_files("intd") == 0
    });
    let _ = (skilled, qkilled);
}

fn walkdir(d: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                v.extend(walkdir(&e.path()));
            } else {
                v.push(e.path());
            }
        }
    }
    v
}

#[allow(dead_code)]
fn read_all(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = fs::File::open(p).and_then(|mut f| f.read_to_end(&mut v));
    v
}

/// Real uid of a process (from /proc).
fn proc_uid(pid: u32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("Uid:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Pids whose argv[0] is `prog`.
fn pids_of(prog: &Path) -> Vec<u32> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(c) = fs::read(format!("/proc/{pid}/cmdline"))
            && c.split(|&b| b == 0).next() == Some(prog.as_os_str().as_encoded_bytes())
        {
            v.push(pid);
        }
    }
    v
}

#[test]
fn qmail_start_feeds_the_logger_and_runs_each_daemon_as_its_user() {
    let mut q = Q::new();
    let out = q.top.join("logger.out");
    fs::write(&out, "").unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o666)).unwrap();
    let mut cmd = Command::new(q.home.join("bin/qmail-start"));
    q.env(&mut cmd);
    cmd.arg("./Maildir/")
        .arg("/bin/sh")
        .arg("-c")
        .arg(format!("exec cat >> {}", out.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let p = Proc::spawn(&mut cmd);
    let logged = || fs::read_to_string(&out).unwrap_or_default();
    must(LONG, "log through the logger", || {
        logged().contains("status: local 0/10 remote 0/20\n")
    });
    assert_eq!(
        q.qq(
            b"Subject: via logger\n\n",
            &envelope("a@b.test", &["alice@example.org"])
        ),
        0
    );
    q.wait_mail(&q.alice_maildir(), "Subject: via logger");
    must(LONG, "end msg logged", || logged().contains("end msg "));
    if is_root() {
        assert_eq!(proc_uid(p.pid()), Some(64007), "qmail-send runs as qmails");
        for (prog, uid) in [
            ("qmail-clean", 64005),
            ("qmail-rspawn", 64006),
            ("qmail-lspawn", 0),
        ] {
            let pids = pids_of(&q.home.join("bin").join(prog));
            assert_eq!(pids.len(), 1, "{prog}");
            assert_eq!(proc_uid(pids[0]), Some(uid), "{prog}");
        }
        let m = q.new_mail(&q.alice_maildir()).concat();
        assert!(m.contains("Delivered-To: alice@example.org"));
        use std::os::unix::fs::MetadataExt;
        let f = fs::read_dir(q.alice_maildir().join("new"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            f.metadata().unwrap().uid(),
            q.alice_uid,
            "delivered as alice"
        );
    }
    let _ = &mut q;
}

#[test]
fn queuelifetime_turns_a_deferral_into_a_bounce() {
    let mut q = Q::new();
    fs::write(q.home.join("control/queuelifetime"), "0\n").unwrap();
    let missing = q.top.join("no-such-qmail-remote").display().to_string();
    q.start_with(&[("QMAILREMOTE", &missing)]);
    assert_eq!(
        q.qq(
            b"Subject: too old\n\n",
            &envelope("alice@example.org", &["x@remote.test"])
        ),
        0
    );
    q.wait_log(
        "delivery %: failure: Unable_to_run_qmail-remote./I'm_not_going_to_try_again;_this_message_has_been_in_the_queue_too_long./",
    );
    let b = q.wait_mail(&q.alice_maildir(), "Subject: failure notice");
    assert!(
        b.contains("<x@remote.test>:\nUnable to run qmail-remote.\nI'm not going to try again; this message has been in the queue too long.\n\n"),
        "{b}"
    );
    q.wait_log("end msg %");
}

#[test]
fn qmail_clean_protocol() {
    let q = Q::new();
    assert_eq!(q.qq(b"Subject: c\n\n", &envelope("a@b", &["c@d"])), 0);
    let id: u64 = fs::read_dir(q.home.join("queue/todo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let input = format!("todo/{id}\0foop/{id}\0foop/{id}\0bogus/1\0todo/x\0");
    let mut cmd = Command::new(q.home.join("bin/qmail-clean"));
    cmd.env("QMAILHOME", &q.home);
    let out = rqmail_tests::run_with_input(&mut cmd, Some(input.as_bytes()), LONG);
    assert_eq!(out.stdout, b"+++xx");
    assert_eq!(
        q.queue_files("todo") + q.queue_files("intd") + q.queue_files("mess"),
        0
    );
}
