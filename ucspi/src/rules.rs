//! tcprules' rule syntax and the rules cdb, exactly as ucspi-tcp 0.88 encodes them.
//!
//! A line is `ADDRESS:INSTRUCTIONS`. Lines starting with `#` and lines without `:` are
//! skipped; trailing spaces, tabs and the newline are removed. INSTRUCTIONS is `allow` or `deny`
//! followed by any number of `,VAR=<d>value<d>` where `<d>` is any character that does not
//! occur in the value. The cdb key is the address; the value is `D\0` for deny (nothing for
//! allow) followed by `+VAR=value\0` per variable. An address without `=` and `@` may hold one
//! numeric range (`1.2.3.37-53`, `10.2-3.`), expanded into one key per number.
//!
//! Our addition: `[IPv6-ADDRESS]:…` for IPv6 keys (ucspi-tcp splits at the first colon, so it
//! has no way to write them); the brackets are not part of the key.
//!
//! Lookup order in tcpserver (first hit wins): `INFO@IP`, `INFO@=HOST`, `IP`, `=HOST`, the IP's
//! prefixes ending in `.` (or `:` for IPv6) from the longest, `=.SUFFIX`es of HOST from the
//! longest, `=` (when HOST is known), and the empty key.

use std::io;
use std::path::Path;

/// One parsed line: the cdb keys it expands into and the value stored under each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLine {
    pub keys: Vec<Vec<u8>>,
    pub data: Vec<u8>,
}

/// A line tcprules cannot parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLine;

/// cdb records (key, value) in input order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Parse one input line (with or without its newline). `Ok(None)` for lines tcprules skips,
/// `Err(BadLine)` for a line it cannot parse.
pub fn parse_line(line: &[u8]) -> Result<Option<RuleLine>, BadLine> {
    if line.first() == Some(&b'#') {
        return Ok(None);
    }
    let mut len = line.len();
    while len > 0 && matches!(line[len - 1], b'\n' | b' ' | b'\t') {
        len -= 1;
    }
    let x = &line[..len];
    if x.is_empty() {
        return Ok(None);
    }
    let (address, mut rest): (&[u8], &[u8]) = if x[0] == b'['
        && let Some(close) = x.windows(2).position(|w| w == b"]:")
    {
        (&x[1..close], &x[close + 2..])
    } else {
        match memchr(b':', x) {
            Some(c) => (&x[..c], &x[c + 1..]),
            None => return Ok(None),
        }
    };
    let mut data = Vec::new();
    if rest.starts_with(b"deny") {
        data.extend_from_slice(b"D\0");
        rest = &rest[4..];
    } else if rest.starts_with(b"allow") {
        rest = &rest[5..];
    } else {
        return Err(BadLine);
    }
    while !rest.is_empty() {
        if rest[0] != b',' {
            return Err(BadLine);
        }
        let eq = memchr(b'=', rest).ok_or(BadLine)?;
        data.push(b'+');
        data.extend_from_slice(&rest[1..=eq]);
        rest = &rest[eq + 1..];
        let (&delim, after) = rest.split_first().ok_or(BadLine)?;
        let end = memchr(delim, after).ok_or(BadLine)?;
        data.extend_from_slice(&after[..end]);
        data.push(0);
        rest = &after[end + 1..];
    }
    Ok(Some(RuleLine {
        keys: expand(address)?,
        data,
    }))
}

fn memchr(c: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == c)
}

fn digits(s: &[u8]) -> Result<u64, BadLine> {
    // ucspi's scan_ulong must consume the whole field; an empty field counts as 0.
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(BadLine);
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Ok(n)
}

