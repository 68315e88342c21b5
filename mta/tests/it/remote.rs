//! qmail-remote, qmail-tcpok and serialmail against real SMTP servers (Debian's aiosmtpd),
//! a real DNS server (Debian's dnsmasq) and small scripted bad servers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rqmail_tests::{Proc, TempDir, bin, external, free_port, must, tempdir, wait_until};

pub const PY: &str = "/usr/bin/python3";

/// An aiosmtpd server that records every accepted message as one JSON line, rejects RCPT
/// addresses containing "bad" (550) or "later" (451), and answers the end of DATA with the
/// first line of CTLDIR/data-reply when that file exists.
pub const SINK_PY: &str = r#"
import sys, json, os, time, itertools
from aiosmtpd.controller import Controller
host, port, log, ctl = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
counter = itertools.count(1)
class H:
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with open(log + '.mail', 'a') as f:
            f.write(address + '\n')
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return '250 OK'
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if 'bad' in address:
            return '550 5.1.1 no such user'
        if 'later' in address:
            return '451 4.3.0 try later'
        envelope.rcpt_tos.append(address)
        return '250 OK'
    async def handle_DATA(self, server, session, envelope):
        reply = None
        p = os.path.join(ctl, 'data-reply')
        if os.path.exists(p):
            reply = open(p).read().splitlines()[0]
        rec = {'helo': session.host_name, 'from': envelope.mail_from,
               'to': envelope.rcpt_tos, 'data': envelope.original_content.decode('latin-1'),
               'reply': reply}
        with open(log, 'a') as f:
            f.write(json.dumps(rec) + '\n')
        return reply or ('250 2.0.0 Ok: queued as Q%d' % next(counter))
c = Controller(H(), hostname=host, port=port)
c.start()
while True:
    time.sleep(3600)
"#;

/// A running aiosmtpd recorder.
pub struct Sink {
    pub port: u16,
    pub log: PathBuf,
    pub ctl: PathBuf,
    _dir: TempDir,
    _p: Proc,
}

