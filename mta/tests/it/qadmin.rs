//! qmail-qadmin against a running qmail-send in a temporary home: listing, deleting by
//! recipient while qmail-send works, hold/release, retry, a partly delivered message, a
//! delete that waits for a running delivery, the metrics file (parsed by Debian's
//! prometheus_client), and bad input.
//!
//! As root (CI) the qmail ids are unused numeric ids from `QMAILHOME/ids`, as in the queue
//! tests; otherwise everything runs as the invoking user.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rqmail_tests::{
    Proc, TempDir, bin, external, free_port, must, tempdir, wait_until, write_exec,
};

use super::remote::{PY, Sink};

const LONG: Duration = Duration::from_secs(60);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn maildir(p: &Path, uid: u32, gid: u32) {
    fs::create_dir_all(p).unwrap();
    for s in ["", "tmp", "new", "cur"] {
        let d = p.join(s);
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        chown(&d, uid, gid);
    }
}

/// A qmail home with local user alice, remote.test routed to 127.0.0.1:port.
struct H {
    _t: TempDir,
    top: PathBuf,
    home: PathBuf,
    log: PathBuf,
    port: u16,
    send: Option<Proc>,
}

impl H {
    fn new() -> H {
        let t = tempdir();
        let top = t.path().to_path_buf();
        fs::set_permissions(&top, fs::Permissions::from_mode(0o755)).unwrap();
        let home = top.join("qmail");
        fs::create_dir(&home).unwrap();
        let root = is_root();
        if root {
            crate::common::write_test_ids(&home, 64000);
        }
        let out = Command::new(bin("qmail-install"))
            .arg(&home)
            .output()
            .unwrap();
        assert!(out.status.success(), "qmail-install: {out:?}");
        let out = Command::new(home.join("bin/config-fast"))
            .arg("example.org")
            .env("QMAILHOME", &home)
            .output()
            .unwrap();
        assert!(out.status.success(), "config-fast: {out:?}");
        let port = free_port();
        fs::write(
            home.join("control/smtproutes"),
            format!("remote.test:127.0.0.1:{port}\n"),
        )
        .unwrap();
        let (me_uid, me_gid) = (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
        let (alice_uid, gid) = if root {
            (64101, 64100)
        } else {
            (me_uid, me_gid)
        };
        let alice = top.join("alice");
        fs::create_dir(&alice).unwrap();
        fs::set_permissions(&alice, fs::Permissions::from_mode(0o755)).unwrap();
        chown(&alice, alice_uid, gid);
        maildir(&alice.join("Maildir"), alice_uid, gid);
        fs::write(alice.join(".qmail"), "./Maildir/\n").unwrap();
        chown(&alice.join(".qmail"), alice_uid, gid);
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
        let log = top.join("send.log");
        let h = H {
            _t: t,
            top,
            home,
            log,
            port,
            send: None,
        };
        let o = h.qadmin(&["init"]);
        assert!(o.status.success(), "init: {o:?}");
        h
    }

    fn start_with(&mut self, env: &[(&str, &str)]) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(self.home.join("bin/qmail-start"));
        cmd.arg("./Maildir/").env("QMAILHOME", &self.home);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.send = Some(Proc::spawn(&mut cmd));
        let ok = wait_until(LONG, || self.log_text().contains("status: local 0/"));
        assert!(ok, "qmail-send did not start:\n{}", self.log_text());
    }

    fn start(&mut self) {
        self.start_with(&[]);
    }