/// Expand the first numeric range of an address (`1.2.3.37-53`) into keys.
fn expand(address: &[u8]) -> Result<Vec<Vec<u8>>, BadLine> {
    if memchr(b'=', address).is_some() || memchr(b'@', address).is_some() {
        return Ok(vec![address.to_vec()]);
    }
    let Some(dash) = memchr(b'-', address) else {
        return Ok(vec![address.to_vec()]);
    };
    let left = address[..dash]
        .iter()
        .rposition(|&b| b == b'.')
        .map_or(0, |p| p + 1);
    let right = memchr(b'.', &address[dash + 1..]).map_or(address.len(), |p| p + dash + 1);
    let bot = digits(&address[left..dash])?;
    let top = digits(&address[dash + 1..right])?;
    let mut keys = Vec::new();
    let mut n = bot;
    while n <= top {
        let mut k = address[..left].to_vec();
        k.extend_from_slice(n.to_string().as_bytes());
        k.extend_from_slice(&address[right..]);
        keys.push(k);
        if keys.len() > 1_000_000 {
            return Err(BadLine);
        }
        n += 1;
    }
    Ok(keys)
}

/// A parse error naming the line.
#[derive(Debug)]
pub struct ParseError {
    pub lineno: usize,
    pub line: String,
}

/// Parse a whole rules text into cdb records in input order.
pub fn parse_all(text: &[u8]) -> Result<Records, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some(r)) => {
                for k in r.keys {
                    out.push((k, r.data.clone()));
                }
            }
            Err(BadLine) => {
                let l = String::from_utf8_lossy(line);
                return Err(ParseError {
                    lineno: i + 1,
                    // Show a stray carriage return (a DOS file) instead of printing it.
                    line: l.trim_end_matches('\n').replace('\r', "\\r"),
                });
            }
        }
    }
    Ok(out)
}

/// What a rule says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The key that matched (`None`: no rule matched, the default is allow).
    pub key: Option<Vec<u8>>,
    pub deny: bool,
    /// Variables to set, in the rule's order.
    pub env: Vec<(String, String)>,
}

/// Decode a cdb value: `D` entries deny, `+VAR=value` entries set variables.
pub fn decode(key: Vec<u8>, data: &[u8]) -> Verdict {
    let mut v = Verdict {
        key: Some(key),
        ..Default::default()
    };
    // ucspi handles only NUL-terminated entries; a trailing fragment is ignored.
    let mut rest = data;
    while let Some(z) = memchr(0, rest) {
        let entry = &rest[..z];
        match entry.first() {
            Some(b'D') => v.deny = true,
            Some(b'+') => {
                if let Some(eq) = memchr(b'=', &entry[1..]) {
                    v.env.push((
                        String::from_utf8_lossy(&entry[1..1 + eq]).to_string(),
                        String::from_utf8_lossy(&entry[2 + eq..]).to_string(),
                    ));
                }
            }
            _ => {}
        }
        rest = &rest[z + 1..];
    }
    v
}

/// The keys to try, in order, for a connection from `ip` with optional host name and ident.
pub fn candidates(ip: &str, host: Option<&str>, info: Option<&str>) -> Vec<Vec<u8>> {
    let mut keys: Vec<String> = Vec::new();
    if let Some(info) = info {
        keys.push(format!("{info}@{ip}"));
        if let Some(h) = host {
            keys.push(format!("{info}@={h}"));
        }
    }
    keys.push(ip.to_string());
    if let Some(h) = host {
        keys.push(format!("={h}"));
    }
    let sep = if ip.contains(':') { b':' } else { b'.' };
    let ipb = ip.as_bytes();
    for len in (1..ipb.len()).rev() {
        if ipb[len - 1] == sep || (sep == b':' && ipb[len - 1] == b'.') {
            keys.push(ip[..len].to_string());
        }
    }
    if let Some(h) = host {
        for (i, c) in h.char_indices() {
            if c == '.' {
                keys.push(format!("={}", &h[i..]));
            }
        }
        keys.push("=".to_string());
    }
    keys.push(String::new());
    keys.into_iter().map(String::into_bytes).collect()
}

/// An open rules cdb.
pub struct Rules {
    cdb: cdb2::CDB,
}

