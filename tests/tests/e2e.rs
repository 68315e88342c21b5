//! End to end: boot the whole mail system with `qmailctl demo` in a temporary root under our
//! svscan, and talk to it with clients no one here wrote (Python's smtplib and poplib, swaks,
//! curl) and with Debian's daemontools `svstat`.

use rqmail_tests::*;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const PY: &str = "/usr/bin/python3";

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A running demo: `qmailctl demo HOME` in the foreground, in its own process group.
struct Demo {
    _tmp: TempDir,
    home: PathBuf,
    smtp: u16,
    pop3: u16,
    proc: Option<Proc>,
}

impl Demo {
    fn boot() -> Demo {
        let tmp = tempdir();
        let home = tmp.path().join("qmail");
        let smtp = free_port();
        let pop3 = free_port();
        let mut d = Demo {
            _tmp: tmp,
            home,
            smtp,
            pop3,
            proc: None,
        };
        d.start();
        d
    }

    fn start(&mut self) {
        let out = std::fs::File::create(self._tmp.path().join("demo.out")).expect("demo.out");
        let err = out.try_clone().expect("dup");
        let mut cmd = Command::new(checkout().join("rc/qmailctl"));
        cmd.arg("demo")
            .arg(&self.home)
            .args(["--smtp-port", &self.smtp.to_string()])
            .args(["--pop3-port", &self.pop3.to_string()])
            .env("RQMAIL_BIN", bin_dir())
            .env_remove("QMAILHOME")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        self.proc = Some(Proc::spawn(&mut cmd));
        let (smtp, pop3) = (self.smtp, self.pop3);
        if !wait_until(Duration::from_secs(90), || {
            TcpStream::connect(("127.0.0.1", smtp)).is_ok()
                && TcpStream::connect(("127.0.0.1", pop3)).is_ok()
        }) {
            panic!("demo did not come up:\n{}", self.output());
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self._tmp.path().join("demo.out")).unwrap_or_default()
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.home.join("bin").join(name)
    }

    fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin(name));
        c.env("QMAILHOME", &self.home);
        c
    }

    fn service(&self, name: &str) -> PathBuf {
        self.home.join("service").join(name)
    }

    fn password(&self, user: &str) -> String {
        let text = std::fs::read_to_string(self.home.join("demo-passwords")).expect("passwords");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{user}:")).map(str::to_string))
            .expect("user in demo-passwords")
    }

    fn maildir_new(&self, user: &str) -> PathBuf {
        self.home.join("home").join(user).join("Maildir/new")
    }

    fn count_new(&self, user: &str) -> usize {
        std::fs::read_dir(self.maildir_new(user))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The pid svstat reports for a service directory, if up.
    fn pid(&self, dir: &Path) -> Option<u32> {
        let out = run(Command::new(bin("svstat")).arg(dir));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let i = text.find("(pid ")?;
        text[i + 5..].split(')').next()?.parse().ok()
    }

    fn smtp_send(&self, to: &str, subject: &str) {
        let script = format!(
            "import smtplib\n\
             s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)\n\
             s.sendmail('tester@example.org', ['{to}'], 'From: tester@example.org\\r\\nTo: {to}\\r\\nSubject: {subject}\\r\\n\\r\\nhello {subject}\\r\\n')\n\
             s.quit()\n",
            port = self.smtp
        );
        let out = run_with_input(
            Command::new(PY).arg("-c").arg(script),
            None,
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "smtplib failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            let status = p.wait_timeout(Duration::from_secs(60));
            assert!(status.is_some(), "qmailctl demo did not stop on SIGTERM");
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            let _ = p.wait_timeout(Duration::from_secs(20));
        }
        kill_everything_under(&self.home);
    }
}

/// Processes whose command line or working directory lies under `root`.
fn processes_under(root: &Path) -> Vec<(i32, String)> {
    let root = root.to_string_lossy().to_string();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_default();
        if cmdline.contains(&root) || cwd.starts_with(&root) || exe.starts_with(&root) {
            found.push((pid, cmdline));
        }
    }
    found
}

