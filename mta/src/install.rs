//! `qmail-install [--check] DIR`: qmail's `install` and `instcheck` in one program.
//!
//! Creates the qmail tree under DIR (bin, control, users, alias, boot, doc, man and the queue
//! with its split subdirectories, lock/tcpto, lock/sendmutex and the lock/trigger fifo) with
//! qmail's owners and modes (hier.c) and copies every rqmail program found next to its own
//! executable into DIR/bin (qmail's programs with qmail's modes, any other with 0755). Running
//! it again fixes owners and modes and refreshes the programs.
//! `--check` changes nothing and reports every missing file and wrong owner, group or mode
//! (exit 111 when something is wrong).
//!
//! Ids: when run as root and the qmail users and groups are known (from `DIR/ids`, lines
//! `name:uid:gid`, or the system databases) the tree gets qmail's owners; otherwise everything
//! is owned by the invoking user ("user mode") and only the modes are qmail's. Differences
//! from qmail on purpose: setuid/setgid bits are only set when the owners are qmail's (a
//! setuid qmail-queue owned by an ordinary user would be pointless), and `control/defaultdelivery`
//! is created with `./Maildir/` when missing (Life with qmail's convention, read by qmail-start).

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::ids::QmailIds;

/// conf-split.
pub const SPLIT: u64 = 23;

/// Every program rqmail builds that belongs in QMAILHOME/bin, with qmail's mode and owner kind.
/// Programs missing from the build directory are skipped.
const PROGRAMS: &[(&str, u32)] = &[
    ("qmail-queue", 0o4711),
    ("qmail-lspawn", 0o700),
    ("qmail-start", 0o700),
    ("qmail-getpw", 0o711),
    ("qmail-local", 0o711),
    ("qmail-remote", 0o711),
    ("qmail-rspawn", 0o711),
    ("qmail-clean", 0o711),
    ("qmail-send", 0o711),
    ("splogger", 0o711),
    ("qmail-newu", 0o700),
    ("qmail-newmrh", 0o700),
    ("qmail-pw2u", 0o711),
    ("qmail-inject", 0o755),
    ("predate", 0o755),
    ("datemail", 0o755),
    ("mailsubj", 0o755),
    ("qmail-showctl", 0o755),
    ("qmail-qread", 0o755),
    ("qmail-qstat", 0o755),
    ("qmail-tcpto", 0o755),
    ("qmail-tcpok", 0o755),
    ("qmail-pop3d", 0o711),
    ("qmail-popup", 0o711),
    ("qmail-qmqpc", 0o755),
    ("qmail-qmqpd", 0o755),
    ("qmail-qmtpd", 0o755),
    ("qmail-smtpd", 0o755),
    ("sendmail", 0o755),
    ("tcp-env", 0o755),
    ("qreceipt", 0o755),
    ("qsmhook", 0o755),
    ("qbiff", 0o755),
    ("forward", 0o755),
    ("preline", 0o755),
    ("condredirect", 0o755),
    ("bouncesaying", 0o755),
    ("except", 0o755),
    ("maildirmake", 0o755),
    ("maildir2mbox", 0o755),
    ("maildirwatch", 0o755),
    ("qail", 0o755),
    ("elq", 0o755),
    ("pinq", 0o755),
    ("config", 0o755),
    ("config-fast", 0o755),
    ("qmail-install", 0o755),
    ("checkpassword", 0o755),
    ("qmail-checkperms", 0o755),
    ("serialmail", 0o755),
    ("maildirsmtp", 0o755),
    ("maildirserial", 0o755),
    ("serialsmtp", 0o755),
    ("qmail-qadmin", 0o755),
    ("qmail-poppass", 0o755),
    // The rest of the bundle, so run scripts find everything in QMAILHOME/bin: supervision,
    // logging, the network front and the log analyzer.
    ("supervise", 0o755),
    ("svc", 0o755),
    ("svstat", 0o755),
    ("svok", 0o755),
    ("svscan", 0o755),
    ("svscanboot", 0o755),
    ("readproctitle", 0o755),
    ("setuidgid", 0o755),
    ("envuidgid", 0o755),
    ("envdir", 0o755),
    ("softlimit", 0o755),
    ("setlock", 0o755),
    ("pgrphack", 0o755),
    ("fghack", 0o755),
    ("multilog", 0o755),
    ("tai64n", 0o755),
    ("tai64nlocal", 0o755),
    ("tcpserver", 0o755),
    ("tcprules", 0o755),
    ("tcprulescheck", 0o755),
    ("qmailanalog", 0o755),
    ("matchup", 0o755),
    ("zoverall", 0o755),
    ("zddist", 0o755),
    ("zdeferrals", 0o755),
    ("zfailures", 0o755),
    ("zrecipients", 0o755),
    ("zrhosts", 0o755),
    ("zrxdelay", 0o755),
    ("zsenders", 0o755),
    ("zsendmail", 0o755),
    ("zsuccesses", 0o755),
    ("zsuids", 0o755),
    ("xqp", 0o755),
    ("xrecipient", 0o755),
    ("xsender", 0o755),
];

