//! The test harness shared by every crate's integration tests and by the end-to-end tests in
//! `tests/tests/`: temporary directories, free ports, the built binaries, and processes that
//! are always ended — by process group — when a test finishes or fails.
//!
//! Binaries are found next to the test executable's profile directory (`target/debug`), so
//! the whole workspace's binaries must be built first: the README's test command runs
//! `cargo build --workspace --bins` before `cargo test --workspace`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// `target/<profile>`, where cargo puts the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RQMAIL_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/it-xxxx → target/debug
    let deps = exe.parent().expect("exe dir");
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile dir").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// Path of a built workspace binary; panics with a hint when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// A fresh temporary directory (removed on drop).
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("rqmail-test-")
        .tempdir()
        .expect("tempdir")
}

/// A TCP port on 127.0.0.1 that was free a moment ago, and never one this test process has
/// handed out before: the kernel may give the same ephemeral port to two tests running in
/// parallel, and one test would then talk to the other's server.
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Poll `cond` every 20 ms until it returns true or `deadline` passes; returns whether it held.
pub fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`wait_until`] but panics with `what` when the deadline passes.
pub fn must(deadline: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(wait_until(deadline, cond), "timed out waiting for: {what}");
}

/// A spawned process in its own process group. Dropping it sends SIGKILL to the whole group
/// and reaps the leader, so no test leaves a stray daemon behind, even when it panics.
pub struct Proc {
    pub child: Child,
    pgid: i32,
}

impl Proc {
    /// Spawn `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command) -> Proc {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let pgid = child.id() as i32;
        Proc { child, pgid }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal to the leader only.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pgid), sig);
    }

    /// Wait for the leader to exit, at most `deadline`; `None` if it is still running.
    pub fn wait_timeout(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kill the whole process group now.
    pub fn kill_group(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Run a command to completion with a deadline (killing its process group if it overruns);
/// returns its output. Stdin is empty unless `input` is given.
pub fn run_with_input(
    cmd: &mut Command,
    input: Option<&[u8]>,
    deadline: Duration,
) -> std::process::Output {
    use std::io::Write;
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut p = Proc::spawn(cmd);
    if let Some(data) = input {
        let mut stdin = p.child.stdin.take().expect("stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let mut stdout = p.child.stdout.take().expect("stdout");
    let mut stderr = p.child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let status = match p.wait_timeout(deadline) {
        Some(s) => s,
        None => {
            p.kill_group();
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
    };
    // The leader is gone; end anything it left in its group so the pipes close.
    p.kill_group();
    std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// [`run_with_input`] with no input and a 60 s deadline.
pub fn run(cmd: &mut Command) -> std::process::Output {
    run_with_input(cmd, None, Duration::from_secs(60))
}

/// Write an executable file (mode 0755), e.g. a run script.
pub fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(path, text).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// True when running under CI (`CI=true`): tests that need a Debian package fail instead of
/// skipping when it is missing.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Path of an external tool, or `None` when absent (then the test skips with a message — and
/// fails under CI, where `.ci/run` installs every tool).
pub fn external(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        return Some(p);
    }
    assert!(
        !under_ci(),
        "{path} is missing under CI: .ci/run must install it"
    );
    eprintln!("skipping: {path} is not installed");
    None
}
