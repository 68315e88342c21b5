//! qmail-pw2u: turn a V7 passwd file (standard input) into a users/assign file (standard
//! output), following qmail-getpw's rules, as qmail-pw2u(8).
//!
//! Each account with a uid other than 0, no upper-case letters (unless `-u`) and a home
//! directory it owns (`-o`, the default; `-h` stops on a missing home, `-H` skips the checks)
//! gets `=user:…::` and `+user-:…:-::`. The `alias` account gets the catch-all `+:alias:…:-::`.
//! Files in `QMAILHOME/users` change the rules: `include` (only these users), `exclude`
//! (never these), `mailnames` (`user:name1:name2…` replaces the address names), `subusers`
//! (`sub:user:pre:` lines: sub and sub-ext go to user's .qmail-pre and .qmail-pre-ext) and
//! `append` (copied to the end). `-c CHAR` changes the extension delimiter, `-C` disables
//! extensions, `-/` writes `-/` dashes (home/.qmail-/…).
//!
//! Difference on purpose: when the passwd input has no `alias` account but the qmail ids
//! (`QMAILHOME/ids`) name one, the catch-all line is written for it with home
//! `QMAILHOME/alias` instead of failing, since rqmail's alias user need not be in /etc/passwd.
//! Lines of the passwd input that cannot be parsed are skipped, as qmail does.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

/// Options.
#[derive(Debug, Clone)]
pub struct Opts {
    pub dashcolon: &'static str,
    /// 2: skip on missing home or wrong owner; 1: stop on missing home; 0: no checks.
    pub homestrategy: u8,
    pub noupper: bool,
    pub brk: Option<u8>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            dashcolon: "-:",
            homestrategy: 2,
            noupper: true,
            brk: Some(b'-'),
        }
    }
}

/// The users/ files.
#[derive(Debug, Default)]
pub struct Files {
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
    pub mailnames: Option<Vec<String>>,
    pub subusers: Option<Vec<u8>>,
    pub append: Option<Vec<u8>>,
    /// (uid, gid, home) of the alias user from the ids file, used when passwd lacks it.
    pub alias_ids: Option<(u32, u32, String)>,
}

fn read_opt(p: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("unable to read {}: {e}", p.display())),
    }
}

/// control_readfile's rules: trailing blanks stripped, empty lines and `#` lines skipped.
fn control_lines(b: Vec<u8>) -> Vec<String> {
    String::from_utf8_lossy(&b)
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

impl Files {
    pub fn load(qmail_home: &Path) -> Result<Files, String> {
        let u = qmail_home.join("users");
        let ids =
            crate::ids::QmailIds::load_from(&qmail_home.join("ids")).map_err(|e| e.to_string())?;
        Ok(Files {
            include: read_opt(&u.join("include"))?.map(control_lines),
            exclude: read_opt(&u.join("exclude"))?.map(control_lines),
            mailnames: read_opt(&u.join("mailnames"))?.map(control_lines),
            subusers: read_opt(&u.join("subusers"))?,
            append: read_opt(&u.join("append"))?,
            alias_ids: ids
                .uid("alias")
                .zip(ids.get("alias").map(|i| i.gid))
                .map(|(u, g)| {
                    (
                        u,
                        g,
                        qmail_home.join("alias").to_string_lossy().into_owned(),
                    )
                }),
        })
    }
}

/// Produce the assign text.
pub fn pw2u(passwd: &[u8], opts: &Opts, files: &Files) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut allusers: HashMap<String, String> = HashMap::new();
    let mut flagalias = false;
    let mailnames: HashMap<String, String> = files
        .mailnames
        .iter()
        .flatten()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(u, n)| (u.to_string(), n.to_string()))
        })
        .rev() // the first entry for a user wins, as constmap's first match
        .collect();
    for line in passwd.split(|&c| c == b'\n') {
        if line.contains(&0) {
            continue;
        }
        let line = String::from_utf8_lossy(line);
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            continue;
        }
        let (user, uidstr, gidstr, home) = (f[0], f[2], f[3], f[5]);
        let uid: u64 = {
            let digits: String = uidstr.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().unwrap_or(0)
        };
        if uid == 0 {
            continue;
        }
        if opts.noupper && user.bytes().any(|c| c.is_ascii_uppercase()) {
            continue;
        }
        if let Some(inc) = &files.include
            && !inc.iter().any(|u| u == user)
        {
            continue;
        }
        if let Some(exc) = &files.exclude
            && exc.iter().any(|u| u == user)
        {
            continue;
        }
        if opts.homestrategy > 0 {
            match std::fs::metadata(home) {
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::NotFound || opts.homestrategy == 1 {
                        return Err(format!("unable to stat {home}"));
                    }
                    continue;
                }
                Ok(st) => {
                    use std::os::unix::fs::MetadataExt;
                    if u64::from(st.uid()) != uid {
                        continue;
                    }
                }
            }
        }
        let uugh = format!(":{user}:{uidstr}:{gidstr}:{home}:");
        allusers
            .entry(user.to_string())
            .or_insert_with(|| uugh.clone());
        if user == "alias" {
            out.extend_from_slice(format!("+{uugh}{}:\n", opts.dashcolon).as_bytes());
            flagalias = true;
        }
        let names = mailnames
            .get(user)
            .cloned()
            .unwrap_or_else(|| user.to_string());
        for name in names.split(':').filter(|n| !n.is_empty()) {
            out.extend_from_slice(format!("={name}{uugh}::\n").as_bytes());
            if let Some(b) = opts.brk {
                out.extend_from_slice(
                    format!("+{name}{}{uugh}{}:\n", b as char, opts.dashcolon).as_bytes(),
                );
            }
        }
    }
    if !flagalias {
        match &files.alias_ids {
            Some((uid, gid, home)) => {
                out.extend_from_slice(
                    format!("+:alias:{uid}:{gid}:{home}:{}:\n", opts.dashcolon).as_bytes(),
                );
            }
            None => return Err("unable to find alias user".into()),
        }
    }
    if let Some(subs) = &files.subusers {
        for line in subs.split(|&c| c == b'\n') {
            let line = String::from_utf8_lossy(line);
            let f: Vec<&str> = line.splitn(4, ':').collect();
            if f.len() < 4 {
                continue;
            }
            let (sub, user, pre) = (f[0], f[1], f[2]);
            let Some(uugh) = allusers.get(user) else {
                return Err(format!("unable to find {user} user for subuser"));
            };
            out.extend_from_slice(format!("={sub}{uugh}{}{pre}:\n", opts.dashcolon).as_bytes());
            if let Some(b) = opts.brk {
                out.extend_from_slice(
                    format!("+{sub}{}{uugh}{}{pre}-:\n", b as char, opts.dashcolon).as_bytes(),
                );
            }
        }
    }
    if let Some(app) = &files.append {
        out.extend_from_slice(app);
        if !app.is_empty() && !app.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b".\n");
    Ok(out)
}

