//! multilog, tai64n and tai64nlocal against Debian's daemontools and under crashes, a full
//! disk and bad scripts.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use rqmail_tests::{Proc, bin, external, must, run_with_input, tempdir, wait_until};

const LONG: Duration = Duration::from_secs(30);

/// A small deterministic generator (xorshift) so both programs see the same input.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Lines of varied length (some longer than 1000 and than 4096 bytes), some with
/// "fatal"/"warn"/"info" words for selections; optionally without a final newline.
fn sample_input(seed: u64, lines: usize, final_newline: bool) -> Vec<u8> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    let words = ["fatal", "info", "warn", "alert: x"];
    for i in 0..lines {
        let len = match r.below(20) {
            0 => 900 + r.below(5000),
            1 => 0,
            _ => r.below(160),
        } as usize;
        let w = words[r.below(words.len() as u64) as usize];
        out.extend_from_slice(format!("line {i} {w} ").as_bytes());
        for k in 0..len {
            out.push(b'a' + ((i + k) % 26) as u8);
        }
        out.push(b'\n');
    }
    if !final_newline {
        out.extend_from_slice(b"last line without newline");
    }
    out
}

/// Everything in a directory tree that must match: relative names with stamps replaced by
/// their rank, contents and modes.
fn snapshot(root: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut rank = 0;
        for n in names {
            let p = d.join(&n);
            let m = fs::symlink_metadata(&p).unwrap();
            let shown = if n.starts_with('@') {
                assert_eq!(n.len(), 27, "archive name {n}");
                assert!(
                    n[1..25]
                        .bytes()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                );
                assert!(n.ends_with(".s") || n.ends_with(".u"), "{n}");
                rank += 1;
                format!("@{rank}{}", &n[25..])
            } else {
                n.clone()
            };
            let rel = p.parent().unwrap().strip_prefix(root).unwrap().join(&shown);
            let mode = m.permissions().mode() & 0o7777;
            if m.is_dir() {
                out.push((rel.display().to_string() + "/", mode, Vec::new()));
                dirs.push(p);
            } else {
                out.push((rel.display().to_string(), mode, fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn show(s: &[(String, u32, Vec<u8>)]) -> String {
    s.iter()
        .map(|(n, m, c)| format!("{n} {m:o} {} bytes\n", c.len()))
        .collect()
}

/// Run a multilog binary in `cwd` with `input` on stdin (a regular file, as daemontools'
/// chunking is then deterministic).
fn run_in(prog: &Path, cwd: &Path, args: &[&str], input: &[u8]) -> std::process::Output {
    let inpath = cwd.join("..").join(format!(
        "input-{}",
        cwd.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&inpath, input).unwrap();
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(File::open(&inpath).unwrap());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut p = Proc::spawn(&mut cmd);
    let mut err = Vec::new();
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut err)
        .unwrap();
    let status = p.wait_timeout(LONG).expect("multilog did not finish");
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: err,
    }
}

/// Feed the same inputs (one run per input) to Debian's multilog and ours and compare the
/// directories they leave (and their stderr).
fn compare(args: &[&str], inputs: &[Vec<u8>], prepare: impl Fn(&Path)) {
    compare_with(args, inputs, prepare, false)
}

/// Replace the hex digits of every line-leading `@<24 hex> ` stamp with zeros.
fn blank_stamps(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|c| *c == b'\n') {
        if line.len() >= 26
            && line[0] == b'@'
            && line[25] == b' '
            && line[1..25].iter().all(|c| c.is_ascii_hexdigit())
        {
            out.push(b'@');
            out.extend_from_slice(&[b'0'; 24]);
            out.extend_from_slice(&line[25..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

fn compare_with(args: &[&str], inputs: &[Vec<u8>], prepare: impl Fn(&Path), stamps: bool) {
    let Some(debian) = external("/usr/bin/multilog") else {
        return;
    };
    let t = tempdir();
    let (a, b) = (t.path().join("debian"), t.path().join("ours"));
    for d in [&a, &b] {
        fs::create_dir(d).unwrap();
        prepare(d);
    }
    for input in inputs {
        let oa = run_in(&debian, &a, args, input);
        let ob = run_in(&bin("multilog"), &b, args, input);
        assert!(
            oa.status.success(),
            "debian: {}",
            String::from_utf8_lossy(&oa.stderr)
        );
        assert!(
            ob.status.success(),
            "ours: {}",
            String::from_utf8_lossy(&ob.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&oa.stderr),
            String::from_utf8_lossy(&ob.stderr),
            "stderr differs for {args:?}"
        );
    }
    let (mut sa, mut sb) = (snapshot(&a), snapshot(&b));
    if stamps {
        for s in [&mut sa, &mut sb] {
            for e in s.iter_mut() {
                e.2 = blank_stamps(&e.2);
            }
        }
    }
    if sa != sb {
        panic!(
            "directories differ for {args:?}\ndebian:\n{}\nours:\n{}",
            show(&sa),
            show(&sb)
        );
    }
    // The comparison must have exercised rotation.
    assert!(
        sa.iter().filter(|(n, _, _)| n.contains('@')).count() >= 2,
        "too few rotations:\n{}",
        show(&sa)
    );
}

#[test]
fn same_directory_as_debian_rotation_and_removal() {
    compare(
        &["s4096", "n4", "./main"],
        &[sample_input(1, 3000, true), sample_input(2, 500, false)],
        |_| {},
    );
}

#[test]
fn same_directory_as_debian_with_t_stamps() {
    // Same files and cut points with stamps (which count towards the 1000-byte line buffer);
    // only the stamps' digits differ.
    compare_with(
        &["t", "s4096", "n100", "./stamped", "s8000", "./other"],
        &[sample_input(11, 2000, false), sample_input(12, 300, true)],
        |_| {},
        true,
    );
}

#[test]
fn same_directory_as_debian_selections_and_several_dirs() {
    compare(
        &[
            "s5000",
            "n100",
            "-*fatal*",
            "./nofatal",
            "s9000",
            "+*fatal*",
            "./all",
            "-*",
            "+line * alert: *",
            "=status",
            "./alerts",
        ],
        &[sample_input(3, 4000, true), sample_input(4, 300, false)],
        |_| {},
    );
}

#[test]
fn same_directory_as_debian_processor() {
    // The processor changes the text, keeps a running count in `state` via fd 4 / fd 5.
    compare(
        &[
            "s4096",
            "n20",
            "!tr a-m n-z; n=$(cat <&4); echo \"x$n\" >&5",
            "./p",
        ],
        &[sample_input(5, 1500, true), sample_input(6, 200, true)],
        |_| {},
    );
}

#[test]
fn same_directory_as_debian_after_a_crash() {
    // Leftovers of a crash in the middle of processing: the next start finishes them.
    compare(
        &["s4096", "n50", "!cat", "./c"],
        &[sample_input(7, 300, true)],
        |d| {
            let c = d.join("c");
            fs::create_dir(&c).unwrap();
            fs::set_permissions(&c, fs::Permissions::from_mode(0o700)).unwrap();
            fs::write(c.join("current"), b"cut li").unwrap();
            fs::set_permissions(c.join("current"), fs::Permissions::from_mode(0o644)).unwrap();
            fs::write(c.join("previous"), b"a full file\n").unwrap();
            fs::set_permissions(c.join("previous"), fs::Permissions::from_mode(0o744)).unwrap();
            fs::write(c.join("processed"), b"a fu").unwrap();
            fs::write(c.join("newstate"), b"junk").unwrap();
        },
    );
    compare(
        &["s4096", "n50", "!cat", "./c"],
        &[sample_input(8, 300, true)],
        |d| {
            let c = d.join("c");
            fs::create_dir(&c).unwrap();
            fs::set_permissions(&c, fs::Permissions::from_mode(0o700)).unwrap();
            fs::write(c.join("previous"), b"a full file\n").unwrap();
            fs::write(c.join("processed"), b"a full file, processed\n").unwrap();
            fs::set_permissions(c.join("processed"), fs::Permissions::from_mode(0o744)).unwrap();
        },
    );
}

#[test]
fn e_and_status_file_as_debian() {
    let Some(debian) = external("/usr/bin/multilog") else {
        return;
    };
    let t = tempdir();
    let input = sample_input(9, 200, false);
    let mut outs = Vec::new();
    for (name, prog) in [("a", debian), ("b", bin("multilog"))] {
        let d = t.path().join(name);
        fs::create_dir(&d).unwrap();
        let o = run_in(&prog, &d, &["-*info*", "e", "=st"], &input);
        assert!(o.status.success());
        outs.push((o.stderr, fs::read(d.join("st")).unwrap()));
    }
    assert_eq!(outs[0].1.len(), 1001);
    assert!(outs[0] == outs[1], "e/= output differs");
}

fn decode_stamp(s: &[u8]) -> (u64, u32) {
    assert_eq!(s[0], b'@', "{}", String::from_utf8_lossy(s));
    let h = std::str::from_utf8(&s[1..25]).unwrap();
    let secs = u64::from_str_radix(&h[..16], 16).unwrap() - (1u64 << 62) - 10;
    let nanos = u32::from_str_radix(&h[16..], 16).unwrap();
    (secs, nanos)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Check `t`-style stamps: within a second of [lo, hi] and non-decreasing.
fn check_stamps(text: &[u8], lo: f64, hi: f64, expect_lines: usize) {
    let mut last = (0u64, 0u32);
    let mut n = 0;
    for line in text.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
        let st = decode_stamp(line);
        assert_eq!(line[25], b' ');
        let t = st.0 as f64 + f64::from(st.1) / 1e9;
        assert!(
            t >= lo - 1.0 && t <= hi + 1.0,
            "stamp {t} outside [{lo}, {hi}]"
        );
        assert!(st >= last, "stamps went backwards");
        last = st;
        n += 1;
    }
    assert_eq!(n, expect_lines);
}

#[test]
fn t_stamps_are_current_and_non_decreasing() {
    let t = tempdir();
    let lo = now_secs();
    let mut p = Proc::spawn(
        Command::new(bin("multilog"))
            .args(["t", "s4096", "./d"])
            .current_dir(t.path())
            .stdin(Stdio::piped()),
    );
    let mut w = p.child.stdin.take().unwrap();
    for i in 0..300 {
        writeln!(w, "stamped line {i} {}", "z".repeat(i % 50)).unwrap();
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(w);
    assert!(p.wait_timeout(LONG).unwrap().success());
    let hi = now_secs();
    let text = read_all_logs(&t.path().join("d"));
    check_stamps(&text, lo, hi, 300);

    // tai64n likewise, and the text after the stamp is the input.
    let input: Vec<u8> = (0..50)
        .flat_map(|i| format!("x{i}\n").into_bytes())
        .collect();
    let lo = now_secs();
    let o = run_with_input(&mut Command::new(bin("tai64n")), Some(&input), LONG);
    let hi = now_secs();
    assert!(o.status.success());
    check_stamps(&o.stdout, lo, hi, 50);
    let stripped: Vec<u8> = o
        .stdout
        .split_inclusive(|c| *c == b'\n')
        .flat_map(|l| l[26..].to_vec())
        .collect();
    assert_eq!(stripped, input);
}

#[test]
fn tai64n_matches_debian_apart_from_the_time() {
    let Some(debian) = external("/usr/bin/tai64n") else {
        return;
    };
    let mut input = sample_input(13, 3000, false);
    input.extend_from_slice(b"\n\n\r\n\0x\n");
    input.extend_from_slice(&sample_input(14, 10, false));
    let a = run_with_input(&mut Command::new(&debian), Some(&input), LONG);
    let b = run_with_input(&mut Command::new(bin("tai64n")), Some(&input), LONG);
    assert!(a.status.success() && b.status.success());
    assert!(
        blank_stamps(&a.stdout) == blank_stamps(&b.stdout),
        "tai64n output differs"
    );
    assert!(b.stdout.ends_with(b"last line without newline"));
}

#[test]
fn tai64nlocal_matches_debian() {
    let Some(debian) = external("/usr/bin/tai64nlocal") else {
        return;
    };
    let mut input = b"@400000006592008a00000000 new year\n@4000000065920000000000ff\tq\nplain line\n\n@400000006592000000000000\nabc @4000\n@0000000000400000006592000000000000 long stamp\n@4000000012345678abcdef01 big nanos\n".to_vec();
    let o = run_with_input(
        &mut Command::new(bin("tai64n")),
        Some(&sample_input(10, 500, true)),
        LONG,
    );
    input.extend_from_slice(&o.stdout);
    input.extend_from_slice(b"@400000006592008a00000000 no newline");
    for tz in [
        "UTC",
        "America/New_York",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
    ] {
        let a = run_with_input(Command::new(&debian).env("TZ", tz), Some(&input), LONG);
        let b = run_with_input(
            Command::new(bin("tai64nlocal")).env("TZ", tz),
            Some(&input),
            LONG,
        );
        assert!(a.status.success() && b.status.success());
        assert!(
            a.stdout == b.stdout,
            "tai64nlocal output differs in TZ={tz}"
        );
        assert!(a.stdout.starts_with(b"20"));
    }
}

/// Archives (in name order) then current, concatenated.
fn read_all_logs(d: &Path) -> Vec<u8> {
    let mut names: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('@'))
        .collect();
    names.sort();
    names.push("current".into());
    let mut all = Vec::new();
    for n in names {
        if let Ok(c) = fs::read(d.join(n)) {
            all.extend_from_slice(&c);
        }
    }
    all
}

fn count_lines(d: &Path) -> usize {
    read_all_logs(d).iter().filter(|c| **c == b'\n').count()
}

fn pipe() -> (File, File) {
    // Close-on-exec, or every process spawned meanwhile would keep the write end open.
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    (File::from(r), File::from(w))
}

#[test]
fn sigkill_during_rotation_and_processing_loses_nothing() {
    sigkill_cycles(Some("!sleep 0.0$(($$ % 3)); cat; cat <&4 >&5; echo . >&5"));
}

#[test]
fn sigkill_during_background_rotation_loses_nothing() {
    // Without a processor the fsync and archiving of the full file run in the background.
    sigkill_cycles(None);
}

fn sigkill_cycles(processor: Option<&str>) {
    let t = tempdir();
    let dir = t.path().join("log");
    let (r, mut w) = pipe();
    let mut rng = Rng(77);
    let mut expected: Vec<u8> = Vec::new();
    let mut args = vec!["s4096", "n10000"];
    args.extend(processor);
    args.push("./log");
    let spawn = |r: &File| {
        Proc::spawn(
            Command::new(bin("multilog"))
                .args(&args)
                .current_dir(t.path())
                .stdin(r.try_clone().unwrap())
                .stderr(Stdio::null()),
        )
    };
    let mut kills = 0;
    let mut mid_rotation = 0;
    let mut line_no = 0;
    while kills < 60 {
        let mut p = spawn(&r);
        if kills % 4 == 3 {
            // Kill during start-up clean-up too (no input is pending then).
            std::thread::sleep(Duration::from_micros(rng.below(4000)));
            p.kill_group();
            kills += 1;
            continue;
        }
        let group = 5 + rng.below(60) as usize;
        for _ in 0..group {
            let l = format!(
                "crash line {line_no} {}\n",
                "q".repeat(rng.below(120) as usize)
            );
            w.write_all(l.as_bytes()).unwrap();
            expected.extend_from_slice(l.as_bytes());
            line_no += 1;
        }
        let want = line_no;
        must(LONG, "lines written before the kill", || {
            dir.is_dir() && count_lines(&dir) >= want
        });
        p.signal(Signal::SIGALRM);
        // A rotation with a processor takes tens of milliseconds, one without about one.
        let window = if processor.is_some() { 40_000 } else { 1_500 };
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        p.kill_group();
        kills += 1;
        if dir.join("previous").exists() || dir.join("processed").exists() {
            mid_rotation += 1;
        }
    }
    eprintln!("{mid_rotation} of {kills} kills landed during rotation or processing");
    assert!(
        mid_rotation >= 5,
        "only {mid_rotation} of {kills} kills landed during rotation or processing"
    );
    // A last clean run to the end of input.
    let mut p = spawn(&r);
    drop(w);
    drop(r);
    assert!(
        p.wait_timeout(LONG)
            .expect("final multilog exits")
            .success()
    );
    let got = read_all_logs(&dir);
    if got != expected {
        let g = String::from_utf8_lossy(&got);
        let e = String::from_utf8_lossy(&expected);
        let gl: Vec<&str> = g.lines().collect();
        let el: Vec<&str> = e.lines().collect();
        let first = gl.iter().zip(&el).position(|(a, b)| a != b);
        panic!(
            "after {kills} kills the logs differ from the input: {} lines vs {}, first difference at {first:?}: {:?}",
            gl.len(),
            el.len(),
            first.map(|i| (gl.get(i), el.get(i)))
        );
    }
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "previous" || n == "processed" || n == "newstate")
    );
    assert!(
        names.iter().any(|n| n.ends_with(".u")),
        "no crash was ever seen"
    );
    assert!(names.iter().filter(|n| n.ends_with(".s")).count() > 10);
}

/// A tmpfs mounted for one test and unmounted when dropped, even on failure.
struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_pauses_and_loses_nothing() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(!rqmail_tests::under_ci(), "CI runs as root");
        eprintln!("skipping: mounting a tmpfs needs root");
        return;
    }
    let t = tempdir();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    let _guard = Mount(mnt.clone());
    // Fill the file system (leave a little room for the directory itself).
    let filler = mnt.join("filler");
    {
        let mut f = File::create(&filler).unwrap();
        let block = vec![b'f'; 4096];
        while f.write_all(&block).is_ok() {}
    }
    let errpath = t.path().join("stderr");
    let (r, mut w) = pipe();
    let mut p = Proc::spawn(
        Command::new(bin("multilog"))
            .args(["s4096", "n100", "./mnt/log"])
            .current_dir(t.path())
            .stdin(r.try_clone().unwrap())
            .stderr(File::create(&errpath).unwrap()),
    );
    let mut expected = Vec::new();
    for i in 0..400 {
        let l = format!("disk full line {i} {}\n", "d".repeat(i % 90));
        w.write_all(l.as_bytes()).unwrap();
        expected.extend_from_slice(l.as_bytes());
    }
    must(LONG, "a warning about the full disk", || {
        fs::read_to_string(&errpath)
            .unwrap_or_default()
            .contains("out of disk space")
    });
    let msg = fs::read_to_string(&errpath).unwrap();
    assert!(msg.contains("multilog: warning: unable to "), "{msg}");
    assert!(msg.contains(", pausing: out of disk space"), "{msg}");
    fs::remove_file(&filler).unwrap();
    drop(w);
    drop(r);
    assert!(p.wait_timeout(LONG).expect("multilog finishes").success());
    assert_eq!(read_all_logs(&mnt.join("log")), expected);
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_scripts_and_directories_are_refused_clearly() {
    let t = tempdir();
    let ml = || {
        let mut c = Command::new(bin("multilog"));
        c.current_dir(t.path());
        c
    };
    let o = run_with_input(ml().args(["q", "./d"]), Some(b"x\n"), LONG);
    assert_eq!(o.status.code(), Some(100));
    assert!(
        stderr_of(&o).starts_with("multilog: fatal: unknown action q"),
        "{}",
        stderr_of(&o)
    );
    let o = run_with_input(ml().args(["./d", "t"]), Some(b"x\n"), LONG);
    assert_eq!(o.status.code(), Some(100));
    assert!(
        stderr_of(&o).contains("t must come before"),
        "{}",
        stderr_of(&o)
    );
    let o = run_with_input(ml().args(["s12k", "./d"]), Some(b"x\n"), LONG);
    assert_eq!(o.status.code(), Some(100));
    let o = run_with_input(&mut ml(), Some(b"x\n"), LONG);
    assert_eq!(o.status.code(), Some(100));
    assert!(stderr_of(&o).contains("usage"));

    // A directory that cannot be created.
    fs::write(t.path().join("file"), b"").unwrap();
    let o = run_with_input(ml().args(["./file/d"]), Some(b"x\n"), LONG);
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(
        stderr_of(&o),
        "multilog: fatal: unable to create directory ./file/d: not a directory\n"
    );
    // A directory we may not write (as an unprivileged user when we are root).
    let ro = t.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let mut c = ml();
    if nix::unistd::Uid::effective().is_root() {
        use std::os::unix::process::CommandExt;
        // The unprivileged user may not reach our target directory: use a copy.
        let copy = t.path().join("multilog-copy");
        fs::copy(bin("multilog"), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        // Another test's fork may briefly hold the copy open for writing (ETXTBSY).
        must(LONG, "the copied binary runs", || {
            Command::new(&copy)
                .arg("q")
                .stderr(Stdio::null())
                .status()
                .map_or_else(|e| e.raw_os_error() != Some(libc::ETXTBSY), |_| true)
        });
        c = Command::new(&copy);
        c.current_dir(t.path()).uid(65534).gid(65534);
    }
    c.args(["./ro"]);
    let o = run_with_input(&mut c, Some(b"x\n"), LONG);
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(
        stderr_of(&o),
        "multilog: fatal: unable to lock directory ./ro: access denied\n"
    );
    // A directory locked by another multilog.
    let mut holder = Proc::spawn(
        ml().args(["./locked"])
            .stdin(Stdio::piped())
            .stderr(Stdio::null()),
    );
    must(LONG, "first multilog holds the lock", || {
        t.path().join("locked/current").exists()
    });
    let o = run_with_input(ml().args(["./locked"]), Some(b"x\n"), LONG);
    assert_eq!(o.status.code(), Some(111));
    assert_eq!(
        stderr_of(&o),
        "multilog: fatal: unable to lock directory ./locked: temporary failure\n"
    );
    holder.kill_group();
}

/// Lines through a multilog whose processor fails (or hangs) until `flag` exists.
fn processor_until_flag(processor: &str, expect_warning: &str) {
    let t = tempdir();
    let flag = t.path().join("flag");
    let errpath = t.path().join("stderr");
    let (r, mut w) = pipe();
    let proc_text = processor.replace("FLAG", &flag.display().to_string());
    let mut p = Proc::spawn(
        Command::new(bin("multilog"))
            .args(["s4096", "n100", &format!("!{proc_text}"), "./log"])
            .current_dir(t.path())
            .stdin(r.try_clone().unwrap())
            .stderr(File::create(&errpath).unwrap()),
    );
    let mut expected = Vec::new();
    for i in 0..300 {
        let l = format!("processed line {i} {}\n", "p".repeat(i % 70));
        w.write_all(l.as_bytes()).unwrap();
        expected.extend_from_slice(l.as_bytes());
    }
    must(LONG, expect_warning, || {
        fs::read_to_string(&errpath)
            .unwrap_or_default()
            .contains(expect_warning)
    });
    // While the processor does not succeed, nothing is lost and previous is kept.
    assert!(t.path().join("log/previous").exists());
    File::create(&flag).unwrap();
    drop(w);
    drop(r);
    assert!(p.wait_timeout(LONG).expect("multilog finishes").success());
    assert_eq!(read_all_logs(&t.path().join("log")), expected);
}

#[test]
fn failing_processor_is_retried_with_a_message() {
    processor_until_flag(
        "test -e FLAG || exit 3; cat",
        "multilog: warning: processor failed in ./log (exit status 3), pausing",
    );
}

#[test]
fn hanging_processor_is_reported() {
    processor_until_flag(
        "while ! test -e FLAG; do sleep 0.1; done; cat",
        "still running after 5 seconds",
    );
}

#[test]
fn sigterm_finishes_the_line_and_sigalrm_rotates() {
    let t = tempdir();
    let (r, mut w) = pipe();
    let mut p = Proc::spawn(
        Command::new(bin("multilog"))
            .args(["./d"])
            .current_dir(t.path())
            .stdin(r.try_clone().unwrap()),
    );
    let d = t.path().join("d");
    w.write_all(b"one\n").unwrap();
    must(LONG, "first line", || {
        fs::read(d.join("current")).unwrap_or_default() == b"one\n"
    });
    p.signal(Signal::SIGALRM);
    must(LONG, "rotation on SIGALRM", || {
        fs::read(d.join("current")).is_ok_and(|c| c.is_empty()) && count_lines(&d) == 1
    });
    w.write_all(b"tw").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    p.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "exited before the line ended"
    );
    w.write_all(b"o\nthree\n").unwrap();
    let st = p.wait_timeout(LONG).expect("exits after the line");
    assert!(st.success());
    assert_eq!(fs::read(d.join("current")).unwrap(), b"two\n");
    let mode = fs::metadata(d.join("current"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o744);
    // "three" stayed in the pipe for the next reader.
    drop(w);
    let mut rest = String::new();
    (&r).read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "three\n");
}

#[test]
fn total_cap_and_iso_stamps() {
    let t = tempdir();
    let input: Vec<u8> = (0..2000)
        .flat_map(|i| format!("capped line {i} {}\n", "c".repeat(i % 80)).into_bytes())
        .collect();
    let o = run_with_input(
        Command::new(bin("multilog"))
            .args(["T", "s4096", "n1000", "S20000", "./d"])
            .current_dir(t.path()),
        Some(&input),
        LONG,
    );
    assert!(o.status.success(), "{}", stderr_of(&o));
    let d = t.path().join("d");
    let mut total = 0;
    let mut archives = 0;
    for e in fs::read_dir(&d).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with('@') {
            total += e.metadata().unwrap().len();
            archives += 1;
        }
    }
    assert!(
        total <= 20000 && total > 20000 - 4096,
        "archives hold {total} bytes"
    );
    assert!(archives >= 4);
    let text = read_all_logs(&d);
    let last = text
        .split(|c| *c == b'\n')
        .rfind(|l| !l.is_empty())
        .unwrap();
    let s = String::from_utf8_lossy(last);
    // 2026-11-26T14:38:51.104311423Z capped line 1999 …
    let b = s.as_bytes();
    assert_eq!(
        (b[4], b[7], b[10], b[13], b[16], b[19], b[29], b[30]),
        (b'-', b'-', b'T', b':', b':', b'.', b'Z', b' '),
        "{s}"
    );
    assert!(s[31..].starts_with("capped line 1999 "), "{s}");
    assert!(wait_until(Duration::from_secs(1), || true));
}

// ----- stdin a stream socket: lines are peeked, written, then consumed -----

/// A Unix stream socket pair; `.0` is multilog's end (the test keeps a copy so that what
/// a killed multilog left in the socket is there for the next one).
fn socket_pair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    std::os::unix::net::UnixStream::pair().unwrap()
}

/// What is still unread in the socket whose reading end is `r` (without taking it).
fn unread(r: &std::os::unix::net::UnixStream) -> Vec<u8> {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 1 << 20];
    match recv(
        r.as_raw_fd(),
        &mut buf,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(n) => buf[..n].to_vec(),
        Err(nix::errno::Errno::EAGAIN) => Vec::new(),
        Err(e) => panic!("peek: {e}"),
    }
}

fn spawn_on_socket(cwd: &Path, args: &[&str], r: &std::os::unix::net::UnixStream) -> Proc {
    Proc::spawn(
        Command::new(bin("multilog"))
            .args(args)
            .current_dir(cwd)
            .stdin(std::os::fd::OwnedFd::from(r.try_clone().unwrap()))
            .stderr(Stdio::null()),
    )
}

#[test]
fn socket_stdin_sigkill_mid_line_loses_nothing() {
    // Over a pipe, the start of an unfinished line that multilog has read is lost by a
    // SIGKILL; over a socket it stays in the socket until the line is written.
    let t = tempdir();
    let dir = t.path().join("log");
    let (r, mut w) = socket_pair();
    let args = ["./log"];
    let mut p = spawn_on_socket(t.path(), &args, &r);
    w.write_all(b"first line\nsecond line\nthird line, fir")
        .unwrap();
    must(LONG, "two complete lines written and consumed", || {
        dir.is_dir() && count_lines(&dir) == 2 && unread(&r) == b"third line, fir"
    });
    // The unfinished line has been seen (it came in the same send as the two lines) but
    // is not consumed.
    p.kill_group();
    w.write_all(b"st half\nfourth line\n").unwrap();
    let mut p = spawn_on_socket(t.path(), &args, &r);
    must(LONG, "the rest written", || count_lines(&dir) == 4);
    w.shutdown(std::net::Shutdown::Write).unwrap();
    drop(r);
    assert!(p.wait_timeout(LONG).expect("multilog exits").success());
    assert_eq!(
        String::from_utf8_lossy(&read_all_logs(&dir)),
        "first line\nsecond line\nthird line, first half\nfourth line\n"
    );
    assert!(
        fs::read_dir(&dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".u")),
        "the killed run's current is archived as .u"
    );
}

#[test]
fn socket_stdin_sigkill_cycles_lose_nothing() {
    // A writer streams lines in chunks that cut lines anywhere while multilog is killed 50
    // times at random instants; every line must be in the logs (a line can appear twice:
    // written just before a kill, not yet consumed; a kill inside a write can leave a cut
    // copy at the end of a .u file).
    let t = tempdir();
    let dir = t.path().join("log");
    let (r, mut w) = socket_pair();
    let args = ["s4096", "n100000", "./log"];
    let lines = 6000;
    let writer = std::thread::spawn(move || {
        let mut rng = Rng(99);
        let mut all = Vec::new();
        for i in 0..lines {
            all.extend_from_slice(
                format!("sock line {i} {}\n", "z".repeat(rng.below(150) as usize)).as_bytes(),
            );
        }
        let mut pos = 0;
        while pos < all.len() {
            let n = (1 + rng.below(3000) as usize).min(all.len() - pos);
            w.write_all(&all[pos..pos + n]).unwrap();
            pos += n;
            std::thread::sleep(Duration::from_micros(rng.below(300)));
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut rng = Rng(5);
    for _ in 0..50 {
        let mut p = spawn_on_socket(t.path(), &args, &r);
        std::thread::sleep(Duration::from_micros(2000 + rng.below(20_000)));
        p.kill_group();
    }
    let mut p = spawn_on_socket(t.path(), &args, &r);
    writer.join().unwrap();
    drop(r);
    assert!(
        p.wait_timeout(LONG)
            .expect("final multilog exits")
            .success()
    );

    let mut seen = vec![0usize; lines];
    let mut cut = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !(name.starts_with('@') || name == "current") {
            continue;
        }
        let text = fs::read(dir.join(&name)).unwrap();
        let text = String::from_utf8(text).unwrap();
        let mut parts: Vec<&str> = text.split('\n').collect();
        let last = parts.pop().unwrap();
        if !last.is_empty() {
            assert!(name.ends_with(".u"), "{name} ends in a cut line {last:?}");
            assert!(last.starts_with("sock line "), "garbage {last:?} in {name}");
            cut += 1;
        }
        for l in parts {
            let mut f = l.split(' ');
            assert_eq!((f.next(), f.next()), (Some("sock"), Some("line")), "{l:?}");
            let i: usize = f.next().unwrap().parse().unwrap();
            let z = f.next().unwrap_or("");
            assert!(z.bytes().all(|c| c == b'z') && f.next().is_none(), "{l:?}");
            seen[i] += 1;
        }
    }
    let missing: Vec<usize> = (0..lines).filter(|i| seen[*i] == 0).collect();
    assert!(missing.is_empty(), "lines lost: {missing:?}");
    let twice = seen.iter().filter(|n| **n > 1).count();
    eprintln!("{twice} of {lines} lines logged twice, {cut} cut copies");
}

#[test]
fn socket_stdin_sigterm_and_end_of_input() {
    let t = tempdir();
    let dir = t.path().join("log");
    let (r, mut w) = socket_pair();
    let args = ["./log"];
    // SIGTERM in the middle of a line: that line is finished, what follows stays unread.
    let mut p = spawn_on_socket(t.path(), &args, &r);
    w.write_all(b"one\npart").unwrap();
    must(LONG, "the first line written", || {
        dir.is_dir() && count_lines(&dir) == 1 && unread(&r) == b"part"
    });
    p.signal(Signal::SIGTERM);
    // Still waiting for the end of the line.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(p.wait_timeout(Duration::from_millis(1)), None);
    w.write_all(b"ial\nafter\n").unwrap();
    assert!(
        p.wait_timeout(LONG)
            .expect("exits after the line")
            .success()
    );
    assert_eq!(read_all_logs(&dir), b"one\npartial\n");
    assert_eq!(unread(&r), b"after\n");
    // End of input after an unfinished line: it is logged with a newline added.
    let mut p = spawn_on_socket(t.path(), &args, &r);
    w.write_all(b"no newline").unwrap();
    w.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(p.wait_timeout(LONG).expect("exits at the end").success());
    assert_eq!(read_all_logs(&dir), b"one\npartial\nafter\nno newline\n");
    assert_eq!(unread(&r), b"");
}
