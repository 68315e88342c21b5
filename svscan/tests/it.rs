//! Integration tests for svscan, svscanboot and readproctitle: real binaries in temporary
//! directories.

use rqmail_tests::{Proc, bin, must, run, run_with_input, tempdir, write_exec};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use supervise::status::Status;

const LONG: Duration = Duration::from_secs(30);
const SLEEPER: &str = "#!/bin/sh\nexec sleep 1000\n";

fn pid(dir: &Path) -> Option<u32> {
    Status::read(&dir.join("supervise"))
        .ok()
        .map(|s| s.pid)
        .filter(|p| *p != 0)
}

fn svok(dir: &Path) -> bool {
    run(Command::new(bin("svok")).arg(dir)).status.code() == Some(0)
}

/// svscan on `dir` with PATH=/usr/bin:/bin, where Debian's supervise may be: the one it runs
/// must still be ours, found next to svscan. Stderr goes to `log`.
fn svscan(dir: &Path, log: &Path) -> Proc {
    Proc::spawn(
        Command::new(bin("svscan"))
            .arg(dir)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap()),
    )
}

fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit(')').next() else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) && f[0] != "Z" {
            let cmd = fs::read_to_string(e.path().join("cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            v.push((e.file_name().to_string_lossy().parse().unwrap(), cmd));
        }
    }
    v
}

/// Service run scripts need svc to stop them at the end: the Proc drop kills the whole
/// process group (svscan, supervises, services).
#[test]
fn picks_up_services_skips_dot_names_and_uses_our_supervise() {
    let t = tempdir();
    let sv = t.path().join("service");
    write_exec(&sv.join("a/run"), SLEEPER);
    write_exec(&sv.join(".hidden/run"), SLEEPER);
    fs::write(sv.join("plainfile"), "not a service").unwrap();
    let s = svscan(&sv, &t.path().join("err"));
    must(LONG, "a up", || pid(&sv.join("a")).is_some());
    let kids = children_of(s.pid());
    assert!(
        kids.iter()
            .any(|(_, c)| c.starts_with(&format!("{} a", bin("supervise").display()))),
        "{kids:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !sv.join(".hidden/supervise").exists(),
        "dot-names must be skipped"
    );
    // a new service is picked up by the periodic scan (every 5 s)
    write_exec(&sv.join("b/run"), SLEEPER);
    must(LONG, "b up by the periodic scan", || {
        pid(&sv.join("b")).is_some()
    });
    // symlinked service directories count too
    let real = t.path().join("elsewhere");
    write_exec(&real.join("run"), SLEEPER);
    std::os::unix::fs::symlink(&real, sv.join("c")).unwrap();
    s.signal(nix::sys::signal::SIGALRM);
    must(LONG, "c up", || pid(&real).is_some());
}

#[test]
fn sigalrm_scans_at_once() {
    let t = tempdir();
    let sv = t.path().join("service");
    write_exec(&sv.join("a/run"), SLEEPER);
    let s = svscan(&sv, &t.path().join("err"));
    must(LONG, "a up", || sv.join("a/supervise/status").exists());
    // Each scan restarts the 5-second timer, so right after one the next periodic scan is
    // about 5 s away: a service added then and followed by SIGALRM must come up well before.
    // On a badly loaded machine one attempt may miss; SIGALRM being ignored misses all three.
    let mut times = Vec::new();
    for i in 0..3 {
        let name = format!("b{i}");
        write_exec(&sv.join(&name).join("run"), SLEEPER);
        let t0 = Instant::now();
        s.signal(nix::sys::signal::SIGALRM);
        if rqmail_tests::wait_until(Duration::from_millis(3500), || {
            sv.join(&name).join("supervise/status").exists()
        }) {
            return;
        }
        must(LONG, "picked up by the periodic scan at least", || {
            sv.join(&name).join("supervise/status").exists()
        });
        times.push(t0.elapsed());
    }
    panic!("SIGALRM did not trigger a scan: services came up only after {times:?}");
}

