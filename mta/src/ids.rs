//! The qmail users and groups (alias, qmaild, qmaill, root, qmailp, qmailq, qmailr, qmails;
//! groups qmail and nofiles).
//!
//! They come from `QMAILHOME/ids` when that file exists — lines `name:uid:gid`, written by the
//! installer so tests running as root can use unused numeric ids without touching
//! /etc/passwd — and otherwise from the password and group files. When a name is found in
//! neither, [`QmailIds::get`] returns `None`: programs not running as root then simply keep the
//! invoking user's ids ("user mode").

use std::collections::HashMap;
use std::path::Path;

/// The qmail user names, in conf-users order.
pub const USERS: [&str; 8] = [
    "alias", "qmaild", "qmaill", "root", "qmailp", "qmailq", "qmailr", "qmails",
];
/// The qmail group names.
pub const GROUPS: [&str; 2] = ["qmail", "nofiles"];

/// A user's or group's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id {
    pub uid: u32,
    pub gid: u32,
}

/// The resolved qmail ids.
#[derive(Debug, Clone, Default)]
pub struct QmailIds {
    map: HashMap<String, Id>,
}

impl QmailIds {
    /// Load from `QMAILHOME/ids`, falling back to the system databases for every name the file
    /// does not list. A malformed line in the ids file is an error naming the file and line.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_from(&crate::home::qmail_home().join("ids"))
    }

    pub fn load_from(path: &Path) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (n, line) in text.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let f: Vec<&str> = line.split(':').collect();
                    let parsed = if f.len() == 3 {
                        f[1].parse::<u32>().ok().zip(f[2].parse::<u32>().ok())
                    } else {
                        None
                    };
                    let Some((uid, gid)) = parsed else {
                        anyhow::bail!(
                            "{}: line {}: expected name:uid:gid, got {:?}",
                            path.display(),
                            n + 1,
                            line
                        );
                    };
                    map.insert(f[0].to_string(), Id { uid, gid });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("unable to read {}: {e}", path.display()),
        }
        for name in USERS {
            if !map.contains_key(name)
                && let Ok(Some(u)) = nix::unistd::User::from_name(name)
            {
                map.insert(
                    name.to_string(),
                    Id {
                        uid: u.uid.as_raw(),
                        gid: u.gid.as_raw(),
                    },
                );
            }
        }
        for name in GROUPS {
            if !map.contains_key(name)
                && let Ok(Some(g)) = nix::unistd::Group::from_name(name)
            {
                map.insert(
                    name.to_string(),
                    Id {
                        uid: u32::MAX,
                        gid: g.gid.as_raw(),
                    },
                );
            }
        }
        Ok(QmailIds { map })
    }

    /// The ids of a qmail user, or of a group (then `uid` is `u32::MAX`).
    pub fn get(&self, name: &str) -> Option<Id> {
        self.map.get(name).copied()
    }

    /// Uid of a qmail user.
    pub fn uid(&self, user: &str) -> Option<u32> {
        self.get(user).map(|i| i.uid).filter(|&u| u != u32::MAX)
    }

    /// Gid of a qmail group (`qmail`, `nofiles`).
    pub fn gid(&self, group: &str) -> Option<u32> {
        self.get(group).map(|i| i.gid)
    }
}

/// True when the current process runs as root (and so must drop to the qmail ids).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_file_wins_and_bad_lines_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ids");
        std::fs::write(&p, "# comment\nqmaild:7001:7000\nqmail::7000\n").unwrap();
        let e = QmailIds::load_from(&p).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
        std::fs::write(&p, "qmaild:7001:7000\nqmail:4294967295:7000\n").unwrap();
        let ids = QmailIds::load_from(&p).unwrap();
        assert_eq!(ids.uid("qmaild"), Some(7001));
        assert_eq!(ids.gid("qmail"), Some(7000));
        assert_eq!(ids.uid("qmail"), None);
    }
}