impl Sink {
    /// Start on `ip` (any 127.x address) and `port`; `None` when python3-aiosmtpd is absent.
    pub fn start_on(ip: &str, port: u16) -> Option<Sink> {
        let py = external(PY)?;
        let ok = Command::new(&py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !rqmail_tests::under_ci(),
                "python3-aiosmtpd missing under CI"
            );
            eprintln!("skipping: python3-aiosmtpd is not installed");
            return None;
        }
        let dir = tempdir();
        let script = dir.path().join("sink.py");
        std::fs::write(&script, SINK_PY).unwrap();
        let log = dir.path().join("log");
        let ctl = dir.path().join("ctl");
        std::fs::create_dir(&ctl).unwrap();
        let p = Proc::spawn(
            Command::new(&py)
                .arg(&script)
                .arg(ip)
                .arg(port.to_string())
                .arg(&log)
                .arg(&ctl)
                .stdout(Stdio::null()),
        );
        let addr = format!("{ip}:{port}");
        must(Duration::from_secs(30), "aiosmtpd listening", || {
            TcpStream::connect(&addr).is_ok()
        });
        Some(Sink {
            port,
            log,
            ctl,
            _dir: dir,
            _p: p,
        })
    }

    pub fn start() -> Option<Sink> {
        Sink::start_on("127.0.0.1", free_port())
    }

    /// Every recorded message: (helo, from, to, data).
    pub fn messages(&self) -> Vec<Msg> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(parse_record).collect()
    }

    /// Every MAIL FROM the server got (one per SMTP transaction), in order.
    pub fn mails(&self) -> Vec<String> {
        let mut p = self.log.clone().into_os_string();
        p.push(".mail");
        let text = std::fs::read_to_string(p).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }

    pub fn set_data_reply(&self, reply: Option<&str>) {
        let p = self.ctl.join("data-reply");
        match reply {
            Some(r) => std::fs::write(p, format!("{r}\n")).unwrap(),
            None => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub helo: String,
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    pub rejected: bool,
}

/// A tiny parser for the sink's JSON lines (strings and string lists only).
fn parse_record(line: &str) -> Option<Msg> {
    fn string(s: &str) -> (String, &str) {
        // s starts after the opening quote
        let mut out = String::new();
        let mut it = s.char_indices();
        while let Some((i, c)) = it.next() {
            match c {
                '"' => return (out, &s[i + 1..]),
                '\\' => {
                    let (_, e) = it.next().unwrap();
                    match e {
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hex: String = (0..4).map(|_| it.next().unwrap().1).collect();
                            out.push(
                                char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap(),
                            );
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        (out, "")
    }
    let field = |name: &str| -> Option<&str> {
        let k = format!("\"{name}\": ");
        let i = line.find(&k)?;
        Some(&line[i + k.len()..])
    };
    let str_field = |name: &str| -> String {
        match field(name) {
            Some(r) if r.starts_with('"') => string(&r[1..]).0,
            _ => String::new(),
        }
    };
    let mut to = Vec::new();
    if let Some(mut r) = field("to") {
        r = r.strip_prefix('[')?;
        while let Some(rest) = r.trim_start_matches([',', ' ']).strip_prefix('"') {
            let (s, rest) = string(rest);
            to.push(s);
            r = rest;
        }
    }
    Some(Msg {
        helo: str_field("helo"),
        from: str_field("from"),
        to,
        data: str_field("data"),
        rejected: field("reply").is_some_and(|r| !r.starts_with("null")),
    })
}

/// A qmail home with control files and an empty tcpto cache.
pub struct Home {
    pub dir: TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("control")).unwrap();
        std::fs::create_dir_all(dir.path().join("queue/lock")).unwrap();
        std::fs::write(dir.path().join("queue/lock/tcpto"), [0u8; 1024]).unwrap();
        let h = Home { dir };
        h.control("me", "mail.example.org");
        h
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn control(&self, name: &str, text: &str) {
        std::fs::write(
            self.dir.path().join("control").join(name),
            format!("{text}\n"),
        )
        .unwrap();
    }
}

/// Run qmail-remote with the message in a file on fd 0; its output with NUL shown as `|`.
pub fn remote(home: &Home, resolver: Option<&str>, args: &[&str], msg: &[u8]) -> String {
    let mf = home.path().join("msg");
    std::fs::write(&mf, msg).unwrap();
    let mut cmd = Command::new(bin("qmail-remote"));
    cmd.args(args)
        .env("QMAILHOME", home.path())
        .stdin(std::fs::File::open(&mf).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match resolver {
        Some(r) => cmd.env("RQMAIL_RESOLVER", r),
        // Nothing answers here: a test that wrongly needs DNS fails loudly.
        None => cmd.env("RQMAIL_RESOLVER", "127.0.0.1:9"),
    };
    let mut p = Proc::spawn(&mut cmd);
    let mut so = p.child.stdout.take().unwrap();
    let t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let st = p
        .wait_timeout(Duration::from_secs(60))
        .expect("qmail-remote finished within 60 s");
    assert_eq!(st.code(), Some(0), "qmail-remote always exits 0");
    let out = t.join().unwrap();
    String::from_utf8_lossy(&out).replace('\0', "|")
}

const MSG: &[u8] = b"Subject: t\n\n.leading dot\nbody\n";

#[test]
fn smtproutes_relay_one_transaction_with_reports() {
    let Some(sink) = Sink::start() else { return };
    let home = Home::new();
    home.control(
        "smtproutes",
        &format!("example.net:127.0.0.1:{}", sink.port),
    );
    home.control("helohost", "helo.example.org");
    let out = remote(
        &home,
        None,
        &[
            "example.net",
            "alice@example.org",
            "good@example.net",
            "bad@example.net",
            "other@example.net",
        ],
        MSG,
    );
    assert_eq!(
        out,
        "r|h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n|r|\
         K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 Ok: queued as Q1\n|"
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "one transaction: {msgs:?}");
    let m = &msgs[0];
    assert_eq!(m.helo, "helo.example.org");
    assert_eq!(m.from, "alice@example.org");
    assert_eq!(m.to, vec!["good@example.net", "other@example.net"]);
    assert_eq!(m.data, "Subject: t\r\n\r\n.leading dot\r\nbody\r\n");
}

#[test]
fn recipient_reports_match_qmail() {
    let Some(sink) = Sink::start() else { return };
    let home = Home::new();
    home.control(
        "smtproutes",
        &format!("example.net:127.0.0.1:{}", sink.port),
    );
    let out = remote(
        &home,
        None,
        &["example.net", "alice@example.org", "bad@example.net"],
        MSG,
    );
    assert_eq!(
        out,
        "h127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 no such user\n|DGiving up on 127.0.0.1.\n|"
    );
    let out = remote(
        &home,
        None,
        &["example.net", "alice@example.org", "later@example.net"],
        MSG,
    );
    assert_eq!(
        out,
        "s127.0.0.1 does not like recipient.\nRemote host said: 451 4.3.0 try later\n|DGiving up on 127.0.0.1.\n|"
    );
    // helohost defaults to me; the null sender is sent as <>.
    let out = remote(&home, None, &["example.net", "", "x@example.net"], MSG);
    assert!(out.starts_with("r|K127.0.0.1 accepted message."), "{out}");
    let m = sink.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].helo, "mail.example.org");
    assert_eq!(m[0].from, "<>", "aiosmtpd shows the null sender as <>");
}

#[test]
fn data_replies_decide_the_message_report() {
    let Some(sink) = Sink::start() else { return };
    let home = Home::new();
    // The default route (empty domain) with a port.
    home.control("smtproutes", &format!(":127.0.0.1:{}", sink.port));
    sink.set_data_reply(Some("554 5.7.1 content rejected"));
    let out = remote(
        &home,
        None,
        &["example.net", "a@example.org", "x@example.net"],
        MSG,
    );
    assert_eq!(
        out,
        "r|D127.0.0.1 failed after I sent the message.\nRemote host said: 554 5.7.1 content rejected\n|"
    );
    sink.set_data_reply(Some("451 4.3.0 queue full"));
    let out = remote(
        &home,
        None,
        &["example.net", "a@example.org", "x@example.net"],
        MSG,
    );
    assert_eq!(
        out,
        "r|Z127.0.0.1 failed after I sent the message.\nRemote host said: 451 4.3.0 queue full\n|"
    );
}

#[test]
fn partial_final_line_is_refused_before_connecting() {
    let home = Home::new();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    home.control(
        "smtproutes",
        &format!("example.net:127.0.0.1:{}", l.local_addr().unwrap().port()),
    );
    let out = remote(
        &home,
        None,
        &["example.net", "a@example.org", "x@example.net"],
        b"Subject: t\n\nno newline",
    );
    assert_eq!(
        out,
        "DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n|"
    );
    l.set_nonblocking(true).unwrap();
    assert!(l.accept().is_err(), "no connection was made");
}

#[test]
fn usage_and_missing_controls() {
    let home = Home::new();
    let out = remote(&home, None, &["example.net", "a@example.org"], MSG);
    assert_eq!(out, "DI (qmail-remote) was invoked improperly. (#5.3.5)\n|");
    std::fs::remove_file(home.path().join("control/me")).unwrap();
    let out = remote(&home, None, &["example.net", "a@b", "c@example.net"], MSG);
    assert_eq!(out, "ZUnable to read control files. (#4.3.0)\n|");
    home.control("helohost", "h.example");
    home.control("timeoutremote", "soon");
    let out = remote(&home, None, &["example.net", "a@b", "c@example.net"], MSG);
    assert_eq!(out, "ZUnable to read control files. (#4.3.0)\n|");
}

#[test]
fn address_with_newline_is_a_temporary_failure() {
    let Some(sink) = Sink::start() else { return };
    let home = Home::new();
    home.control(
        "smtproutes",
        &format!("example.net:127.0.0.1:{}", sink.port),
    );
    let out = remote(
        &home,
        None,
        &[
            "example.net",
            "a@example.org",
            "x\nRSET@example.net",
            "ok@example.net",
        ],
        MSG,
    );
    assert!(
        out.starts_with(
            "sSorry, the recipient address contains a line break, which SMTP cannot carry. (#4.1.3)\n|r|K127.0.0.1 accepted message."
        ),
        "{out}"
    );
    assert_eq!(sink.messages()[0].to, vec!["ok@example.net"]);
    let out = remote(
        &home,
        None,
        &["example.net", "a\r\n@example.org", "ok@example.net"],
        MSG,
    );
    assert_eq!(
        out,
        "ZSorry, the sender address contains a line break, which SMTP cannot carry. (#4.1.7)\n|"
    );
    let out = remote(&home, None, &["example.net", "a@example.org", "x\n@y"], MSG);
    assert!(out.starts_with("sSorry"), "{out}");
    assert!(out.contains("|Z"), "{out}");
    assert_eq!(sink.messages().len(), 1);
}

// ---- scripted bad servers ----

/// Serve one connection on a fresh port with `f`; returns the port.
fn fake_server(f: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            f(s);
        }
    });
    port
}

/// Read one command line from the client.
fn cmd(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    let _ = r.read_line(&mut l);
    l
}

