//! qmail-popup, checkpassword, qmail-pop3d and qmail-poppass: the observed POP3 transcript,
//! authentication failures without hints, commands out of state, QUIT semantics, and real POP3
//! clients (poplib, curl, fetchmail) over tcpserver.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rqmail_tests::{Proc, TempDir, bin, external, must, run_with_input, tempdir, write_exec};

/// The uid/gid POP3 users get in tests: ours, or 65534 when we run as root (qmail-pop3d
/// refuses uid 0).
fn pop_ids() -> (u32, u32) {
    if nix::unistd::geteuid().is_root() {
        (65534, 65534)
    } else {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    }
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    for e in walkdir::WalkDir::new(p) {
        let e = e.unwrap();
        std::os::unix::fs::chown(e.path(), Some(uid), Some(gid)).unwrap();
    }
}

fn set_mtime(p: &Path, secs: i64) {
    let t = nix::sys::time::TimeVal::new(secs, 0);
    nix::sys::stat::utimes(p, &t, &t).unwrap();
}

/// A POP3 account "popu" (password "secret") with a Maildir, in a virtual password file.
struct Acct {
    dir: TempDir,
    users: PathBuf,
    home: PathBuf,
    /// A copy of qmail-pop3d that the POP3 user can run even when the build directory is
    /// not reachable for that uid (e.g. under /root in CI).
    pop3d: PathBuf,
}

impl Acct {
    fn new() -> Acct {
        let dir = tempdir();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("popu");
        for d in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(home.join("Maildir").join(d)).unwrap();
        }
        let users = dir.path().join("poppasswd");
        let (uid, gid) = pop_ids();
        let out = run_with_input(
            Command::new(bin("qmail-poppass"))
                .arg(&users)
                .arg("popu")
                .arg(uid.to_string())
                .arg(gid.to_string())
                .arg(&home),
            Some(b"secret\n"),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pop3d = dir.path().join("qmail-pop3d");
        std::fs::copy(bin("qmail-pop3d"), &pop3d).unwrap();
        std::fs::set_permissions(&pop3d, std::fs::Permissions::from_mode(0o755)).unwrap();
        Acct {
            dir,
            users,
            home,
            pop3d,
        }
    }
    fn maildir(&self) -> PathBuf {
        self.home.join("Maildir")
    }
    /// The transcript's three messages (old mtimes), owned by the POP3 user.
    fn transcript_messages(&self) {
        let m = self.maildir();
        let files = [
            (
                "new/1700000001.100.host",
                "Subject: one\n\nline1\n.dot line\n",
                1_700_000_001,
            ),
            (
                "cur/1700000002.200.host:2,S",
                "Subject: two\nX: y\n\nbody2\nmore\nlines\n",
                1_700_000_002,
            ),
            (
                "new/1700000003.300.host",
                "Subject: three\n\nthree!!\n",
                1_700_000_011,
            ),
        ];
        for (name, text, t) in files {
            std::fs::write(m.join(name), text).unwrap();
            set_mtime(&m.join(name), t);
        }
        self.own();
    }
    fn own(&self) {
        let (u, g) = pop_ids();
        chown_r(&self.home, u, g);
    }
    fn files(&self) -> Vec<String> {
        let mut v = Vec::new();
        for d in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir().join(d)).unwrap() {
                v.push(format!("{d}/{}", e.unwrap().file_name().to_string_lossy()));
            }
        }
        v.sort();
        v
    }
    fn popup_cmd(&self, checkprog: &Path) -> Command {
        let mut c = Command::new(bin("qmail-popup"));
        c.arg("pop.example.org")
            .arg(checkprog)
            .arg(&self.pop3d)
            .arg("Maildir")
            .env("POPPASSWD", &self.users)
            .env("CHECKPASSWORD_PASSWD", self.dir.path().join("no-passwd"))
            .env("CHECKPASSWORD_SHADOW", self.dir.path().join("no-shadow"));
        c
    }
}

/// An interactive POP3 dialogue over pipes, one command at a time.
struct Dialogue {
    proc: Proc,
    lines: mpsc::Receiver<Vec<u8>>,
    stdin: Option<std::process::ChildStdin>,
    pub transcript: Vec<u8>,
}

impl Dialogue {
    fn start(mut c: Command) -> Dialogue {
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut proc = Proc::spawn(&mut c);
        let stdout = proc.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut l = Vec::new();
                match r.read_until(b'\n', &mut l) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stdin = proc.child.stdin.take();
        let mut d = Dialogue {
            proc,
            lines: rx,
            stdin,
            transcript: Vec::new(),
        };
        d.read(false);
        d
    }
    fn line(&mut self) -> Option<Vec<u8>> {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => Some(l),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no reply within 30 s"),
        }
    }
    fn read(&mut self, multi: bool) -> String {
        let mut got = Vec::new();
        if let Some(l) = self.line() {
            let ok = l.starts_with(b"+OK");
            got.extend_from_slice(&l);
            if multi && ok {
                while let Some(l) = self.line() {
                    got.extend_from_slice(&l);
                    if l == b".\r\n" {
                        break;
                    }
                }
            }
        }
        self.transcript.extend_from_slice(&got);
        String::from_utf8_lossy(&got).into_owned()
    }
    /// Send one command; read its reply (multi-line when `multi` and +OK).
    fn cmd(&mut self, c: &str, multi: bool) -> String {
        self.transcript
            .extend_from_slice(format!("C: {c}\n").as_bytes());
        let _ = self
            .stdin
            .as_mut()
            .unwrap()
            .write_all(format!("{c}\r\n").as_bytes());
        self.read(multi)
    }
    fn close(&mut self) -> Option<std::process::ExitStatus> {
        self.stdin.take();
        self.proc.wait_timeout(Duration::from_secs(30))
    }
    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.proc.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}