/// Who owns an entry, in qmail's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Root,
    Alias,
    Qmailq,
    Qmails,
    Qmailr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    /// A file with this many zero bytes when created.
    Zero(usize),
    Fifo,
    /// A program copied from the build directory.
    Program,
}

#[derive(Clone, Debug)]
struct Entry {
    path: PathBuf,
    kind: Kind,
    owner: Owner,
    /// true: group qmail; the only other group in hier.c is also qmail, so always true today.
    mode: u32,
}

/// The resolved owners: uid for each [`Owner`], and the gid of group qmail.
#[derive(Clone, Copy, Debug)]
struct Ids {
    root: u32,
    alias: u32,
    qmailq: u32,
    qmails: u32,
    qmailr: u32,
    qmail_gid: u32,
    /// false in user mode: everything belongs to the invoking user.
    qmail_owned: bool,
}

impl Ids {
    fn resolve(dir: &Path) -> anyhow::Result<Ids> {
        let me = nix::unistd::geteuid().as_raw();
        let mygid = nix::unistd::getegid().as_raw();
        let user_mode = Ids {
            root: me,
            alias: me,
            qmailq: me,
            qmails: me,
            qmailr: me,
            qmail_gid: mygid,
            qmail_owned: false,
        };
        if !crate::ids::running_as_root() {
            return Ok(user_mode);
        }
        let q = QmailIds::load_from(&dir.join("ids"))?;
        match (
            q.uid("alias"),
            q.uid("qmailq"),
            q.uid("qmails"),
            q.uid("qmailr"),
            q.gid("qmail"),
        ) {
            (Some(alias), Some(qmailq), Some(qmails), Some(qmailr), Some(g)) => Ok(Ids {
                root: 0,
                alias,
                qmailq,
                qmails,
                qmailr,
                qmail_gid: g,
                qmail_owned: true,
            }),
            _ => Ok(user_mode),
        }
    }

    fn uid(&self, o: Owner) -> u32 {
        match o {
            Owner::Root => self.root,
            Owner::Alias => self.alias,
            Owner::Qmailq => self.qmailq,
            Owner::Qmails => self.qmails,
            Owner::Qmailr => self.qmailr,
        }
    }

    /// Mode as installed: without setuid/setgid bits in user mode.
    fn mode(&self, mode: u32) -> u32 {
        if self.qmail_owned {
            mode
        } else {
            mode & 0o1777
        }
    }
}

/// The directory holding the built programs: the one our own executable lives in.
fn build_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

