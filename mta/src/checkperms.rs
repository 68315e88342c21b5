//! qmail-checkperms: find mail users whose home directory, .qmail files, maildirs or mboxes
//! have owners or modes that make qmail-local defer their mail or make delivery unsafe (after
//! the "checkhomeownership" idea in Life with qmail).
//!
//! `qmail-checkperms [-m MINUID] [-p PASSWD] [-x EXCLUDE] [-A]`
//!
//! Users come from the password file (`/etc/passwd`, or `-p`) and from `QMAILHOME/users/assign`
//! (`=` lines; `-A` skips them). System accounts are skipped: uid below MINUID (default 1000,
//! Debian's first user uid), a shell ending in `nologin` or `false`, or a name listed in the
//! exclude file (`-x`, default `QMAILHOME/users/exclude`; one name per line). Assign entries
//! are checked whatever their uid, except uid 0.
//!
//! Findings, one line each as `user: problem`: a missing home; a home not owned by the user
//! (qmail-getpw then hands the user's mail to the alias user); a group- or world-writable or
//! sticky home; a `.qmail*` file that is group/world writable or owned by someone else; and for
//! every maildir or mbox a `.qmail` (or the default delivery, `control/defaultdelivery`)
//! names: missing, not owned by the user, or writable by group/world (for maildirs also tmp/,
//! new/ and cur/). Exit 0 when nothing is found, 1 when something is, 111 on trouble reading
//! the password file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One account to check.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub home: PathBuf,
    pub shell: String,
}

/// Parse passwd lines (`name:pw:uid:gid:gecos:home:shell`); malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(Account {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                home: PathBuf::from(f[5]),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// The `=` entries of users/assign.
pub fn parse_assign(text: &str) -> Vec<Account> {
    let mut v = Vec::new();
    for l in text.lines() {
        if l.starts_with('.') {
            break;
        }
        let Some(rest) = l.strip_prefix('=') else {
            continue;
        };
        let f: Vec<&str> = rest.split(':').collect();
        if f.len() < 5 {
            continue;
        }
        let Ok(uid) = f[2].parse() else { continue };
        v.push(Account {
            name: f[1].to_string(),
            uid,
            home: PathBuf::from(f[4]),
            shell: String::new(),
        });
    }
    v
}

fn mode_str(m: u32) -> String {
    format!("{:04o}", m & 0o7777)
}

/// The delivery lines (maildirs, mboxes) a .qmail text names.
fn targets(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| l.trim_end_matches([' ', '\t']))
        .filter(|l| l.starts_with('.') || l.starts_with('/'))
        .map(str::to_string)
        .collect()
}

fn check_owned(
    p: &Path,
    what: &str,
    uid: u32,
    problems: &mut Vec<String>,
) -> Option<std::fs::Metadata> {
    match std::fs::symlink_metadata(p) {
        Err(e) => {
            problems.push(format!(
                "{what} {} is missing or unreadable: {e}",
                p.display()
            ));
            None
        }
        Ok(m) => {
            if m.uid() != uid {
                problems.push(format!(
                    "{what} {} is owned by uid {}, not {uid}",
                    p.display(),
                    m.uid()
                ));
            }
            if m.mode() & 0o022 != 0 {
                problems.push(format!(
                    "{what} {} is writable by group or others (mode {})",
                    p.display(),
                    mode_str(m.mode())
                ));
            }
            Some(m)
        }
    }
}