fn multi(c: &str) -> bool {
    let w: Vec<&str> = c.split_whitespace().collect();
    let v = w[0].to_ascii_uppercase();
    matches!(v.as_str(), "RETR" | "TOP" | "CAPA")
        || (matches!(v.as_str(), "LIST" | "UIDL") && w.len() == 1)
}

fn transcript_file() -> String {
    let p = Path::new("/work/shared/reference/qmail-transcripts/pop3-session.txt");
    std::fs::read_to_string(p).unwrap_or_else(|_| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/transcripts/pop3-session.txt"),
        )
        .unwrap()
    })
}

#[test]
fn transcript_session() {
    let a = Acct::new();
    a.transcript_messages();
    // Dump fd 3 like the original capture did, then hand it to the real checkpassword.
    let fd3 = a.dir.path().join("fd3");
    let wrapper = a.dir.path().join("dumpcp");
    write_exec(
        &wrapper,
        &format!(
            "#!/bin/sh\ncat <&3 > {0}\nexec {1} \"$@\" 3< {0}\n",
            fd3.display(),
            bin("checkpassword").display()
        ),
    );
    let text = transcript_file();
    let mut expected = String::new();
    let mut cmds = Vec::new();
    for l in text.lines().skip(1) {
        if let Some(c) = l.strip_prefix("C: ") {
            cmds.push(c.to_string());
        }
        if l.is_empty() {
            break;
        }
        expected.push_str(&l.replace("<CR>", "\r"));
        expected.push('\n');
    }
    let mut d = Dialogue::start(a.popup_cmd(&wrapper));
    for c in &cmds {
        d.cmd(c, multi(c));
    }
    assert_eq!(d.close().unwrap().code(), Some(0));
    let got = String::from_utf8_lossy(&d.transcript).into_owned();
    // Variable: the greeting's pid and time. Deliberate: sizes are CRLF octets.
    let stamp = got
        .lines()
        .next()
        .unwrap()
        .trim_end()
        .strip_prefix("+OK ")
        .unwrap()
        .to_string();
    let (gp, gt) = stamp
        .trim_start_matches('<')
        .split('@')
        .next()
        .unwrap()
        .split_once('.')
        .unwrap();
    gp.parse::<u32>().unwrap();
    gt.parse::<u64>().unwrap();
    let expected = expected
        .replace("<28251.1795563094@pop.example.org>", &stamp)
        .replace("+OK 3 90\r", "+OK 3 103\r")
        .replace("+OK 3 60\r", "+OK 3 69\r")
        .replace("1 30\r", "1 34\r")
        .replace("2 36\r", "2 42\r")
        .replace("3 24\r", "3 27\r");
    assert_eq!(got, expected);
    // fd 3 as the transcript shows it.
    let f = std::fs::read(&fd3).unwrap();
    assert_eq!(f, format!("popu\0secret\0{stamp}\0").as_bytes());
    // The maildir after QUIT.
    assert_eq!(
        a.files(),
        ["cur/1700000002.200.host:2,S", "cur/1700000003.300.host:2,"]
    );
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let a = Acct::new();
    a.transcript_messages();
    let cp = bin("checkpassword");
    let mut replies = Vec::new();
    for (u, p) in [
        ("popu", "wrong"),
        ("nosuchuser", "secret"),
        ("popu", "secret "),
    ] {
        let mut d = Dialogue::start(a.popup_cmd(&cp));
        assert_eq!(d.cmd(&format!("USER {u}"), false), "+OK \r\n");
        replies.push(d.cmd(&format!("PASS {p}"), false));
        assert_eq!(d.close().unwrap().code(), Some(1));
        let err = d.stderr();
        assert!(
            !err.contains(p.trim()),
            "the password must not be logged: {err}"
        );
    }
    assert_eq!(replies, ["-ERR authorization failed\r\n"; 3]);
    // APOP cannot succeed against hashed passwords, and says the same.
    let mut d = Dialogue::start(a.popup_cmd(&cp));
    assert_eq!(
        d.cmd("APOP popu 0123456789abcdef0123456789abcdef", false),
        "-ERR authorization failed\r\n"
    );
    // A NUL in the user name cannot smuggle a password field onto fd 3.
    let mut d = Dialogue::start(a.popup_cmd(&cp));
    assert_eq!(d.cmd("USER popu\u{0}secret", false), "+OK \r\n");
    assert_eq!(d.cmd("PASS x", false), "-ERR authorization failed\r\n");
    // AUTH PLAIN with a wrong password, and with another authorization identity: the same.
    let mut d = Dialogue::start(a.popup_cmd(&cp));
    assert_eq!(
        d.cmd("AUTH PLAIN AHBvcHUAd3Jvbmc=", false),
        "-ERR authorization failed\r\n"
    );
    let mut d = Dialogue::start(a.popup_cmd(&cp));
    assert_eq!(d.cmd("AUTH PLAIN", false), "+ \r\n");
    assert_eq!(
        d.cmd("b3RoZXIAcG9wdQBzZWNyZXQ=", false),
        "-ERR authorization failed\r\n"
    );
    // Right password through AUTH PLAIN, with and without an initial response.
    let mut d = Dialogue::start(a.popup_cmd(&cp));
    assert_eq!(d.cmd("AUTH PLAIN AHBvcHUAc2VjcmV0", false), "+OK \r\n");
    assert_eq!(d.cmd("STAT", false), "+OK 3 103\r\n");
    let mut d = Dialogue::start(a.popup_cmd(&cp));
    assert_eq!(d.cmd("AUTH PLAIN", false), "+ \r\n");
    assert_eq!(d.cmd("AHBvcHUAc2VjcmV0", false), "+OK \r\n");
    assert_eq!(d.cmd("QUIT", false), "+OK \r\n");
    // Nothing deleted; the QUIT moved new/ to cur/.
    assert_eq!(a.files().len(), 3);
}

