//! Who owns a local address: users/cdb (from users/assign by qmail-newu), then the password
//! file with qmail-getpw's rules, then the alias user — as qmail-lspawn does.
//!
//! Contract used by `lspawn`:
//! `lookup(local)` returns the user, uid, gid, home, dash and extension for the local part of
//! an address, or `Ok(None)` when even the alias user is missing ("Unable to find alias user!").
//!
//! The three steps:
//! 1. `QMAILHOME/users/cdb`, in qmail-newu's format: key `!` + lower-cased local + NUL for `=`
//!    lines, `!` + lower-cased prefix (no NUL) for `+` lines, the empty key listing the last
//!    characters of all `+` prefixes; data `user\0uid\0gid\0home\0dash\0ext` (no final NUL). The
//!    exact key is tried first, then ever shorter prefixes whose last character is one of the
//!    wildcard characters, then the bare `!`; a wildcard hit appends the unmatched rest of the
//!    local part to the extension.
//! 2. The password file with qmail-getpw's rules: the longest prefix of the local part that ends
//!    at its end or before a `-`, is shorter than 32 bytes and, lower-cased, names an account with
//!    a uid other than 0 whose home directory exists and is owned by that uid.
//! 3. The alias user: user `alias`, dash `-`, extension = the whole local part.
//!
//! Differences from qmail on purpose: qmail-lspawn ran a separate qmail-getpw (as qmailp) for
//! step 2; we look the password file up in-process (lspawn is root and already trusted with it).
//! The alias user's uid/gid come from [`crate::ids::QmailIds`] (so tests as root need no
//! /etc/passwd entry) and its home is always `QMAILHOME/alias`; when no alias id is known and we
//! are not root ("user mode"), the invoking user's ids stand in for it.

use std::path::{Path, PathBuf};

/// What qmail-lspawn needs to run qmail-local for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
    /// "" or "-" (the dash that separates user and extension).
    pub dash: String,
    pub ext: String,
}

/// Errors that lspawn reports as temporary failures.
#[derive(Debug)]
pub enum LookupError {
    /// users/cdb exists but cannot be read (lspawn exit 117 text).
    UsersCdb(String),
    /// Any other system trouble (lspawn exit 118/121 texts).
    System(String),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::UsersCdb(s) | LookupError::System(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for LookupError {}

/// qmail-lspawn's text for an unreadable users/cdb.
pub const USERS_CDB_TROUBLE: &str = "Trouble reading users/cdb in qmail-lspawn.";

/// The longest user name qmail-getpw considers (its buffer size).
const GETPW_USERLEN: usize = 32;

/// Look up the owner of local part `local`. The lookups lower-case it themselves, as qmail
/// does; the extension returned keeps the case of `local` (so `$EXT` and `$DEFAULT` keep the
/// sender's spelling, as in qmail), hence callers should pass the local part as received.
pub fn lookup(local: &str) -> Result<Option<Assignment>, LookupError> {
    lookup_in(&crate::home::qmail_home(), local)
}

/// [`lookup`] against a given qmail home.
pub fn lookup_in(qmail_home: &Path, local: &str) -> Result<Option<Assignment>, LookupError> {
    if let Some(a) = cdb_lookup(&qmail_home.join("users").join("cdb"), local)? {
        return Ok(Some(a));
    }
    // The password file, where the alias user also counts when it lives only in
    // QMAILHOME/ids: `alias-outgoing-x` is user alias, extension `outgoing-x`, exactly as with
    // a passwd entry for alias (the seed's `:alias-outgoing` recipe relies on it).
    let found = getpw_lookup_with(local, &|name| match nix::unistd::User::from_name(name) {
        Ok(None) if name == "alias" => Ok(alias_ids(qmail_home)
            .ok()
            .flatten()
            .map(|(uid, gid)| (uid, gid, qmail_home.join("alias")))),
        r => r.map(|o| o.map(|u| (u.uid.as_raw(), u.gid.as_raw(), u.dir))),
    })?;
    if let Some(a) = found {
        return Ok(Some(a));
    }
    alias_user(qmail_home, local)
}

/// Step 1: users/cdb. `Ok(None)` when the file does not exist or has no entry.
pub fn cdb_lookup(path: &Path, local: &str) -> Result<Option<Assignment>, LookupError> {
    let cdb = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Err(LookupError::UsersCdb(USERS_CDB_TROUBLE.into())),
        Ok(_) => match cdb2::CDB::open(path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Err(LookupError::UsersCdb(USERS_CDB_TROUBLE.into())),
        },
    };
    let get = |key: &[u8]| -> Result<Option<Vec<u8>>, LookupError> {
        match cdb.get(key) {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(_)) => Err(LookupError::UsersCdb(USERS_CDB_TROUBLE.into())),
        }
    };
    // The wildcard characters; qmail-newu always writes this record.
    let Some(wild) = get(b"")? else {
        return Err(LookupError::UsersCdb(USERS_CDB_TROUBLE.into()));
    };
    let mut key = Vec::with_capacity(local.len() + 2);
    key.push(b'!');
    key.extend(local.bytes().map(|c| c.to_ascii_lowercase()));
    key.push(0);
    if let Some(data) = get(&key)? {
        return parse_entry(&data, b"").map(Some);
    }
    key.pop();
    // Prefixes: "!" + local[..n] for n = len down to 0.
    let raw = local.as_bytes();
    for n in (0..=raw.len()).rev() {
        if n > 0 && !wild.contains(&key[n]) {
            continue;
        }
        if let Some(data) = get(&key[..n + 1])? {
            return parse_entry(&data, &raw[n..]).map(Some);
        }
    }
    Ok(None)
}

