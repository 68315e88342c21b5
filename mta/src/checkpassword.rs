//! checkpassword SUBPROGRAM…: the checkpassword interface (cr.yp.to/checkpwd/interface.html).
//!
//! Reads at most 512 bytes from fd 3: `user\0password\0timestamp\0`. Exit 1 when the login
//! or password is wrong (the same exit, the same time spent, whichever it was), 2 on misuse
//! (no subprogram, fd 3 unreadable or malformed), 111 on a temporary problem (an unreadable
//! password file, failing to switch ids). On success it sets the supplementary groups, gid and
//! uid, changes to the home directory, sets `USER`, `HOME` and `SHELL` and execs SUBPROGRAM.
//!
//! Accounts come from two places, in this order:
//! 1. the virtual password file `QMAILHOME/users/poppasswd` (or `$POPPASSWD`), for
//!    mail-only users that need no /etc/passwd entry. One account per line:
//!    `user:hash:uid:gid:home[:shell]`; empty lines and `#` comments are skipped. `hash` is a
//!    crypt(3) string — yescrypt `$y$`, SHA-256 `$5$` or SHA-512 `$6$` — never a clear-text
//!    password. Write it with `qmail-poppass FILE USER` (password on stdin). The file should
//!    be mode 0600, owned by root.
//! 2. the system accounts: /etc/passwd for uid, gid, home and shell, and /etc/shadow (or the
//!    passwd field) for the hash (`$CHECKPASSWORD_PASSWD` and `$CHECKPASSWORD_SHADOW` override
//!    the two paths, for tests). Locked (`!`, `*`) and empty hashes never match; other hash
//!    formats (DES, MD5) are refused and logged.
//!
//! Like the stock checkpassword, the timestamp is ignored, so APOP cannot succeed (the
//! passwords are stored hashed); empty passwords are refused. Failures are logged on stderr
//! without the password.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// An account that may log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub hash: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: String,
    /// A system account (supplementary groups come from /etc/group).
    pub system: bool,
}

/// A lookup failed in a way that is not "no such user".
#[derive(Debug)]
pub struct TempError(pub String);

fn read_optional(path: &Path) -> Result<Option<String>, TempError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TempError(format!("unable to read {}: {e}", path.display()))),
    }
}

/// Find `user` in a virtual password file. A malformed line for this user is an error naming
/// the file and line.
pub fn lookup_virtual(path: &Path, user: &str) -> Result<Option<Account>, TempError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.splitn(6, ':').collect();
        if f[0] != user {
            continue;
        }
        let bad = || {
            TempError(format!(
                "{}: line {}: expected user:hash:uid:gid:home[:shell]",
                path.display(),
                n + 1
            ))
        };
        if f.len() < 5 {
            return Err(bad());
        }
        let uid = f[2].parse().map_err(|_| bad())?;
        let gid = f[3].parse().map_err(|_| bad())?;
        if f[4].is_empty() {
            return Err(bad());
        }
        return Ok(Some(Account {
            user: user.to_string(),
            hash: f[1].to_string(),
            uid,
            gid,
            home: PathBuf::from(f[4]),
            shell: f
                .get(5)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "/bin/sh".into()),
            system: false,
        }));
    }
    Ok(None)
}

/// Find `user` in passwd/shadow files.
pub fn lookup_system(
    passwd: &Path,
    shadow: &Path,
    user: &str,
) -> Result<Option<Account>, TempError> {
    let Some(pw) = read_optional(passwd)? else {
        return Ok(None);
    };
    let Some(line) = pw.lines().find(|l| l.split(':').next() == Some(user)) else {
        return Ok(None);
    };
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 {
        return Err(TempError(format!(
            "{}: malformed entry for {user}",
            passwd.display()
        )));
    }
    let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) else {
        return Err(TempError(format!(
            "{}: malformed entry for {user}",
            passwd.display()
        )));
    };
    let mut hash = f[1].to_string();
    if hash == "x" {
        hash = String::new();
        if let Some(sh) = read_optional(shadow)?
            && let Some(l) = sh.lines().find(|l| l.split(':').next() == Some(user))
        {
            hash = l.split(':').nth(1).unwrap_or("").to_string();
        }
    }
    Ok(Some(Account {
        user: user.to_string(),
        hash,
        uid,
        gid,
        home: PathBuf::from(f[5]),
        shell: f[6].to_string(),
        system: true,
    }))
}