    fn alive(&mut self) -> bool {
        self.send
            .as_mut()
            .is_some_and(|p| p.child.try_wait().ok().flatten().is_none())
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count_log(&self, needle: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Queue one message through qmail-queue.
    fn qq(&self, subject: &str, sender: &str, rcpts: &[&str]) {
        let mut env = format!("F{sender}\0").into_bytes();
        for r in rcpts {
            env.extend_from_slice(format!("T{r}\0").as_bytes());
        }
        env.push(0);
        let msg = format!("Subject: {subject}\nFrom: {sender}\n\nbody of {subject}\n");
        let (r, mut w) = std::io::pipe().unwrap();
        let mut cmd = Command::new(self.home.join("bin/qmail-queue"));
        cmd.env("QMAILHOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(r))
            .stderr(Stdio::null());
        let mut p = Proc::spawn(&mut cmd);
        drop(cmd);
        let mut stdin = p.child.stdin.take().unwrap();
        stdin.write_all(msg.as_bytes()).unwrap();
        drop(stdin);
        w.write_all(&env).unwrap();
        drop(w);
        let st = p.wait_timeout(LONG).expect("qmail-queue finishes");
        assert!(st.success(), "qmail-queue: {st:?}");
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(self.home.join("bin").join(prog));
        c.env("QMAILHOME", &self.home);
        c
    }

    fn qadmin(&self, args: &[&str]) -> Output {
        let mut c = self.cmd("qmail-qadmin");
        c.args(args);
        rqmail_tests::run(&mut c)
    }

    fn qstat(&self) -> String {
        String::from_utf8(rqmail_tests::run(&mut self.cmd("qmail-qstat")).stdout).unwrap()
    }

    fn qread(&self) -> String {
        String::from_utf8(rqmail_tests::run(&mut self.cmd("qmail-qread")).stdout).unwrap()
    }

    /// Every queue file (relative path), for "queue untouched" checks.
    fn snapshot(&self) -> Vec<String> {
        let q = self.home.join("queue");
        let mut v: Vec<String> = walkdir::WalkDir::new(&q)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&q).unwrap().display().to_string())
            .filter(|p| !p.ends_with(".prom") && !p.ends_with(".tmp"))
            .collect();
        v.sort();
        v
    }

    fn mess_count(&self) -> usize {
        self.snapshot()
            .iter()
            .filter(|p| p.starts_with("mess/"))
            .count()
    }
}

impl Drop for H {
    fn drop(&mut self) {
        if let Some(p) = self.send.as_mut() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            let _ = p.wait_timeout(Duration::from_secs(10));
        }
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Summarise `list --json` with Python's json module: {id: (state, held, [(chan, addr, state)])}.
/// (state, held, recipients as (channel, address, state)).
type Listed = (String, bool, Vec<(String, String, String)>);

fn listing(h: &H) -> BTreeMap<u64, Listed> {
    let o = h.qadmin(&["--json", "list"]);
    assert!(o.status.success(), "list: {o:?}");
    let py = external(PY).expect("python3");
    let script = "import json,sys\nd=json.load(sys.stdin)\nfor m in d['messages']:\n  print(m['id'], m['state'], int(m['held']), ' '.join('%s,%s,%s' % (r['channel'], r['address'], r['state']) for r in m['recipients']))\n";
    let out =
        rqmail_tests::run_with_input(Command::new(py).args(["-c", script]), Some(&o.stdout), LONG);
    assert!(out.status.success(), "json: {out:?} {}", text(&o));
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let mut w = l.split(' ');
        let id: u64 = w.next().unwrap().parse().unwrap();
        let st = w.next().unwrap().to_string();
        let held = w.next().unwrap() == "1";
        let rc = w
            .filter(|r| !r.is_empty())
            .map(|r| {
                let p: Vec<&str> = r.split(',').collect();
                (p[0].to_string(), p[1].to_string(), p[2].to_string())
            })
            .collect();
        m.insert(id, (st, held, rc));
    }
    m
}

fn sink_on(port: u16) -> Option<Sink> {
    Sink::start_on("127.0.0.1", port)
}

#[test]
fn delete_by_recipient_while_qmail_send_runs_then_retry_delivers_the_rest() {
    let mut h = H::new();
    h.start();
    for i in 0..200 {
        let r = if i % 4 == 0 {
            "drop@remote.test"
        } else {
            "keep@remote.test"
        };
        h.qq(&format!("msg {i}"), "alice@example.org", &[r]);
    }
    // Every message has been tried once against the closed port.
    must(LONG, "200 deferrals", || {
        h.count_log("deferral: Sorry,_I_wasn't_able_to_establish") >= 200
    });
    let l = listing(&h);
    assert_eq!(l.len(), 200);
    assert!(l.values().all(|(st, held, rc)| st == "queued"
        && !held
        && rc.len() == 1
        && rc[0].0 == "remote"
        && rc[0].2 == "pending"));
    let drops: Vec<u64> = l
        .iter()
        .filter(|(_, v)| v.2[0].1 == "drop@remote.test")
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(drops.len(), 50);
    // The terminal form shows the same.
    let t = text(&h.qadmin(&["list"]));
    assert!(
        t.contains("-- 200 message(s), 0 not yet preprocessed, 0 held"),
        "{t}"
    );
    assert!(t.contains("remote pending drop@remote.test"), "{t}");

    let o = h.qadmin(&["delete", "--recipient", "DROP@remote.test"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        text(&o).starts_with("deleted 50 message(s)"),
        "{}",
        text(&o)
    );
    assert!(h.alive(), "qmail-send keeps running");
    let l = listing(&h);
    assert_eq!(l.len(), 150);
    assert!(drops.iter().all(|d| !l.contains_key(d)));
    assert_eq!(
        h.qstat(),
        "messages in queue: 150\nmessages in queue but not yet preprocessed: 0\n"
    );
    assert_eq!(h.qread().matches("\tremote\tkeep@remote.test").count(), 150);
    assert_eq!(h.count_log("qadmin: deleted msg"), 50);
    // No file of a deleted message is left.
    let snap = h.snapshot();
    for d in &drops {
        assert!(
            !snap.iter().any(|p| p.ends_with(&format!("/{d}"))),
            "files of {d} left: {snap:?}"
        );
    }

    // Make the host reachable; retry delivers at once (the next regular try is minutes away).
    let Some(sink) = sink_on(h.port) else { return };
    let o = h.qadmin(&["retry"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        text(&o).contains("queue entries made due now"),
        "{}",
        text(&o)
    );
    must(LONG, "150 messages delivered", || {
        sink.messages().len() >= 150
    });
    must(LONG, "queue empty", || h.mess_count() == 0);
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 150);
    assert!(
        msgs.iter().all(|m| m.to == ["keep@remote.test"]),
        "{msgs:?}"
    );
    assert!(h.alive());
}

#[test]
fn hold_keeps_a_message_until_release() {
    let mut h = H::new();
    h.start();
    h.qq("held one", "alice@example.org", &["held@remote.test"]);
    h.qq("free one", "alice@example.org", &["free@remote.test"]);
    must(LONG, "2 deferrals", || {
        h.count_log("deferral: Sorry,_I_wasn't_able") >= 2
    });
    let l = listing(&h);
    let held_id = *l
        .iter()
        .find(|(_, v)| v.2[0].1 == "held@remote.test")
        .unwrap()
        .0;
    let o = h.qadmin(&["hold", &held_id.to_string()]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(text(&o), format!("held 1 message(s): {held_id}\n"));
    assert!(listing(&h)[&held_id].1, "listed as held");
    assert!(text(&h.qadmin(&["list"])).contains("queued,held"));
    let Some(sink) = sink_on(h.port) else { return };
    assert!(h.qadmin(&["retry"]).status.success());
    must(LONG, "free one delivered", || {
        sink.messages().iter().any(|m| m.to == ["free@remote.test"])
    });
    // SIGALRM makes every queue entry due, the held one too: qmail-send must still not start it.
    h.send
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGALRM);
    assert!(
        h.qadmin(&["retry", "--domain", "remote.test"])
            .status
            .success()
    );
    must(LONG, "queue down to the held message", || {
        h.mess_count() == 1
    });
    assert!(!wait_until(Duration::from_secs(2), || sink
        .messages()
        .len()
        > 1));
    assert_eq!(
        h.qstat(),
        "messages in queue: 1\nmessages in queue but not yet preprocessed: 0\n"
    );
    let o = h.qadmin(&["release", &held_id.to_string()]);
    assert!(o.status.success(), "{o:?}");
    must(LONG, "held one delivered after release", || {
        sink.messages().iter().any(|m| m.to == ["held@remote.test"])
    });
    must(LONG, "queue empty", || h.mess_count() == 0);
    // Release of a message that is gone: unknown id.
    let o = h.qadmin(&["release", &held_id.to_string()]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
}

#[test]
fn partly_delivered_message_is_shown_and_delete_removes_what_is_left() {
    let mut h = H::new();
    h.start();
    h.qq(
        "half",
        "carol@example.org",
        &["alice@example.org", "bob@remote.test"],
    );
    must(LONG, "local success", || h.count_log("success: did_") >= 1);
    must(LONG, "remote deferral", || h.count_log("deferral:") >= 1);
    let l = listing(&h);
    assert_eq!(l.len(), 1);
    let (id, (st, _, rc)) = l.into_iter().next().unwrap();
    assert_eq!(st, "queued");
    let mut rc = rc;
    rc.sort();
    assert_eq!(
        rc,
        vec![
            ("local".into(), "alice@example.org".into(), "done".into()),
            ("remote".into(), "bob@remote.test".into(), "pending".into())
        ]
    );
    let o = h.qadmin(&["show", &id.to_string()]);
    assert!(o.status.success(), "{o:?}");
    let t = text(&o);
    assert!(t.contains("1/2 done"), "{t}");
    assert!(t.contains("    local  done    alice@example.org"), "{t}");
    assert!(t.contains("    remote pending bob@remote.test"), "{t}");
    assert!(t.contains("next remote attempt: in "), "{t}");
    assert!(t.contains("Subject: half\n"), "{t}");
    assert!(t.contains("body of half\n"), "{t}");
    let o = h.qadmin(&["--json", "show", &id.to_string()]);
    assert!(text(&o).contains("\"message\":"), "{o:?}");
    // qmail-qread agrees on what is pending.
    assert!(h.qread().contains("\tremote\tbob@remote.test\n"));

    let o = h.qadmin(&["delete", &id.to_string()]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(text(&o), format!("deleted 1 message(s): {id}\n"));
    assert_eq!(
        h.snapshot()
            .iter()
            .filter(|p| !p.starts_with("lock/"))
            .collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
    // The local delivery stays delivered; no bounce for the deleted rest.
    let new = fs::read_dir(h.top.join("alice/Maildir/new"))
        .unwrap()
        .count();
    assert_eq!(new, 1);
    assert_eq!(h.count_log("bounce msg"), 0);
    assert!(h.alive());
}

#[test]
fn delete_waits_for_a_running_delivery_and_nothing_is_delivered_after() {
    let mut h = H::new();
    let flag = h.top.join("go");
    let fake = h.top.join("fake-remote");
    write_exec(
        &fake,
        &format!(
            "#!/bin/sh\ncat >/dev/null\nwhile [ ! -e {} ]; do sleep 0.05; done\nprintf 'ZSorry, slow host. (#4.4.1)\\n\\0'\n",
            flag.display()
        ),
    );
    let f = fake.display().to_string();
    h.start_with(&[("QMAILREMOTE", &f)]);
    h.qq(
        "slow",
        "alice@example.org",
        &["a@remote.test", "b@remote.test"],
    );
    must(LONG, "delivery running", || {
        h.count_log("starting delivery") >= 1
    });
    let id = *listing(&h).keys().next().unwrap();
    let mut c = h.cmd("qmail-qadmin");
    c.args(["delete", &id.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = Proc::spawn(&mut c);
    must(LONG, "deletion marked", || {
        h.count_log(&format!("qadmin: delete msg {id} after running deliveries")) == 1
    });
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "qmail-qadmin waits for the running delivery"
    );
    let started = h.count_log("starting delivery");
    fs::write(&flag, "").unwrap();
    let st = p.wait_timeout(LONG).expect("qmail-qadmin finishes");
    let mut out = String::new();
    std::io::Read::read_to_string(p.child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(st.success(), "{out}");
    assert_eq!(out, format!("deleted 1 message(s): {id}\n"));
    assert!(h.log_text().contains(&format!("end msg {id}")));
    assert_eq!(h.mess_count(), 0);
    // Nothing new started for it, and retrying changes nothing.
    assert!(h.qadmin(&["retry"]).status.success());
    assert!(!wait_until(Duration::from_secs(2), || {
        h.count_log("starting delivery") > started
    }));
    assert_eq!(h.count_log("bounce msg"), 0);
}

#[test]
fn metrics_file_parses_with_prometheus_client_and_matches_the_queue() {
    let mut h = H::new();
    let Some(py) = external(PY) else { return };
    let ok = Command::new(&py)
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !rqmail_tests::under_ci(),
            "python3-prometheus-client missing under CI"
        );
        return;
    }
    h.start();
    for i in 0..5 {
        h.qq(&format!("m{i}"), "alice@example.org", &["x@remote.test"]);
    }
    h.qq("local", "alice@example.org", &["alice@example.org"]);
    must(LONG, "5 deferrals", || h.count_log("deferral:") >= 5);
    must(LONG, "local success", || h.count_log("success:") >= 1);
    let id = *listing(&h)
        .iter()
        .find(|(_, v)| v.2.iter().any(|r| r.1 == "x@remote.test"))
        .unwrap()
        .0;
    assert!(h.qadmin(&["hold", &id.to_string()]).status.success());
    let prom = h.home.join("queue/qadmin/metrics.prom");
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        labels = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))
        print('%s{%s} %g' % (s.name, labels, s.value))
"#;
    let mut got = BTreeMap::new();
    must(LONG, "metrics match the queue", || {
        let o = rqmail_tests::run(Command::new(&py).args(["-c", script]).arg(&prom));
        if !o.status.success() {
            return false;
        }
        got.clear();
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let (k, v) = l.rsplit_once(' ').unwrap();
            got.insert(k.to_string(), v.parse::<f64>().unwrap());
        }
        got.get("qmail_queue_messages{}") == Some(&5.0)
            && got.get("qmail_queue_held{}") == Some(&1.0)
    });
    assert_eq!(got["qmail_queue_todo{}"], 0.0);
    assert_eq!(got["qmail_queue_pending{channel=remote}"], 5.0);
    assert_eq!(got["qmail_queue_pending{channel=local}"], 0.0);
    assert_eq!(got["qmail_queue_bouncing{}"], 0.0);
    assert!(got["qmail_deliveries_total{channel=remote,outcome=deferral}"] >= 5.0);
    assert_eq!(
        got["qmail_deliveries_total{channel=local,outcome=success}"],
        1.0
    );
    assert_eq!(
        got["qmail_deliveries_total{channel=local,outcome=failure}"],
        0.0
    );
    assert_eq!(got["qmail_bounces_total{}"], 0.0);
    assert!(got["qmail_queue_oldest_message_age_seconds{}"] >= 0.0);
    assert!(got["qmail_queue_oldest_message_age_seconds{}"] < 3600.0);
    assert_eq!(
        h.qstat(),
        "messages in queue: 5\nmessages in queue but not yet preprocessed: 0\n"
    );
    // No temporary file is left where node_exporter would look.
    let names: Vec<String> = fs::read_dir(h.home.join("queue/qadmin"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    assert_eq!(names, ["metrics.prom"]);
}

#[test]
fn bad_input_gives_clear_errors_and_leaves_the_queue_alone() {
    let mut h = H::new();
    h.start();
    h.qq("one", "alice@example.org", &["x@remote.test"]);
    must(LONG, "deferral", || h.count_log("deferral:") >= 1);
    let id = listing(&h).keys().next().copied().unwrap();
    let before = h.snapshot();

    let o = h.qadmin(&["delete", "999999999"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
    assert!(
        err(&o).contains("no message 999999999 in the queue"),
        "{}",
        err(&o)
    );
    let o = h.qadmin(&["show", "12x"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
    assert!(err(&o).contains("bad message id \"12x\""), "{}", err(&o));
    let o = h.qadmin(&["delete", "--subject", "[abc"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
    assert!(err(&o).contains("is never closed"), "{}", err(&o));
    let o = h.qadmin(&["delete", "--header", "no colon here"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
    assert!(err(&o).contains("expected 'Name: pattern'"), "{}", err(&o));
    let o = h.qadmin(&["delete"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
    let o = h.qadmin(&["delete", "--sender", "nobody@*"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
    assert!(err(&o).contains("no message matches"), "{}", err(&o));
    let o = h.qadmin(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
    let o = h.qadmin(&["--json", "delete", "1x"]);
    assert!(text(&o).starts_with("{\"error\":"), "{o:?}");
    assert_eq!(h.snapshot(), before);

    // A lock holder that does not answer (a stopped qmail-send): withdrawn, untouched.
    h.send
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGSTOP);
    let o = h.qadmin(&["--timeout", "2", "delete", &id.to_string()]);
    h.send
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(o.status.code(), Some(111), "{o:?}");
    assert!(
        err(&o).contains("is locked (qmail-send runs) but the request was not taken within 2 s; request withdrawn, queue unchanged"),
        "{}",
        err(&o)
    );
    assert_eq!(h.snapshot(), before);
    assert!(h.alive());

    // A user who may not touch the queue.
    if is_root() {
        for args in [vec!["list"], vec!["delete", &id.to_string()], vec!["retry"]] {
            let mut c = h.cmd("qmail-qadmin");
            c.args(&args);
            // SAFETY: setgroups/setgid/setuid are async-signal-safe system calls; the closure
            // touches no memory shared with the parent and allocates nothing.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(65534) != 0
                        || libc::setuid(65534) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let o = rqmail_tests::run(&mut c);
            assert_eq!(o.status.code(), Some(111), "{args:?}: {o:?}");
            assert!(
                err(&o).contains("Permission denied"),
                "{args:?}: {}",
                err(&o)
            );
        }
        assert_eq!(h.snapshot(), before);
    } else {
        eprintln!("not root: the other-user case needs root to switch users");
    }
    // Still works after all that.
    let o = h.qadmin(&["delete", &id.to_string()]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(h.mess_count(), 0);
}

#[test]
fn without_qmail_send_changes_are_made_directly_under_the_lock() {
    let mut h = H::new();
    // Queue without qmail-send running: the message stays in todo/.
    h.qq("direct", "alice@example.org", &["x@remote.test"]);
    h.qq("keep", "alice@example.org", &["y@remote.test"]);
    let l = listing(&h);
    assert_eq!(l.len(), 2);
    assert!(l.values().all(|v| v.0 == "todo" && v.2[0].0 == "todo"));
    let o = h.qadmin(&["list", "--header", "subject: KEEP"]);
    assert!(
        text(&o).contains("-- 1 message(s), 1 not yet preprocessed, 0 held"),
        "{o:?}"
    );
    let o = h.qadmin(&["list", "--header", "X-Nothing: *"]);
    assert!(text(&o).contains("-- 0 message(s)"), "{o:?}");
    let o = h.qadmin(&["delete", "--subject", "DIR*"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        h.qstat(),
        "messages in queue: 1\nmessages in queue but not yet preprocessed: 1\n"
    );
    let keep = *listing(&h).keys().next().unwrap();
    assert!(h.qadmin(&["hold", &keep.to_string()]).status.success());
    // qmail-send starts, preprocesses, and honours the hold.
    h.start();
    must(LONG, "preprocessed", || {
        h.log_text().contains(&format!("info msg {keep}"))
    });
    assert!(!wait_until(Duration::from_secs(2), || {
        h.count_log("starting delivery") > 0
    }));
    let l = listing(&h);
    assert_eq!(l[&keep].0, "queued");
    assert!(l[&keep].1);
    assert!(h.qadmin(&["release", &keep.to_string()]).status.success());
    must(LONG, "delivery after release", || {
        h.count_log("starting delivery") > 0
    });
}

#[test]
fn retry_for_one_domain_leaves_the_others_waiting() {
    let mut h = H::new();
    fs::write(
        h.home.join("control/smtproutes"),
        format!(
            "remote.test:127.0.0.1:{0}\nother.test:127.0.0.1:{0}\n",
            h.port
        ),
    )
    .unwrap();
    h.start();
    h.qq("to remote", "alice@example.org", &["x@remote.test"]);
    h.qq("to other", "alice@example.org", &["y@Other.Test"]);
    must(LONG, "2 deferrals", || h.count_log("deferral:") >= 2);
    let Some(sink) = sink_on(h.port) else { return };
    let o = h.qadmin(&["retry", "--domain", "other.test"]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(text(&o), "1 queue entries made due now\n");
    must(LONG, "other.test delivered", || {
        sink.messages().iter().any(|m| m.to == ["y@Other.Test"])
    });
    assert!(!wait_until(Duration::from_secs(2), || sink
        .messages()
        .len()
        > 1));
    assert_eq!(h.mess_count(), 1);
    let o = h.qadmin(&["--json", "retry"]);
    assert_eq!(text(&o), "{\"retried\":1,\"gone\":[],\"errors\":[]}\n");
    must(LONG, "remote.test delivered", || sink.messages().len() == 2);
    must(LONG, "queue empty", || h.mess_count() == 0);
    let o = h.qadmin(&["retry", "--domain", "bad domain"]);
    assert_eq!(o.status.code(), Some(100), "{o:?}");
}

#[test]
fn control_metricsfile_puts_the_file_where_node_exporter_looks() {
    let mut h = H::new();
    let dir = h.top.join("textfile");
    fs::create_dir(&dir).unwrap();
    if is_root() {
        chown(&dir, 64007, 64000); // qmails
    }
    fs::write(
        h.home.join("control/metricsfile"),
        format!("{}\n", dir.join("qmail.prom").display()),
    )
    .unwrap();
    h.start();
    h.qq("one", "alice@example.org", &["x@remote.test"]);
    must(LONG, "metrics file with the message", || {
        fs::read_to_string(dir.join("qmail.prom"))
            .is_ok_and(|t| t.contains("\nqmail_queue_messages 1\n"))
    });
    let t = fs::read_to_string(dir.join("qmail.prom")).unwrap();
    assert!(t.starts_with("# HELP qmail_queue_messages "), "{t}");
    assert!(t.contains("# TYPE qmail_deliveries_total counter\n"), "{t}");
    assert!(!h.home.join("queue/qadmin/metrics.prom").exists());
    // Only the finished file carries the .prom suffix.
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    assert_eq!(names, ["qmail.prom"]);
}

#[test]
fn a_deletion_cut_short_by_a_crash_is_finished_at_the_next_start() {
    let mut h = H::new();
    h.start();
    h.qq("crash", "alice@example.org", &["x@remote.test"]);
    must(LONG, "deferral", || h.count_log("deferral:") >= 1);
    let id = *listing(&h).keys().next().unwrap();
    let q = h.home.join("queue");
    let s = id % 23;
    let mess = q.join(format!("mess/{s}/{id}"));
    let md = fs::metadata(&mess).unwrap();
    let generation = {
        use std::os::unix::fs::MetadataExt;
        md.mtime() as u64 * 1_000_000_000 + md.mtime_nsec() as u64
    };
    // Stop qmail-send, then leave what a crash after the first step of a delete leaves: the
    // claimed request in cur/ and info gone, everything else still there.
    h.send
        .as_ref()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGTERM);
    assert!(h.send.as_mut().unwrap().wait_timeout(LONG).is_some());
    h.send = None;
    fs::write(
        q.join("qadmin/cur/123.crash"),
        format!("delete\n{id} {generation}\n"),
    )
    .unwrap();
    fs::remove_file(q.join(format!("info/{s}/{id}"))).unwrap();
    assert!(q.join(format!("remote/{s}/{id}")).exists());
    let attempts = h.count_log("starting delivery");
    h.start();
    must(LONG, "request answered", || {
        fs::read_to_string(q.join("qadmin/done/123.crash"))
            .is_ok_and(|t| t == format!("{id} deleted\n"))
    });
    must(LONG, "mess removed", || !mess.exists());
    assert!(!q.join("qadmin/cur/123.crash").exists());
    assert!(!q.join(format!("remote/{s}/{id}")).exists());
    assert_eq!(h.count_log("starting delivery"), attempts);
    assert_eq!(
        h.qstat(),
        "messages in queue: 0\nmessages in queue but not yet preprocessed: 0\n"
    );
}