/// Check one account; returns its problems.
pub fn check_account(a: &Account, defaultdelivery: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    let st = match std::fs::metadata(&a.home) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!(
                "home {} is missing or unreadable: {e}",
                a.home.display()
            ));
            return problems;
        }
    };
    if st.uid() != a.uid {
        problems.push(format!(
            "home {} is owned by uid {}, not {}: mail to this user goes to the alias user",
            a.home.display(),
            st.uid(),
            a.uid
        ));
    }
    if st.mode() & 0o022 != 0 {
        problems.push(format!(
            "home {} is writable by group or others (mode {}): qmail-local defers all mail",
            a.home.display(),
            mode_str(st.mode())
        ));
    }
    if st.mode() & 0o1000 != 0 {
        problems.push(format!(
            "home {} is sticky: qmail-local defers all mail",
            a.home.display()
        ));
    }
    let mut dests: Vec<(String, String)> = Vec::new();
    let mut have_dot_qmail = false;
    if let Ok(rd) = std::fs::read_dir(&a.home) {
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            let ns = n.to_string_lossy().into_owned();
            if ns != ".qmail" && !ns.starts_with(".qmail-") {
                continue;
            }
            let p = a.home.join(&n);
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            if m.uid() != a.uid && m.uid() != 0 {
                problems.push(format!(
                    "{} is owned by uid {}, not {} or root",
                    p.display(),
                    m.uid(),
                    a.uid
                ));
            }
            if m.mode() & 0o022 != 0 {
                problems.push(format!(
                    "{} is writable by group or others (mode {}): qmail-local defers its mail",
                    p.display(),
                    mode_str(m.mode())
                ));
            }
            let text = std::fs::read(&p).unwrap_or_default();
            if ns == ".qmail" {
                have_dot_qmail = !text.is_empty();
            }
            let text = if text.is_empty() && ns == ".qmail" {
                defaultdelivery.to_vec()
            } else {
                text
            };
            for t in targets(&text) {
                dests.push((ns.clone(), t));
            }
        }
    }
    if !have_dot_qmail {
        for t in targets(defaultdelivery) {
            dests.push(("default delivery".into(), t));
        }
    }
    dests.sort();
    dests.dedup_by(|x, y| x.1 == y.1);
    for (from, t) in dests {
        let p = if t.starts_with('/') {
            PathBuf::from(&t)
        } else {
            a.home.join(&t)
        };
        if t.ends_with('/') {
            let what = format!("maildir (from {from})");
            if check_owned(&p, &what, a.uid, &mut problems).is_some() {
                for sub in ["tmp", "new", "cur"] {
                    check_owned(&p.join(sub), &what, a.uid, &mut problems);
                }
            }
        } else if p.exists() {
            check_owned(&p, &format!("mbox (from {from})"), a.uid, &mut problems);
        } else if let Some(dir) = p.parent()
            && !dir.is_dir()
        {
            problems.push(format!(
                "mbox {} (from {from}) cannot be created: {} is missing",
                p.display(),
                dir.display()
            ));
        }
    }
    problems
}

struct Cli {
    minuid: u32,
    passwd: PathBuf,
    exclude: PathBuf,
    assign: bool,
}

fn parse(args: &[String]) -> Result<Cli, String> {
    let q = crate::home::qmail_home();
    let mut c = Cli {
        minuid: 1000,
        passwd: PathBuf::from("/etc/passwd"),
        exclude: q.join("users").join("exclude"),
        assign: true,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let mut val = || {
            i += 1;
            args.get(i)
                .cloned()
                .ok_or(format!("option {a} needs a value"))
        };
        match a {
            "-m" => {
                c.minuid = val()?
                    .parse()
                    .map_err(|_| "-m needs a number".to_string())?
            }
            "-p" => c.passwd = PathBuf::from(val()?),
            "-x" => c.exclude = PathBuf::from(val()?),
            "-A" => c.assign = false,
            _ => return Err(format!("unknown argument {a}")),
        }
        i += 1;
    }
    Ok(c)
}

/// The qmail-checkperms program.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "qmail-checkperms: usage: qmail-checkperms [-m minuid] [-p passwd] [-x exclude] [-A] ({e})"
            );
            return 100;
        }
    };
    let passwd = match std::fs::read_to_string(&cli.passwd) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "qmail-checkperms: fatal: unable to read {}: {e}",
                cli.passwd.display()
            );
            return 111;
        }
    };
    let exclude: Vec<String> = std::fs::read_to_string(&cli.exclude)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let q = crate::home::qmail_home();
    let defaultdelivery = std::fs::read(q.join("control").join("defaultdelivery"))
        .unwrap_or_else(|_| b"./Maildir/\n".to_vec());
    let mut accounts: Vec<Account> = parse_passwd(&passwd)
        .into_iter()
        .filter(|a| {
            a.uid != 0
                && a.uid >= cli.minuid
                && !a.shell.ends_with("nologin")
                && !a.shell.ends_with("false")
        })
        .collect();
    if cli.assign {
        let assign = std::fs::read_to_string(q.join("users").join("assign")).unwrap_or_default();
        accounts.extend(parse_assign(&assign).into_iter().filter(|a| a.uid != 0));
    }
    let mut seen = std::collections::HashSet::new();
    let mut found = 0;
    for a in accounts {
        if exclude.contains(&a.name) || !seen.insert((a.name.clone(), a.home.clone())) {
            continue;
        }
        for p in check_account(&a, &defaultdelivery) {
            println!("{}: {p}", a.name);
            found += 1;
        }
    }
    if found > 0 { 1 } else { 0 }
}