impl Rules {
    /// Open the cdb; `ErrorKind::NotFound` when it does not exist.
    pub fn open(path: &Path) -> io::Result<Rules> {
        // cdb2 rejects files shorter than the 2048-byte header with a generic error; check the
        // file first so that a missing file gives ENOENT.
        std::fs::metadata(path)?;
        Ok(Rules {
            cdb: cdb2::CDB::open(path)?,
        })
    }

    /// The first matching rule, or the default (allow, nothing set).
    pub fn lookup(&self, ip: &str, host: Option<&str>, info: Option<&str>) -> io::Result<Verdict> {
        for k in candidates(ip, host, info) {
            if let Some(r) = self.cdb.get(&k) {
                let data = r?;
                return Ok(decode(k, &data));
            }
        }
        Ok(Verdict::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(l: &str) -> Option<RuleLine> {
        parse_line(l.as_bytes()).unwrap()
    }

    #[test]
    fn parses_like_tcprules() {
        let r = p("127.0.0.1:allow,RELAYCLIENT=\"\",FOO=/bar baz/\n").unwrap();
        assert_eq!(r.keys, vec![b"127.0.0.1".to_vec()]);
        assert_eq!(r.data, b"+RELAYCLIENT=\0+FOO=bar baz\0");
        assert_eq!(p(":deny").unwrap().data, b"D\0");
        assert_eq!(p("1.1.1.3:deny,X=xvx").unwrap().data, b"D\0+X=v\0");
        assert!(p("# x:deny").is_none());
        assert!(p("nocolon").is_none());
        assert!(p("").is_none());
        assert_eq!(p("1.1.1.7:allow\t  ").unwrap().data, b"");
        // As ucspi-tcp: a carriage return is not white space here.
        assert!(parse_line(b"1.1.1.7:allow\r\n").is_err());
        for bad in [
            "x:foo",
            "1:allow,FOO",
            "1:allow,FOO=x",
            "1: allow",
            "1:allowed",
            "1:allow,X=\"a\",",
            "1:allow,X=",
            "1:allow,X=\"a\"junk",
            "1.a-3.:allow",
            "1.2-3-4.5:allow",
            "a-b.c:deny",
        ] {
            assert!(parse_line(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let k = |l: &str| {
            p(l).unwrap()
                .keys
                .into_iter()
                .map(|k| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(k("1.2.3.37-39:allow"), ["1.2.3.37", "1.2.3.38", "1.2.3.39"]);
        assert_eq!(k("10.2-3.:deny"), ["10.2.", "10.3."]);
        assert_eq!(k("1.2-3.4-5:allow"), ["1.2.4-5", "1.3.4-5"]);
        assert!(k("1.5-2.:allow").is_empty());
        assert_eq!(k("-1.:allow"), ["0.", "1."]);
        assert_eq!(k("=a-b.c:deny"), ["=a-b.c"]);
        assert_eq!(k("AB-CD@1.2.3.4:deny"), ["AB-CD@1.2.3.4"]);
        assert_eq!(k("[::1]:allow"), ["::1"]);
    }

    #[test]
    fn candidate_order() {
        let c: Vec<String> = candidates("127.0.0.1", Some("a.b.c"), Some("joe"))
            .into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(
            c,
            [
                "joe@127.0.0.1",
                "joe@=a.b.c",
                "127.0.0.1",
                "=a.b.c",
                "127.0.0.",
                "127.0.",
                "127.",
                "=.b.c",
                "=.c",
                "=",
                ""
            ]
        );
        let c6: Vec<String> = candidates("2001:db8::1", None, None)
            .into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect();
        assert_eq!(c6, ["2001:db8::1", "2001:db8::", "2001:db8:", "2001:", ""]);
    }

    #[test]
    fn decode_entries() {
        let v = decode(b"k".to_vec(), b"D\0+A=1\0+B=\0+bad\0");
        assert!(v.deny);
        assert_eq!(
            v.env,
            vec![("A".into(), "1".into()), ("B".into(), "".into())]
        );
    }
}