fn hier(dir: &Path, build: Option<&Path>) -> Vec<Entry> {
    let mut v = Vec::new();
    let mut d = |p: &str, owner: Owner, mode: u32| {
        v.push(Entry {
            path: if p.is_empty() {
                dir.to_path_buf()
            } else {
                dir.join(p)
            },
            kind: Kind::Dir,
            owner,
            mode,
        })
    };
    d("", Owner::Root, 0o755);
    d("control", Owner::Root, 0o755);
    d("users", Owner::Root, 0o755);
    d("bin", Owner::Root, 0o755);
    d("boot", Owner::Root, 0o755);
    d("doc", Owner::Root, 0o755);
    d("man", Owner::Root, 0o755);
    for m in [
        "man1", "man5", "man7", "man8", "cat1", "cat5", "cat7", "cat8",
    ] {
        d(&format!("man/{m}"), Owner::Root, 0o755);
    }
    d("alias", Owner::Alias, 0o2755);
    d("queue", Owner::Qmailq, 0o750);
    d("queue/pid", Owner::Qmailq, 0o700);
    d("queue/intd", Owner::Qmailq, 0o700);
    d("queue/todo", Owner::Qmailq, 0o750);
    d("queue/bounce", Owner::Qmails, 0o700);
    // qmail-qadmin's request directories (see crate::qadmin), owned by qmail-send's user.
    d("queue/qadmin", Owner::Qmails, 0o700);
    for sub in crate::qadmin::agent::SUBDIRS {
        d(&format!("queue/qadmin/{sub}"), Owner::Qmails, 0o700);
    }
    for (name, owner, mode) in [
        ("mess", Owner::Qmailq, 0o750),
        ("info", Owner::Qmails, 0o700),
        ("local", Owner::Qmails, 0o700),
        ("remote", Owner::Qmails, 0o700),
    ] {
        d(&format!("queue/{name}"), owner, mode);
        for i in 0..SPLIT {
            d(&format!("queue/{name}/{i}"), owner, mode);
        }
    }
    d("queue/lock", Owner::Qmailq, 0o750);
    v.push(Entry {
        path: dir.join("queue/lock/tcpto"),
        kind: Kind::Zero(1024),
        owner: Owner::Qmailr,
        mode: 0o644,
    });
    v.push(Entry {
        path: dir.join("queue/lock/sendmutex"),
        kind: Kind::Zero(0),
        owner: Owner::Qmails,
        mode: 0o600,
    });
    v.push(Entry {
        path: dir.join("queue/lock/trigger"),
        kind: Kind::Fifo,
        owner: Owner::Qmails,
        mode: 0o622,
    });
    for (name, mode) in PROGRAMS {
        let present = match build {
            Some(b) => b.join(name).is_file(),
            None => false,
        };
        // In --check mode (build None) we check what is installed.
        let installed = dir.join("bin").join(name).exists();
        if present || (build.is_none() && installed) {
            v.push(Entry {
                path: dir.join("bin").join(name),
                kind: Kind::Program,
                owner: if *name == "qmail-queue" {
                    Owner::Qmailq
                } else {
                    Owner::Root
                },
                mode: *mode,
            });
        }
    }
    // Every other rqmail program we build is copied too (mode 0755). `--check` looks only at
    // qmail's own programs: others may have put their own files into bin/.
    if let Some(others) = build
        && let Ok(rd) = fs::read_dir(others)
    {
        let mut extra: Vec<String> = rd
            .flatten()
            .filter(|e| {
                e.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.contains('.') && !PROGRAMS.iter().any(|(p, _)| p == n))
            .collect();
        extra.sort();
        for name in extra {
            v.push(Entry {
                path: dir.join("bin").join(name),
                kind: Kind::Program,
                owner: Owner::Root,
                mode: 0o755,
            });
        }
    }
    v
}

fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

fn install_entry(e: &Entry, ids: &Ids, build: &Path) -> anyhow::Result<()> {
    let ctx = |what: &str, err: io::Error| {
        anyhow::anyhow!("unable to {what} {}: {err}", e.path.display())
    };
    match e.kind {
        Kind::Dir => match fs::create_dir(&e.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                if !e.path.is_dir() {
                    anyhow::bail!("{} exists and is not a directory", e.path.display());
                }
            }
            Err(err) => return Err(ctx("mkdir", err)),
        },
        Kind::Zero(n) => {
            if !e.path.exists() {
                fs::write(&e.path, vec![0u8; n]).map_err(|err| ctx("create", err))?;
            }
        }
        Kind::Fifo => {
            if !e.path.exists() {
                nix::unistd::mkfifo(&e.path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(|err| ctx("mkfifo", io::Error::from(err)))?;
            }
        }
        Kind::Program => {
            let name = e.path.file_name().unwrap_or_default();
            let src = build.join(name);
            // Copy to a temporary name and rename, so a running program is never overwritten
            // in place ("text file busy").
            let tmp = e.path.with_extension("rqmail-install-tmp");
            let _ = fs::remove_file(&tmp);
            fs::copy(&src, &tmp).map_err(|err| ctx("copy into", err))?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))
                .map_err(|err| ctx("chmod", err))?;
            fs::rename(&tmp, &e.path).map_err(|err| ctx("rename into", err))?;
        }
    }
    chown(&e.path, ids.uid(e.owner), ids.qmail_gid).map_err(|err| ctx("chown", err))?;
    // chmod after chown: chown clears setuid bits.
    fs::set_permissions(&e.path, fs::Permissions::from_mode(ids.mode(e.mode)))
        .map_err(|err| ctx("chmod", err))?;
    Ok(())
}