#[test]
fn popup_commands_out_of_state() {
    let a = Acct::new();
    let mut d = Dialogue::start(a.popup_cmd(&bin("checkpassword")));
    assert_eq!(d.cmd("STAT", false), "-ERR authorization first\r\n");
    assert_eq!(d.cmd("RETR 1", false), "-ERR authorization first\r\n");
    assert_eq!(d.cmd("PASS secret", false), "-ERR USER first\r\n");
    assert_eq!(d.cmd("USER", false), "-ERR syntax error\r\n");
    assert_eq!(d.cmd("APOP popu", false), "-ERR syntax error\r\n");
    assert_eq!(d.cmd("noop", false), "+OK \r\n");
    assert_eq!(
        d.cmd("CAPA", true),
        "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
    );
    assert_eq!(
        d.cmd("AUTH CRAM-MD5", false),
        "-ERR unrecognized authentication type\r\n"
    );
    assert_eq!(
        d.cmd("\u{1}\u{2}garbage\u{ff}", false),
        "-ERR authorization first\r\n"
    );
    assert_eq!(d.cmd("USER popu", false), "+OK \r\n");
    assert_eq!(d.cmd("PASS", false), "-ERR syntax error\r\n");
    assert_eq!(d.cmd("QUIT", false), "+OK \r\n");
    assert_eq!(d.close().unwrap().code(), Some(0));
}

fn login(a: &Acct) -> Dialogue {
    let mut d = Dialogue::start(a.popup_cmd(&bin("checkpassword")));
    assert_eq!(d.cmd("USER popu", false), "+OK \r\n");
    assert_eq!(d.cmd("PASS secret", false), "+OK \r\n");
    d
}

#[test]
fn pop3d_commands_errors_rset_and_top() {
    let a = Acct::new();
    a.transcript_messages();
    let mut d = login(&a);
    assert_eq!(d.cmd("USER popu", false), "-ERR unimplemented\r\n");
    assert_eq!(d.cmd("RETR", false), "-ERR syntax error\r\n");
    assert_eq!(d.cmd("RETR x", false), "-ERR syntax error\r\n");
    assert_eq!(d.cmd("LIST 4", false), "-ERR not that many messages\r\n");
    assert_eq!(
        d.cmd("LIST 99999999999999999999999", false),
        "-ERR not that many messages\r\n"
    );
    assert_eq!(
        d.cmd("TOP 2 1", true),
        "+OK \r\nSubject: two\r\nX: y\r\n\r\nbody2\r\n\r\n.\r\n"
    );
    assert_eq!(
        d.cmd("top 2", true),
        "+OK \r\nSubject: two\r\nX: y\r\n\r\nbody2\r\nmore\r\nlines\r\n\r\n.\r\n"
    );
    assert_eq!(d.cmd("DELE 2", false), "+OK \r\n");
    assert_eq!(d.cmd("DELE 2", false), "-ERR already deleted\r\n");
    assert_eq!(d.cmd("LIST 2", false), "-ERR already deleted\r\n");
    assert_eq!(d.cmd("LAST", false), "+OK 2\r\n");
    assert_eq!(d.cmd("RSET", false), "+OK \r\n");
    assert_eq!(d.cmd("LAST", false), "+OK 0\r\n");
    assert_eq!(d.cmd("LIST 2", false), "+OK 2 42\r\n");
    assert_eq!(d.cmd("UIDL 3", false), "+OK 3 1700000003.300.host\r\n");
    assert_eq!(
        d.cmd("CAPA", true),
        "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\n.\r\n"
    );
    assert_eq!(d.cmd("DELE 3", false), "+OK \r\n");
    // The connection drops: nothing is deleted or moved.
    assert_eq!(d.close().unwrap().code(), Some(1));
    assert_eq!(
        a.files(),
        [
            "cur/1700000002.200.host:2,S",
            "new/1700000001.100.host",
            "new/1700000003.300.host"
        ]
    );
}