/// Greet, then answer HELO/MAIL/RCPT with 250 and DATA with 354.
fn up_to_data(s: &TcpStream) -> BufReader<TcpStream> {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    w.write_all(b"220 fake ESMTP\r\n").unwrap();
    loop {
        let c = cmd(&mut r);
        if c.is_empty() {
            return r;
        }
        if c.starts_with("DATA") {
            w.write_all(b"354 go\r\n").unwrap();
            return r;
        }
        w.write_all(b"250 ok\r\n").unwrap();
    }
}

fn relay_home(port: u16) -> Home {
    let home = Home::new();
    home.control("smtproutes", &format!("example.net:127.0.0.1:{port}"));
    home.control("timeoutremote", "3");
    home
}

const ARGS: &[&str] = &["example.net", "a@example.org", "x@example.net"];

#[test]
fn stalled_server_times_out() {
    let port = fake_server(|s| {
        let mut w = s.try_clone().unwrap();
        w.write_all(b"220 fake\r\n").unwrap();
        std::thread::sleep(Duration::from_secs(20));
        drop(s);
    });
    let out = remote(&relay_home(port), None, ARGS, MSG);
    assert_eq!(
        out,
        "ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n|"
    );
}

#[test]
fn server_closing_mid_data() {
    let port = fake_server(|s| {
        // Close right after "354": the client is still sending.
        let r = up_to_data(&s);
        drop(r);
        drop(s);
    });
    // Far more than the socket buffers hold, so the client sees the connection die.
    let mut big = b"Subject: big\n\n".to_vec();
    for _ in 0..200_000 {
        big.extend_from_slice(&[b'x'; 100]);
        big.push(b'\n');
    }
    let out = remote(&relay_home(port), None, ARGS, &big);
    assert_eq!(
        out,
        "r|ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n|"
    );
}

#[test]
fn connection_dying_after_the_final_dot_is_a_possible_duplicate() {
    let port = fake_server(|s| {
        let mut r = up_to_data(&s);
        loop {
            let c = cmd(&mut r);
            if c.is_empty() || c == ".\r\n" {
                break;
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
    });
    let out = remote(&relay_home(port), None, ARGS, MSG);
    assert_eq!(
        out,
        "r|ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n|"
    );
}

#[test]
fn garbage_reply_is_temporary() {
    let port = fake_server(|s| {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        w.write_all(b"220 fake\r\n").unwrap();
        let _ = cmd(&mut r);
        w.write_all(b"250 ok\r\n").unwrap();
        let _ = cmd(&mut r);
        w.write_all(b"250 ok\r\n").unwrap();
        let _ = cmd(&mut r);
        // "999" would be a permanent rejection if read as a code; this is garbage.
        w.write_all(b"999garbage \x01\x02\r\n").unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    let out = remote(&relay_home(port), None, ARGS, MSG);
    assert!(
        out.starts_with(
            "ZConnected to 127.0.0.1 but its SMTP reply was malformed. (#4.4.2)\nRemote host said: 999garbage"
        ),
        "{out}"
    );
}

#[test]
fn endless_multiline_reply_is_cut_off() {
    let port = fake_server(|s| {
        let mut w = s;
        let _ = w.write_all(b"220-hello\r\n");
        let line = b"220-and more and more and more and more and more\r\n".repeat(100);
        for _ in 0..100_000 {
            if w.write_all(&line).is_err() {
                break;
            }
        }
    });
    let out = remote(&relay_home(port), None, ARGS, MSG);
    assert_eq!(
        out,
        "ZConnected to 127.0.0.1 but its SMTP reply was too long. (#4.4.2)\n|"
    );
}

#[test]
fn greeting_failure_and_refused_connection() {
    let port = fake_server(|s| {
        let mut w = s.try_clone().unwrap();
        w.write_all(b"554 go away\r\n").unwrap();
        let mut r = BufReader::new(s);
        let _ = cmd(&mut r);
    });
    let out = remote(&relay_home(port), None, ARGS, MSG);
    assert_eq!(
        out,
        "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 go away\n|"
    );
    let dead = free_port();
    let out = remote(&relay_home(dead), None, ARGS, MSG);
    assert_eq!(
        out,
        "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n|"
    );
}

#[test]
fn tcpto_skips_dead_hosts_until_qmail_tcpok() {
    let Some(sink) = Sink::start_on("127.0.0.5", free_port()) else {
        return;
    };
    let home = Home::new();
    home.control(
        "smtproutes",
        &format!("example.net:[127.0.0.5]:{}", sink.port),
    );
    // Two recent time-outs recorded for 127.0.0.5.
    let mut rec = [0u8; 1024];
    rec[0..4].copy_from_slice(&[127, 0, 0, 5]);
    rec[4] = 2;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    rec[8..12].copy_from_slice(&now.to_le_bytes());
    let tcpto = home.path().join("queue/lock/tcpto");
    std::fs::write(&tcpto, rec).unwrap();
    let out = remote(&home, None, ARGS, MSG);
    assert_eq!(
        out,
        "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n|"
    );
    assert!(sink.messages().is_empty());
    let shown = Command::new(bin("qmail-tcpto"))
        .env("QMAILHOME", home.path())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.starts_with("127.0.0.5 timed out ")
            && shown.ends_with(" seconds ago; # recent timeouts: 2\n")
            && shown.lines().count() == 1,
        "{shown}"
    );
    let st = Command::new(bin("qmail-tcpok"))
        .env("QMAILHOME", home.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&tcpto).unwrap(), vec![0u8; 1024]);
    let out = remote(&home, None, ARGS, MSG);
    assert!(out.starts_with("r|K127.0.0.5 accepted message."), "{out}");
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn qmail_tcpok_reports_a_missing_cache() {
    let d = tempdir();
    let out = Command::new(bin("qmail-tcpok"))
        .env("QMAILHOME", d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(111));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.starts_with("qmail-tcpok: fatal: unable to write ") && e.contains("queue/lock/tcpto"),
        "{e}"
    );
}

// ---- DNS ----

/// A dnsmasq serving the test zone; `None` when dnsmasq is absent.
struct Dnsmasq {
    addr: String,
    _p: Proc,
}

fn dnsmasq(records: &[&str]) -> Option<Dnsmasq> {
    let exe = external("/usr/sbin/dnsmasq")?;
    for _ in 0..5 {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--no-daemon",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--no-resolv",
            "--no-hosts",
            "--local=/test/",
        ])
        .arg(format!("--port={port}"))
        .args(records)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if nix::unistd::geteuid().is_root() {
            cmd.arg("--user=root");
        }
        let mut p = Proc::spawn(&mut cmd);
        let addr = format!("127.0.0.1:{port}");
        if wait_until(Duration::from_secs(20), || {
            TcpStream::connect(&addr).is_ok()
        }) {
            return Some(Dnsmasq { addr, _p: p });
        }
        p.kill_group();
    }
    panic!("dnsmasq did not start");
}