/// Install the tree under `dir`. Returns the number of programs copied.
pub fn install(dir: &Path) -> anyhow::Result<usize> {
    let build = build_dir().ok_or_else(|| anyhow::anyhow!("cannot find my own executable"))?;
    let ids = Ids::resolve(dir)?;
    let entries = hier(dir, Some(&build));
    let mut programs = 0;
    for e in &entries {
        install_entry(e, &ids, &build)?;
        if e.kind == Kind::Program {
            programs += 1;
        }
    }
    let dd = dir.join("control/defaultdelivery");
    if !dd.exists() {
        fs::write(&dd, "./Maildir/\n")
            .map_err(|e| anyhow::anyhow!("unable to create {}: {e}", dd.display()))?;
        chown(&dd, ids.root, ids.qmail_gid)?;
        fs::set_permissions(&dd, fs::Permissions::from_mode(0o644))?;
    }
    // Make the new tree durable before anyone queues into it.
    let _ = crate::util::fsync_dir(&dir.join("queue"));
    Ok(programs)
}

/// Check the tree under `dir`: one line per problem.
pub fn check(dir: &Path) -> anyhow::Result<Vec<String>> {
    let ids = Ids::resolve(dir)?;
    let mut problems = Vec::new();
    for e in hier(dir, None) {
        let md = match fs::symlink_metadata(&e.path) {
            Ok(m) => m,
            Err(err) => {
                problems.push(format!("{}: {err}", e.path.display()));
                continue;
            }
        };
        let ft = md.file_type();
        let kind_ok = match e.kind {
            Kind::Dir => ft.is_dir(),
            Kind::Zero(_) | Kind::Program => ft.is_file(),
            Kind::Fifo => {
                use std::os::unix::fs::FileTypeExt;
                ft.is_fifo()
            }
        };
        if !kind_ok {
            problems.push(format!("{}: wrong file type", e.path.display()));
            continue;
        }
        let want_uid = ids.uid(e.owner);
        if md.uid() != want_uid {
            problems.push(format!(
                "{}: owner is uid {}, should be {}",
                e.path.display(),
                md.uid(),
                want_uid
            ));
        }
        if md.gid() != ids.qmail_gid {
            problems.push(format!(
                "{}: group is gid {}, should be {}",
                e.path.display(),
                md.gid(),
                ids.qmail_gid
            ));
        }
        let want = ids.mode(e.mode);
        if md.mode() & 0o7777 != want {
            problems.push(format!(
                "{}: mode is {:04o}, should be {:04o}",
                e.path.display(),
                md.mode() & 0o7777,
                want
            ));
        }
    }
    Ok(problems)
}

/// `qmail-install [--check] DIR`.
pub fn main(args: Vec<String>) -> i32 {
    let usage = "usage: qmail-install [--check] DIR";
    let (check_only, dir) = match args.as_slice() {
        [d] if !d.starts_with('-') => (false, d.clone()),
        [c, d] if c == "--check" => (true, d.clone()),
        _ => {
            eprintln!("{usage}");
            return 100;
        }
    };
    let dir = PathBuf::from(dir);
    // The tree's own modes must not be masked.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    if check_only {
        match check(&dir) {
            Ok(p) if p.is_empty() => 0,
            Ok(p) => {
                use std::io::Write;
                let mut out = io::stdout().lock();
                for l in p {
                    let _ = writeln!(out, "qmail-install: warning: {l}");
                }
                111
            }
            Err(e) => {
                eprintln!("qmail-install: fatal: {e}");
                111
            }
        }
    } else {
        match install(&dir) {
            Ok(_) => 0,
            Err(e) => {
                eprintln!("qmail-install: fatal: {e}");
                111
            }
        }
    }
}
