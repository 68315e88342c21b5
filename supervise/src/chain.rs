//! The chain-loading tools run scripts use: setuidgid, envuidgid, envdir, softlimit, setlock,
//! pgrphack, fghack. Each changes one thing about the process and execs the rest of its
//! command line. Usage and error texts and exit codes are daemontools 0.76's, word for word
//! (checked against Debian's binaries): usage → 100 (envdir: 111), errors → 111
//! "NAME: fatal: …".
//!
//! Extension: setuidgid and envuidgid also accept `UID:GID` (numbers) instead of an account
//! name, for installs whose ids are not in /etc/passwd.

use crate::errstr::{err_str, nix_str};
use nix::errno::Errno;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

fn die(prog: &str, msg: &str) -> i32 {
    eprintln!("{prog}: fatal: {msg}");
    111
}

/// Exec `argv[0]` with `argv`, searching `$PATH` (of the new environment; `/bin:/usr/bin`
/// when unset) as daemontools' pathexec does, with the environment changed by `env` (`None`
/// removes a variable). Returns only on failure, with the errno that best explains it.
pub fn pathexec(argv: &[OsString], env: &[(OsString, Option<OsString>)]) -> Errno {
    let Some(prog) = argv.first() else {
        return Errno::ENOENT;
    };
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (k, v) in env {
        vars.retain(|(name, _)| name != k);
        if let Some(v) = v {
            vars.push((k.clone(), v.clone()));
        }
    }
    let cstr = |b: Vec<u8>| CString::new(b).ok();
    let Some(args) = argv
        .iter()
        .map(|a| cstr(a.as_bytes().to_vec()))
        .collect::<Option<Vec<_>>>()
    else {
        return Errno::EINVAL;
    };
    let envp: Vec<CString> = vars
        .iter()
        .filter_map(|(k, v)| {
            let mut b = k.as_bytes().to_vec();
            b.push(b'=');
            b.extend_from_slice(v.as_bytes());
            cstr(b)
        })
        .collect();
    if prog.as_bytes().contains(&b'/') {
        let Some(p) = cstr(prog.as_bytes().to_vec()) else {
            return Errno::EINVAL;
        };
        return match nix::unistd::execve(&p, &args, &envp) {
            Err(e) => e,
            Ok(never) => match never {},
        };
    }
    let path = vars
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_bytes().to_vec())
        .unwrap_or_else(|| b"/bin:/usr/bin".to_vec());
    let mut saved: Option<Errno> = None;
    for dir in path.split(|&b| b == b':') {
        let mut full = if dir.is_empty() {
            b".".to_vec()
        } else {
            dir.to_vec()
        };
        full.push(b'/');
        full.extend_from_slice(prog.as_bytes());
        let Some(p) = cstr(full) else { continue };
        let e = match nix::unistd::execve(&p, &args, &envp) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        if e != Errno::ENOENT {
            saved = Some(e);
            if !matches!(e, Errno::EACCES | Errno::EPERM | Errno::EISDIR) {
                return e;
            }
        }
    }
    saved.unwrap_or(Errno::ENOENT)
}

fn run(prog: &str, argv: &[OsString], env: &[(OsString, Option<OsString>)]) -> i32 {
    let e = pathexec(argv, env);
    die(
        prog,
        &format!(
            "unable to run {}: {}",
            argv.first()
                .map(|a| a.to_string_lossy())
                .unwrap_or_default(),
            nix_str(e)
        ),
    )
}

/// An account by name, or — an rqmail extension, as s6-applyuidgid allows — `UID:GID` in
/// numbers (a colon cannot occur in an account name), so installs whose qmail ids live only in
/// `QMAILHOME/ids` need no /etc/passwd entry.
fn lookup(prog: &str, account: &OsStr) -> Result<nix::unistd::User, i32> {
    let name = account.to_string_lossy();
    if let Some((u, g)) = name.split_once(':')
        && let (Ok(uid), Ok(gid)) = (u.parse::<u32>(), g.parse::<u32>())
    {
        return Ok(nix::unistd::User {
            name: name.to_string(),
            passwd: Default::default(),
            uid: nix::unistd::Uid::from_raw(uid),
            gid: nix::unistd::Gid::from_raw(gid),
            gecos: Default::default(),
            dir: Default::default(),
            shell: Default::default(),
        });
    }
    match nix::unistd::User::from_name(&name) {
        Ok(Some(u)) => Ok(u),
        _ => Err(die(
            prog,
            &format!("unknown account {}", account.to_string_lossy()),
        )),
    }
}