#[test]
fn mx_lookup_preference_fallback_and_a_records() {
    let port = free_port();
    // Two live exchangers on 127.0.0.2 (preference 10) and 127.0.0.3 (20), and 127.0.0.4
    // reachable only through its A record.
    let (Some(s2), Some(s3), Some(s4)) = (
        Sink::start_on("127.0.0.2", port),
        Sink::start_on("127.0.0.3", port),
        Sink::start_on("127.0.0.4", port),
    ) else {
        return;
    };
    let Some(dns) = dnsmasq(&[
        "--mx-host=pref.test,mx2.test,10",
        "--mx-host=pref.test,mx3.test,20",
        "--mx-host=dead.test,mx9.test,5",
        "--mx-host=dead.test,mx3.test,50",
        "--mx-host=self.test,me.test,10",
        "--mx-host=ghost.test,nowhere.test,10",
        "--host-record=mx2.test,127.0.0.2",
        "--host-record=mx3.test,127.0.0.3",
        "--host-record=mx9.test,127.0.0.9",
        "--host-record=me.test,127.0.0.1",
        "--host-record=amail.test,127.0.0.4",
    ]) else {
        return;
    };
    let home = Home::new();
    // MX lookup as usual, but on the test port (our `domain::port` extension).
    home.control(
        "smtproutes",
        &[
            "pref.test",
            "dead.test",
            "amail.test",
            "self.test",
            "ghost.test",
            "nothere.test",
        ]
        .map(|d| format!("{d}::{port}"))
        .join("\n"),
    );
    let r = Some(dns.addr.as_str());
    for _ in 0..3 {
        let out = remote(
            &home,
            r,
            &["pref.test", "a@example.org", "u@pref.test"],
            MSG,
        );
        assert!(out.starts_with("r|K127.0.0.2 accepted message."), "{out}");
    }
    assert_eq!(s2.messages().len(), 3);
    assert!(s3.messages().is_empty());

    // The best MX (127.0.0.9) refuses connections: the next one gets the message.
    let out = remote(
        &home,
        r,
        &["dead.test", "a@example.org", "u@dead.test"],
        MSG,
    );
    assert!(out.starts_with("r|K127.0.0.3 accepted message."), "{out}");
    assert_eq!(s3.messages()[0].to, vec!["u@dead.test"]);

    // No MX: the A record.
    let out = remote(
        &home,
        r,
        &["amail.test", "a@example.org", "u@amail.test"],
        MSG,
    );
    assert!(out.starts_with("r|K127.0.0.4 accepted message."), "{out}");
    assert_eq!(s4.messages().len(), 1);

    // We are the best MX ourselves.
    let out = remote(
        &home,
        r,
        &["self.test", "a@example.org", "u@self.test"],
        MSG,
    );
    assert_eq!(
        out,
        "DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n|"
    );
    // The MX exists but has no address.
    let out = remote(
        &home,
        r,
        &["ghost.test", "a@example.org", "u@ghost.test"],
        MSG,
    );
    assert_eq!(
        out,
        "DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n|"
    );
    // The domain does not exist.
    let out = remote(
        &home,
        r,
        &["nothere.test", "a@example.org", "u@nothere.test"],
        MSG,
    );
    assert_eq!(
        out,
        "DSorry, I couldn't find any host named nothere.test. (#5.1.2)\n|"
    );
}

/// A DNS server answering SERVFAIL to everything.
fn servfail_dns() -> String {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut resp = buf[..n].to_vec();
            resp[2] |= 0x80; // QR
            resp[3] = (resp[3] & 0x70) | 0x80 | 2; // RA, SERVFAIL
            let _ = s.send_to(&resp, peer);
        }
    });
    addr
}

#[test]
fn dns_temporary_failures() {
    let dns = servfail_dns();
    let home = Home::new();
    home.control("timeoutconnect", "2");
    // MX lookup: the recipient's CNAME lookup fails first.
    let out = remote(
        &home,
        Some(&dns),
        &["example.test", "a@example.org", "u@example.test"],
        MSG,
    );
    assert_eq!(out, "ZCNAME lookup failed temporarily. (#4.4.3)\n|");
    // A relay by name: no CNAME step, the A lookup fails.
    home.control("smtproutes", "example.test:relay.example.test:2525");
    let out = remote(
        &home,
        Some(&dns),
        &["example.test", "a@example.org", "u@example.test"],
        MSG,
    );
    assert_eq!(
        out,
        "ZSorry, I couldn't find any host by that name. (#4.1.2)\n|"
    );
}

// ---- serialmail ----

fn maildir(root: &Path) -> PathBuf {
    let md = root.join("outgoing");
    for d in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    md
}

fn put(md: &Path, name: &str, sender: &str, dt: &str, body: &str) {
    std::fs::write(
        md.join(name),
        format!("Return-Path: <{sender}>\nDelivered-To: {dt}\n{body}"),
    )
    .unwrap();
}

/// A stand-in qmail-queue that saves the message and the envelope in `dir`.
fn fake_queue(dir: &Path) -> PathBuf {
    let p = dir.join("fake-qmail-queue");
    rqmail_tests::write_exec(
        &p,
        &format!(
            "#!/bin/sh\ncat > '{0}/bounce.msg'\ncat 0<&1 > '{0}/bounce.env'\nexit 0\n",
            dir.display()
        ),
    );
    p
}