/// Does `password` match the crypt string `hash`? Unknown formats and locked or empty hashes
/// never match; `Err` explains an unsupported format.
pub fn verify(password: &[u8], hash: &str) -> Result<bool, String> {
    use sha_crypt::PasswordVerifier as _;
    if password.is_empty() || hash.is_empty() || hash.starts_with('!') || hash.starts_with('*') {
        return Ok(false);
    }
    if hash.starts_with("$y$") {
        let y = yescrypt::Yescrypt::default();
        return Ok(yescrypt::PasswordVerifier::verify_password(&y, password, hash).is_ok());
    }
    if hash.starts_with("$5$") || hash.starts_with("$6$") {
        let s = sha_crypt::ShaCrypt::default();
        return Ok(s.verify_password(password, hash).is_ok());
    }
    Err("unsupported password hash format (use $y$, $5$ or $6$)".into())
}

/// Hash a new password with yescrypt (for qmail-poppass).
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    use yescrypt::PasswordHasher as _;
    let y = yescrypt::Yescrypt::default();
    y.hash_password(password)
        .map(|h| h.as_str().to_string())
        .map_err(|e| format!("unable to hash: {e}"))
}

/// The account for `user` when `password` is right; `Ok(None)` when not.
pub fn authenticate(
    virt: &Path,
    passwd: &Path,
    shadow: &Path,
    user: &str,
    password: &[u8],
) -> Result<Option<Account>, TempError> {
    let acct = match lookup_virtual(virt, user)? {
        Some(a) => Some(a),
        None => lookup_system(passwd, shadow, user)?,
    };
    let Some(acct) = acct else {
        // Spend the time a yescrypt check would take, so timing tells nothing either.
        let _ = hash_password(password);
        return Ok(None);
    };
    match verify(password, &acct.hash) {
        Ok(true) => Ok(Some(acct)),
        Ok(false) => Ok(None),
        Err(why) => {
            log(&format!("{user}: {why}"));
            Ok(None)
        }
    }
}

fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "checkpassword: {msg}");
}

fn env_path(name: &str, default: PathBuf) -> PathBuf {
    match std::env::var_os(name) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default,
    }
}

/// Parse fd 3's data: (user, password, timestamp).
pub fn parse_fd3(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut parts = data.split(|&b| b == 0);
    let user = parts.next()?.to_vec();
    let pass = parts.next()?.to_vec();
    let stamp = parts.next()?.to_vec();
    // There must have been a NUL after the password at least.
    if memchr::memchr_iter(0, data).count() < 2 {
        return None;
    }
    Some((user, pass, stamp))
}

