//! Integration tests for supervise, svc, svstat, svok and the chain-loaders: the real binaries
//! in temporary directories, and side by side with Debian's daemontools.

use rqmail_tests::{
    Proc, bin, external, must, run, run_with_input, tempdir, wait_until, write_exec,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use supervise::status::{Status, Want};

const LONG: Duration = Duration::from_secs(20);

fn out(cmd: &mut Command) -> (i32, String, String) {
    let o = run(cmd);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn svc(args: &[&str], dir: &Path) -> (i32, String, String) {
    out(Command::new(bin("svc")).args(args).arg(dir))
}

fn svstat(dir: &Path) -> String {
    out(Command::new(bin("svstat")).arg(dir))
        .1
        .trim_end()
        .to_string()
}

fn status(dir: &Path) -> Option<Status> {
    Status::read(&dir.join("supervise")).ok()
}

fn pid(dir: &Path) -> Option<u32> {
    status(dir).map(|s| s.pid).filter(|p| *p != 0)
}

fn is_down(dir: &Path) -> bool {
    status(dir).is_some_and(|s| s.pid == 0)
}

fn alive(pid: u32) -> bool {
    // A zombie counts as dead.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// A service directory `svc` under a fresh temp dir with the given run script.
fn service(run_script: &str) -> (rqmail_tests::TempDir, PathBuf) {
    let t = tempdir();
    let d = t.path().join("svc");
    write_exec(&d.join("run"), run_script);
    (t, d)
}

/// Start `supervise` (ours unless `prog` says otherwise) with stderr into `dir/../stderr`.
fn supervise_with(prog: &Path, dir: &Path) -> Proc {
    let err = fs::File::create(dir.parent().unwrap().join("stderr")).unwrap();
    Proc::spawn(
        Command::new(prog)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err),
    )
}

fn supervise(dir: &Path) -> Proc {
    supervise_with(&bin("supervise"), dir)
}

fn stderr_of(dir: &Path) -> String {
    fs::read_to_string(dir.parent().unwrap().join("stderr")).unwrap_or_default()
}

fn wait_up(dir: &Path) -> u32 {
    let mut p = None;
    must(LONG, &format!("{} up", dir.display()), || {
        p = pid(dir);
        p.is_some()
    });
    p.unwrap()
}

const SLEEPER: &str = "#!/bin/sh\nexec sleep 1000\n";

#[test]
fn start_stop_restart_and_once() {
    let (_t, d) = service(SLEEPER);
    let _s = supervise(&d);
    let p1 = wait_up(&d);
    assert!(
        svstat(&d).contains(&format!(": up (pid {p1}) ")),
        "{}",
        svstat(&d)
    );
    // crash → restarted with a new pid
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p1 as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    must(LONG, "restart after crash", || {
        pid(&d).is_some_and(|p| p != p1)
    });
    // -d stops it and it stays down
    assert_eq!(svc(&["-d"], &d).0, 0);
    must(LONG, "down", || is_down(&d));
    let line = svstat(&d);
    assert!(
        line.contains(": down ") && line.ends_with(" seconds, normally up"),
        "{line}"
    );
    assert_eq!(status(&d).unwrap().want, Want::Down);
    // -o runs it once: not restarted after it dies
    assert_eq!(svc(&["-o"], &d).0, 0);
    let p2 = wait_up(&d);
    assert_eq!(status(&d).unwrap().want, Want::Nothing);
    assert_eq!(svc(&["-k"], &d).0, 0);
    must(LONG, "down after -k on once", || is_down(&d));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(is_down(&d), "a once service was restarted");
    assert!(!alive(p2));
    // -u brings it back
    assert_eq!(svc(&["-u"], &d).0, 0);
    wait_up(&d);
    assert!(svstat(&d).ends_with(" seconds"), "{}", svstat(&d));
}

#[test]
fn pause_continue_and_signals() {
    let script = "#!/bin/sh\nfor s in HUP ALRM INT TERM USR1 USR2; do trap \"echo $s >> ../sigs\" $s; done\n\
                  echo started >> ../sigs\nwhile :; do sleep 0.05; done\n";
    let (t, d) = service(script);
    let sigs = t.path().join("sigs");
    let _s = supervise(&d);
    let p = wait_up(&d);
    must(LONG, "script ready", || {
        fs::read_to_string(&sigs).is_ok_and(|s| s.contains("started"))
    });
    // pause: the process is stopped and svstat says paused
    assert_eq!(svc(&["-p"], &d).0, 0);
    must(LONG, "paused", || svstat(&d).ends_with(", paused"));
    must(LONG, "stopped state", || {
        fs::read_to_string(format!("/proc/{p}/stat"))
            .is_ok_and(|s| s.rsplit(')').next().unwrap().trim_start().starts_with('T'))
    });
    assert_eq!(svc(&["-c"], &d).0, 0);
    must(LONG, "continued", || !svstat(&d).contains("paused"));
    // each letter delivers its signal, in order
    for (letter, name) in [
        ("-h", "HUP"),
        ("-a", "ALRM"),
        ("-i", "INT"),
        ("-t", "TERM"),
        ("-1", "USR1"),
        ("-2", "USR2"),
    ] {
        assert_eq!(svc(&[letter], &d).0, 0);
        must(LONG, &format!("{name} delivered"), || {
            fs::read_to_string(&sigs).is_ok_and(|s| s.lines().any(|l| l == name))
        });
    }
    assert_eq!(
        pid(&d),
        Some(p),
        "trapped signals must not restart the service"
    );
    // -k kills it; it comes back with a new pid
    assert_eq!(svc(&["-k"], &d).0, 0);
    must(LONG, "restart after -k", || pid(&d).is_some_and(|n| n != p));
}

#[test]
fn down_file_and_normally_down() {
    let (_t, d) = service(SLEEPER);
    fs::write(d.join("down"), "").unwrap();
    let _s = supervise(&d);
    must(LONG, "status written", || status(&d).is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert!(is_down(&d));
    let line = svstat(&d);
    assert!(
        line.contains(": down ") && line.ends_with(" seconds"),
        "{line}"
    );
    assert!(!line.contains("normally"), "{line}");
    svc(&["-u"], &d);
    wait_up(&d);
    assert!(
        svstat(&d).ends_with(" seconds, normally down"),
        "{}",
        svstat(&d)
    );
    svc(&["-d"], &d);
    must(LONG, "down", || is_down(&d));
}

#[test]
fn finish_gets_exit_status() {
    let (t, d) = service("#!/bin/sh\nif [ -e ../killme ]; then exec sleep 1000; fi\nexit 7\n");
    write_exec(
        &d.join("finish"),
        "#!/bin/sh\necho \"$1 $2\" >> ../finished\n",
    );
    let fin = t.path().join("finished");
    let _s = supervise(&d);
    must(LONG, "finish ran with 7", || {
        fs::read_to_string(&fin).is_ok_and(|s| s.lines().any(|l| l == "7 0"))
    });
    fs::write(t.path().join("killme"), "").unwrap();
    let p = wait_up(&d);
    // wait until the long-running instance is the one up
    must(LONG, "sleeper up", || {
        pid(&d).is_some_and(|p| {
            fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains("sleep"))
        })
    });
    let p = pid(&d).unwrap_or(p);
    svc(&["-k"], &d);
    must(LONG, "finish ran with -1 9", || {
        fs::read_to_string(&fin).is_ok_and(|s| s.lines().any(|l| l == "-1 9"))
    });
    must(LONG, "restarted", || pid(&d).is_some_and(|n| n != p));
}

#[test]
fn restart_at_most_once_per_second() {
    let (t, d) = service("#!/bin/sh\necho x >> ../starts\nexit 1\n");
    let starts = t.path().join("starts");
    let _s = supervise(&d);
    must(LONG, "first start", || starts.exists());
    let count = || {
        fs::read_to_string(&starts)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let c0 = count();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let c1 = count();
    let secs = t0.elapsed().as_secs_f64();
    let n = c1 - c0;
    // at most one start per second (plus one for the window's edges), and it does restart
    assert!(n as f64 <= secs + 1.0, "{n} starts in {secs:.1}s");
    assert!(n >= 2, "only {n} restarts in {secs:.1}s");
    // and supervise is not spinning: its CPU time stays small
    let stat = fs::read_to_string(format!("/proc/{}/stat", _s.pid())).unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    assert!(ticks < 200, "supervise used {ticks} clock ticks in 5 s");
}

#[test]
fn exit_with_x_and_d() {
    let (_t, d) = service(SLEEPER);
    let mut s = supervise(&d);
    let p = wait_up(&d);
    // -x alone: supervise waits while the service is up
    assert_eq!(svc(&["-x"], &d).0, 0);
    assert!(
        s.wait_timeout(Duration::from_millis(700)).is_none(),
        "supervise exited while up"
    );
    assert!(alive(p));
    assert_eq!(svc(&["-d"], &d).0, 0);
    let st = s
        .wait_timeout(LONG)
        .expect("supervise did not exit after -x -d");
    assert_eq!(st.code(), Some(0));
    assert!(!alive(p));
    assert_eq!(
        svstat(&d),
        format!("{}: supervise not running", d.display())
    );
    let (code, _, _) = out(Command::new(bin("svok")).arg(&d));
    assert_eq!(code, 100);
}

#[test]
fn second_supervise_is_refused() {
    let (_t, d) = service(SLEEPER);
    let _s = supervise(&d);
    wait_up(&d);
    let (code, _, err) = out(Command::new(bin("supervise")).arg(&d));
    assert_eq!(code, 111);
    assert_eq!(
        err,
        format!(
            "supervise: fatal: unable to acquire {}/supervise/lock: temporary failure\n",
            d.display()
        )
    );
    let (code, _, err) = out(Command::new(bin("supervise")).arg("/nonexistent/x"));
    assert_eq!(
        (code, err.as_str()),
        (
            111,
            "supervise: fatal: unable to chdir to /nonexistent/x: file does not exist\n"
        )
    );
    let (code, _, err) = out(&mut Command::new(bin("supervise")));
    assert_eq!(
        (code, err.as_str()),
        (100, "supervise: usage: supervise dir\n")
    );
}

#[test]
fn sigterm_or_sighup_to_supervise_leaves_service_running() {
    use std::os::unix::process::ExitStatusExt;
    for sig in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGHUP] {
        let (_t, d) = service(SLEEPER);
        let mut s = supervise(&d);
        let p = wait_up(&d);
        s.signal(sig);
        let st = s.wait_timeout(LONG).expect("supervise survived the signal");
        assert_eq!(st.signal(), Some(sig as i32));
        assert!(
            alive(p),
            "the service must survive its supervise, as with daemontools"
        );
        assert_eq!(
            svstat(&d),
            format!("{}: supervise not running", d.display())
        );
        // a new supervise can take over the directory
        let _s2 = supervise(&d);
        must(LONG, "new supervise running", || {
            out(Command::new(bin("svok")).arg(&d)).0 == 0
        });
        drop(s); // kills the old group, including the orphaned service
    }
}

#[test]
fn missing_or_non_executable_run_is_retried() {
    let t = tempdir();
    let d = t.path().join("svc");
    fs::create_dir(&d).unwrap();
    let _s = supervise(&d);
    must(LONG, "missing run reported", || {
        stderr_of(&d).contains(&format!(
            "supervise: fatal: unable to start {}/run: file does not exist",
            d.display()
        ))
    });
    assert_eq!(
        out(Command::new(bin("svok")).arg(&d)).0,
        0,
        "supervise must keep running"
    );
    assert!(
        svstat(&d).contains(": down ") && svstat(&d).ends_with(", normally up, want up"),
        "{}",
        svstat(&d)
    );
    // not executable: access denied (also as root: no execute bit at all)
    fs::write(d.join("run"), "#!/bin/sh\nexec sleep 1000\n").unwrap();
    must(LONG, "non-executable run reported", || {
        stderr_of(&d).contains(&format!(
            "supervise: fatal: unable to start {}/run: access denied",
            d.display()
        ))
    });
    // retried about once a second, not in a loop
    let n0 = stderr_of(&d).lines().count();
    std::thread::sleep(Duration::from_secs(2));
    let n1 = stderr_of(&d).lines().count();
    assert!(n1 - n0 <= 4, "{} messages in 2 s", n1 - n0);
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(d.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
    wait_up(&d);
}

#[test]
fn unwritable_supervise_dir() {
    // Directories in the way work as root too (permissions would not stop root).
    let (_t, d) = service(SLEEPER);
    fs::create_dir_all(d.join("supervise/lock")).unwrap();
    let (code, _, err) = out(Command::new(bin("supervise")).arg(&d));
    assert_eq!(code, 111);
    assert_eq!(
        err,
        format!(
            "supervise: fatal: unable to acquire {}/supervise/lock: is a directory\n",
            d.display()
        )
    );
    fs::remove_dir(d.join("supervise/lock")).unwrap();
    fs::create_dir(d.join("supervise/status.new")).unwrap();
    let _s = supervise(&d);
    must(LONG, "warning about status.new", || {
        stderr_of(&d).contains(&format!(
            "supervise: warning: unable to open {}/supervise/status.new: is a directory",
            d.display()
        ))
    });
    must(LONG, "service started anyway", || {
        fs::read_dir("/proc").unwrap().any(|e| {
            let e = e.unwrap();
            fs::read_link(e.path().join("cwd")).is_ok_and(|c| c == d)
                && fs::read_to_string(e.path().join("cmdline"))
                    .is_ok_and(|c| c.starts_with("sleep"))
        })
    });
    assert_eq!(out(Command::new(bin("svok")).arg(&d)).0, 0);
    // once the obstacle is gone, the status is written again
    fs::remove_dir(d.join("supervise/status.new")).unwrap();
    svc(&["-d"], &d);
    must(LONG, "status after recovery", || is_down(&d));
}

#[test]
fn garbage_status_file() {
    let (_t, d) = service(SLEEPER);
    fs::create_dir_all(d.join("supervise")).unwrap();
    fs::write(d.join("supervise/status"), "garbage").unwrap();
    // no supervise: svstat says so, exit 0
    let (code, o, _) = out(Command::new(bin("svstat")).arg(&d));
    assert_eq!(
        (code, o),
        (
            0,
            format!(
                "{}: unable to open supervise/ok: file does not exist\n",
                d.display()
            )
        )
    );
    let _s = supervise(&d);
    wait_up(&d);
    fs::write(d.join("supervise/status"), "garbage").unwrap();
    let (code, o, _) = out(Command::new(bin("svstat")).arg(&d));
    assert_eq!(
        (code, o),
        (
            0,
            format!(
                "{}: unable to read supervise/status: bad format\n",
                d.display()
            )
        )
    );
    let (code, _, err) = out(Command::new(bin("svc")).args(["-wu", "-T", "5"]).arg(&d));
    assert_eq!(code, 111);
    assert!(
        err.contains("unable to read supervise/status: bad format"),
        "{err}"
    );
    // the next change rewrites it
    svc(&["-p"], &d);
    must(LONG, "status rewritten", || {
        svstat(&d).ends_with(", paused")
    });
    let j = out(Command::new(bin("svstat")).arg("--json").arg(&d)).1;
    assert!(j.contains("\"paused\":true"), "{j}");
}

#[test]
fn svc_svok_svstat_bad_input() {
    let t = tempdir();
    let d = t.path().join("nope");
    let (code, _, err) = out(Command::new(bin("svc")).args(["-q"]).arg(&d));
    assert_eq!(code, 100);
    assert!(err.starts_with("svc: illegal option -- q\nsvc options: u up, d down, o once, x exit, p pause, c continue, h hup, a alarm, i interrupt, t term, k kill"), "{err}");
    let (code, _, err) = out(Command::new(bin("svc")).args(["-wz"]).arg(&d));
    assert_eq!(code, 100, "{err}");
    let (code, _, err) = out(Command::new(bin("svc")).args(["-wu", "-T", "soon"]).arg(&d));
    assert_eq!(code, 100, "{err}");
    let (code, _, err) = svc(&["-u"], &d);
    assert_eq!(
        (code, err),
        (
            111,
            format!(
                "svc: warning: unable to chdir to {}: file does not exist\n",
                d.display()
            )
        )
    );
    fs::create_dir_all(d.join("supervise")).unwrap();
    let (code, _, err) = svc(&["-u"], &d);
    assert_eq!(
        (code, err),
        (
            111,
            format!(
                "svc: warning: unable to control {}: file does not exist\n",
                d.display()
            )
        )
    );
    nix::unistd::mkfifo(
        &d.join("supervise/control"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    nix::unistd::mkfifo(
        &d.join("supervise/ok"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (code, _, err) = svc(&["-u"], &d);
    assert_eq!(
        (code, err),
        (
            111,
            format!(
                "svc: warning: unable to control {}: supervise not running\n",
                d.display()
            )
        )
    );
    assert_eq!(
        svstat(&d),
        format!("{}: supervise not running", d.display())
    );
    assert_eq!(out(Command::new(bin("svok")).arg(&d)).0, 100);
    let (code, _, err) = out(Command::new(bin("svok")).arg(t.path().join("missing")));
    assert_eq!(
        (code, err),
        (
            111,
            format!(
                "svok: fatal: unable to chdir to {}: file does not exist\n",
                t.path().join("missing").display()
            )
        )
    );
    assert_eq!(out(&mut Command::new(bin("svok"))).0, 100);
    let (code, o, _) = out(Command::new(bin("svstat")).arg(t.path().join("missing")));
    assert_eq!(
        (code, o),
        (
            0,
            format!(
                "{}: unable to chdir: file does not exist\n",
                t.path().join("missing").display()
            )
        )
    );
}

#[test]
fn several_dirs_per_call() {
    let t = tempdir();
    let a = t.path().join("a");
    let b = t.path().join("b");
    write_exec(&a.join("run"), SLEEPER);
    write_exec(&b.join("run"), SLEEPER);
    let _sa = supervise_with(&bin("supervise"), &a);
    let _sb = {
        let err = fs::File::create(t.path().join("stderr-b")).unwrap();
        Proc::spawn(Command::new(bin("supervise")).arg(&b).stderr(err))
    };
    wait_up(&a);
    wait_up(&b);
    let missing = t.path().join("missing");
    let o = run(Command::new(bin("svc"))
        .arg("-d")
        .arg(&a)
        .arg(&missing)
        .arg(&b));
    assert_eq!(o.status.code(), Some(111));
    must(LONG, "both down", || is_down(&a) && is_down(&b));
    let (code, o, _) = out(Command::new(bin("svstat")).arg(&a).arg(&b));
    assert_eq!(code, 0);
    assert_eq!(o.lines().count(), 2);
    let (code, _, err) = out(Command::new(bin("svc"))
        .args(["-u", "-wu", "-T", "20"])
        .arg(&a)
        .arg(&b));
    assert_eq!(code, 0, "{err}");
    assert!(pid(&a).is_some() && pid(&b).is_some());
    let (code, _, err) = out(Command::new(bin("svc"))
        .args(["-d", "-wd", "-T20"])
        .arg(&a)
        .arg(&b));
    assert_eq!(code, 0, "{err}");
    assert!(is_down(&a) && is_down(&b));
}

#[test]
fn readiness_and_json() {
    let (t, d) = service(
        "#!/bin/sh\nwhile [ ! -e ../go ]; do sleep 0.05; done\necho >&3\nexec sleep 1000\n",
    );
    fs::write(d.join("notification-fd"), "3\n").unwrap();
    let _s = supervise(&d);
    let p = wait_up(&d);
    let (code, _, err) = out(Command::new(bin("svc")).args(["-wr", "-T", "0.3"]).arg(&d));
    assert_eq!(code, 99, "{err}");
    assert!(
        err.contains("timed out waiting for service to be ready"),
        "{err}"
    );
    assert!(!svstat(&d).contains("ready"));
    let j = out(Command::new(bin("svstat")).arg("--json").arg(&d)).1;
    assert!(j.contains("\"ready\":false"), "{j}");
    fs::write(t.path().join("go"), "").unwrap();
    let (code, _, err) = out(Command::new(bin("svc")).args(["-wr", "-T", "20"]).arg(&d));
    assert_eq!(code, 0, "{err}");
    let line = svstat(&d);
    assert!(
        line.starts_with(&format!("{}: up (pid {p}) ", d.display())),
        "{line}"
    );
    assert!(
        line.contains(" seconds, ready ") && line.ends_with(" seconds"),
        "{line}"
    );
    // --json parses and says the same
    let py = external("/usr/bin/python3");
    let j = out(Command::new(bin("svstat"))
        .arg("--json")
        .arg(&d)
        .arg(t.path().join("missing")))
    .1;
    if let Some(py) = py {
        let o = run_with_input(
            Command::new(py).args(["-c", "import json,sys; a=json.load(sys.stdin); print(a[0]['state'], a[0]['pid'], a[0]['ready'], a[0]['want'], a[1]['supervise'], 'error' in a[1])"]),
            Some(j.as_bytes()),
            LONG,
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            format!("up {p} True up None True"),
            "{j}"
        );
    }
    // a restart makes it not ready until it says so again
    fs::remove_file(t.path().join("go")).unwrap();
    let (code, _, _) = out(Command::new(bin("svc"))
        .args(["-t", "-wu", "-T", "20"])
        .arg(&d));
    assert_eq!(code, 0);
    assert!(!svstat(&d).contains("ready"), "{}", svstat(&d));
    // -wd
    let (code, _, _) = out(Command::new(bin("svc"))
        .args(["-d", "-wd", "-T", "20"])
        .arg(&d));
    assert_eq!(code, 0);
}

#[test]
fn child_gets_fresh_process_state_and_our_stdout() {
    let (t, d) = service(
        "#!/bin/sh\necho hello-from-run\nexec grep -E '^Sig(Ign|Blk)' /proc/self/status > ../sigstate\n",
    );
    let outp = t.path().join("stdout");
    let sh = format!(
        "trap '' INT QUIT USR1 PIPE; exec {} {} > {} 2>&1",
        bin("supervise").display(),
        d.display(),
        outp.display()
    );
    let _s = Proc::spawn(Command::new("/bin/sh").args(["-c", &sh]));
    must(LONG, "sigstate written", || {
        fs::read_to_string(t.path().join("sigstate")).is_ok_and(|s| s.lines().count() == 2)
    });
    let s = fs::read_to_string(t.path().join("sigstate")).unwrap();
    for l in s.lines() {
        // Signals 1–31 (glibc's reserved 32 and 33 may be ignored by whoever started the
        // test; nobody can change them).
        let v = u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(v & 0x7fff_ffff, 0, "{l}");
    }
    svc(&["-d"], &d);
    must(LONG, "run's stdout is supervise's stdout", || {
        fs::read_to_string(&outp).is_ok_and(|s| s.contains("hello-from-run"))
    });
}

// ---- compatibility with Debian's daemontools, both ways ----

fn strip_secs(line: &str) -> String {
    // "X: up (pid 1) 3 seconds, …" → seconds replaced by N
    let mut out = Vec::new();
    let words: Vec<&str> = line.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        if words.get(i + 1).is_some_and(|n| n.starts_with("seconds"))
            && w.chars().all(|c| c.is_ascii_digit())
        {
            out.push("N");
        } else {
            out.push(w);
        }
    }
    out.join(" ")
}

fn both_svstat(deb: &Path, d: &Path) -> (String, String) {
    let a = out(Command::new(deb).arg(d)).1;
    let b = out(Command::new(bin("svstat")).arg(d)).1;
    (strip_secs(a.trim_end()), strip_secs(b.trim_end()))
}

fn compat_run(ours_supervise: bool) {
    let Some(deb_svstat) = external("/usr/bin/svstat") else {
        return;
    };
    let Some(deb_svc) = external("/usr/bin/svc") else {
        return;
    };
    let Some(deb_supervise) = external("/usr/bin/supervise") else {
        return;
    };
    let Some(deb_svok) = external("/usr/bin/svok") else {
        return;
    };
    let (t, d) = service("#!/bin/sh\n[ -e ../ignoreterm ] && trap '' TERM\nexec sleep 1000\n");
    let sup = if ours_supervise {
        bin("supervise")
    } else {
        deb_supervise
    };
    let (ctl, other_ctl) = if ours_supervise {
        (deb_svc.clone(), bin("svc"))
    } else {
        (bin("svc"), deb_svc.clone())
    };
    let _s = supervise_with(&sup, &d);
    let p = wait_up(&d);
    // the two svstats agree, word for word (seconds aside)
    must(LONG, "svstats agree (up)", || {
        let (a, b) = both_svstat(&deb_svstat, &d);
        a == b && a == format!("{}: up (pid {p}) N seconds", d.display())
    });
    assert_eq!(out(Command::new(&deb_svok).arg(&d)).0, 0);
    assert_eq!(out(Command::new(bin("svok")).arg(&d)).0, 0);
    // pause / continue through the other side's svc
    assert_eq!(out(Command::new(&ctl).arg("-p").arg(&d)).0, 0);
    must(LONG, "svstats agree (paused)", || {
        let (a, b) = both_svstat(&deb_svstat, &d);
        a == b && a.ends_with(", paused")
    });
    assert_eq!(out(Command::new(&ctl).arg("-c").arg(&d)).0, 0);
    must(LONG, "continued", || {
        !both_svstat(&deb_svstat, &d).0.contains("paused")
    });
    // down, then want up
    assert_eq!(out(Command::new(&ctl).arg("-d").arg(&d)).0, 0);
    must(LONG, "svstats agree (down)", || {
        let (a, b) = both_svstat(&deb_svstat, &d);
        a == b && a == format!("{}: down N seconds, normally up", d.display())
    });
    assert!(!alive(p));
    fs::write(d.join("down"), "").unwrap();
    assert_eq!(out(Command::new(&other_ctl).arg("-u").arg(&d)).0, 0);
    must(LONG, "svstats agree (normally down)", || {
        let (a, b) = both_svstat(&deb_svstat, &d);
        a == b && a.ends_with(" seconds, normally down") && a.contains(": up (pid ")
    });
    // kill → restart seen by both
    let p2 = pid(&d).unwrap();
    assert_eq!(out(Command::new(&ctl).arg("-k").arg(&d)).0, 0);
    must(LONG, "restarted", || pid(&d).is_some_and(|n| n != p2));
    // a service that ignores SIGTERM stays up after -d: "want down"
    fs::write(t.path().join("ignoreterm"), "").unwrap();
    let p3 = pid(&d).unwrap();
    assert_eq!(out(Command::new(&ctl).arg("-k").arg(&d)).0, 0);
    must(LONG, "restarted ignoring TERM", || {
        pid(&d).is_some_and(|n| n != p3)
    });
    assert_eq!(out(Command::new(&other_ctl).arg("-d").arg(&d)).0, 0);
    must(LONG, "svstats agree (want down)", || {
        let (a, b) = both_svstat(&deb_svstat, &d);
        a == b && a.ends_with(" seconds, normally down, want down")
    });
    fs::remove_file(t.path().join("ignoreterm")).unwrap();
    assert_eq!(out(Command::new(&ctl).args(["-k", "-u"]).arg(&d)).0, 0);
    must(LONG, "up again after -k -u", || {
        let (a, b) = both_svstat(&deb_svstat, &d);
        a == b && a.contains(": up (pid ") && !a.contains("want")
    });
    // exit through the other side's svc
    let mut s = _s;
    assert_eq!(out(Command::new(&ctl).args(["-dx"]).arg(&d)).0, 0);
    assert!(s.wait_timeout(LONG).is_some(), "supervise did not exit");
    let (a, b) = both_svstat(&deb_svstat, &d);
    assert_eq!(a, b);
    assert_eq!(a, format!("{}: supervise not running", d.display()));
    // the two lock each other out
    fs::remove_file(d.join("down")).unwrap();
    let _s2 = supervise_with(&sup, &d);
    must(LONG, "up again", || pid(&d).is_some());
    let other_sup = if ours_supervise {
        PathBuf::from("/usr/bin/supervise")
    } else {
        bin("supervise")
    };
    let (code, _, err) = out(Command::new(other_sup).arg(&d));
    assert_eq!(code, 111);
    assert!(
        err.ends_with("/supervise/lock: temporary failure\n"),
        "{err}"
    );
}

#[test]
fn debian_tools_control_our_supervise() {
    compat_run(true);
}

#[test]
fn our_tools_control_debian_supervise() {
    compat_run(false);
}

// ---- chain-loaders: word for word as Debian's ----

/// Run ours and Debian's with the same arguments (in `dir`), compare exit code, stdout and
/// stderr.
fn same_as_debian(name: &str, args: &[&str], dir: &Path) -> (i32, String, String) {
    let ours = out(Command::new(bin(name)).args(args).current_dir(dir));
    if let Some(deb) = external(&format!("/usr/bin/{name}")) {
        let theirs = out(Command::new(deb).args(args).current_dir(dir));
        assert_eq!(ours, theirs, "{name} {args:?}: ours vs Debian's");
    }
    ours
}

#[test]
fn chain_loaders_match_debian() {
    let t = tempdir();
    let p = t.path();
    fs::create_dir(p.join("env")).unwrap();
    fs::write(p.join("env/A"), "hello  \t\nsecond line").unwrap();
    fs::write(p.join("env/B"), "").unwrap();
    fs::write(p.join("env/C"), b"x\0y").unwrap();
    fs::write(p.join("env/.D"), "hidden").unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("setuidgid", &[]),
        ("setuidgid", &["root"]),
        ("setuidgid", &["no-such-account-x", "true"]),
        ("setuidgid", &["root", "/nonexistent/prog"]),
        ("setuidgid", &["root", "sh", "-c", "id -u; id -g; id -G"]),
        ("envuidgid", &[]),
        ("envuidgid", &["root"]),
        ("envuidgid", &["no-such-account-x", "true"]),
        ("envuidgid", &["root", "sh", "-c", "echo $UID $GID"]),
        ("envdir", &[]),
        ("envdir", &["env"]),
        ("envdir", &["missing", "true"]),
        ("envdir", &["env", "/nonexistent/prog"]),
        (
            "envdir",
            &[
                "env",
                "sh",
                "-c",
                "echo \"A=$A B=${B-unset} C=$C D=${D-unset}\"",
            ],
        ),
        ("softlimit", &[]),
        ("softlimit", &["-x", "true"]),
        ("softlimit", &["-m"]),
        ("softlimit", &["-m", "abc", "true"]),
        ("softlimit", &["-m", "100000000"]),
        ("softlimit", &["-o", "5", "/nonexistent/prog"]),
        (
            "softlimit",
            &[
                "-o",
                "5",
                "-m",
                "300000000",
                "-c",
                "0",
                "sh",
                "-c",
                "ulimit -n; ulimit -d; ulimit -v; ulimit -c",
            ],
        ),
        (
            "softlimit",
            &[
                "-o",
                "=",
                "-t",
                "1000",
                "-f",
                "99999",
                "sh",
                "-c",
                "ulimit -Hn; ulimit -t; ulimit -f",
            ],
        ),
        (
            "softlimit",
            &[
                "-p100",
                "-s",
                "1000000",
                "-r",
                "5000000",
                "-l",
                "65536",
                "-a",
                "900000000",
                "-d",
                "500000000",
                "sh",
                "-c",
                "ulimit -u; ulimit -s; ulimit -m; ulimit -l; ulimit -v; ulimit -d",
            ],
        ),
        ("setlock", &[]),
        ("setlock", &["-q", "lock", "true"]),
        ("setlock", &["lock"]),
        ("setlock", &["/nonexistent/dir/lock", "true"]),
        ("setlock", &["-x", "/nonexistent/dir/lock", "true"]),
        ("setlock", &["lock", "/nonexistent/prog"]),
        ("setlock", &["-nX", "lock", "echo", "ran"]),
        ("pgrphack", &[]),
        ("pgrphack", &["/nonexistent/prog"]),
        (
            "pgrphack",
            &[
                "sh",
                "-c",
                "ps -o pid=,pgid=,sid= -p $$ | awk '{print ($1==$2 && $2==$3)}'",
            ],
        ),
        ("fghack", &[]),
        ("fghack", &["/nonexistent/prog"]),
        ("fghack", &["sh", "-c", "exit 3"]),
        ("fghack", &["sh", "-c", "kill -9 $$"]),
        (
            "fghack",
            &["sh", "-c", "(sleep 0.3; echo late) & echo early"],
        ),
    ];
    for (name, args) in cases {
        same_as_debian(name, args, p);
    }
    // spot checks that do not depend on Debian being installed
    let (c, o, _) = out(Command::new(bin("envdir"))
        .arg("env")
        .args(["sh", "-c", "echo \"A=$A B=${B-unset}\""])
        .current_dir(p)
        .env("B", "x"));
    assert_eq!((c, o.as_str()), (0, "A=hello B=unset\n"));
    let (c, o, _) =
        out(Command::new(bin("fghack")).args(["sh", "-c", "(sleep 0.3; echo late) & echo early"]));
    assert_eq!((c, o.as_str()), (0, "early\nlate\n"));
}

#[test]
fn setuidgid_numeric_ids() {
    let (c, o, e) = out(Command::new(bin("setuidgid")).args([
        "65534:65533",
        "sh",
        "-c",
        "id -u; id -g; id -G",
    ]));
    let (c2, o2, _) =
        out(Command::new(bin("envuidgid")).args(["123:456", "sh", "-c", "echo $UID $GID"]));
    assert_eq!((c2, o2.as_str()), (0, "123 456\n"));
    if nix::unistd::geteuid().is_root() {
        assert_eq!((c, o.as_str()), (0, "65534\n65533\n65533\n"), "{e}");
    } else {
        assert_eq!(
            (c, e.as_str()),
            (
                111,
                "setuidgid: fatal: unable to setgid: permission denied\n"
            )
        );
    }
    let (c, _, e) = out(Command::new(bin("setuidgid")).args(["12:ab", "true"]));
    assert_eq!(
        (c, e.as_str()),
        (111, "setuidgid: fatal: unknown account 12:ab\n")
    );
}

#[test]
fn setlock_excludes_and_matches_debian() {
    let t = tempdir();
    let lock = t.path().join("lock");
    let holder = Proc::spawn(
        Command::new(bin("setlock"))
            .arg(&lock)
            .args(["sleep", "1000"]),
    );
    must(LONG, "lock file created", || lock.exists());
    // give the holder time to take the lock
    must(LONG, "lock held", || {
        out(Command::new(bin("setlock"))
            .arg("-n")
            .arg(&lock)
            .arg("true"))
        .0 == 111
    });
    let l = lock.to_str().unwrap();
    for args in [
        vec!["-n", l, "true"],
        vec!["-nx", l, "true"],
        vec!["-n", "-x", "-X", l, "true"],
    ] {
        let ours = out(Command::new(bin("setlock")).args(&args));
        if let Some(deb) = external("/usr/bin/setlock") {
            assert_eq!(ours, out(Command::new(deb).args(&args)), "{args:?}");
        }
    }
    let (c, _, e) = out(Command::new(bin("setlock"))
        .arg("-n")
        .arg(&lock)
        .arg("true"));
    assert_eq!(
        (c, e),
        (
            111,
            format!("setlock: fatal: unable to lock {l}: temporary failure\n")
        )
    );
    assert_eq!(
        out(Command::new(bin("setlock"))
            .arg("-nx")
            .arg(&lock)
            .arg("true"))
        .0,
        0
    );
    // a blocking setlock waits for the holder
    let mut waiter = Proc::spawn(Command::new(bin("setlock")).arg(&lock).args(["true"]));
    assert!(
        waiter.wait_timeout(Duration::from_millis(500)).is_none(),
        "did not wait for the lock"
    );
    drop(holder);
    assert_eq!(waiter.wait_timeout(LONG).and_then(|s| s.code()), Some(0));
    assert!(wait_until(LONG, || true));
}