#[test]
fn maildirsmtp_pushes_strips_prefix_and_keeps_failures() {
    let Some(sink) = Sink::start() else { return };
    let t = tempdir();
    let md = maildir(t.path());
    let pre = "alias-outgoing-";
    put(
        &md,
        "new/1.a",
        "alice@example.org",
        &format!("{pre}good@remote.example"),
        "Subject: one\n\n.dot line\nbody\n",
    );
    put(
        &md,
        "cur/2.b:2,S",
        "bob@example.org",
        &format!("{pre}second@remote.example"),
        "Subject: two\n\nx\n",
    );
    put(
        &md,
        "new/3.c",
        "carol@example.org",
        &format!("{pre}bad@remote.example"),
        "Subject: three\n\nx\n",
    );
    put(
        &md,
        "new/4.d",
        "dave@example.org",
        &format!("{pre}later@remote.example"),
        "Subject: four\n\nx\n",
    );
    put(
        &md,
        "new/5.e",
        "eve@example.org",
        "someone-else@remote.example",
        "Subject: five\n\nx\n",
    );
    let home = Home::new();
    let out = Command::new(bin("maildirsmtp"))
        .arg(&md)
        .arg(pre)
        .arg(format!("127.0.0.1:{}", sink.port))
        .arg("helo.example.org")
        .env("QMAILHOME", home.path())
        .env("QMAILQUEUE", fake_queue(t.path()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let mut got: Vec<(String, Vec<String>, String)> = sink
        .messages()
        .into_iter()
        .map(|m| {
            assert_eq!(m.helo, "helo.example.org");
            (m.from, m.to, m.data)
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "alice@example.org".to_string(),
                vec!["good@remote.example".to_string()],
                "Subject: one\r\n\r\n.dot line\r\nbody\r\n".to_string()
            ),
            (
                "bob@example.org".to_string(),
                vec!["second@remote.example".to_string()],
                "Subject: two\r\n\r\nx\r\n".to_string()
            ),
        ]
    );
    // Accepted: gone. Permanent failure: bounced to the sender, then gone. Temporary
    // failure and the other prefix: kept.
    assert!(!md.join("new/1.a").exists());
    assert!(!md.join("cur/2.b:2,S").exists());
    assert!(!md.join("new/3.c").exists(), "{err}");
    assert!(md.join("new/4.d").exists());
    assert!(md.join("new/5.e").exists());
    let env = std::fs::read(t.path().join("bounce.env")).unwrap();
    assert_eq!(env, b"F\0Tcarol@example.org\0\0");
    let b = std::fs::read_to_string(t.path().join("bounce.msg")).unwrap();
    assert!(
        b.contains("<bad@remote.example>:") && b.contains("550 5.1.1 no such user"),
        "{b}"
    );
    assert!(b.contains("Subject: three"), "{b}");
    assert!(err.contains("new/4.d: Z"), "{err}");
}

#[test]
fn maildirsmtp_keeps_everything_when_the_server_is_down() {
    let t = tempdir();
    let md = maildir(t.path());
    put(
        &md,
        "new/1.a",
        "a@example.org",
        "p-u@remote.example",
        "Subject: s\n\nx\n",
    );
    let out = Command::new(bin("maildirsmtp"))
        .arg(&md)
        .arg("p-")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("helo.example.org")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(111));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unable to connect"));
    assert!(md.join("new/1.a").exists());
}

#[test]
fn maildirserial_runs_a_client_and_acts_on_its_results() {
    let t = tempdir();
    let md = maildir(t.path());
    put(
        &md,
        "new/1.a",
        "a@example.org",
        "p-ok@remote.example",
        "Subject: s\n\nx\n",
    );
    put(
        &md,
        "new/2.b",
        "b@example.org",
        "p-soft@remote.example",
        "Subject: s\n\nx\n",
    );
    put(
        &md,
        "new/3.c",
        "c@example.org",
        "p-hard@remote.example",
        "Subject: s\n\nx\n",
    );
    // The client answers by recipient: ok → K, soft → Z, hard → D.
    let client = t.path().join("client");
    rqmail_tests::write_exec(
        &client,
        "#!/bin/sh\ntr '\\0' '\\n' | while read f; do\n  case \"$(sed -n 2p \"$f\")\" in\n    *ok@*) s=Kfine;; *soft@*) s=Zlater;; *) s=Dnever;;\n  esac\n  printf '%s\\0%s\\n' \"$f\" \"$s\"\ndone\n",
    );
    let out = Command::new(bin("maildirserial"))
        .args(["-b", "-t", "1209600", "--"])
        .arg(&md)
        .arg("p-")
        .arg(&client)
        .env("QMAILQUEUE", fake_queue(t.path()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!md.join("new/1.a").exists());
    assert!(md.join("new/2.b").exists());
    assert!(!md.join("new/3.c").exists());
    assert_eq!(
        std::fs::read(t.path().join("bounce.env")).unwrap(),
        b"F\0Tc@example.org\0\0"
    );
    // Without -b a permanent failure is kept.
    put(
        &md,
        "new/4.d",
        "d@example.org",
        "p-hard@remote.example",
        "Subject: s\n\nx\n",
    );
    let out = Command::new(bin("maildirserial"))
        .arg(&md)
        .arg("p-")
        .arg(&client)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(md.join("new/4.d").exists());
}

#[test]
fn equal_preferences_are_tried_in_random_order_and_cnames_are_followed() {
    let port = free_port();
    let (Some(s2), Some(s3)) = (
        Sink::start_on("127.0.0.2", port),
        Sink::start_on("127.0.0.3", port),
    ) else {
        return;
    };
    let Some(dns) = dnsmasq(&[
        "--mx-host=tie.test,mx2.test,10",
        "--mx-host=tie.test,mx3.test,10",
        "--mx-host=canon.test,mx2.test,10",
        "--cname=alias.test,canon.test",
        "--host-record=mx2.test,127.0.0.2",
        "--host-record=mx3.test,127.0.0.3",
    ]) else {
        return;
    };
    let home = Home::new();
    home.control(
        "smtproutes",
        &format!("tie.test::{port}\nalias.test::{port}"),
    );
    let r = Some(dns.addr.as_str());
    for _ in 0..20 {
        let out = remote(&home, r, &["tie.test", "a@example.org", "u@tie.test"], MSG);
        assert!(out.starts_with("r|K127.0.0."), "{out}");
    }
    let (n2, n3) = (s2.messages().len(), s3.messages().len());
    assert_eq!(n2 + n3, 20);
    assert!(
        n2 > 0 && n3 > 0,
        "both equal-preference MXs used: {n2} {n3}"
    );

    // The recipient's domain is an alias: the RCPT uses the canonical name.
    let out = remote(
        &home,
        r,
        &["alias.test", "a@example.org", "u@alias.test"],
        MSG,
    );
    assert!(out.starts_with("r|K127.0.0.2 accepted message."), "{out}");
    let last = s2.messages().pop().unwrap();
    assert_eq!(last.to, vec!["u@canon.test"]);
}

#[test]
fn maildirserial_with_tcpclient_and_serialsmtp() {
    let Some(sink) = Sink::start() else { return };
    let t = tempdir();
    let md = maildir(t.path());
    put(
        &md,
        "new/1.a",
        "a@example.org",
        "p-one@remote.example",
        "Subject: 1\n\n..x\n",
    );
    put(
        &md,
        "new/2.b",
        "b@example.org",
        "p-bad@remote.example",
        "Subject: 2\n\nx\n",
    );
    put(
        &md,
        "cur/3.c:2,",
        "c@example.org",
        "p-three@remote.example",
        "Subject: 3\n\nx\n",
    );
    // Debian's ucspi-tcp tcpclient when installed, else a stand-in that does the same:
    // connect, put the socket on fds 6 and 7, run the program.
    let client: Vec<String> = match std::path::Path::new("/usr/bin/tcpclient").exists() {
        true => vec!["/usr/bin/tcpclient".into(), "-RHl0".into(), "--".into()],
        false => {
            let p = t.path().join("tcpclient.py");
            std::fs::write(
                &p,
                "import os, socket, sys\ns = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n\
                 os.dup2(s.fileno(), 6)\nos.dup2(s.fileno(), 7)\nos.execv(sys.argv[3], sys.argv[3:])\n",
            )
            .unwrap();
            vec![PY.into(), p.display().to_string()]
        }
    };
    let out = Command::new(bin("maildirserial"))
        .args(["-b", "-t", "1209600", "--"])
        .arg(&md)
        .arg("p-")
        .args(&client)
        .arg("127.0.0.1")
        .arg(sink.port.to_string())
        .arg(bin("serialsmtp"))
        .args(["p-", "helo.example.org"])
        .env("QMAILQUEUE", fake_queue(t.path()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let mut got: Vec<(Vec<String>, String)> = sink
        .messages()
        .into_iter()
        .map(|m| (m.to, m.data))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                vec!["one@remote.example".to_string()],
                "Subject: 1\r\n\r\n..x\r\n".to_string()
            ),
            (
                vec!["three@remote.example".to_string()],
                "Subject: 3\r\n\r\nx\r\n".to_string()
            ),
        ]
    );
    assert!(!md.join("new/1.a").exists() && !md.join("cur/3.c:2,").exists());
    assert!(!md.join("new/2.b").exists(), "bounced and removed: {err}");
    assert_eq!(
        std::fs::read(t.path().join("bounce.env")).unwrap(),
        b"F\0Tb@example.org\0\0"
    );
}

