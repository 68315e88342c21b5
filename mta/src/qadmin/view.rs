//! Reading the queue for `list`, `show` and the selections of `delete`: straight from the
//! queue directories, one thread per split subdirectory group, no process per message.

use std::collections::HashSet;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::agent::{DIR, split_path};

const SPLIT: u64 = crate::install::SPLIT;

/// One recipient.
#[derive(Debug, Clone)]
pub struct Rcpt {
    /// "local", "remote", or "todo" (not yet preprocessed: channel unknown).
    pub chan: &'static str,
    pub addr: String,
    pub done: bool,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub id: u64,
    pub generation: u64,
    /// Birth (info mtime; mess mtime before preprocessing), Unix seconds.
    pub birth: u64,
    pub size: u64,
    /// "todo" (not yet preprocessed), "queued", or "incomplete" (mess without todo/info:
    /// being queued, or a leftover qmail-send removes later).
    pub state: &'static str,
    pub held: bool,
    pub bouncing: bool,
    pub sender: String,
    pub rcpts: Vec<Rcpt>,
    /// Next delivery attempt per channel (the channel file's mtime), when pending.
    pub next_try: [Option<u64>; 2],
    /// Unfolded header fields (name, value), when asked for.
    pub headers: Vec<(String, String)>,
}

impl Msg {
    pub fn subject(&self) -> &str {
        self.header("subject").unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn pending(&self) -> usize {
        self.rcpts.iter().filter(|r| !r.done).count()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ids_in(dir: &Path) -> io::Result<Vec<u64>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
            v.push(n);
        }
    }
    Ok(v)
}

fn set_of(dir: &Path) -> io::Result<HashSet<u64>> {
    match ids_in(dir) {
        Ok(v) => Ok(v.into_iter().collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e),
    }
}

/// Parse a header block (up to the first empty line) into unfolded fields.
pub fn parse_headers(data: &[u8]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(text(line).trim());
            }
            continue;
        }
        match memchr::memchr(b':', line) {
            Some(i) => out.push((
                text(&line[..i]).trim().to_string(),
                text(&line[i + 1..]).trim().to_string(),
            )),
            None => break, // not a header: the body started without a blank line
        }
    }
    out
}

/// Read the header block of a mess file (at most 64 KiB).
fn read_headers(p: &Path) -> Vec<(String, String)> {
    let Ok(mut f) = std::fs::File::open(p) else {
        return Vec::new();
    };
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    while buf.len() < 65536 {
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if memchr::memmem::find(&buf, b"\n\n").is_some() {
                    break;
                }
            }
        }
    }
    parse_headers(&buf)
}

fn records(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    data.split(|&b| b == 0)
        .filter_map(|r| r.split_first().map(|(&t, v)| (t, v)))
}

struct Sets {
    todo: HashSet<u64>,
    bounce: HashSet<u64>,
    hold: HashSet<u64>,
    delivered: HashSet<u64>,
}

