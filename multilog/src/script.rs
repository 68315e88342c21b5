//! The multilog script: daemontools 0.76's actions plus our `S` and `T`.
//!
//! | action | meaning |
//! |---|---|
//! | `t` | (first actions only) prefix each line with `@` + TAI64N + space |
//! | `T` | (first actions only, ours) prefix `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ ` (UTC) |
//! | `sSIZE` | following directories rotate at SIZE bytes (4096…16777215, default 99999) |
//! | `nNUM` | keep at most NUM files (NUM−1 archives + `current`; NUM ≥ 2, default 10) |
//! | `STOTAL` | (ours, as s6-log) drop the oldest archives while they hold more than TOTAL bytes; 0 = no cap |
//! | `!PROCESSOR` | run `sh -c PROCESSOR` on each full file of the following directories |
//! | `+PATTERN` / `-PATTERN` | select / deselect matching lines (`*` = run of characters without the next pattern character) |
//! | `e` | selected lines (first 200 bytes) to stderr |
//! | `=FILE` | FILE holds the first 1000 bytes of the last selected line, padded to 1001 with newlines |
//! | `./dir`, `/dir` | log the selected lines into that directory |
//!
//! Where we differ from daemontools on purpose: daemontools silently ignores actions it does
//! not know, a misplaced `t`, garbage after `s`/`n` digits, and an empty `!`; we refuse
//! them with a message (exit 100) because each of them would quietly lose or mislabel logs.
//! A script with nowhere to put lines (no directory, `e` or `=`) is refused too.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::dir::DirSpec;

#[derive(Debug, PartialEq)]
pub enum Action {
    /// `+` (true) or `-` (false) with its pattern.
    Select(bool, Vec<u8>),
    Stderr,
    /// `=FILE`: index into [`Script::status`].
    Status(usize),
    /// A directory: index into [`Script::dirs`].
    Dir(usize),
}

#[derive(Debug, Default, PartialEq)]
pub struct Script {
    pub tai: bool,
    pub iso: bool,
    pub actions: Vec<Action>,
    pub dirs: Vec<DirSpec>,
    pub status: Vec<PathBuf>,
}

impl Script {
    /// Whether any action looks at the line's text (patterns, `e`, `=`).
    pub fn needs_line(&self) -> bool {
        self.actions.iter().any(|a| !matches!(a, Action::Dir(_)))
    }
}

fn number(arg: &[u8], what: &str) -> Result<u64, String> {
    let digits = &arg[1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "{what} needs a decimal number: {}",
            String::from_utf8_lossy(arg)
        ));
    }
    Ok(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Parse the script arguments; `Err` is a message for "multilog: fatal: …" (exit 100).
pub fn parse(args: &[OsString]) -> Result<Script, String> {
    let mut s = Script::default();
    let mut size = 99999u64;
    let mut num = 10u64;
    let mut total = 0u64;
    let mut processor: Option<OsString> = None;
    let mut leading = true;
    for (i, a) in args.iter().enumerate() {
        let b = a.as_bytes();
        let argn = i + 1;
        let Some(&first) = b.first() else {
            return Err(format!("empty action (argument {argn})"));
        };
        if (b == b"t" || b == b"T") && leading {
            if b == b"t" {
                s.tai = true;
            } else {
                s.iso = true;
            }
            continue;
        }
        leading = false;
        match first {
            b't' | b'T' if b.len() == 1 => {
                return Err(format!(
                    "{} must come before every other action (argument {argn})",
                    first as char
                ));
            }
            b's' => size = number(b, "s")?.clamp(4096, 16_777_215),
            b'n' => num = number(b, "n")?.max(2),
            b'S' => total = number(b, "S")?,
            b'!' => {
                if b.len() == 1 {
                    return Err(format!("! needs a processor command (argument {argn})"));
                }
                processor = Some(OsString::from_vec(b[1..].to_vec()));
            }
            b'+' | b'-' => s
                .actions
                .push(Action::Select(first == b'+', b[1..].to_vec())),
            b'e' if b.len() == 1 => s.actions.push(Action::Stderr),
            b'=' => {
                if b.len() == 1 {
                    return Err(format!("= needs a file name (argument {argn})"));
                }
                s.actions.push(Action::Status(s.status.len()));
                s.status
                    .push(PathBuf::from(OsString::from_vec(b[1..].to_vec())));
            }
            b'.' | b'/' => {
                s.actions.push(Action::Dir(s.dirs.len()));
                s.dirs.push(DirSpec {
                    name: a.to_string_lossy().into_owned(),
                    path: PathBuf::from(a),
                    size,
                    num,
                    total,
                    processor: processor.clone(),
                });
            }
            _ => {
                return Err(format!(
                    "unknown action {} (argument {argn}); actions are t T sSIZE nNUM STOTAL !PROCESSOR +PATTERN -PATTERN e =FILE ./DIR /DIR",
                    a.to_string_lossy()
                ));
            }
        }
    }
    if !s.actions.iter().any(|a| !matches!(a, Action::Select(..))) {
        return Err(
            "the script has no directory, e or =FILE: every line would be discarded".into(),
        );
    }
    Ok(s)
}

/// daemontools' pattern match on the whole line: `*` matches the shortest run of characters
/// up to the next occurrence of the pattern character that follows it; a final `*` matches
/// the rest of the line.
pub fn matches(pattern: &[u8], line: &[u8]) -> bool {
    let (mut p, mut l) = (0usize, 0usize);
    loop {
        let Some(&c) = pattern.get(p) else {
            return l == line.len();
        };
        p += 1;
        if c == b'*' {
            let Some(&next) = pattern.get(p) else {
                return true;
            };
            match memchr::memchr(next, &line[l..]) {
                Some(k) => l += k,
                None => return false,
            }
            continue;
        }
        if l == line.len() || line[l] != c {
            return false;
        }
        l += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn patterns() {
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"", b""));
        assert!(!matches(b"", b"x"));
        assert!(matches(b"a*c", b"abbbc"));
        assert!(!matches(b"a*c", b"abcbc")); // * stops at the first c
        assert!(matches(b"* fatal: *", b"x fatal: y"));
        assert!(!matches(b"* fatal: *", b"x y fatal: z")); // first space ends the *
        assert!(matches(b"*.*", b"a.b"));
        assert!(!matches(b"abc", b"ab"));
    }

    #[test]
    fn script() {
        let s = parse(&args(&[
            "t", "s5000", "n3", "!cat", "-*x*", "./a", "S100", "./b",
        ]))
        .unwrap();
        assert!(s.tai);
        assert_eq!(s.dirs.len(), 2);
        assert_eq!(s.dirs[0].size, 5000);
        assert_eq!(s.dirs[1].total, 100);
        assert_eq!(s.dirs[1].num, 3);
        assert_eq!(parse(&args(&["s1", "./a"])).unwrap().dirs[0].size, 4096);
        assert!(
            parse(&args(&["q", "./a"]))
                .unwrap_err()
                .contains("unknown action q")
        );
        assert!(parse(&args(&["./a", "t"])).is_err());
        assert!(parse(&args(&["sx", "./a"])).is_err());
        assert!(parse(&args(&["t"])).is_err());
        assert!(parse(&args(&[])).is_err());
    }
}
