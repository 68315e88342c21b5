//! qmail-start: `qmail-start [DEFAULTDELIVERY [LOGGER ARG…]]`.
//!
//! Creates the pipes, starts qmail-lspawn (root, group qmail), qmail-rspawn (qmailr),
//! qmail-clean (qmailq) and, when LOGGER is given, the logger (qmaill, group nofiles) reading
//! qmail-send's log; then becomes qmail-send (qmails) with fds 0–6 wired as qmail.md 1.2 says:
//! 0 log, 1/2 lspawn commands/results, 3/4 rspawn, 5/6 qmail-clean. Without a logger qmail-send's
//! log goes to qmail-start's stdout. The programs come from QMAILHOME/bin.
//!
//! The qmail ids come from `QMAILHOME/ids` or the system databases; when qmail-start does not run
//! as root, or an id is unknown, every program keeps the invoking user's ids ("user mode").
//!
//! Difference from qmail on purpose: without a DEFAULTDELIVERY argument the contents of
//! `control/defaultdelivery` are used (Life with qmail's convention), and only then `./Mailbox`.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::ids::QmailIds;

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

fn fail(what: &str, e: impl std::fmt::Display) -> i32 {
    eprintln!("qmail-start: fatal: {what}: {e}");
    111
}

/// The default delivery instruction: argument, control/defaultdelivery, or ./Mailbox.
pub fn default_delivery(arg: Option<&str>) -> String {
    if let Some(a) = arg {
        return a.to_string();
    }
    match std::fs::read_to_string(crate::home::control_dir().join("defaultdelivery")) {
        Ok(s) if !s.trim().is_empty() => s.trim_end_matches(['\n', ' ', '\t']).to_string(),
        _ => "./Mailbox".to_string(),
    }
}

/// Uid and gid a program runs as: `None` keeps ours.
fn ids_for(ids: &Option<QmailIds>, user: &str, group: &str) -> Option<(u32, u32)> {
    let ids = ids.as_ref()?;
    Some((ids.uid(user)?, ids.gid(group)?))
}

fn spawn(
    name: &str,
    args: &[String],
    stdin: OwnedFd,
    stdout: Option<OwnedFd>,
    who: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let prog = if name.contains('/') {
        std::path::PathBuf::from(name)
    } else {
        crate::home::bin(name)
    };
    let mut cmd = Command::new(&prog);
    cmd.args(args).stdin(Stdio::from(stdin));
    if let Some(o) = stdout {
        cmd.stdout(Stdio::from(o));
    }
    if let Some((u, g)) = who {
        cmd.uid(u).gid(g);
    }
    cmd.spawn()
        .map(|_| ())
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", prog.display())))
}

/// Put `srcs[i]` on fd `i` for every i, whatever the current numbers are.
fn wire(srcs: &[RawFd]) -> nix::Result<()> {
    let mut high = Vec::with_capacity(srcs.len());
    for &s in srcs {
        high.push(nix::fcntl::fcntl(
            s,
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(20),
        )?);
    }
    for (i, &h) in high.iter().enumerate() {
        // SAFETY: dup2 onto a small fd number we own; the previous occupant (if any) is one of
        // our own descriptors that is no longer needed in this process image.
        if unsafe { libc::dup2(h, i as RawFd) } < 0 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}

/// qmail-start's main.
pub fn main(args: Vec<String>) -> i32 {
    let home = crate::home::qmail_home();
    if let Err(e) = std::env::set_current_dir(&home) {
        return fail(&format!("unable to switch to {}", home.display()), e);
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let dd = default_delivery(args.first().map(String::as_str));
    let logger: Vec<String> = args.iter().skip(1).cloned().collect();
    let ids = if crate::ids::running_as_root() {
        match QmailIds::load() {
            Ok(i) => Some(i),
            Err(e) => return fail("unable to read the qmail ids", e),
        }
    } else {
        None
    };

    let run = || -> std::io::Result<(Option<OwnedFd>, [OwnedFd; 6])> {
        let log_w = if logger.is_empty() {
            None
        } else {
            let (r, w) = pipe()?;
            spawn(
                &logger[0],
                &logger[1..],
                r,
                None,
                ids_for(&ids, "qmaill", "nofiles"),
            )?;
            Some(w)
        };
        let (l_cmd_r, l_cmd_w) = pipe()?;
        let (l_res_r, l_res_w) = pipe()?;
        spawn(
            "qmail-lspawn",
            std::slice::from_ref(&dd),
            l_cmd_r,
            Some(l_res_w),
            ids.as_ref().and_then(|i| i.gid("qmail")).map(|g| (0, g)),
        )?;
        let (r_cmd_r, r_cmd_w) = pipe()?;
        let (r_res_r, r_res_w) = pipe()?;
        spawn(
            "qmail-rspawn",
            &[],
            r_cmd_r,
            Some(r_res_w),
            ids_for(&ids, "qmailr", "qmail"),
        )?;
        let (c_cmd_r, c_cmd_w) = pipe()?;
        let (c_res_r, c_res_w) = pipe()?;
        spawn(
            "qmail-clean",
            &[],
            c_cmd_r,
            Some(c_res_w),
            ids_for(&ids, "qmailq", "qmail"),
        )?;
        Ok((
            log_w,
            [l_cmd_w, l_res_r, r_cmd_w, r_res_r, c_cmd_w, c_res_r],
        ))
    };
    let (log_w, fds) = match run() {
        Ok(x) => x,
        Err(e) => return fail("unable to start the daemons", e),
    };
    let log_fd = match &log_w {
        Some(w) => w.as_raw_fd(),
        None => 1,
    };
    let mut srcs = vec![log_fd];
    srcs.extend(fds.iter().map(|f| f.as_raw_fd()));
    if let Err(e) = wire(&srcs) {
        return fail("unable to set up descriptors", e);
    }
    let mut cmd = Command::new(crate::home::bin("qmail-send"));
    if let Some((u, g)) = ids_for(&ids, "qmails", "qmail") {
        cmd.uid(u).gid(g);
    }
    // exec only returns on failure.
    let e = cmd.exec();
    // fd 2 is now qmail-send's result pipe; nobody reads it. Say it on the log instead.
    let msg = format!("alert: cannot start: unable to run qmail-send: {e}\n");
    // SAFETY: fd 0 is open (wired above); ManuallyDrop keeps it from being closed here.
    let mut log = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0)
    });
    let _ = std::io::Write::write_all(&mut *log, msg.as_bytes());
    111
}