/// Turn a users/cdb record (plus the unmatched rest for wildcards) into an assignment.
fn parse_entry(data: &[u8], rest: &[u8]) -> Result<Assignment, LookupError> {
    let bad = || LookupError::UsersCdb(USERS_CDB_TROUBLE.into());
    let f: Vec<&[u8]> = data.splitn(6, |&c| c == 0).collect();
    if f.len() != 6 {
        return Err(bad());
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let num = |b: &[u8]| -> Result<u32, LookupError> {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(bad)
    };
    let mut ext = f[5].to_vec();
    // A stray NUL at the end of the record (some hand-made cdbs) is not part of the extension.
    if ext.last() == Some(&0) {
        ext.pop();
    }
    ext.extend_from_slice(rest);
    Ok(Assignment {
        user: text(f[0]),
        uid: num(f[1])?,
        gid: num(f[2])?,
        home: PathBuf::from(std::ffi::OsStr::new(&text(f[3]))),
        dash: text(f[4]),
        ext: text(&ext),
    })
}

/// Step 2: the password file, with qmail-getpw's rules.
pub fn getpw_lookup(local: &str) -> Result<Option<Assignment>, LookupError> {
    getpw_lookup_with(local, &|name| {
        nix::unistd::User::from_name(name)
            .map(|o| o.map(|u| (u.uid.as_raw(), u.gid.as_raw(), u.dir)))
    })
}

type PwFn<'a> = dyn Fn(&str) -> nix::Result<Option<(u32, u32, PathBuf)>> + 'a;

fn getpw_lookup_with(local: &str, getpw: &PwFn<'_>) -> Result<Option<Assignment>, LookupError> {
    let raw = local.as_bytes();
    for end in (1..=raw.len()).rev() {
        if end >= GETPW_USERLEN || !(end == raw.len() || raw[end] == b'-') {
            continue;
        }
        let Ok(name) = std::str::from_utf8(&raw[..end]) else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        let (uid, gid, dir) = match getpw(&name) {
            Ok(Some(u)) => u,
            Ok(None) => continue,
            Err(nix::errno::Errno::ENOENT)
            | Err(nix::errno::Errno::ESRCH)
            | Err(nix::errno::Errno::EBADF)
            | Err(nix::errno::Errno::EPERM) => continue,
            Err(e) => {
                return Err(LookupError::System(format!(
                    "Unable to read the password file looking up {name}: {e}"
                )));
            }
        };
        if uid == 0 {
            continue;
        }
        match std::fs::metadata(&dir) {
            Ok(st) => {
                use std::os::unix::fs::MetadataExt;
                if st.uid() != uid {
                    continue;
                }
            }
            Err(e) => {
                // qmail-getpw: a temporary error (NFS) defers, a missing home skips the user.
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EIO)
                        | Some(libc::ETIMEDOUT)
                        | Some(libc::EAGAIN)
                        | Some(libc::ENOMEM)
                ) {
                    return Err(LookupError::System(format!(
                        "Unable to stat home directory {} of {name}: {e}",
                        dir.display()
                    )));
                }
                continue;
            }
        }
        let (dash, ext) = if end < raw.len() {
            ("-", &local[end + 1..])
        } else {
            ("", "")
        };
        return Ok(Some(Assignment {
            user: name,
            uid,
            gid,
            home: dir,
            dash: dash.into(),
            ext: ext.into(),
        }));
    }
    Ok(None)
}