/// Describe message `id`; None when it vanished meanwhile.
fn describe(q: &Path, id: u64, sets: &Sets, headers: bool) -> io::Result<Option<Msg>> {
    let mess = split_path(q, "mess", id);
    let md = match std::fs::metadata(&mess) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let generation = (md.mtime() as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec() as u64);
    let mut m = Msg {
        id,
        generation,
        birth: md.mtime().max(0) as u64,
        size: md.len(),
        state: "incomplete",
        held: sets.hold.contains(&id),
        bouncing: sets.bounce.contains(&id),
        sender: String::new(),
        rcpts: Vec::new(),
        next_try: [None, None],
        headers: Vec::new(),
    };
    let info = split_path(q, "info", id);
    let info_data = match std::fs::read(&info) {
        Ok(d) => Some(d),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Some(d) = info_data.filter(|_| !sets.todo.contains(&id)) {
        m.state = "queued";
        if let Ok(im) = std::fs::metadata(&info) {
            m.birth = im.mtime().max(0) as u64;
        }
        if let Some((b'F', s)) = records(&d).next() {
            m.sender = text(s);
        }
        if sets.delivered.contains(&id)
            && let Ok(t) = std::fs::read_to_string(q.join(format!("{DIR}/delivered/{id}")))
        {
            let mut lines = t.lines();
            if lines.next() == Some(&m.birth.to_string()) {
                for l in lines {
                    if let Some((c, a)) = l.split_once(' ') {
                        m.rcpts.push(Rcpt {
                            chan: if c == "local" { "local" } else { "remote" },
                            addr: a.to_string(),
                            done: true,
                        });
                    }
                }
            }
        }
        for (i, chan) in ["local", "remote"].into_iter().enumerate() {
            let p = split_path(q, chan, id);
            let data = match std::fs::read(&p) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut any = false;
            for (t, a) in records(&data) {
                if t == b'T' || t == b'D' {
                    any |= t == b'T';
                    m.rcpts.push(Rcpt {
                        chan,
                        addr: text(a),
                        done: t == b'D',
                    });
                }
            }
            if any && let Ok(cm) = std::fs::metadata(&p) {
                m.next_try[i] = Some(cm.mtime().max(0) as u64);
            }
        }
    } else if sets.todo.contains(&id) {
        m.state = "todo";
        if let Ok(d) = std::fs::read(q.join(format!("todo/{id}"))) {
            for (t, v) in records(&d) {
                match t {
                    b'F' => m.sender = text(v),
                    b'T' => m.rcpts.push(Rcpt {
                        chan: "todo",
                        addr: text(v),
                        done: false,
                    }),
                    _ => {}
                }
            }
        }
    }
    if headers {
        m.headers = read_headers(&mess);
    }
    Ok(Some(m))
}

/// Every message in the queue at `q`, sorted by id. `headers`: also read the header blocks.
pub fn scan(q: &Path, headers: bool) -> Result<Vec<Msg>, String> {
    let err = |p: &Path, e: io::Error| format!("unable to read {}: {e}", p.display());
    let set = |sub: &str| {
        let p = q.join(sub);
        set_of(&p).map_err(|e| err(&p, e))
    };
    let sets = Sets {
        todo: set("todo")?,
        bounce: set("bounce")?,
        hold: set(&format!("{DIR}/hold"))?,
        delivered: set(&format!("{DIR}/delivered"))?,
    };
    // Check access once, with a clear error, before the threads start.
    let first = q.join("mess/0");
    std::fs::read_dir(&first).map_err(|e| err(&first, e))?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let splits: Vec<u64> = (0..SPLIT).collect();
    let chunk = splits.len().div_ceil(threads);
    let results: Vec<Result<Vec<Msg>, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = splits
            .chunks(chunk)
            .map(|part| {
                let sets = &sets;
                s.spawn(move || {
                    let mut v = Vec::new();
                    for &sp in part {
                        let d = q.join(format!("mess/{sp}"));
                        for id in ids_in(&d).map_err(|e| err(&d, e))? {
                            match describe(q, id, sets, headers) {
                                Ok(Some(m)) => v.push(m),
                                Ok(None) => {}
                                Err(e) => return Err(format!("message {id}: {e}")),
                            }
                        }
                    }
                    Ok(v)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("internal error: a reader thread failed".into()))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|m| m.id);
    Ok(all)
}

/// One message by id.
pub fn one(q: &Path, id: u64) -> Result<Option<Msg>, String> {
    let sets = Sets {
        todo: [id]
            .into_iter()
            .filter(|i| q.join(format!("todo/{i}")).exists())
            .collect(),
        bounce: [id]
            .into_iter()
            .filter(|i| q.join(format!("bounce/{i}")).exists())
            .collect(),
        hold: [id]
            .into_iter()
            .filter(|i| q.join(format!("{DIR}/hold/{i}")).exists())
            .collect(),
        delivered: [id]
            .into_iter()
            .filter(|i| q.join(format!("{DIR}/delivered/{i}")).exists())
            .collect(),
    };
    describe(q, id, &sets, true).map_err(|e| format!("message {id}: {e}"))
}

/// A shell-style pattern: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`, `\` escapes; case-insensitive;
/// it must match the whole text.
#[derive(Debug, Clone)]
pub struct Pattern {
    toks: Vec<Tok>,
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    Any,
    Star,
    Class(bool, Vec<(char, char)>),
}

impl Pattern {
    pub fn new(p: &str) -> Result<Pattern, String> {
        if p.is_empty() {
            return Err("empty pattern".into());
        }
        let cs: Vec<char> = p.chars().flat_map(char::to_lowercase).collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < cs.len() {
            match cs[i] {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => {
                    i += 1;
                    let Some(&c) = cs.get(i) else {
                        return Err(format!("pattern {p:?} ends with a lone backslash"));
                    };
                    toks.push(Tok::Lit(c));
                }
                '[' => {
                    let start = i;
                    i += 1;
                    let neg = matches!(cs.get(i), Some('!') | Some('^'));
                    if neg {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&c) = cs.get(i) else {
                            return Err(format!(
                                "pattern {p:?}: '[' at position {} is never closed",
                                start + 1
                            ));
                        };
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        if cs.get(i + 1) == Some(&'-') && cs.get(i + 2).is_some_and(|&e| e != ']') {
                            let e = cs[i + 2];
                            if e < c {
                                return Err(format!("pattern {p:?}: bad range {c}-{e}"));
                            }
                            ranges.push((c, e));
                            i += 3;
                        } else {
                            ranges.push((c, c));
                            i += 1;
                        }
                    }
                    toks.push(Tok::Class(neg, ranges));
                }
                c => toks.push(Tok::Lit(c)),
            }
            i += 1;
        }
        Ok(Pattern { toks })
    }

    pub fn matches(&self, s: &str) -> bool {
        let cs: Vec<char> = s.chars().flat_map(char::to_lowercase).collect();
        // Iterative glob with backtracking to the last star.
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < cs.len() {
            let ok = match self.toks.get(p) {
                Some(Tok::Star) => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                Some(Tok::Any) => true,
                Some(Tok::Lit(c)) => *c == cs[t],
                Some(Tok::Class(neg, r)) => {
                    r.iter().any(|&(a, b)| a <= cs[t] && cs[t] <= b) != *neg
                }
                None => false,
            };
            if ok {
                p += 1;
                t += 1;
            } else if let Some((sp, st)) = star {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        self.toks[p..].iter().all(|t| matches!(t, Tok::Star))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = Pattern::new("*@Example.ORG").unwrap();
        assert!(p.matches("bob@example.org"));
        assert!(!p.matches("bob@example.org.evil"));
        assert!(Pattern::new("a?c").unwrap().matches("abc"));
        assert!(Pattern::new("[a-c]x").unwrap().matches("bx"));
        assert!(!Pattern::new("[!a-c]x").unwrap().matches("bx"));
        assert!(Pattern::new("*spam*").unwrap().matches("Buy SPAM now"));
        assert!(Pattern::new("a\\*").unwrap().matches("a*"));
        assert!(!Pattern::new("a\\*").unwrap().matches("ab"));
        assert!(Pattern::new("[abc").is_err());
        assert!(Pattern::new("x\\").is_err());
        assert!(Pattern::new("").is_err());
        assert!(Pattern::new("[z-a]").is_err());
    }

    #[test]
    fn headers_unfold() {
        let h = parse_headers(b"Subject: hello\n  world\nFrom: a@b\r\n\nbody: no\n");
        assert_eq!(h[0], ("Subject".into(), "hello world".into()));
        assert_eq!(h[1], ("From".into(), "a@b".into()));
        assert_eq!(h.len(), 2);
    }
}