/// `setuidgid ACCOUNT CHILD…`: run CHILD with ACCOUNT's uid and gid (and that gid as the only
/// supplementary group).
pub fn setuidgid(args: Vec<OsString>) -> i32 {
    const P: &str = "setuidgid";
    if args.len() < 3 {
        eprintln!("setuidgid: usage: setuidgid account child");
        return 100;
    }
    let u = match lookup(P, &args[1]) {
        Ok(u) => u,
        Err(c) => return c,
    };
    if nix::unistd::setgroups(&[u.gid]).is_err() || nix::unistd::setgid(u.gid).is_err() {
        return die(P, &format!("unable to setgid: {}", nix_str(Errno::last())));
    }
    if let Err(e) = nix::unistd::setuid(u.uid) {
        return die(P, &format!("unable to setuid: {}", nix_str(e)));
    }
    run(P, &args[2..], &[])
}

/// `envuidgid ACCOUNT CHILD…`: run CHILD with `$UID` and `$GID` set to ACCOUNT's ids.
pub fn envuidgid(args: Vec<OsString>) -> i32 {
    const P: &str = "envuidgid";
    if args.len() < 3 {
        eprintln!("envuidgid: usage: envuidgid account child");
        return 100;
    }
    let u = match lookup(P, &args[1]) {
        Ok(u) => u,
        Err(c) => return c,
    };
    run(
        P,
        &args[2..],
        &[
            ("GID".into(), Some(u.gid.as_raw().to_string().into())),
            ("UID".into(), Some(u.uid.as_raw().to_string().into())),
        ],
    )
}

/// `envdir DIR CHILD…`: for each file in DIR (names starting with '.' skipped), set the
/// variable of that name to the file's first line (trailing spaces and tabs removed, NUL
/// bytes turned into newlines), or remove it when the file is empty.
pub fn envdir(args: Vec<OsString>) -> i32 {
    const P: &str = "envdir";
    if args.len() < 3 {
        eprintln!("envdir: usage: envdir dir child");
        return 111;
    }
    let fname = args[1].to_string_lossy().into_owned();
    let dir = std::path::Path::new(&args[1]);
    if let Err(e) = std::fs::metadata(dir).and_then(|m| {
        if m.is_dir() {
            Ok(())
        } else {
            Err(std::io::Error::from_raw_os_error(libc::ENOTDIR))
        }
    }) {
        return die(
            P,
            &format!("unable to switch to directory {fname}: {}", err_str(&e)),
        );
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            return die(
                P,
                &format!("unable to read directory {fname}: {}", err_str(&e)),
            );
        }
    };
    let mut names = Vec::new();
    for ent in rd {
        match ent {
            Ok(e) => names.push(e.file_name()),
            Err(e) => {
                return die(
                    P,
                    &format!("unable to read directory {fname}: {}", err_str(&e)),
                );
            }
        }
    }
    let mut env = Vec::new();
    for name in names {
        if name.as_bytes().first() == Some(&b'.') {
            continue;
        }
        let data = match std::fs::read(dir.join(&name)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return die(
                    P,
                    &format!(
                        "unable to read {fname}/{}: {}",
                        name.to_string_lossy(),
                        err_str(&e)
                    ),
                );
            }
        };
        if data.is_empty() {
            env.push((name, None));
            continue;
        }
        let mut v: Vec<u8> = match data.iter().position(|&b| b == b'\n') {
            Some(i) => data[..i].to_vec(),
            None => data,
        };
        while matches!(v.last(), Some(b' ' | b'\t')) {
            v.pop();
        }
        for b in v.iter_mut() {
            if *b == 0 {
                *b = b'\n';
            }
        }
        env.push((name, Some(OsString::from_vec(v))));
    }
    run(P, &args[2..], &env)
}