/// The checkpassword program: exit code (returns only on failure; success execs).
pub fn main(args: Vec<String>) -> i32 {
    if args.len() < 2 {
        log("usage: checkpassword subprogram [args...]");
        return 2;
    }
    // fd 3: read to EOF, at most 512 bytes.
    let mut data = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    loop {
        match nix::unistd::read(3, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = 512 - data.len();
                data.extend_from_slice(&buf[..n.min(room)]);
                if data.len() >= 512 {
                    break;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log(&format!("unable to read fd 3: {e}"));
                return 2;
            }
        }
    }
    let Some((user, mut pass, _stamp)) = parse_fd3(&data) else {
        log("malformed data on fd 3");
        return 2;
    };
    data.iter_mut().for_each(|b| *b = 0);
    let user = String::from_utf8_lossy(&user).into_owned();
    let home = crate::home::qmail_home();
    let virt = env_path("POPPASSWD", home.join("users").join("poppasswd"));
    let passwd = env_path("CHECKPASSWORD_PASSWD", "/etc/passwd".into());
    let shadow = env_path("CHECKPASSWORD_SHADOW", "/etc/shadow".into());
    let result = if user.is_empty() || user.contains(':') || user.contains('\n') {
        Ok(None)
    } else {
        authenticate(&virt, &passwd, &shadow, &user, &pass)
    };
    pass.iter_mut().for_each(|b| *b = 0);
    let acct = match result {
        Ok(Some(a)) => a,
        Ok(None) => {
            log(&format!("authentication failed for {user:?}"));
            return 1;
        }
        Err(TempError(e)) => {
            log(&e);
            return 111;
        }
    };
    if let Err(e) = become_user(&acct) {
        log(&format!("{}: {e}", acct.user));
        return 111;
    }
    let err = std::process::Command::new(&args[1])
        .args(&args[2..])
        .env("USER", &acct.user)
        .env("HOME", &acct.home)
        .env("SHELL", &acct.shell)
        .exec();
    log(&format!("unable to run {}: {err}", args[1]));
    111
}

fn become_user(acct: &Account) -> Result<(), String> {
    use nix::unistd::{Gid, Uid};
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        let gid = Gid::from_raw(acct.gid);
        let mut groups = vec![gid];
        if acct.system
            && let Ok(name) = std::ffi::CString::new(acct.user.as_str())
            && let Ok(g) = nix::unistd::getgrouplist(&name, gid)
        {
            groups = g;
        }
        nix::unistd::setgroups(&groups).map_err(|e| format!("unable to set groups: {e}"))?;
        nix::unistd::setgid(gid).map_err(|e| format!("unable to set gid: {e}"))?;
        nix::unistd::setuid(Uid::from_raw(acct.uid))
            .map_err(|e| format!("unable to set uid: {e}"))?;
    } else if euid.as_raw() != acct.uid {
        return Err(format!(
            "not running as root, cannot switch from uid {} to uid {}",
            euid.as_raw(),
            acct.uid
        ));
    }
    std::env::set_current_dir(&acct.home)
        .map_err(|e| format!("unable to chdir to {}: {e}", acct.home.display()))?;
    Ok(())
}

/// qmail-poppass FILE USER [UID GID HOME [SHELL]]: set USER's password (read from stdin, first
/// line) in a virtual password file, hashed with yescrypt. A new user needs UID GID HOME.
pub fn poppass_main(args: Vec<String>) -> i32 {
    if args.len() != 3 && args.len() != 6 && args.len() != 7 {
        let _ = writeln!(
            std::io::stderr(),
            "qmail-poppass: usage: qmail-poppass FILE USER [UID GID HOME [SHELL]] < password"
        );
        return 100;
    }
    let file = PathBuf::from(&args[1]);
    let user = &args[2];
    if user.is_empty() || user.contains(':') || user.contains('\n') || user.starts_with('#') {
        let _ = writeln!(std::io::stderr(), "qmail-poppass: bad user name {user:?}");
        return 100;
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        let _ = writeln!(
            std::io::stderr(),
            "qmail-poppass: unable to read stdin: {e}"
        );
        return 111;
    }
    let pw: Vec<u8> = input.split(|&b| b == b'\n').next().unwrap_or(&[]).to_vec();
    let pw = pw.strip_suffix(b"\r").unwrap_or(&pw).to_vec();
    if pw.is_empty() {
        let _ = writeln!(std::io::stderr(), "qmail-poppass: empty password refused");
        return 100;
    }
    let hash = match hash_password(&pw) {
        Ok(h) => h,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "qmail-poppass: {e}");
            return 111;
        }
    };
    match poppass_update(&file, user, &hash, &args[3..]) {
        Ok(()) => 0,
        Err((code, e)) => {
            let _ = writeln!(std::io::stderr(), "qmail-poppass: {e}");
            code
        }
    }
}