fn kill_everything_under(root: &Path) {
    for (pid, _) in processes_under(root) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn read_all(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

/// Every line of a multilog directory: rotated files in name order, then current.
fn log_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('@'))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.push(dir.join("current"));
    files
        .iter()
        .flat_map(|f| {
            read_all(f)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn demo_boots_delivers_and_stops_cleanly() {
    let mut demo = Demo::boot();

    // SMTP in with Python's smtplib, to a virtual user.
    demo.smtp_send("alice@localhost", "first");
    must(Duration::from_secs(60), "alice's message in Maildir/new", || {
        demo.count_new("alice") == 1
    });
    let msg = std::fs::read_dir(demo.maildir_new("alice"))
        .expect("maildir")
        .flatten()
        .next()
        .expect("one message")
        .path();
    let text = read_all(&msg);
    assert!(text.starts_with("Return-Path: <tester@example.org>\n"), "{text}");
    assert!(text.contains("Delivered-To: alice@localhost\n"), "{text}");
    assert!(text.contains("hello first"), "{text}");

    // POP3 out with Python's poplib: list, retrieve, delete.
    let script = format!(
        "import poplib\n\
         p = poplib.POP3('127.0.0.1', {port}, timeout=30)\n\
         p.user('alice'); p.pass_('{pw}')\n\
         n, size = p.stat(); assert n == 1, n\n\
         resp, lines, octets = p.retr(1)\n\
         body = b'\\n'.join(lines).decode()\n\
         assert 'hello first' in body, body\n\
         p.dele(1); p.quit()\n\
         print('ok')\n",
        port = demo.pop3,
        pw = demo.password("alice")
    );
    let out = run(Command::new(PY).arg("-c").arg(&script));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "poplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let cur = demo.home.join("home/alice/Maildir/cur");
    must(Duration::from_secs(10), "deleted message gone", || {
        demo.count_new("alice") == 0 && std::fs::read_dir(&cur).map(|d| d.count()).ok() == Some(0)
    });

    // sendmail -t, as cron and mailx call it.
    let out = run_with_input(
        demo.cmd("sendmail").arg("-t").arg("-i"),
        Some(b"To: bob@demo.example\nSubject: via sendmail\n\nhello bob\n"),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "sendmail -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    must(Duration::from_secs(60), "bob's message", || {
        demo.count_new("bob") == 1
    });

    // Every service and log is up, by our svstat and by Debian's.
    for s in ["qmail-send", "qmail-smtpd", "qmail-pop3d"] {
        for d in [demo.service(s), demo.service(s).join("log")] {
            let out = run(Command::new(bin("svstat")).arg(&d));
            let line = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(line.contains(": up (pid "), "{line}");
            if let Some(theirs) = external("/usr/bin/svstat") {
                let out = run(Command::new(theirs).arg(&d));
                let line = String::from_utf8_lossy(&out.stdout).to_string();
                assert!(line.contains(": up (pid "), "Debian svstat: {line}");
            }
        }
    }

    // Each service's log has tai64n-stamped lines.
    for s in ["qmail-send", "qmail-smtpd", "qmail-pop3d"] {
        let dir = demo.home.join("supervise").join(s).join("log/main");
        let lines = log_lines(&dir);
        assert!(!lines.is_empty(), "no log lines in {}", dir.display());
        for l in &lines {
            assert!(
                l.len() > 26 && l.starts_with("@4000") && l.as_bytes()[25] == b' ',
                "unstamped line in {}: {l:?}",
                dir.display()
            );
        }
    }
    let send_log = log_lines(&demo.home.join("supervise/qmail-send/log/main")).join("\n");
    assert!(send_log.contains(" new msg "), "{send_log}");
    assert!(send_log.contains(" delivery 1: success: "), "{send_log}");

    // qmailctl stat shows every service and the queue.
    let out = run(demo.cmd("qmailctl").arg("stat"));
    let stat = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stat.contains("qmail-smtpd: up (pid "), "{stat}");
    assert!(stat.contains("qmail-send/log: up (pid "), "{stat}");
    assert!(stat.contains("messages in queue: "), "{stat}");

    // The analyzer reads the send log as it is.
    let out = run(demo
        .cmd("qmailanalog")
        .arg("zoverall")
        .arg(demo.home.join("supervise/qmail-send/log/main")));
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{report}");
    assert!(report.contains("Completed messages: 2"), "{report}");

    // SIGTERM stops everything; nothing is left running.
    demo.stop();
    must(Duration::from_secs(30), "no process left under the demo", || {
        processes_under(&demo.home).is_empty()
    });
}

#[test]
fn supervise_restarts_killed_daemons_and_no_mail_or_log_line_is_lost() {
    let demo = Demo::boot();
    let send = demo.service("qmail-send");
    let smtpd = demo.service("qmail-smtpd");
    let send_log = send.join("log");
    let mut sent = 0;
    for dir in [&send, &smtpd, &send_log] {
        let old = demo.pid(dir).expect("service up");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9");
        must(
            Duration::from_secs(20),
            &format!("{} restarted", dir.display()),
            || demo.pid(dir).is_some_and(|p| p != old),
        );
        let port = demo.smtp;
        must(Duration::from_secs(20), "smtpd accepting", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        for _ in 0..3 {
            sent += 1;
            demo.smtp_send("bob@localhost", &format!("m{sent}"));
        }
    }
    must(Duration::from_secs(90), "every message delivered", || {
        demo.count_new("bob") == sent
    });
    // Every delivery qmail-send logged reached the log, even across the logger's kill.
    must(Duration::from_secs(30), "every delivery logged", || {
        log_lines(&send_log.join("main"))
            .iter()
            .filter(|l| l.contains(": success: "))
            .count()
            == sent
    });
}

#[test]
fn svc_controls_smtpd_and_qmailctl_stop_leaves_nothing() {
    let demo = Demo::boot();
    let smtpd = demo.service("qmail-smtpd");
    let port = demo.smtp;
    let out = run(Command::new(bin("svc")).arg("-d").arg(&smtpd));
    assert!(out.status.success());
    must(Duration::from_secs(20), "port refuses connections", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    let out = run(Command::new(bin("svc")).arg("-u").arg(&smtpd));
    assert!(out.status.success());
    must(Duration::from_secs(20), "port accepts again", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // doqueue: qmail-tcpok + ALRM to qmail-send.
    let out = run(demo.cmd("qmailctl").arg("doqueue"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sending ALRM signal to qmail-send"));

    let out = run(demo.cmd("qmailctl").arg("stop"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    must(Duration::from_secs(30), "no process left", || {
        processes_under(&demo.home).is_empty()
    });
}