#[test]
fn log_pipe_survives_restarts_of_both_sides() {
    let t = tempdir();
    let sv = t.path().join("service");
    // The service writes 12 numbered lines per run, then exits (supervise restarts it);
    // the logger copies 10 lines per run with a byte-wise shell read, then exits (restarted
    // too). Nothing may be lost or reordered while either side is down.
    write_exec(
        &sv.join("a/run"),
        "#!/bin/sh\nr=$(( $(cat ../../runs 2>/dev/null || echo 0) + 1 ))\necho $r > ../../runs\n\
         n=1\nwhile [ $n -le 12 ]; do echo \"$r-$n\"; n=$((n+1)); sleep 0.02; done\necho \"$r-end\"\n",
    );
    write_exec(
        &sv.join("a/log/run"),
        "#!/bin/sh\necho x >> ../../../logruns\ni=0\nwhile [ $i -lt 10 ] && IFS= read -r l; do echo \"$l\" >> ../../../out; i=$((i+1)); done\n",
    );
    let _s = svscan(&sv, &t.path().join("err"));
    let outp = t.path().join("out");
    must(LONG, "four complete service runs logged", || {
        fs::read_to_string(&outp)
            .is_ok_and(|s| s.lines().filter(|l| l.ends_with("-end")).count() >= 4)
    });
    let text = fs::read_to_string(&outp).unwrap();
    let mut expect = Vec::new();
    for r in 1..=4 {
        for n in 1..=12 {
            expect.push(format!("{r}-{n}"));
        }
        expect.push(format!("{r}-end"));
    }
    let got: Vec<&str> = text.lines().take(expect.len()).collect();
    assert_eq!(got, expect, "lines lost or out of order");
    let logruns = fs::read_to_string(t.path().join("logruns"))
        .unwrap()
        .lines()
        .count();
    assert!(logruns >= 5, "the logger restarted only {logruns} times");
}

#[test]
fn vanished_directory_keeps_its_supervise_until_svc_dx() {
    let t = tempdir();
    let sv = t.path().join("service");
    write_exec(&sv.join("a/run"), SLEEPER);
    let s = svscan(&sv, &t.path().join("err"));
    must(LONG, "a up", || pid(&sv.join("a")).is_some());
    let moved = t.path().join("moved-a");
    fs::rename(sv.join("a"), &moved).unwrap();
    s.signal(nix::sys::signal::SIGALRM);
    std::thread::sleep(Duration::from_millis(500));
    s.signal(nix::sys::signal::SIGALRM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        svok(&moved),
        "svscan must not stop the supervise of a vanished directory"
    );
    assert!(pid(&moved).is_some());
    // svc -dx ends it, and svscan does not start it again
    assert_eq!(
        run(Command::new(bin("svc")).arg("-dx").arg(&moved))
            .status
            .code(),
        Some(0)
    );
    must(LONG, "supervise gone", || !svok(&moved));
    s.signal(nix::sys::signal::SIGALRM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!svok(&moved));
    assert!(
        !children_of(s.pid())
            .iter()
            .any(|(_, c)| c.contains("supervise")),
        "{:?}",
        children_of(s.pid())
    );
}

#[test]
fn exited_supervise_is_restarted_at_next_scan() {
    let t = tempdir();
    let sv = t.path().join("service");
    write_exec(&sv.join("a/run"), SLEEPER);
    let s = svscan(&sv, &t.path().join("err"));
    must(LONG, "a up", || pid(&sv.join("a")).is_some());
    assert_eq!(
        run(Command::new(bin("svc")).arg("-dx").arg(sv.join("a")))
            .status
            .code(),
        Some(0)
    );
    must(LONG, "supervise exited", || !svok(&sv.join("a")));
    s.signal(nix::sys::signal::SIGALRM);
    must(LONG, "supervise back", || svok(&sv.join("a")));
    must(LONG, "service back up", || pid(&sv.join("a")).is_some());
}

#[test]
fn svscan_bad_directory() {
    let o = run(Command::new(bin("svscan")).arg("/nonexistent/service"));
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "svscan: fatal: unable to chdir to /nonexistent/service: file does not exist\n"
    );
}