/// Step 3: the alias user (`~alias/.qmail-LOCAL`).
/// The alias user's uid and gid when it is not in the password file: from `QMAILHOME/ids`, or
/// the invoking user's in user mode; `None` as root without an ids entry.
fn alias_ids(qmail_home: &Path) -> Result<Option<(u32, u32)>, LookupError> {
    let ids = crate::ids::QmailIds::load_from(&qmail_home.join("ids"))
        .map_err(|e| LookupError::System(e.to_string()))?;
    Ok(match ids.get("alias") {
        Some(id) if id.uid != u32::MAX => Some((id.uid, id.gid)),
        _ if !crate::ids::running_as_root() => Some((
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )),
        _ => None,
    })
}

fn alias_user(qmail_home: &Path, local: &str) -> Result<Option<Assignment>, LookupError> {
    let id = alias_ids(qmail_home)?;
    Ok(id.map(|(uid, gid)| Assignment {
        user: "alias".into(),
        uid,
        gid,
        home: qmail_home.join("alias"),
        dash: "-".into(),
        ext: local.into(),
    }))
}

/// The qmail-getpw program: `qmail-getpw LOCAL` prints
/// `user\0uid\0gid\0home\0dash\0ext\0` for the password-file owner of LOCAL, or for the alias
/// user; exit 100 without an argument, 111 on system trouble, 116 without an alias user.
pub fn getpw_main() -> i32 {
    use std::io::Write;
    let Some(local) = std::env::args().nth(1) else {
        return 100;
    };
    let qhome = crate::home::qmail_home();
    let found = match getpw_lookup(&local) {
        Ok(Some(a)) => Some(a),
        Ok(None) => match alias_user(&qhome, &local) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("qmail-getpw: {e}");
                return 111;
            }
        },
        Err(e) => {
            eprintln!("qmail-getpw: {e}");
            return 111;
        }
    };
    let Some(a) = found else {
        return 116;
    };
    let mut out = Vec::new();
    for f in [
        a.user,
        a.uid.to_string(),
        a.gid.to_string(),
        a.home.to_string_lossy().into_owned(),
        a.dash,
        a.ext,
    ] {
        out.extend_from_slice(f.as_bytes());
        out.push(0);
    }
    let mut so = std::io::stdout().lock();
    if so.write_all(&out).and_then(|_| so.flush()).is_err() {
        return 111;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_cdb(path: &Path, recs: &[(&[u8], &[u8])]) {
        let f = std::fs::File::create(path).unwrap();
        let mut m = cdb2::CDBMake::new(f).unwrap();
        for (k, v) in recs {
            m.add(k, v).unwrap();
        }
        m.finish().unwrap();
    }

    #[test]
    fn cdb_exact_then_wildcards() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cdb");
        make_cdb(
            &p,
            &[
                (b"!joe\0", b"joe\x001001\x00100\x00/home/joe\x00\x00"),
                (b"!joe-", b"joe\x001001\x00100\x00/home/joe\x00-\x00"),
                (b"!list-", b"lists\x001002\x00100\x00/home/lists\x00-\x00l-"),
                (b"!", b"catch\x001003\x00100\x00/home/catch\x00-\x00"),
                (b"", b"-"),
            ],
        );
        let a = cdb_lookup(&p, "Joe").unwrap().unwrap();
        assert_eq!(
            (a.user.as_str(), a.uid, a.dash.as_str(), a.ext.as_str()),
            ("joe", 1001, "", "")
        );
        let a = cdb_lookup(&p, "joe-Foo-bar").unwrap().unwrap();
        assert_eq!((a.dash.as_str(), a.ext.as_str()), ("-", "Foo-bar"));
        let a = cdb_lookup(&p, "list-x").unwrap().unwrap();
        assert_eq!((a.user.as_str(), a.ext.as_str()), ("lists", "l-x"));
        let a = cdb_lookup(&p, "zed").unwrap().unwrap();
        assert_eq!((a.user.as_str(), a.ext.as_str()), ("catch", "zed"));
        assert!(cdb_lookup(&d.path().join("none"), "x").unwrap().is_none());
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(cdb_lookup(&p, "x"), Err(LookupError::UsersCdb(_))));
    }

    #[test]
    fn getpw_rules() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path().to_path_buf();
        use std::os::unix::fs::MetadataExt;
        let mut me = std::fs::metadata(&home).unwrap().uid();
        if me == 0 {
            me = 4242;
            std::os::unix::fs::chown(&home, Some(me), None).unwrap();
        }
        let h2 = home.clone();
        let pw = move |name: &str| -> nix::Result<Option<(u32, u32, PathBuf)>> {
            Ok(match name {
                "joe" | "joe-x" => Some((me, 5, h2.clone())),
                "root" => Some((0, 0, h2.clone())),
                "other" => Some((me.wrapping_add(1), 5, h2.clone())),
                "nohome" => Some((me, 5, h2.join("missing"))),
                _ => None,
            })
        };
        let a = getpw_lookup_with("joe-x-y", &pw).unwrap().unwrap();
        assert_eq!(
            (a.user.as_str(), a.dash.as_str(), a.ext.as_str()),
            ("joe-x", "-", "y")
        );
        let a = getpw_lookup_with("JOE-Y", &pw).unwrap().unwrap();
        assert_eq!(
            (a.user.as_str(), a.dash.as_str(), a.ext.as_str()),
            ("joe", "-", "Y")
        );
        let a = getpw_lookup_with("joe", &pw).unwrap().unwrap();
        assert_eq!((a.dash.as_str(), a.ext.as_str()), ("", ""));
        assert!(getpw_lookup_with("root", &pw).unwrap().is_none());
        assert!(getpw_lookup_with("other", &pw).unwrap().is_none());
        assert!(getpw_lookup_with("nohome-a", &pw).unwrap().is_none());
        assert!(getpw_lookup_with("nobody-here", &pw).unwrap().is_none());
    }

    #[test]
    fn ids_only_alias_user_takes_extensions_like_a_passwd_alias() {
        if nix::unistd::User::from_name("alias")
            .ok()
            .flatten()
            .is_some()
        {
            return; // the system's alias account decides on this machine
        }
        let d = tempfile::tempdir().unwrap();
        let alias = d.path().join("alias");
        std::fs::create_dir(&alias).unwrap();
        let uid = if crate::ids::running_as_root() {
            64123
        } else {
            nix::unistd::getuid().as_raw()
        };
        if crate::ids::running_as_root() {
            std::os::unix::fs::chown(&alias, Some(uid), Some(uid)).unwrap();
        }
        std::fs::write(d.path().join("ids"), format!("alias:{uid}:{uid}\n")).unwrap();
        let a = lookup_in(d.path(), "alias-outgoing-Friend")
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.user.as_str(), a.uid, a.dash.as_str(), a.ext.as_str()),
            ("alias", uid, "-", "outgoing-Friend")
        );
        assert_eq!(a.home, alias);
        // Anything else still falls back to the alias user with the whole local part.
        let a = lookup_in(d.path(), "nosuchuser-x").unwrap().unwrap();
        assert_eq!((a.user.as_str(), a.ext.as_str()), ("alias", "nosuchuser-x"));
    }
}