// ---- end to end: qmail-send → qmail-rspawn → qmail-remote → aiosmtpd ----

/// A qmail home made by qmail-install, routing remote.test to a sink, with qmail-send
/// running under qmail-start.
struct Queue {
    _t: TempDir,
    home: PathBuf,
    log: PathBuf,
    send: Option<Proc>,
}

impl Queue {
    fn new(sink: &Sink) -> Queue {
        Queue::with(sink, |_| {})
    }

    /// `setup` runs on the new home before qmail-send starts.
    fn with(sink: &Sink, setup: impl FnOnce(&Path)) -> Queue {
        use std::os::unix::fs::PermissionsExt;
        let t = tempdir();
        // qmail-remote runs as qmailr when we are root: the tree must be reachable.
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = t.path().join("qmail");
        std::fs::create_dir(&home).unwrap();
        if nix::unistd::geteuid().is_root() {
            crate::common::write_test_ids(&home, 64200);
        }
        let out = Command::new(bin("qmail-install"))
            .arg(&home)
            .output()
            .unwrap();
        assert!(out.status.success(), "qmail-install: {out:?}");
        let c = home.join("control");
        std::fs::write(c.join("me"), "example.org\n").unwrap();
        std::fs::write(c.join("locals"), "example.org\n").unwrap();
        std::fs::write(
            c.join("smtproutes"),
            format!("remote.test:127.0.0.1:{}\n", sink.port),
        )
        .unwrap();
        setup(&home);
        let log = t.path().join("send.log");
        let mut q = Queue {
            _t: t,
            home,
            log,
            send: None,
        };
        q.start();
        q
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(self.home.join("bin/qmail-start"));
        cmd.env("QMAILHOME", &self.home)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.send = Some(Proc::spawn(&mut cmd));
        must(Duration::from_secs(30), "qmail-send to start", || {
            self.log_text().contains("status: local 0/")
        });
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for a log line containing `needle`; returns the line.
    fn wait_log(&self, needle: &str) -> String {
        let mut line = String::new();
        let ok = wait_until(Duration::from_secs(60), || {
            match self.log_text().lines().find(|l| l.contains(needle)) {
                Some(l) => {
                    line = l.to_string();
                    true
                }
                None => false,
            }
        });
        assert!(ok, "no log line with {needle:?} in:\n{}", self.log_text());
        line
    }

    /// Queue a message with qmail-queue.
    fn inject(&self, msg: &[u8], sender: &str, rcpts: &[&str]) {
        let mut env = format!("F{sender}\0").into_bytes();
        for r in rcpts {
            env.extend_from_slice(format!("T{r}\0").as_bytes());
        }
        env.push(0);
        let (r, mut w) = std::io::pipe().unwrap();
        let mut cmd = Command::new(self.home.join("bin/qmail-queue"));
        cmd.env("QMAILHOME", &self.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(r))
            .stderr(Stdio::null());
        let mut p = Proc::spawn(&mut cmd);
        drop(cmd);
        let mut stdin = p.child.stdin.take().unwrap();
        let m = msg.to_vec();
        let t = std::thread::spawn(move || {
            let _ = stdin.write_all(&m);
        });
        w.write_all(&env).unwrap();
        drop(w);
        let st = p
            .wait_timeout(Duration::from_secs(30))
            .expect("qmail-queue finishes");
        let _ = t.join();
        assert_eq!(st.code(), Some(0), "qmail-queue");
    }

    fn alarm(&self) {
        if let Some(p) = &self.send {
            p.signal(nix::sys::signal::Signal::SIGALRM);
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(p) = self.send.as_mut() {
            p.signal(nix::sys::signal::Signal::SIGTERM);
            let _ = p.wait_timeout(Duration::from_secs(20));
        }
    }
}

#[test]
fn end_to_end_remote_delivery_once_with_the_right_envelope() {
    let Some(sink) = Sink::start() else { return };
    let q = Queue::new(&sink);
    q.inject(
        b"Subject: e2e\n\n.dot\nbody\n",
        "alice@example.org",
        &["bob@remote.test"],
    );
    q.wait_log("to remote bob@remote.test");
    let line = q.wait_log(
        ": success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_Ok:_queued_as_Q1/",
    );
    assert!(line.contains("delivery "), "{line}");
    q.wait_log("end msg ");
    let m = sink.messages();
    assert_eq!(m.len(), 1, "delivered once: {m:?}");
    assert_eq!(m[0].from, "alice@example.org");
    assert_eq!(m[0].to, vec!["bob@remote.test"]);
    assert_eq!(m[0].helo, "example.org");
    assert!(
        m[0].data.ends_with("Subject: e2e\r\n\r\n.dot\r\nbody\r\n"),
        "{}",
        m[0].data
    );
}

#[test]
fn end_to_end_4xx_is_retried_then_delivered() {
    let Some(sink) = Sink::start() else { return };
    sink.set_data_reply(Some("451 4.3.0 try again later"));
    let mut q = Queue::new(&sink);
    q.inject(
        b"Subject: retry\n\nx\n",
        "alice@example.org",
        &["carol@remote.test"],
    );
    q.wait_log(": deferral: 127.0.0.1_failed_after_I_sent_the_message./Remote_host_said:_451_4.3.0_try_again_later/");
    sink.set_data_reply(None);
    // The next try would be minutes away; SIGALRM makes qmail-send retry now.
    let ok = wait_until(Duration::from_secs(60), || {
        q.alarm();
        q.log_text()
            .contains(": success: 127.0.0.1_accepted_message.")
    });
    assert!(ok, "retried after ALRM:\n{}", q.log_text());
    q.wait_log("end msg ");
    let m = sink.messages();
    assert_eq!(m.iter().filter(|m| !m.rejected).count(), 1, "{m:?}");
    assert!(m[0].rejected);
    assert_eq!(m.last().unwrap().to, vec!["carol@remote.test"]);
    q.send
        .as_mut()
        .unwrap()
        .signal(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn end_to_end_5xx_bounces_with_the_servers_text() {
    let Some(sink) = Sink::start() else { return };
    let q = Queue::new(&sink);
    q.inject(
        b"Subject: doomed\n\nx\n",
        "sender@remote.test",
        &["bad@remote.test"],
    );
    q.wait_log(
        ": failure: 127.0.0.1_does_not_like_recipient./Remote_host_said:_550_5.1.1_no_such_user/",
    );
    // The bounce goes back to the (remote) sender with the null envelope sender.
    must(Duration::from_secs(60), "the bounce at the sink", || {
        sink.messages()
            .iter()
            .any(|m| m.to == vec!["sender@remote.test"])
    });
    let b = sink
        .messages()
        .into_iter()
        .find(|m| m.to == vec!["sender@remote.test"])
        .unwrap();
    assert_eq!(b.from, "<>");
    assert!(b.data.contains("<bad@remote.test>:"), "{}", b.data);
    assert!(b.data.contains("550 5.1.1 no such user"), "{}", b.data);
    assert!(b.data.contains("Subject: doomed"), "{}", b.data);
}

#[test]
fn end_to_end_outgoing_alias_recipe_then_maildirsmtp() {
    let Some(sink) = Sink::start() else { return };
    let root = nix::unistd::geteuid().is_root();
    let q = Queue::with(&sink, |home| {
        use std::os::unix::fs::PermissionsExt;
        // Every non-local domain goes to the alias user's "outgoing" Maildir.
        std::fs::write(home.join("control/virtualdomains"), ":alias-outgoing\n").unwrap();
        let alias = home.join("alias");
        let md = maildir(&alias);
        std::fs::write(alias.join(".qmail-outgoing-default"), "./outgoing/\n").unwrap();
        std::fs::set_permissions(
            alias.join(".qmail-outgoing-default"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        if root {
            for p in [md.clone(), md.join("new"), md.join("cur"), md.join("tmp")] {
                std::os::unix::fs::chown(&p, Some(64201), Some(64200)).unwrap();
            }
            std::os::unix::fs::chown(
                alias.join(".qmail-outgoing-default"),
                Some(64201),
                Some(64200),
            )
            .unwrap();
        }
        // In a real install `alias` is a password-file user, so qmail-getpw's rules send
        // alias-outgoing-X to ~alias/.qmail-outgoing-X. Here the alias user exists only in
        // QMAILHOME/ids, so users/assign says the same thing explicitly.
        let (uid, gid) = if root {
            (64201, 64200)
        } else {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        };
        std::fs::write(
            home.join("users/assign"),
            format!("+alias-:alias:{uid}:{gid}:{}:-::\n.\n", alias.display()),
        )
        .unwrap();
        let out = Command::new(home.join("bin/qmail-newu"))
            .env("QMAILHOME", home)
            .output()
            .unwrap();
        assert!(out.status.success(), "qmail-newu: {out:?}");
    });
    let md = q.home.join("alias/outgoing");
    q.inject(
        b"Subject: via the link\n\nhello\n",
        "alice@example.org",
        &["dave@far.example"],
    );
    q.wait_log("to local alias-outgoing-dave@far.example");
    q.wait_log(": success: ");
    let mut file = PathBuf::new();
    must(
        Duration::from_secs(30),
        "the message in outgoing/new",
        || match std::fs::read_dir(md.join("new")).unwrap().flatten().next() {
            Some(e) => {
                file = e.path();
                true
            }
            None => false,
        },
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with(
            "Return-Path: <alice@example.org>\nDelivered-To: alias-outgoing-dave@far.example\n"
        ),
        "{text}"
    );
    // The link is up: push the Maildir to the provider.
    let out = Command::new(bin("maildirsmtp"))
        .arg(&md)
        .arg("alias-outgoing-")
        .arg(format!("127.0.0.1:{}", sink.port))
        .arg("example.org")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let m = sink.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].from, "alice@example.org");
    assert_eq!(m[0].to, vec!["dave@far.example"]);
    assert!(
        m[0].data.contains("Subject: via the link\r\n\r\nhello\r\n"),
        "{}",
        m[0].data
    );
    assert!(
        !m[0].data.contains("Delivered-To: alias-outgoing"),
        "{}",
        m[0].data
    );
    assert!(!file.exists());
}

#[test]
fn maildirsmtp_keeps_everything_when_the_greeting_fails_or_the_link_dies() {
    let t = tempdir();
    let md = maildir(t.path());
    put(
        &md,
        "new/1.a",
        "a@example.org",
        "p-u@remote.example",
        "Subject: s\n\nx\n",
    );
    put(
        &md,
        "new/2.b",
        "b@example.org",
        "p-v@remote.example",
        "Subject: s\n\nx\n",
    );
    let port = fake_server(|s| {
        let mut w = s.try_clone().unwrap();
        w.write_all(b"554 not now\r\n").unwrap();
        let mut r = BufReader::new(s);
        let _ = cmd(&mut r);
    });
    let run = |port: u16| {
        Command::new(bin("maildirsmtp"))
            .arg(&md)
            .arg("p-")
            .arg(format!("127.0.0.1:{port}"))
            .arg("h.example.org")
            .output()
            .unwrap()
    };
    let out = run(port);
    assert_eq!(out.status.code(), Some(111));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("greeting failed") && err.contains("554 not now"),
        "{err}"
    );
    assert!(md.join("new/1.a").exists() && md.join("new/2.b").exists());
    // The server dies in the middle of the first message: nothing is lost.
    let port = fake_server(|s| {
        let r = up_to_data(&s);
        drop(r);
    });
    let out = run(port);
    assert_eq!(out.status.code(), Some(111), "{out:?}");
    assert!(md.join("new/1.a").exists() && md.join("new/2.b").exists());
}

/// The delivery numbers of the "starting delivery N: msg M to remote ADDR" lines, by address.
fn started(log: &str) -> Vec<(u64, String)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("starting delivery ")?;
            let (num, rest) = rest.split_once(": msg ")?;
            let (_, addr) = rest.split_once(" to remote ")?;
            Some((num.parse().ok()?, addr.to_string()))
        })
        .collect()
}