#[test]
fn sizes_are_the_octets_retr_sends() {
    let a = Acct::new();
    let m = a.maildir();
    let texts = ["a\nb\n", "no final newline", "x\r\ny\n\n.\n..\n", ""];
    for (i, t) in texts.iter().enumerate() {
        let p = m.join(format!("new/100000000{i}.1.h"));
        std::fs::write(&p, t).unwrap();
        set_mtime(&p, 1_000_000_000 + i as i64);
    }
    a.own();
    let mut d = login(&a);
    let list = d.cmd("LIST", true);
    for (i, _) in texts.iter().enumerate() {
        let r = d.cmd(&format!("RETR {}", i + 1), true);
        // Strip "+OK \r\n", the extra empty line and ".\r\n", and undo dot-stuffing.
        let body = r
            .strip_prefix("+OK \r\n")
            .unwrap()
            .strip_suffix("\r\n.\r\n")
            .unwrap();
        let unstuffed: String = body
            .split("\r\n")
            .map(|l| l.strip_prefix('.').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\r\n");
        let size = unstuffed.len();
        assert!(
            list.contains(&format!("\r\n{} {}\r\n", i + 1, size)),
            "{list} / message {}: {size}",
            i + 1
        );
    }
    // A message modified in the current second (or later) is not listed yet (qmail's rule).
    let p = m.join("new/9999999999.1.h");
    std::fs::write(&p, "fresh\n").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    set_mtime(&p, now + 3600);
    a.own();
    let mut d2 = login(&a);
    assert_eq!(d2.cmd("STAT", false), format!("+OK 4 {}\r\n", 6 + 18 + 16));
    d2.cmd("QUIT", false);
    assert!(a.files().contains(&"new/9999999999.1.h".to_string()));
}

#[test]
fn old_tmp_files_are_removed() {
    let a = Acct::new();
    let old = a.maildir().join("tmp/old.1.h");
    let young = a.maildir().join("tmp/young.1.h");
    std::fs::write(&old, "x").unwrap();
    std::fs::write(&young, "x").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    set_mtime(&old, now - 37 * 3600);
    set_mtime(&young, now - 35 * 3600);
    a.own();
    let mut d = login(&a);
    assert_eq!(d.cmd("STAT", false), "+OK 0 0\r\n");
    assert!(!old.exists());
    assert!(young.exists());
    d.cmd("QUIT", false);
}

#[test]
fn no_maildir_and_uid_0() {
    let a = Acct::new();
    std::fs::remove_dir_all(a.maildir()).unwrap();
    let mut d = Dialogue::start(a.popup_cmd(&bin("checkpassword")));
    d.cmd("USER popu", false);
    assert_eq!(
        d.cmd("PASS secret", false),
        "-ERR this user has no $HOME/Maildir\r\n"
    );
    if nix::unistd::geteuid().is_root() {
        let out = run_with_input(
            Command::new(bin("qmail-pop3d")).arg("Maildir"),
            Some(b"STAT\r\n"),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "qmail-pop3d invoked as uid 0, terminating\n"
        );
    }
}

/// Run checkpassword with `data` on fd 3 and `prog` as the subprogram.
fn checkpassword(a: &Acct, data: &[u8], prog: &[&str]) -> std::process::Output {
    let f = a.dir.path().join("fd3data");
    std::fs::write(&f, data).unwrap();
    let sh = format!(
        "exec {} \"$@\" 3< {}",
        bin("checkpassword").display(),
        f.display()
    );
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(sh)
        .arg("sh")
        .args(prog)
        .env("POPPASSWD", &a.users)
        .env("CHECKPASSWORD_PASSWD", a.dir.path().join("passwd"))
        .env("CHECKPASSWORD_SHADOW", a.dir.path().join("shadow"));
    run_with_input(&mut c, None, Duration::from_secs(60))
}

#[test]
fn checkpassword_interface() {
    let a = Acct::new();
    a.own();
    let show = [
        "/bin/sh",
        "-c",
        "echo $USER $HOME $SHELL $(id -u) $(id -g) $(pwd)",
    ];
    let out = checkpassword(&a, b"popu\0secret\0<1.2@x>\0", &show);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (u, g) = pop_ids();
    let h = a.home.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("popu {h} /bin/sh {u} {g} {h}\n")
    );
    assert_eq!(
        checkpassword(&a, b"popu\0nope\0\0", &show).status.code(),
        Some(1)
    );
    assert_eq!(
        checkpassword(&a, b"popu\0\0\0", &show).status.code(),
        Some(1),
        "empty password"
    );
    assert_eq!(
        checkpassword(&a, b"nobody-here\0secret\0\0", &show)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        checkpassword(&a, b"popu", &show).status.code(),
        Some(2),
        "malformed fd 3"
    );
    assert_eq!(
        checkpassword(&a, b"popu\0secret\0\0", &[]).status.code(),
        Some(2),
        "no subprogram"
    );
    // An unreadable password file is a temporary problem.
    std::fs::remove_file(&a.users).unwrap();
    std::fs::create_dir(&a.users).unwrap();
    assert_eq!(
        checkpassword(&a, b"popu\0secret\0\0", &show).status.code(),
        Some(111)
    );
}

