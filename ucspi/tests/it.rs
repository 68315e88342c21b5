//! Integration tests for tcpserver, tcprules, tcprulescheck and tcp-env: real sockets on
//! loopback, a shell script as the served program, and Debian's ucspi-tcp for compatibility.

use rqmail_tests::{Proc, bin, external, must, run, run_with_input, tempdir, write_exec};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(30);

/// A running tcpserver: started with `-1` on port 0, so it tells us its port.
struct Server {
    proc: Proc,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(dir: &Path, opts: &[&str], host: &str, prog: &[&str]) -> Server {
        let log = dir.join(format!("tcpserver-{}.log", rand_suffix()));
        let errf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin("tcpserver"));
        cmd.arg("-1")
            .args(opts)
            .arg(host)
            .arg("0")
            .args(prog)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(errf));
        let mut proc = Proc::spawn(&mut cmd);
        let out = proc.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(LONG).expect("tcpserver printed no port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("tcpserver -1 printed {line:?}"));
        Server { proc, port, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn lines(&self) -> Vec<String> {
        self.log().lines().map(String::from).collect()
    }

    fn wait_log(&self, what: &str, cond: impl Fn(&str) -> bool) {
        must(LONG, what, || cond(&self.log()));
    }

    fn connect(&self, host: &str) -> TcpStream {
        let s = TcpStream::connect((host, self.port)).expect("connect");
        s.set_read_timeout(Some(LONG)).unwrap();
        s
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn read_all(mut s: TcpStream) -> String {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read");
    String::from_utf8_lossy(&v).into_owned()
}

fn env_script(dir: &Path) -> PathBuf {
    let p = dir.join("showenv");
    write_exec(
        &p,
        "#!/bin/sh\nenv | grep -E '^(PROTO|TCP|RELAYCLIENT|FOO|RULEVAR)' | sort\n",
    );
    p
}

fn tcprules(dir: &Path, name: &str, text: &str) -> (PathBuf, std::process::Output) {
    let cdb = dir.join(format!("{name}.cdb"));
    let tmp = dir.join(format!("{name}.tmp"));
    let out = run_with_input(
        Command::new(bin("tcprules")).arg(&cdb).arg(&tmp),
        Some(text.as_bytes()),
        LONG,
    );
    (cdb, out)
}

fn env_map(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn child_sees_connection_environment_and_log_lines_are_exact() {
    let d = tempdir();
    let script = env_script(d.path());
    let srv = Server::start(
        d.path(),
        &["-v", "-R", "-H", "-l0", "-c", "5"],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    let s = srv.connect("127.0.0.1");
    let client_port = s.local_addr().unwrap().port();
    let env = env_map(&read_all(s));
    assert_eq!(env.get("PROTO").map(String::as_str), Some("TCP"));
    assert_eq!(env.get("TCPLOCALHOST").map(String::as_str), Some("0"));
    assert_eq!(env.get("TCPLOCALIP").map(String::as_str), Some("127.0.0.1"));
    assert_eq!(env.get("TCPLOCALPORT"), Some(&srv.port.to_string()));
    assert_eq!(
        env.get("TCPREMOTEIP").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(env.get("TCPREMOTEPORT"), Some(&client_port.to_string()));
    assert!(!env.contains_key("TCPREMOTEHOST"), "-H: {env:?}");
    assert!(!env.contains_key("TCPREMOTEINFO"), "-R: {env:?}");
    srv.wait_log("end line", |l| l.contains("tcpserver: end "));
    srv.wait_log("final status", |l| l.ends_with("tcpserver: status: 0/5\n"));
    let lines = srv.lines();
    let pid = lines[2]
        .strip_prefix("tcpserver: pid ")
        .and_then(|r| r.strip_suffix(" from 127.0.0.1"))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .to_string();
    assert_eq!(
        lines,
        vec![
            "tcpserver: status: 0/5".to_string(),
            "tcpserver: status: 1/5".to_string(),
            format!("tcpserver: pid {pid} from 127.0.0.1"),
            format!(
                "tcpserver: ok {pid} 0:127.0.0.1:{} :127.0.0.1::{client_port}",
                srv.port
            ),
            format!("tcpserver: end {pid} status 0"),
            "tcpserver: status: 0/5".to_string(),
        ]
    );
}

#[test]
fn banner_remote_host_lookup_and_exit_status() {
    let d = tempdir();
    let script = d.path().join("prog");
    write_exec(
        &script,
        "#!/bin/sh\necho \"host=${TCPREMOTEHOST-unset}\"\nexit 3\n",
    );
    let srv = Server::start(
        d.path(),
        &["-v", "-R", "-h", "-B", "220 banner\r\n"],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    let out = read_all(srv.connect("127.0.0.1"));
    assert!(out.starts_with("220 banner\r\nhost="), "{out:?}");
    // TCPREMOTEHOST is whatever the resolver says for 127.0.0.1 (normally "localhost"); when it
    // is set, the ok line carries it.
    let host = out.trim_end().rsplit("host=").next().unwrap().to_string();
    srv.wait_log("end line", |l| l.contains(" status 768\n"));
    if host != "unset" {
        assert!(
            srv.log().contains(&format!(" {host}:127.0.0.1::")),
            "{}",
            srv.log()
        );
    }
}

#[test]
fn rules_allow_deny_and_set_environment() {
    let d = tempdir();
    let script = env_script(d.path());
    let (cdb, out) = tcprules(
        d.path(),
        "allow",
        "# local relay\n127.0.0.1:allow,RELAYCLIENT=\"\",FOO=/bar baz/\n:deny\n",
    );
    assert!(out.status.success(), "{out:?}");
    let srv = Server::start(
        d.path(),
        &["-v", "-R", "-H", "-l0", "-x", cdb.to_str().unwrap()],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    let env = env_map(&read_all(srv.connect("127.0.0.1")));
    assert_eq!(env.get("RELAYCLIENT").map(String::as_str), Some(""));
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar baz"));
    assert_eq!(
        env.get("TCPREMOTEIP").map(String::as_str),
        Some("127.0.0.1")
    );

    // A prefix rule that denies 127.: the program never runs, the child exits 100.
    let (deny, out) = tcprules(
        d.path(),
        "deny",
        "10.0.0.:allow\n127.:deny\n:allow,RULEVAR=\"x\"\n",
    );
    assert!(out.status.success(), "{out:?}");
    let srv2 = Server::start(
        d.path(),
        &["-v", "-R", "-H", "-l0", "-x", deny.to_str().unwrap()],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    let s = srv2.connect("127.0.0.1");
    let port = s.local_addr().unwrap().port();
    assert_eq!(read_all(s), "");
    srv2.wait_log("end line", |l| l.contains(" status 25600\n"));
    let log = srv2.log();
    assert!(
        log.lines().any(|l| l.starts_with("tcpserver: deny ")
            && l.ends_with(&format!(" 0:127.0.0.1:{} :127.0.0.1::{port}", srv2.port))),
        "{log}"
    );
}

#[test]
fn missing_rules_cdb_drops_unless_x_allows_it() {
    let d = tempdir();
    let script = env_script(d.path());
    let missing = d.path().join("nonexistent.cdb");
    let srv = Server::start(
        d.path(),
        &["-v", "-R", "-H", "-l0", "-x", missing.to_str().unwrap()],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "");
    srv.wait_log("end line", |l| l.contains(" status 28416\n"));
    assert!(
        srv.log().contains(&format!(
            "tcpserver: warning: dropping connection, unable to read {}: file does not exist\n",
            missing.display()
        )),
        "{}",
        srv.log()
    );
    let srv2 = Server::start(
        d.path(),
        &["-X", "-R", "-H", "-x", missing.to_str().unwrap()],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    assert!(read_all(srv2.connect("127.0.0.1")).contains("PROTO=TCP"));
}

#[test]
fn concurrency_limit_makes_the_41st_connection_wait() {
    let d = tempdir();
    let prog = d.path().join("prog");
    // Greets, then waits until the client closes its side.
    write_exec(&prog, "#!/bin/sh\necho hi\ncat >/dev/null\necho bye\n");
    let srv = Server::start(
        d.path(),
        &["-v", "-R", "-H", "-l0", "-c", "40", "-b", "64"],
        "127.0.0.1",
        &[prog.to_str().unwrap()],
    );
    let greet = |s: &TcpStream| {
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    };
    let mut open: Vec<TcpStream> = (0..40)
        .map(|_| {
            let s = srv.connect("127.0.0.1");
            assert_eq!(greet(&s), "hi\n");
            s
        })
        .collect();
    // The 41st connects (the kernel completes the handshake) but is not served yet.
    let c = srv.connect("127.0.0.1");
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 16];
    // Another test's signal handler may interrupt the read: that is not an answer, read again.
    let r = loop {
        match (&c).read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "41st connection was served while 40 were running: {r:?}"
    );
    assert_eq!(srv.log().matches("tcpserver: pid ").count(), 40);
    assert!(srv.log().contains("tcpserver: status: 40/40\n"));
    // Free a slot: the waiting connection is served.
    let a = open.remove(0);
    a.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(a), "bye\n");
    c.set_read_timeout(Some(LONG)).unwrap();
    assert_eq!(greet(&c), "hi\n");
    open.push(c);
    for s in &open {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    drop(open);
    srv.wait_log("41 ends", |l| l.matches("tcpserver: end ").count() == 41);
    srv.wait_log("back to 0/40", |l| l.ends_with("tcpserver: status: 0/40\n"));
    let log = srv.log();
    assert!(!log.contains("status: 41/40"), "{log}");
    // Every status line stays within the limit and counts up and down by one.
    let counts: Vec<i64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("tcpserver: status: "))
        .map(|s| s.trim_end_matches("/40").parse().unwrap())
        .collect();
    assert!(counts.iter().all(|&n| (0..=40).contains(&n)), "{counts:?}");
    assert!(
        counts.windows(2).all(|w| (w[1] - w[0]).abs() == 1),
        "{counts:?}"
    );
}

#[test]
fn ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback in this environment");
        return;
    }
    let d = tempdir();
    let script = env_script(d.path());
    let (cdb, out) = tcprules(d.path(), "v6", "[::1]:allow,FOO=\"six\"\n:deny\n");
    assert!(out.status.success(), "{out:?}");
    let srv = Server::start(
        d.path(),
        &["-v", "-R", "-H", "-l0", "-x", cdb.to_str().unwrap()],
        "::1",
        &[script.to_str().unwrap()],
    );
    let env = env_map(&read_all(srv.connect("::1")));
    assert_eq!(env.get("PROTO").map(String::as_str), Some("TCP6"));
    assert_eq!(env.get("TCPREMOTEIP").map(String::as_str), Some("::1"));
    assert_eq!(env.get("TCP6REMOTEIP").map(String::as_str), Some("::1"));
    assert_eq!(env.get("TCPLOCALIP").map(String::as_str), Some("::1"));
    assert_eq!(env.get("FOO").map(String::as_str), Some("six"));
    // -6 with host 0 listens on :: and takes IPv4 too (shown as plain IPv4).
    let srv2 = Server::start(
        d.path(),
        &["-6", "-R", "-H", "-l0"],
        "0",
        &[script.to_str().unwrap()],
    );
    let env = env_map(&read_all(srv2.connect("127.0.0.1")));
    assert_eq!(env.get("PROTO").map(String::as_str), Some("TCP"));
    assert_eq!(
        env.get("TCPREMOTEIP").map(String::as_str),
        Some("127.0.0.1")
    );
}

#[test]
fn bad_rules_name_the_line_and_keep_the_old_cdb() {
    let d = tempdir();
    let (cdb, out) = tcprules(d.path(), "r", "127.:allow\n");
    assert!(out.status.success());
    let before = std::fs::read(&cdb).unwrap();
    let (_, out) = tcprules(d.path(), "r", "127.:allow\n# fine\n10.:allow,RELAYCLIENT\n");
    assert_eq!(out.status.code(), Some(100));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        "tcprules: fatal: unable to parse this line: 10.:allow,RELAYCLIENT (line 3 of the input)\n"
    );
    assert_eq!(std::fs::read(&cdb).unwrap(), before);
    assert!(!d.path().join("r.tmp").exists());
    // Unwritable temporary file: exit 111 naming it.
    let out = run_with_input(
        Command::new(bin("tcprules"))
            .arg(d.path().join("x.cdb"))
            .arg(d.path().join("no/such/dir/x.tmp")),
        Some(b":allow\n"),
        LONG,
    );
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unable to create "));
    // Usage.
    assert_eq!(
        run(&mut Command::new(bin("tcprules"))).status.code(),
        Some(100)
    );
}

#[test]
fn tcprulescheck_reports_the_rule() {
    let d = tempdir();
    let (cdb, out) = tcprules(
        d.path(),
        "c",
        "127.0.0.1:allow,RELAYCLIENT=\"\",FOO=/bar baz/\n10.2-3.:deny\n=.example.com:deny\n:deny\n",
    );
    assert!(out.status.success());
    let check = |ip: &str, host: Option<&str>| {
        let mut c = Command::new(bin("tcprulescheck"));
        c.arg(&cdb)
            .env("TCPREMOTEIP", ip)
            .env_remove("TCPREMOTEINFO");
        match host {
            Some(h) => c.env("TCPREMOTEHOST", h),
            None => c.env_remove("TCPREMOTEHOST"),
        };
        String::from_utf8(run(&mut c).stdout).unwrap()
    };
    assert_eq!(
        check("127.0.0.1", None),
        "rule 127.0.0.1:\nset environment variable RELAYCLIENT=\nset environment variable FOO=bar baz\nallow connection\n"
    );
    assert_eq!(check("10.3.9.9", None), "rule 10.3.:\ndeny connection\n");
    assert_eq!(check("10.4.9.9", None), "rule :\ndeny connection\n");
    assert_eq!(
        check("9.9.9.9", Some("mx.example.com")),
        "rule =.example.com:\ndeny connection\n"
    );
    let out = run(Command::new(bin("tcprulescheck")).arg(d.path().join("nope.cdb")));
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("file does not exist"));
}

/// Debian's tcprules and ours make byte-identical cdbs; each side reads the other's.
#[test]
fn cdb_interchangeable_with_debian_ucspi_tcp() {
    let Some(deb_rules) = external("/usr/bin/tcprules") else {
        return;
    };
    let Some(deb_check) = external("/usr/bin/tcprulescheck") else {
        return;
    };
    let d = tempdir();
    let text = "127.0.0.1:allow,RELAYCLIENT=\"\",FOO=/bar baz/\n10.2-3.:deny\n1.2.3.37-39:allow\n\
                =host.example.org:allow,X=\"1\"\n=.example.com:deny\nAB@1.2.3.4:allow\n\
                nocolon\n# comment\n1.1.1.3:deny,X=xvx\n:deny\n";
    let (ours, out) = tcprules(d.path(), "ours", text);
    assert!(out.status.success(), "{out:?}");
    let theirs = d.path().join("theirs.cdb");
    let out = run_with_input(
        Command::new(&deb_rules)
            .arg(&theirs)
            .arg(d.path().join("theirs.tmp")),
        Some(text.as_bytes()),
        LONG,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap()
    );
    // Same answers from both tcprulescheck programs, on both files.
    let cases: &[(&str, Option<&str>, Option<&str>)] = &[
        ("127.0.0.1", None, None),
        ("10.2.0.1", None, None),
        ("1.2.3.38", None, None),
        ("9.9.9.9", Some("host.example.org"), None),
        ("9.9.9.9", Some("a.example.com"), None),
        ("1.2.3.4", None, Some("AB")),
        ("1.1.1.3", None, None),
        ("8.8.8.8", None, None),
    ];
    for file in [&ours, &theirs] {
        for (ip, host, info) in cases {
            let go = |prog: &Path| {
                let mut c = Command::new(prog);
                c.arg(file).env("TCPREMOTEIP", ip);
                for (k, v) in [("TCPREMOTEHOST", host), ("TCPREMOTEINFO", info)] {
                    match v {
                        Some(v) => c.env(k, v),
                        None => c.env_remove(k),
                    };
                }
                let o = run(&mut c);
                (
                    o.status.code(),
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                )
            };
            assert_eq!(
                go(&bin("tcprulescheck")),
                go(&deb_check),
                "{ip} {host:?} {info:?}"
            );
        }
    }
    // Debian's parse errors are ours too (exit 100, same message start).
    let out = run_with_input(
        Command::new(&deb_rules)
            .arg(d.path().join("e.cdb"))
            .arg(d.path().join("e.tmp")),
        Some(b"1.2-3-4.5:allow\n"),
        LONG,
    );
    let (_, ours_out) = tcprules(d.path(), "e2", "1.2-3-4.5:allow\n");
    assert_eq!(out.status.code(), ours_out.status.code());
    assert!(
        String::from_utf8_lossy(&ours_out.stderr)
            .starts_with(String::from_utf8_lossy(&out.stderr).trim_end())
    );

    // Our tcpserver applies Debian's cdb.
    let script = env_script(d.path());
    let srv = Server::start(
        d.path(),
        &["-R", "-H", "-x", theirs.to_str().unwrap()],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    let env = env_map(&read_all(srv.connect("127.0.0.1")));
    assert_eq!(env.get("FOO").map(String::as_str), Some("bar baz"));
    assert_eq!(env.get("RELAYCLIENT").map(String::as_str), Some(""));
}

/// Debian's tcpserver and ours log the same lines for the same connection (modulo pids/ports).
#[test]
fn log_lines_match_debian_tcpserver() {
    let Some(deb) = external("/usr/bin/tcpserver") else {
        return;
    };
    let d = tempdir();
    let script = env_script(d.path());
    let (cdb, _) = tcprules(d.path(), "m", "127.0.0.1:allow,FOO=\"1\"\n:deny\n");
    let normalise = |log: &str, port: u16| -> Vec<String> {
        log.lines()
            .map(|l| {
                let l = l.replace(&port.to_string(), "PORT");
                l.split(' ')
                    .map(|w| {
                        if w.chars().all(|c| c.is_ascii_digit()) && w.len() > 1 && w != "25600" {
                            "N".to_string()
                        } else if let Some(i) = w.rfind("::") {
                            format!("{}::CPORT", &w[..i])
                        } else {
                            w.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let mut logs = Vec::new();
    for prog in [deb, bin("tcpserver")] {
        let srv = Server::start_with(&prog, d.path(), &cdb, &script);
        assert!(read_all(srv.connect("127.0.0.1")).contains("FOO=1"));
        srv.wait_log("status 0", |l| l.matches("status: 0/40").count() == 2);
        logs.push(normalise(&srv.log(), srv.port));
    }
    assert_eq!(logs[0], logs[1]);
}

impl Server {
    fn start_with(prog: &Path, dir: &Path, cdb: &Path, script: &Path) -> Server {
        let log = dir.join(format!("srv-{}.log", rand_suffix()));
        let errf = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(prog);
        cmd.args(["-1", "-v", "-R", "-H", "-l0", "-x"])
            .arg(cdb)
            .args(["127.0.0.1", "0"])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(errf));
        let mut proc = Proc::spawn(&mut cmd);
        let mut out = BufReader::new(proc.child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap();
        Server { proc, port, log }
    }
}

#[test]
fn runs_as_given_uid_and_gid() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: needs root to change ids");
        return;
    }
    let d = tempdir();
    let prog = d.path().join("prog");
    write_exec(&prog, "#!/bin/sh\necho \"$(id -u) $(id -g)\"\n");
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let srv = Server::start(
        d.path(),
        &["-R", "-H", "-u", "65534", "-g", "65533"],
        "127.0.0.1",
        &[prog.to_str().unwrap()],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "65534 65533\n");
    // -U takes $UID and $GID.
    let mut cmd = Command::new(bin("tcpserver"));
    cmd.env("UID", "65534").env("GID", "65532");
    let log = d.path().join("u.log");
    cmd.args(["-1", "-U", "-R", "-H", "127.0.0.1", "0"])
        .arg(&prog)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let mut p = Proc::spawn(&mut cmd);
    let mut line = String::new();
    BufReader::new(p.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    assert_eq!(read_all(s), "65534 65532\n");
}

#[test]
fn usage_and_bind_errors() {
    let out = run(Command::new(bin("tcpserver")).args(["-c", "x", "0", "1", "true"]));
    assert_eq!(out.status.code(), Some(100));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcpserver: usage: tcpserver"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run(Command::new(bin("tcpserver")).args(["127.0.0.1", &port, "true"]));
    assert_eq!(out.status.code(), Some(111));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tcpserver: fatal: unable to bind: address already used\n"
    );
    let out = run(Command::new(bin("tcpserver")).args(["127.0.0.1", "nosuchservice", "true"]));
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unable to figure out port number"));
}

#[test]
fn program_that_cannot_run_is_reported() {
    let d = tempdir();
    let srv = Server::start(
        d.path(),
        &["-v", "-R", "-H"],
        "127.0.0.1",
        &["/nonexistent/prog"],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "");
    srv.wait_log("end", |l| l.contains(" status 28416\n"));
    assert!(srv.log().contains(
        "tcpserver: warning: dropping connection, unable to run /nonexistent/prog: file does not exist\n"
    ));
}

#[test]
fn sigterm_stops_the_server() {
    let d = tempdir();
    let mut srv = Server::start(d.path(), &["-R", "-H"], "127.0.0.1", &["true"]);
    srv.proc.signal(nix::sys::signal::Signal::SIGTERM);
    let st = srv
        .proc
        .wait_timeout(LONG)
        .expect("tcpserver did not exit on SIGTERM");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn tcp_env_sets_environment_from_fd0() {
    let d = tempdir();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let (server_side, _) = listener.accept().unwrap();
    let script = env_script(d.path());
    let outf = d.path().join("env.out");
    let mut cmd = Command::new(bin("tcp-env"));
    cmd.arg("-R")
        .arg(&script)
        .env_remove("TCPREMOTEIP")
        .env_remove("PROTO")
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(server_side)))
        .stdout(Stdio::from(std::fs::File::create(&outf).unwrap()));
    let mut p = Proc::spawn(&mut cmd);
    assert!(p.wait_timeout(LONG).expect("tcp-env hung").success());
    let env = env_map(&std::fs::read_to_string(&outf).unwrap());
    assert_eq!(env.get("PROTO").map(String::as_str), Some("TCP"));
    assert_eq!(
        env.get("TCPREMOTEIP").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(env.get("TCPREMOTEPORT"), Some(&client_port.to_string()));
    assert_eq!(env.get("TCPLOCALPORT"), Some(&port.to_string()));
    assert!(!env.contains_key("TCPREMOTEINFO"));
    drop(client);
    // Not a socket: the program still runs, the environment untouched.
    let mut c = Command::new(bin("tcp-env"));
    c.args(["-R", "sh", "-c", "echo ${PROTO-none}"])
        .env_remove("PROTO");
    let out = run(&mut c);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "none\n");
    let _ = std::io::stdout().flush();
}

/// -r asks the client's ident server (port 113 on the client's address) for TCPREMOTEINFO;
/// the answer takes part in the rules (`INFO@IP`) and the log line.
#[test]
fn ident_remoteinfo_with_r() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: binding port 113 needs root");
        return;
    }
    let d = tempdir();
    let script = env_script(d.path());
    let (cdb, out) = tcprules(
        d.path(),
        "ident",
        "alice@127.0.0.1:allow,RULEVAR=\"alice\"\n:allow,RULEVAR=\"other\"\n",
    );
    assert!(out.status.success());
    let srv = Server::start(
        d.path(),
        &[
            "-v",
            "-r",
            "-t",
            "10",
            "-H",
            "-l0",
            "-x",
            cdb.to_str().unwrap(),
        ],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    // Nobody on port 113 (refused): no TCPREMOTEINFO, the default rule.
    let Ok(identd) = std::net::TcpListener::bind("127.0.0.1:113") else {
        eprintln!("skipping: port 113 is in use");
        return;
    };
    drop(identd);
    let env = env_map(&read_all(srv.connect("127.0.0.1")));
    assert!(!env.contains_key("TCPREMOTEINFO"), "{env:?}");
    assert_eq!(env.get("RULEVAR").map(String::as_str), Some("other"));

    let identd = std::net::TcpListener::bind("127.0.0.1:113").expect("bind 113 again");
    let server = std::thread::spawn(move || {
        let (s, _) = identd.accept().unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        let q = line.trim_end().to_string();
        (&s).write_all(format!("{q} : USERID : UNIX : alice\r\n").as_bytes())
            .unwrap();
        q
    });
    let s = srv.connect("127.0.0.1");
    let client_port = s.local_addr().unwrap().port();
    let env = env_map(&read_all(s));
    let query = server.join().unwrap();
    assert_eq!(query, format!("{client_port} , {}", srv.port));
    assert_eq!(env.get("TCPREMOTEINFO").map(String::as_str), Some("alice"));
    assert_eq!(env.get("RULEVAR").map(String::as_str), Some("alice"));
    srv.wait_log("ok line with info", |l| {
        l.contains(&format!(":127.0.0.1:alice:{client_port}\n"))
    });
}

/// -Q (the default) logs only warnings, -q nothing; -D (TCP_NODELAY) changes nothing visible.
#[test]
fn verbosity_levels() {
    let d = tempdir();
    let missing = d.path().join("missing.cdb");
    let prog = d.path().join("prog");
    write_exec(&prog, "#!/bin/sh\necho served\n");
    let srv_q = Server::start(
        d.path(),
        &["-Q", "-R", "-H", "-D", "-x", missing.to_str().unwrap()],
        "127.0.0.1",
        &[prog.to_str().unwrap()],
    );
    assert_eq!(read_all(srv_q.connect("127.0.0.1")), "");
    srv_q.wait_log("warning", |l| l.contains("dropping connection"));
    assert!(!srv_q.log().contains("status:"), "{}", srv_q.log());
    let srv_qq = Server::start(
        d.path(),
        &["-q", "-R", "-H", "-x", missing.to_str().unwrap()],
        "127.0.0.1",
        &[prog.to_str().unwrap()],
    );
    assert_eq!(read_all(srv_qq.connect("127.0.0.1")), "");
    // The dropped connection is closed by then; nothing was or will be logged.
    let srv_d = Server::start(
        d.path(),
        &["-q", "-R", "-H", "-D"],
        "127.0.0.1",
        &[prog.to_str().unwrap()],
    );
    assert_eq!(read_all(srv_d.connect("127.0.0.1")), "served\n");
    assert_eq!(srv_qq.log(), "");
    assert_eq!(srv_d.log(), "");
}

/// Without -v and lookups the server starts the program itself with posix_spawn; with -v a
/// forked child does it. The program must not be able to tell the difference.
#[test]
fn spawned_and_forked_programs_get_the_same_process_state() {
    let d = tempdir();
    let script = d.path().join("state");
    write_exec(
        &script,
        "#!/bin/sh\nenv | grep -E '^(PROTO|TCP|RULEVAR)' | grep -v PORT= | sort\n\
         grep -E '^Sig(Blk|Ign)' /proc/self/status\nexec ls /proc/self/fd\n",
    );
    let (cdb, out) = tcprules(d.path(), "r", "127.:allow,RULEVAR=\"x y\"\n");
    assert!(out.status.success(), "{out:?}");
    let mut seen = Vec::new();
    for quiet in [false, true] {
        let mut opts = vec!["-R", "-H", "-lname", "-x", cdb.to_str().unwrap()];
        if !quiet {
            opts.push("-v");
        }
        let srv = Server::start(d.path(), &opts, "127.0.0.1", &[script.to_str().unwrap()]);
        seen.push(read_all(srv.connect("127.0.0.1")));
        if quiet {
            assert_eq!(srv.log(), "", "quiet server logged");
        }
    }
    assert!(seen[0].contains("RULEVAR=x y\n"), "{}", seen[0]);
    assert!(seen[0].contains("TCPLOCALHOST=name\n"), "{}", seen[0]);
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn spawned_programs_deny_and_errors_are_handled_as_by_the_child() {
    let d = tempdir();
    let script = env_script(d.path());
    // Denied: the connection is closed at once, nothing logged below -v.
    let (deny, out) = tcprules(d.path(), "deny", "127.:deny\n");
    assert!(out.status.success(), "{out:?}");
    let srv = Server::start(
        d.path(),
        &["-R", "-H", "-l0", "-x", deny.to_str().unwrap()],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "");
    // Unreadable rules and a program that cannot run: the forked child's warnings.
    let missing = d.path().join("nonexistent.cdb");
    let srv = Server::start(
        d.path(),
        &["-R", "-H", "-l0", "-x", missing.to_str().unwrap()],
        "127.0.0.1",
        &[script.to_str().unwrap()],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "");
    srv.wait_log("warning", |l| !l.is_empty());
    assert_eq!(
        srv.log(),
        format!(
            "tcpserver: warning: dropping connection, unable to read {}: file does not exist\n",
            missing.display()
        )
    );
    let srv = Server::start(
        d.path(),
        &["-R", "-H", "-l0"],
        "127.0.0.1",
        &["/nonexistent/prog"],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "");
    srv.wait_log("warning", |l| !l.is_empty());
    assert_eq!(
        srv.log(),
        "tcpserver: warning: dropping connection, unable to run /nonexistent/prog: file does not exist\n"
    );
    // A script without #!: execvp runs it with /bin/sh, posix_spawn does not; still runs.
    let bare = d.path().join("bare");
    write_exec(&bare, "echo bare script ran\n");
    let srv = Server::start(
        d.path(),
        &["-R", "-H", "-l0"],
        "127.0.0.1",
        &[bare.to_str().unwrap()],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "bare script ran\n");
    // A program found through PATH.
    let srv = Server::start(
        d.path(),
        &["-R", "-H", "-l0"],
        "127.0.0.1",
        &["echo", "via", "PATH"],
    );
    assert_eq!(read_all(srv.connect("127.0.0.1")), "via PATH\n");
}