#[test]
fn readproctitle_shows_input_in_ps() {
    let dots = ".".repeat(60);
    let mut p = Proc::spawn(
        Command::new(bin("readproctitle"))
            .args(["service", "errors:", &dots])
            .stdin(Stdio::piped())
            .stdout(Stdio::null()),
    );
    let mut stdin = p.child.stdin.take().unwrap();
    use std::io::Write;
    stdin
        .write_all(b"first line\nsomething broke: xyzzy\n")
        .unwrap();
    stdin.flush().unwrap();
    let cmdline = format!("/proc/{}/cmdline", p.pid());
    must(LONG, "ps shows the last input", || {
        fs::read(&cmdline)
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("something broke: xyzzy\n"))
    });
    let c = fs::read(&cmdline).unwrap();
    let text = String::from_utf8_lossy(&c);
    assert!(
        text.contains("/readproctitle\0service\0errors:\0"),
        "{text:?}"
    );
    assert_eq!(
        c.len(),
        bin("readproctitle").as_os_str().len() + 1 + "service errors: ".len() + 60 + 1
    );
    drop(stdin);
    assert_eq!(p.wait_timeout(LONG).and_then(|s| s.code()), Some(0));
    // bad arguments: exit 100
    for args in [&[][..], &["abcd"][..]] {
        let o = run_with_input(
            Command::new(bin("readproctitle")).args(args),
            Some(b""),
            LONG,
        );
        assert_eq!(o.status.code(), Some(100), "{args:?}");
    }
}

#[test]
fn svscanboot_runs_services_with_errors_in_readproctitle() {
    let t = tempdir();
    let sv = t.path().join("service");
    write_exec(
        &sv.join("a/run"),
        "#!/bin/sh\necho 'a-complains-loudly' >&2\nexec sleep 1000\n",
    );
    let p = Proc::spawn(Command::new(bin("svscanboot")).arg(&sv));
    must(LONG, "a up", || pid(&sv.join("a")).is_some());
    let cmdline = format!("/proc/{}/cmdline", p.pid());
    must(LONG, "error visible in readproctitle's argv", || {
        fs::read(&cmdline).is_ok_and(|c| {
            let s = String::from_utf8_lossy(&c);
            s.contains("service\0errors:\0") && s.contains("a-complains-loudly")
        })
    });
    let kids = children_of(p.pid());
    assert!(kids.iter().any(|(_, c)| c.contains("svscan")), "{kids:?}");
}

/// With our multilog as the logger, SIGKILLs of the logger while the service streams lines
/// lose no line: svscan's service→log channel is a socket pair, which multilog peeks, writes,
/// then consumes. (Lines may be logged twice after a kill; none may be missing.)
#[test]
fn sigkilled_multilog_loses_no_line_of_a_streaming_service() {
    let t = tempdir();
    let sv = t.path().join("service");
    // Stream numbered lines until told to stop (svc -d sends TERM), then mark the end.
    write_exec(
        &sv.join("a/run"),
        "#!/bin/sh\ntrap 'echo end-$n; exit 0' TERM\nn=1\nwhile :; do echo \"line-$n\"; n=$((n+1)); done\n",
    );
    write_exec(
        &sv.join("a/log/run"),
        &format!(
            "#!/bin/sh\nexec {} s16384 n1000 ./main\n",
            bin("multilog").display()
        ),
    );
    let _s = svscan(&sv, &t.path().join("err"));
    let logdir = sv.join("a/log");
    let lines = || -> Vec<String> {
        let mut files: Vec<std::path::PathBuf> = fs::read_dir(logdir.join("main"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with('@') || n == "current"
            })
        });
        files
            .iter()
            .flat_map(|f| {
                fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    must(LONG, "service and logger up", || {
        pid(&sv.join("a")).is_some() && pid(&logdir).is_some()
    });
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pause = 7u64;
    while kills < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(pause));
        pause = (pause * 7 + 3) % 41 + 5; // irregular 5..45 ms gaps
        if let Some(p) = pid(&logdir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p as i32),
                nix::sys::signal::SIGKILL,
            );
            kills += 1;
            must(LONG, "logger restarted", || {
                pid(&logdir).is_some_and(|q| q != p)
            });
        }
    }
    assert!(kills >= 10, "only {kills} kills landed");
    let out = run(Command::new(bin("svc")).arg("-d").arg(sv.join("a")));
    assert!(out.status.success());
    must(LONG, "the end marker logged", || {
        lines().iter().any(|l| l.starts_with("end-"))
    });
    let all = lines();
    let end: usize = all
        .iter()
        .find_map(|l| l.strip_prefix("end-"))
        .and_then(|n| n.parse().ok())
        .expect("end marker");
    let got: std::collections::HashSet<&str> = all.iter().map(String::as_str).collect();
    let missing: Vec<usize> = (1..end)
        .filter(|n| !got.contains(format!("line-{n}").as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} lines lost after {kills} kills, e.g. {:?}",
        missing.len(),
        end - 1,
        &missing[..missing.len().min(10)]
    );
}