fn poppass_update(
    file: &Path,
    user: &str,
    hash: &str,
    rest: &[String],
) -> Result<(), (i32, String)> {
    let text = read_optional(file)
        .map_err(|e| (111, e.0))?
        .unwrap_or_default();
    let mut out = String::new();
    let mut found = false;
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(6, ':').collect();
        if !line.starts_with('#') && f[0] == user && f.len() >= 5 {
            found = true;
            let mut fields: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            fields[1] = hash.to_string();
            if rest.len() >= 3 {
                fields[2] = rest[0].clone();
                fields[3] = rest[1].clone();
                fields[4] = rest[2].clone();
                if let Some(sh) = rest.get(3) {
                    fields.truncate(5);
                    fields.push(sh.clone());
                }
            }
            out.push_str(&fields.join(":"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !found {
        if rest.len() < 3 {
            return Err((
                100,
                format!("{user} is not in {}: give UID GID HOME", file.display()),
            ));
        }
        if rest[0].parse::<u32>().is_err() || rest[1].parse::<u32>().is_err() {
            return Err((100, "UID and GID must be numbers".into()));
        }
        out.push_str(&format!(
            "{user}:{hash}:{}:{}:{}",
            rest[0], rest[1], rest[2]
        ));
        if let Some(sh) = rest.get(3) {
            out.push(':');
            out.push_str(sh);
        }
        out.push('\n');
    }
    // Write a temporary file (mode 0600), fsync, rename over, fsync the directory.
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        crate::util::fsync_dir(dir)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        (111, format!("unable to write {}: {e}", file.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify() {
        let h = hash_password(b"s3cret").unwrap();
        assert!(h.starts_with("$y$"));
        assert!(verify(b"s3cret", &h).unwrap());
        assert!(!verify(b"s3cres", &h).unwrap());
        assert!(!verify(b"", &h).unwrap());
        assert!(!verify(b"x", "!").unwrap());
        assert!(verify(b"x", "$1$abc$def").is_err());
        // SHA-512 crypt of "secret" with salt "saltsalt" (glibc's `mkpasswd -m sha-512`).
        use sha_crypt::PasswordHasher as _;
        let s = sha_crypt::ShaCrypt::default()
            .hash_password_with_salt(b"secret", b"saltsalt")
            .unwrap();
        assert!(s.as_str().starts_with("$6$"));
        assert!(verify(b"secret", s.as_str()).unwrap());
        assert!(!verify(b"Secret", s.as_str()).unwrap());
    }

    #[test]
    fn files_parse() {
        let d = tempfile::tempdir().unwrap();
        let v = d.path().join("pw");
        std::fs::write(
            &v,
            "# c\nann:$y$x:1000:1000:/home/ann\nbob:h:7:8:/b:/bin/false\nbad:h:x:8:/b\n",
        )
        .unwrap();
        let a = lookup_virtual(&v, "ann").unwrap().unwrap();
        assert_eq!((a.uid, a.gid, a.shell.as_str()), (1000, 1000, "/bin/sh"));
        assert_eq!(
            lookup_virtual(&v, "bob").unwrap().unwrap().shell,
            "/bin/false"
        );
        assert!(lookup_virtual(&v, "nobody").unwrap().is_none());
        let e = lookup_virtual(&v, "bad").unwrap_err().0;
        assert!(e.contains("line 4"), "{e}");
        let p = d.path().join("passwd");
        let s = d.path().join("shadow");
        std::fs::write(&p, "carl:x:5:6:Carl:/home/carl:/bin/bash\n").unwrap();
        std::fs::write(&s, "carl:$6$abc$def:1:0:99999:7:::\n").unwrap();
        let c = lookup_system(&p, &s, "carl").unwrap().unwrap();
        assert_eq!(c.hash, "$6$abc$def");
        assert_eq!(c.home, PathBuf::from("/home/carl"));
        assert_eq!(
            parse_fd3(b"u\0p\0<t>\0"),
            Some((b"u".to_vec(), b"p".to_vec(), b"<t>".to_vec()))
        );
        assert_eq!(parse_fd3(b"u"), None);
    }
}