/// Run qmailanalog's matchup over the log (with made-up timestamps); None when not built.
fn matchup(log: &str) -> Option<String> {
    let m = bin("matchup");
    if !m.exists() {
        return None;
    }
    let input: String = log
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{}.000000 {l}\n", 1_700_000_000 + i))
        .collect();
    let out = rqmail_tests::run_with_input(
        Command::new(m).stderr(Stdio::null()),
        Some(input.as_bytes()),
        Duration::from_secs(30),
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn end_to_end_three_recipients_at_one_host_share_one_transaction() {
    let Some(sink) = Sink::start() else { return };
    let q = Queue::new(&sink);
    q.inject(
        b"Subject: three\n\nx\n",
        "alice@example.org",
        &["a1@remote.test", "a2@remote.test", "a3@REMOTE.test"],
    );
    must(Duration::from_secs(60), "three remote successes", || {
        q.log_text()
            .matches(": success: 127.0.0.1_accepted_message.")
            .count()
            >= 3
    });
    q.wait_log("end msg ");
    let m = sink.messages();
    assert_eq!(m.len(), 1, "one transaction: {m:?}");
    assert_eq!(m[0].from, "alice@example.org");
    assert_eq!(
        m[0].to,
        vec!["a1@remote.test", "a2@remote.test", "a3@REMOTE.test"]
    );
    assert_eq!(sink.mails(), vec!["alice@example.org"], "one MAIL FROM");
    // Each recipient has its own delivery number and its own success line.
    let log = q.log_text();
    let st = started(&log);
    assert_eq!(st.len(), 3, "{log}");
    for (num, addr) in &st {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("delivery {num}: ")))
            .unwrap_or_else(|| panic!("no report for {addr} in:\n{log}"));
        assert!(
            line.contains(": success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_Ok:_queued_as_Q1/"),
            "{line}"
        );
    }
    // One slot for the whole batch.
    assert!(log.contains("status: local 0/10 remote 1/20"), "{log}");
    assert!(!log.contains("remote 2/20"), "{log}");
    // matchup (qmailanalog) sees three successful remote deliveries of one message.
    if let Some(out) = matchup(&log) {
        let d: Vec<&str> = out.lines().filter(|l| l.starts_with("d k ")).collect();
        assert_eq!(
            d.iter().filter(|l| l.contains(" remote.a")).count(),
            3,
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l.starts_with("m ") && l.contains(" 3 0 0 ")),
            "{out}"
        );
    }
}