const SOFTLIMIT_USAGE: &str = "softlimit: usage: softlimit [-a allbytes] [-c corebytes] [-d databytes] [-f filebytes] [-l lockbytes] [-m membytes] [-o openfiles] [-p processes] [-r residentbytes] [-s stackbytes] [-t cpusecs] child";

/// A small getopt: options from `spec` (a letter followed by ':' takes an argument), stops at
/// the first non-option or "--". Errors are printed as djb's sgetopt does; returns the index
/// of the first operand.
fn getopt(
    prog: &str,
    args: &[OsString],
    spec: &str,
    mut each: impl FnMut(u8, Option<&OsStr>) -> Result<(), ()>,
) -> Result<usize, ()> {
    let spec = spec.as_bytes();
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            return Ok(i + 1);
        }
        if a.len() < 2 || a[0] != b'-' {
            return Ok(i);
        }
        let mut j = 1;
        while j < a.len() {
            let c = a[j];
            let pos = spec.iter().position(|&s| s == c && s != b':');
            let Some(pos) = pos else {
                eprintln!("{prog}: illegal option -- {}", c as char);
                return Err(());
            };
            if spec.get(pos + 1) == Some(&b':') {
                let val: OsString = if j + 1 < a.len() {
                    OsString::from_vec(a[j + 1..].to_vec())
                } else {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => {
                            eprintln!("{prog}: option requires an argument -- {}", c as char);
                            return Err(());
                        }
                    }
                };
                each(c, Some(&val))?;
                break;
            }
            each(c, None)?;
            j += 1;
        }
        i += 1;
    }
    Ok(i)
}

/// `softlimit [-a|c|d|f|l|m|o|p|r|s|t N] CHILD…`: lower soft resource limits (never above the
/// hard limit); `=` as N means the hard limit. -m sets data, stack, locked memory and address
/// space at once.
pub fn softlimit(args: Vec<OsString>) -> i32 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let mut err: Option<i32> = None;
    let r = getopt("softlimit", &args, "a:c:d:f:l:m:o:p:r:s:t:", |c, v| {
        let v = v
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        let value: Option<u64> = if v == "=" {
            None
        } else if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            Some(v.parse::<u64>().unwrap_or(u64::MAX))
        } else {
            return Err(());
        };
        let res: &[Resource] = match c {
            b'a' => &[Resource::RLIMIT_AS],
            b'c' => &[Resource::RLIMIT_CORE],
            b'd' => &[Resource::RLIMIT_DATA],
            b'f' => &[Resource::RLIMIT_FSIZE],
            b'l' => &[Resource::RLIMIT_MEMLOCK],
            b'm' => &[
                Resource::RLIMIT_DATA,
                Resource::RLIMIT_STACK,
                Resource::RLIMIT_MEMLOCK,
                Resource::RLIMIT_AS,
            ],
            b'o' => &[Resource::RLIMIT_NOFILE],
            b'p' => &[Resource::RLIMIT_NPROC],
            b'r' => &[Resource::RLIMIT_RSS],
            b's' => &[Resource::RLIMIT_STACK],
            b't' => &[Resource::RLIMIT_CPU],
            _ => return Err(()),
        };
        for &r in res {
            let (_, hard) = match getrlimit(r) {
                Ok(l) => l,
                Err(e) => {
                    err = Some(die(
                        "softlimit",
                        &format!("getrlimit failed: {}", nix_str(e)),
                    ));
                    return Err(());
                }
            };
            let soft = match value {
                None => hard,
                Some(n) if hard != libc::RLIM_INFINITY && n > hard => hard,
                Some(n) => n,
            };
            if let Err(e) = setrlimit(r, soft, hard) {
                err = Some(die(
                    "softlimit",
                    &format!("setrlimit failed: {}", nix_str(e)),
                ));
                return Err(());
            }
        }
        Ok(())
    });
    if let Some(code) = err {
        return code;
    }
    match r {
        Ok(i) if i < args.len() => run("softlimit", &args[i..], &[]),
        _ => {
            eprintln!("{SOFTLIMIT_USAGE}");
            100
        }
    }
}