#[test]
fn checkpassword_system_accounts_from_shadow() {
    use sha_crypt::PasswordHasher as _;
    let a = Acct::new();
    a.own();
    let (u, g) = pop_ids();
    let h6 = sha_crypt::ShaCrypt::default()
        .hash_password_with_salt(b"shadowpw", b"abcdefgh")
        .unwrap();
    let h5 = sha_crypt::ShaCrypt::from(sha_crypt::Algorithm::Sha256Crypt)
        .hash_password_with_salt(b"pw5", b"abcdefgh")
        .unwrap();
    let hy = {
        use yescrypt::PasswordHasher as _;
        yescrypt::Yescrypt::default()
            .hash_password_with_salt(b"pwy", b"0123456789abcdef")
            .unwrap()
    };
    let home = a.home.display();
    std::fs::write(
        a.dir.path().join("passwd"),
        format!("sys6:x:{u}:{g}:S:{home}:/bin/bash\nsys5:x:{u}:{g}::{home}:/bin/sh\nsysy:x:{u}:{g}::{home}:/bin/sh\nlocked:x:{u}:{g}::{home}:/bin/sh\n"),
    )
    .unwrap();
    std::fs::write(
        a.dir.path().join("shadow"),
        format!(
            "sys6:{}:1::::::\nsys5:{}:1::::::\nsysy:{}:1::::::\nlocked:!{}:1::::::\n",
            h6.as_str(),
            h5.as_str(),
            hy.as_str(),
            h6.as_str()
        ),
    )
    .unwrap();
    let show = ["/bin/sh", "-c", "echo $USER $SHELL"];
    let out = checkpassword(&a, b"sys6\0shadowpw\0\0", &show);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sys6 /bin/bash\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        checkpassword(&a, b"sys5\0pw5\0\0", &show).status.code(),
        Some(0)
    );
    assert_eq!(
        checkpassword(&a, b"sysy\0pwy\0\0", &show).status.code(),
        Some(0)
    );
    assert_eq!(
        checkpassword(&a, b"sysy\0pw5\0\0", &show).status.code(),
        Some(1)
    );
    assert_eq!(
        checkpassword(&a, b"locked\0shadowpw\0\0", &show)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        checkpassword(&a, b"sys6\0Shadowpw\0\0", &show)
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn poppass_stores_only_hashes() {
    let a = Acct::new();
    let text = std::fs::read_to_string(&a.users).unwrap();
    assert!(!text.contains("secret"));
    let f: Vec<&str> = text.trim_end().split(':').collect();
    assert_eq!(f[0], "popu");
    assert!(f[1].starts_with("$y$"), "{text}");
    assert_eq!(
        std::fs::metadata(&a.users).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Change the password; the other fields stay.
    let out = run_with_input(
        Command::new(bin("qmail-poppass")).arg(&a.users).arg("popu"),
        Some(b"newpw\n"),
        Duration::from_secs(60),
    );
    assert!(out.status.success());
    let text2 = std::fs::read_to_string(&a.users).unwrap();
    assert_ne!(text, text2);
    assert_eq!(
        text2.split(':').skip(2).collect::<Vec<_>>(),
        text.split(':').skip(2).collect::<Vec<_>>()
    );
    a.own();
    assert_eq!(
        checkpassword(&a, b"popu\0newpw\0\0", &["/bin/true"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        checkpassword(&a, b"popu\0secret\0\0", &["/bin/true"])
            .status
            .code(),
        Some(1)
    );
    // Unknown user without ids, empty password: refused.
    let out = run_with_input(
        Command::new(bin("qmail-poppass"))
            .arg(&a.users)
            .arg("ghost"),
        Some(b"pw\n"),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(100));
    let out = run_with_input(
        Command::new(bin("qmail-poppass")).arg(&a.users).arg("popu"),
        Some(b"\n"),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(100));
}

// ---- real clients over tcpserver ----

fn pop_server(a: &Acct) -> Option<super::smtpd::Server> {
    let users = a.users.clone();
    let np = a.dir.path().join("no-passwd");
    let ns = a.dir.path().join("no-shadow");
    super::smtpd::serve(
        &[
            ("POPPASSWD", &users),
            ("CHECKPASSWORD_PASSWD", &np),
            ("CHECKPASSWORD_SHADOW", &ns),
        ],
        &[("PATH", "/usr/bin:/bin")],
        None,
        &[
            &bin("qmail-popup"),
            Path::new("pop.example.org"),
            &bin("checkpassword"),
            &a.pop3d,
            Path::new("Maildir"),
        ],
    )
}

fn three_messages(a: &Acct) {
    for i in 1..=3 {
        let p = a.maildir().join(format!("new/170000000{i}.{i}.host"));
        std::fs::write(
            &p,
            format!("From: x@example.org\nSubject: message {i}\n\nbody {i}\n.leading dot\n"),
        )
        .unwrap();
        set_mtime(&p, 1_700_000_000 + i);
    }
    a.own();
}

#[test]
fn python_poplib() {
    let Some(py) = external("/usr/bin/python3") else {
        return;
    };
    let a = Acct::new();
    three_messages(&a);
    let Some(s) = pop_server(&a) else { return };
    let script = r#"
import poplib, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=30)
assert p.getwelcome().startswith(b"+OK <"), p.getwelcome()
try:
    p2 = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=30)
    p2.user("popu"); p2.pass_("bad")
    raise SystemExit("bad password accepted")
except poplib.error_proto as e:
    assert str(e) == "b'-ERR authorization failed'", e
p.user("popu"); p.pass_("secret")
n, size = p.stat()
assert n == 3, n
resp, listing, _ = p.list()
assert len(listing) == 3
resp, uidl, _ = p.uidl()
assert uidl[0] == b"1 1700000001.1.host", uidl
resp, lines, octets = p.retr(2)
assert b"Subject: message 2" in lines and b".leading dot" in lines, lines
resp, top, _ = p.top(3, 0)
assert top[:2] == [b"From: x@example.org", b"Subject: message 3"], top
p.dele(1)
p.quit()
"#;
    let out = run_with_input(
        Command::new(py)
            .arg("-c")
            .arg(script)
            .arg(s.port.to_string()),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        a.files(),
        ["cur/1700000002.2.host:2,", "cur/1700000003.3.host:2,"]
    );
}

#[test]
fn curl_pop3_list_retrieve_delete() {
    let Some(curl) = external("/usr/bin/curl") else {
        return;
    };
    let a = Acct::new();
    three_messages(&a);
    let Some(s) = pop_server(&a) else { return };
    let url = |path: &str| format!("pop3://popu:secret@127.0.0.1:{}/{path}", s.port);
    let c = |args: &[&str], u: String| {
        let out = run_with_input(
            Command::new(&curl)
                .args(["-sS", "--max-time", "30"])
                .args(args)
                .arg(u),
            None,
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = c(&[], url(""));
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.starts_with("1 "), "{list}");
    let m = c(&[], url("2"));
    assert!(
        m.contains("Subject: message 2\r\n\r\nbody 2\r\n.leading dot\r\n"),
        "{m:?}"
    );
    c(&["-X", "DELE", "-I"], url("1"));
    assert_eq!(
        a.files(),
        ["cur/1700000002.2.host:2,", "cur/1700000003.3.host:2,"]
    );
    let list = c(&[], url(""));
    assert_eq!(list.lines().count(), 2, "{list}");
    let bad = run_with_input(
        Command::new(&curl)
            .args(["-sS", "--max-time", "30"])
            .arg(format!("pop3://popu:wrong@127.0.0.1:{}/", s.port)),
        None,
        Duration::from_secs(60),
    );
    assert!(!bad.status.success());
}

#[test]
fn fetchmail_retrieves_and_deletes() {
    let Some(fetchmail) = external("/usr/bin/fetchmail") else {
        return;
    };
    let a = Acct::new();
    three_messages(&a);
    let Some(s) = pop_server(&a) else { return };
    let fhome = a.dir.path().join("fhome");
    std::fs::create_dir_all(&fhome).unwrap();
    let out_dir = a.dir.path().join("fetched");
    std::fs::create_dir_all(&out_dir).unwrap();
    let rc = fhome.join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\npoll 127.0.0.1 with protocol POP3 port {} timeout 30\n  user \"popu\" there with password \"secret\" is \"{}\" here\n  mda \"/bin/sh -c 'cat > {}/msg.$$'\"\n  no keep\n  sslproto ''\n",
            s.port,
            std::env::var("USER").unwrap_or_else(|_| "root".into()),
            out_dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_with_input(
        Command::new(fetchmail)
            .arg("-f")
            .arg(&rc)
            .arg("--nodetach")
            // As root fetchmail's lock is /var/run/fetchmail.pid: keep ours private.
            .arg("--pidfile")
            .arg(fhome.join("fetchmail.pid"))
            .arg("-v")
            .env("HOME", &fhome)
            .env("FETCHMAILHOME", &fhome),
        None,
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    must(Duration::from_secs(10), "three fetched", || {
        std::fs::read_dir(&out_dir).unwrap().count() == 3
    });
    let mut all = String::new();
    for e in std::fs::read_dir(&out_dir).unwrap() {
        all.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    for i in 1..=3 {
        assert!(
            all.contains(&format!("Subject: message {i}\n\nbody {i}\n.leading dot\n")),
            "{all}"
        );
    }
    assert!(a.files().is_empty(), "{:?}", a.files());
}

// ---- end to end: SMTP in, queue, local delivery, POP3 out ----

/// A whole inbound system in a temporary qmail home: qmail-install, qmail-send (qmail-start),
/// tcpserver + qmail-smtpd, tcpserver + qmail-popup/checkpassword/qmail-pop3d. Needs the
/// queue programs (and qmail-local); skipped, or failed under CI, when they are not built.
struct System {
    _t: TempDir,
    home: PathBuf,
    alice: PathBuf,
    _send: Proc,
    smtp: super::smtpd::Server,
    pop: super::smtpd::Server,
}

fn have_queue() -> bool {
    let need = [
        "qmail-install",
        "qmail-queue",
        "qmail-send",
        "qmail-start",
        "qmail-lspawn",
        "qmail-clean",
        "qmail-newu",
        "qmail-local",
    ];
    let missing: Vec<&str> = need
        .iter()
        .copied()
        .filter(|n| !rqmail_tests::bin_dir().join(n).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(!rqmail_tests::under_ci(), "{missing:?} not built under CI");
    eprintln!("skipping end-to-end test: {missing:?} not built yet");
    false
}

impl System {
    fn start() -> Option<System> {
        if !have_queue() {
            return None;
        }
        let t = tempdir();
        let top = t.path().to_path_buf();
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = top.join("qmail");
        std::fs::create_dir(&home).unwrap();
        let root = nix::unistd::geteuid().is_root();
        if root {
            crate::common::write_test_ids(&home, 64200);
        }
        let out = run_with_input(
            Command::new(bin("qmail-install")).arg(&home),
            None,
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "qmail-install: {out:?}");
        let c = home.join("control");
        std::fs::write(c.join("me"), "example.org\n").unwrap();
        std::fs::write(c.join("locals"), "example.org\n").unwrap();
        std::fs::write(c.join("rcpthosts"), "example.org\n").unwrap();
        std::fs::write(c.join("defaultdelivery"), "./Maildir/\n").unwrap();
        let (uid, gid) = pop_ids();
        let alice = top.join("alice");
        for d in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(alice.join("Maildir").join(d)).unwrap();
        }
        chown_r(&alice, uid, gid);
        std::fs::write(
            home.join("users/assign"),
            format!("=alice:alice:{uid}:{gid}:{}:::\n.\n", alice.display()),
        )
        .unwrap();
        let out = run_with_input(
            Command::new(home.join("bin/qmail-newu")).env("QMAILHOME", &home),
            None,
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "qmail-newu: {out:?}");
        let pw = home.join("users/poppasswd");
        let out = run_with_input(
            Command::new(bin("qmail-poppass"))
                .arg(&pw)
                .args(["alice", &uid.to_string(), &gid.to_string()])
                .arg(&alice),
            Some(b"wonderland\n"),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "{out:?}");
        let log = std::fs::File::create(top.join("send.log")).unwrap();
        let mut cmd = Command::new(home.join("bin/qmail-start"));
        cmd.env("QMAILHOME", &home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let send = Proc::spawn(&mut cmd);
        let smtp = super::smtpd::serve(
            &[("QMAILHOME", &home)],
            &[("PATH", "/usr/bin:/bin")],
            None,
            &[&home.join("bin/qmail-smtpd")],
        )?;
        let pop = super::smtpd::serve(
            &[("QMAILHOME", &home), ("POPPASSWD", &pw)],
            &[("PATH", "/usr/bin:/bin")],
            None,
            &[
                &home.join("bin/qmail-popup"),
                Path::new("example.org"),
                &home.join("bin/checkpassword"),
                &home.join("bin/qmail-pop3d"),
                Path::new("Maildir"),
            ],
        )?;
        Some(System {
            _t: t,
            home,
            alice,
            _send: send,
            smtp,
            pop,
        })
    }
    fn delivered(&self) -> usize {
        ["new", "cur"]
            .iter()
            .map(|d| {
                std::fs::read_dir(self.alice.join("Maildir").join(d))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum()
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.home.parent().unwrap().join("send.log")).unwrap_or_default()
    }
}

#[test]
fn end_to_end_smtp_clients_to_maildir_then_pop3_clients() {
    let (Some(py), Some(swaks), Some(curl), Some(fetchmail)) = (
        external("/usr/bin/python3"),
        external("/usr/bin/swaks"),
        external("/usr/bin/curl"),
        external("/usr/bin/fetchmail"),
    ) else {
        return;
    };
    let Some(sys) = System::start() else { return };
    let sp = sys.smtp.port.to_string();
    // In: Python's smtplib (plain), a pipelined raw session, swaks --pipeline, curl smtp://.
    let out = run_with_input(
        Command::new(&py).arg("-c").arg(
            "import smtplib,sys\ns=smtplib.SMTP('127.0.0.1',int(sys.argv[1]),timeout=30)\n\
             r=s.sendmail('a@example.net',['alice@example.org'],'Subject: e2e smtplib\\r\\n\\r\\nfrom python\\r\\n')\n\
             assert r=={},r\ns.quit()\n",
        ).arg(&sp),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_with_input(
        Command::new(&swaks).args([
            "--server",
            "127.0.0.1",
            "--port",
            &sp,
            "--pipeline",
            "--from",
            "s@example.net",
            "--to",
            "alice@example.org",
            "--header",
            "Subject: e2e swaks",
            "--timeout",
            "30",
        ]),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mail = sys.home.join("curl.txt");
    std::fs::write(&mail, "Subject: e2e curl\r\n\r\nfrom curl\r\n").unwrap();
    let out = run_with_input(
        Command::new(&curl)
            .args(["-sS", "--max-time", "30"])
            .arg(format!("smtp://127.0.0.1:{sp}"))
            .args([
                "--mail-from",
                "c@example.net",
                "--mail-rcpt",
                "alice@example.org",
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
    must(
        Duration::from_secs(60),
        "three deliveries to alice's Maildir",
        || sys.delivered() == 3,
    );
    must(
        Duration::from_secs(30),
        "three successes in qmail-send's log",
        || sys.log().matches(": success: ").count() == 3,
    );

    // Out: poplib sees all three (once their mtime second has passed), reads and deletes one.
    let pp = sys.pop.port.to_string();
    let script = "import poplib,sys\np=poplib.POP3('127.0.0.1',int(sys.argv[1]),timeout=30)\n\
                  p.user('alice'); p.pass_('wonderland')\nprint(p.stat()[0])\n\
                  if p.stat()[0]==3:\n    n=[i for i in (1,2,3) if b'Subject: e2e smtplib' in p.retr(i)[1]]; assert len(n)==1; p.dele(n[0])\np.quit()\n";
    must(
        Duration::from_secs(30),
        "poplib lists three messages",
        || {
            let out = run_with_input(
                Command::new(&py).arg("-c").arg(script).arg(&pp),
                None,
                Duration::from_secs(60),
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim() == "3"
        },
    );
    assert_eq!(sys.delivered(), 2);
    // curl pop3://: list two, retrieve one, delete it.
    let url = |p: &str| format!("pop3://alice:wonderland@127.0.0.1:{pp}/{p}");
    let out = run_with_input(
        Command::new(&curl)
            .args(["-sS", "--max-time", "30"])
            .arg(url("")),
        None,
        Duration::from_secs(60),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "{out:?}"
    );
    let out = run_with_input(
        Command::new(&curl)
            .args(["-sS", "--max-time", "30"])
            .arg(url("1")),
        None,
        Duration::from_secs(60),
    );
    let first = String::from_utf8_lossy(&out.stdout).into_owned();
    let (gone, left) = if first.contains("Subject: e2e swaks") {
        ("Subject: e2e swaks", "Subject: e2e curl")
    } else {
        ("Subject: e2e curl", "Subject: e2e swaks")
    };
    assert!(
        first.contains(gone) && first.contains("Delivered-To: alice@example.org"),
        "{first}"
    );
    let out = run_with_input(
        Command::new(&curl)
            .args(["-sS", "--max-time", "30", "-X", "DELE", "-I"])
            .arg(url("1")),
        None,
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(sys.delivered(), 1);
    // fetchmail takes the last one.
    let fhome = sys.home.join("fetchhome");
    std::fs::create_dir_all(&fhome).unwrap();
    let got = fhome.join("got");
    let rc = fhome.join("rc");
    std::fs::write(
        &rc,
        format!("set no syslog\npoll 127.0.0.1 with protocol POP3 port {pp} timeout 30\n  user \"alice\" there with password \"wonderland\" is \"{}\" here\n  mda \"/bin/sh -c 'cat >> {}'\"\n  no keep\n  sslproto ''\n",
            std::env::var("USER").unwrap_or_else(|_| "root".into()), got.display()),
    ).unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_with_input(
        Command::new(fetchmail)
            .arg("-f")
            .arg(&rc)
            .arg("--nodetach")
            // As root fetchmail's lock is /var/run/fetchmail.pid: keep ours private.
            .arg("--pidfile")
            .arg(fhome.join("fetchmail.pid"))
            .env("HOME", &fhome)
            .env("FETCHMAILHOME", &fhome),
        None,
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&got).unwrap();
    assert!(text.contains(left) && !text.contains(gone), "{text}");
    assert!(text.contains("Delivered-To: alice@example.org"), "{text}");
    assert!(text.contains("Received: from unknown (HELO "), "{text}");
    assert_eq!(sys.delivered(), 0);
}

/// Processes whose program (argv[0]) is `needle`.
fn processes_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline"))
                        .map(|c| c.split(|&b| b == 0).next() == Some(needle.as_bytes()))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn end_to_end_client_vanishing_mid_data_leaves_nothing_in_the_queue() {
    let Some(py) = external("/usr/bin/python3") else {
        return;
    };
    let Some(sys) = System::start() else { return };
    let smtpd = sys.home.join("bin/qmail-smtpd").display().to_string();
    let script = r#"
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = c.makefile("rb")
f.readline()
c.sendall(b"HELO v\r\nMAIL FROM:<v@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
for _ in range(3): f.readline()
assert f.readline() == b"354 go ahead\r\n"
c.sendall(b"Subject: half\r\n\r\n" + b"x" * 100000)
c.close()
"#;
    let out = run_with_input(
        Command::new(&py)
            .arg("-c")
            .arg(script)
            .arg(sys.smtp.port.to_string()),
        None,
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    must(
        Duration::from_secs(30),
        "qmail-smtpd and qmail-queue gone",
        || {
            processes_with(&smtpd) == 0
                && processes_with(&sys.home.join("bin/qmail-queue").display().to_string()) == 0
        },
    );
    let queued = walkdir::WalkDir::new(sys.home.join("queue"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| !e.path().starts_with(sys.home.join("queue/lock")))
        // qmail-send's metrics file and qmail-qadmin's requests are not message files.
        .filter(|e| !e.path().starts_with(sys.home.join("queue/qadmin")))
        .count();
    assert_eq!(queued, 0, "a half message left files in the queue");
    assert_eq!(sys.delivered(), 0);
    assert!(!sys.log().contains("new msg"), "{}", sys.log());
}