/// Parse getopt-style options `-/ohHuUC` and `-c CHAR`.
pub fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        let mut j = 1;
        while j < a.len() {
            match a[j] {
                b'/' => o.dashcolon = "-/:",
                b'o' => o.homestrategy = 2,
                b'h' => o.homestrategy = 1,
                b'H' => o.homestrategy = 0,
                b'u' => o.noupper = false,
                b'U' => o.noupper = true,
                b'C' => o.brk = None,
                b'c' => {
                    let v: Option<u8> = if j + 1 < a.len() {
                        Some(a[j + 1])
                    } else {
                        i += 1;
                        args.get(i).and_then(|s| s.bytes().next())
                    };
                    match v {
                        Some(c) => o.brk = Some(c),
                        None => return Err("option -c needs a character".into()),
                    }
                    j = a.len();
                    continue;
                }
                c => return Err(format!("unknown option -{}", c as char)),
            }
            j += 1;
        }
        i += 1;
    }
    if i < args.len() {
        return Err(format!("unexpected argument {}", args[i]));
    }
    Ok(o)
}

/// The qmail-pw2u program.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("qmail-pw2u: usage: qmail-pw2u [ -/ohHuUC ] [ -cchar ] < passwd ({e})");
            return 100;
        }
    };
    let files = match Files::load(&crate::home::qmail_home()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("qmail-pw2u: fatal: unable to read controls: {e}");
            return 111;
        }
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("qmail-pw2u: fatal: unable to read input: {e}");
        return 111;
    }
    match pw2u(&input, &opts, &files) {
        Ok(text) => {
            let mut so = std::io::stdout().lock();
            if so.write_all(&text).and_then(|_| so.flush()).is_err() {
                eprintln!("qmail-pw2u: fatal: unable to write output");
                return 111;
            }
            0
        }
        Err(e) => {
            eprintln!("qmail-pw2u: fatal: {e}");
            111
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_lines_like_qmail() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path().to_str().unwrap().to_string();
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata(&h).unwrap().uid();
        let uid = if uid == 0 {
            std::os::unix::fs::chown(&h, Some(4343), None).unwrap();
            4343
        } else {
            uid
        };
        let pw = format!(
            "root:x:0:0:root:/root:/bin/bash\njoe:x:{uid}:100::{h}:/bin/sh\nJoe:x:{uid}:100::{h}:/bin/sh\nalias:x:{uid}:101::{h}:/bin/false\ngone:x:{uid}:100::{h}/nope:/bin/sh\nbroken\n"
        );
        let files = Files {
            subusers: Some(b"sub:joe:pre:\n".to_vec()),
            append: Some(b"=extra:joe:1:1:/x:::".to_vec()),
            ..Default::default()
        };
        let out =
            String::from_utf8(pw2u(pw.as_bytes(), &Opts::default(), &files).unwrap()).unwrap();
        assert_eq!(
            out,
            format!(
                "=joe:joe:{uid}:100:{h}:::\n+joe-:joe:{uid}:100:{h}:-::\n+:alias:{uid}:101:{h}:-::\n=alias:alias:{uid}:101:{h}:::\n+alias-:alias:{uid}:101:{h}:-::\n=sub:joe:{uid}:100:{h}:-:pre:\n+sub-:joe:{uid}:100:{h}:-:pre-:\n=extra:joe:1:1:/x:::\n.\n"
            )
        );
        let files = Files {
            mailnames: Some(vec!["joe:jo:joseph".into()]),
            exclude: Some(vec!["alias".into()]),
            alias_ids: Some((7, 8, "/q/alias".into())),
            ..Default::default()
        };
        let o = parse_opts(&["-C".into()]).unwrap();
        let out = String::from_utf8(pw2u(pw.as_bytes(), &o, &files).unwrap()).unwrap();
        assert_eq!(
            out,
            format!(
                "=jo:joe:{uid}:100:{h}:::\n=joseph:joe:{uid}:100:{h}:::\n+:alias:7:8:/q/alias:-::\n.\n"
            )
        );
        let e = pw2u(
            pw.as_bytes(),
            &parse_opts(&["-h".into()]).unwrap(),
            &Files::default(),
        )
        .unwrap_err();
        assert!(e.contains("unable to stat"), "{e}");
    }
}