/// `setlock [-nNxX] FILE CHILD…`: run CHILD holding an exclusive flock on FILE (created if
/// needed). -n: fail at once if locked (-N: wait, the default); -x: exit 0 silently when the
/// file cannot be opened or locked (-X: complain, exit 111, the default).
pub fn setlock(args: Vec<OsString>) -> i32 {
    const USAGE: &str = "setlock: usage: setlock [ -nNxX ] file program [ arg ... ]";
    let mut nonblock = false;
    let mut quiet = false;
    let r = getopt("setlock", &args, "nNxX", |c, _| {
        match c {
            b'n' => nonblock = true,
            b'N' => nonblock = false,
            b'x' => quiet = true,
            b'X' => quiet = false,
            _ => return Err(()),
        }
        Ok(())
    });
    let i = match r {
        Ok(i) if i + 1 < args.len() => i,
        _ => {
            eprintln!("{USAGE}");
            return 100;
        }
    };
    let file = args[i].to_string_lossy().into_owned();
    use std::os::unix::fs::OpenOptionsExt;
    let f = match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(&args[i])
    {
        Ok(f) => f,
        Err(_) if quiet => return 0,
        Err(e) => {
            return die(
                "setlock",
                &format!("unable to open {file}: {}", err_str(&e)),
            );
        }
    };
    let how = if nonblock {
        nix::fcntl::FlockArg::LockExclusiveNonblock
    } else {
        nix::fcntl::FlockArg::LockExclusive
    };
    let locked = match nix::fcntl::Flock::lock(f, how) {
        Ok(l) => l,
        Err(_) if quiet => return 0,
        Err((_, e)) => return die("setlock", &format!("unable to lock {file}: {}", nix_str(e))),
    };
    // The lock must survive exec: keep the descriptor open and inheritable.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&*locked);
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    );
    let code = run("setlock", &args[i + 1..], &[]);
    drop(locked);
    code
}

/// `pgrphack CHILD…`: run CHILD in a new session and process group.
pub fn pgrphack(args: Vec<OsString>) -> i32 {
    if args.len() < 2 {
        eprintln!("pgrphack: usage: pgrphack child");
        return 100;
    }
    let _ = nix::unistd::setsid();
    run("pgrphack", &args[1..], &[])
}

/// `fghack CHILD…`: run CHILD with 400 extra copies of a pipe's write end and wait until every
/// copy is closed — that is, until CHILD and every daemon it forked have exited — then exit
/// with CHILD's exit code ("child crashed", 111, when it was killed).
pub fn fghack(args: Vec<OsString>) -> i32 {
    const P: &str = "fghack";
    if args.len() < 2 {
        eprintln!("fghack: usage: fghack child");
        return 100;
    }
    let (r, w) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(e) => return die(P, &format!("unable to create pipe: {}", nix_str(e))),
    };
    let argv = args[1..].to_vec();
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let wfd = std::os::fd::AsRawFd::as_raw_fd(&w);
    let rfd = std::os::fd::AsRawFd::as_raw_fd(&r);
    // SAFETY: runs in the child between fork and exec; only close(2) and dup(2) on plain
    // integers, both async-signal-safe, no allocation and no Rust-managed state.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            libc::close(rfd);
            for _ in 0..400 {
                if libc::dup(wfd) == -1 {
                    break;
                }
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return die(
                P,
                &format!(
                    "unable to run {}: {}",
                    argv[0].to_string_lossy(),
                    err_str(&e)
                ),
            );
        }
    };
    drop(w);
    let mut f = std::fs::File::from(r);
    let mut buf = [0u8; 256];
    loop {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    match child.wait() {
        Ok(st) => match st.code() {
            Some(c) => c,
            None => die(P, "child crashed"),
        },
        Err(e) => die(P, &format!("wait failed: {}", err_str(&e))),
    }
}