#[test]
fn end_to_end_batch_with_one_refused_recipient() {
    let Some(sink) = Sink::start() else { return };
    let mut q = Queue::new(&sink);
    q.inject(
        b"Subject: mixed\n\nx\n",
        "sender@remote.test",
        &["ok1@remote.test", "bad@remote.test", "ok2@remote.test"],
    );
    q.wait_log(
        ": failure: 127.0.0.1_does_not_like_recipient./Remote_host_said:_550_5.1.1_no_such_user/",
    );
    must(Duration::from_secs(60), "the bounce at the sink", || {
        sink.messages()
            .iter()
            .any(|m| m.to == vec!["sender@remote.test"])
    });
    // Two recipients of the message and the bounce.
    must(Duration::from_secs(60), "three successes", || {
        q.log_text()
            .matches(": success: 127.0.0.1_accepted_message.")
            .count()
            >= 3
    });
    let m = sink.messages();
    let orig: Vec<&Msg> = m
        .iter()
        .filter(|m| m.from == "sender@remote.test")
        .collect();
    assert_eq!(orig.len(), 1, "the message went once: {m:?}");
    assert_eq!(orig[0].to, vec!["ok1@remote.test", "ok2@remote.test"]);
    let b = m
        .iter()
        .find(|m| m.to == vec!["sender@remote.test"])
        .unwrap();
    assert_eq!(b.from, "<>");
    assert!(b.data.contains("<bad@remote.test>:"), "{}", b.data);
    assert!(!b.data.contains("<ok1@remote.test>:"), "{}", b.data);
    assert!(b.data.contains("550 5.1.1 no such user"), "{}", b.data);
    // Nothing is tried again.
    q.alarm();
    std::thread::sleep(Duration::from_millis(500));
    q.alarm();
    must(Duration::from_secs(20), "qmail-send to exit", || {
        q.send
            .as_mut()
            .unwrap()
            .signal(nix::sys::signal::Signal::SIGTERM);
        q.log_text().contains("status: exiting")
    });
    assert_eq!(
        sink.messages()
            .iter()
            .filter(|m| m.from == "sender@remote.test")
            .count(),
        1
    );
    let log = q.log_text();
    assert_eq!(
        log.matches(": success: 127.0.0.1_accepted_message.")
            .count(),
        3,
        "{log}"
    );
    assert_eq!(log.matches(": failure: ").count(), 1, "{log}");
}

#[test]
fn end_to_end_partly_delivered_batch_retries_only_the_deferred() {
    let Some(sink) = Sink::start() else { return };
    let q = Queue::new(&sink);
    q.inject(
        b"Subject: part\n\nx\n",
        "alice@example.org",
        &["p1@remote.test", "later@remote.test", "p2@remote.test"],
    );
    q.wait_log(
        ": deferral: 127.0.0.1_does_not_like_recipient./Remote_host_said:_451_4.3.0_try_later/",
    );
    must(Duration::from_secs(60), "two successes", || {
        q.log_text()
            .matches(": success: 127.0.0.1_accepted_message.")
            .count()
            == 2
    });
    // Retry now: only the deferred recipient is tried (and deferred) again.
    must(Duration::from_secs(60), "a second try", || {
        q.alarm();
        q.log_text().matches("to remote later@remote.test").count() >= 2
    });
    must(Duration::from_secs(60), "its report", || {
        q.log_text().matches(": deferral: ").count() >= 2
    });
    let log = q.log_text();
    assert_eq!(log.matches("to remote p1@remote.test").count(), 1, "{log}");
    assert_eq!(log.matches("to remote p2@remote.test").count(), 1, "{log}");
    let m = sink.messages();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].to, vec!["p1@remote.test", "p2@remote.test"]);
}

#[test]
fn batchremote_1_keeps_one_recipient_per_transaction() {
    let Some(sink) = Sink::start() else { return };
    let q = Queue::with(&sink, |h| {
        std::fs::write(h.join("control/batchremote"), "1\n").unwrap();
    });
    q.inject(
        b"Subject: single\n\nx\n",
        "alice@example.org",
        &["s1@remote.test", "s2@remote.test"],
    );
    must(Duration::from_secs(60), "two successes", || {
        q.log_text()
            .matches(": success: 127.0.0.1_accepted_message.")
            .count()
            == 2
    });
    q.wait_log("end msg ");
    let m = sink.messages();
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m.iter().all(|m| m.to.len() == 1), "{m:?}");
}
