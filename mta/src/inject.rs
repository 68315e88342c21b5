//! `qmail-inject [-nNaAhH] [-f sender] [recipient …]`: prepare a message read on stdin and hand
//! it to qmail-queue (qmail-inject(8)).
//!
//! Header fixing, as qmail-inject does it:
//! * addresses in To, Cc, Bcc, Apparently-To, Resent-To/Cc/Bcc, From, Sender, Reply-To,
//!   Return-Receipt-To, Errors-To, Resent-Sender/From/Reply-To and Return-Path are rewritten:
//!   a source route is dropped, a trailing `.` or `@` removed, `@defaulthost` added to an address
//!   without `@`, a trailing `+` of the host replaced by `.plusdomain`, and `.defaultdomain`
//!   added to a host without a dot (literals `[…]` are left alone);
//! * Bcc, Resent-Bcc, Return-Path and Content-Length are removed;
//! * missing Date, Message-ID (`<YYYYMMDDHHMMSS.PID.qmail@idhost>`) and From are added, and
//!   `Cc: recipient list not shown: ;` when there is neither To nor Cc — or the `Resent-`
//!   forms when the message has any Resent- field;
//! * the envelope sender is `-f`, else the Return-Path field, else QMAILSUSER (or the user
//!   below) `@` QMAILSHOST (or the host below);
//! * recipients: `-a` the arguments only, `-h` the header fields only, `-H` both, `-A`/default:
//!   the arguments if any, else the header fields (Resent- fields when the message has any).
//!
//! Control files `defaultdomain`, `defaulthost`, `plusdomain`, `idhost` (each defaulting to `me`,
//! then to its own name) with the overrides QMAILDEFAULTDOMAIN, QMAILDEFAULTHOST,
//! QMAILPLUSDOMAIN, QMAILIDHOST; the From user is QMAILUSER, MAILUSER, USER, LOGNAME or
//! "anonymous", its host QMAILHOST or MAILHOST (else defaulthost), its name QMAILNAME, MAILNAME
//! or NAME. QMAILINJECT letters: `c` name as a comment, `s` delete Return-Path, `f` delete From,
//! `i` delete Message-ID, `r` VERP sender (`user-@host-@[]`), `m` per-message sender
//! (`user-TIME.PID`). Exit 0, 100 (bad usage or syntax, permanent queue failure), 111
//! (temporary failure).
//!
//! Deliberate differences: address fields are rewritten in place (the rest of the field keeps
//! its spacing and comments) instead of being re-folded at 80 columns; a message with no
//! recipient at all is refused ("no recipients", exit 100) instead of being handed to
//! qmail-queue; when a header line is followed directly by a non-header line, an empty line is
//! put between them so the message keeps a valid header/body split.
//!
//! QMAILMFTFILE names a file of mailing-list addresses (one a line): when To or Cc names one of
//! them and the message has no Mail-Followup-To, one is added listing the To and Cc addresses.

use crate::control::{Control, ControlError};
use std::io::{Read, Write};

/// Exit codes.
pub const EXIT_PERM: i32 = 100;
pub const EXIT_TEMP: i32 = 111;

/// The hosts used for rewriting.
#[derive(Debug, Clone)]
pub struct Config {
    pub defaultdomain: String,
    pub defaulthost: String,
    pub plusdomain: String,
    pub idhost: String,
}

fn rldef(ctl: &Control, name: &str) -> Result<String, ControlError> {
    Ok(match ctl.line(name)? {
        Some(s) if !s.is_empty() => s,
        _ => ctl.me()?.unwrap_or_else(|| name.to_string()),
    })
}

impl Config {
    /// Read the control files, then apply the QMAIL… environment overrides.
    pub fn load(ctl: &Control) -> Result<Config, ControlError> {
        let env = |n: &str| std::env::var(n).ok();
        Ok(Config {
            defaultdomain: env("QMAILDEFAULTDOMAIN")
                .map_or_else(|| rldef(ctl, "defaultdomain"), Ok)?,
            defaulthost: env("QMAILDEFAULTHOST").map_or_else(|| rldef(ctl, "defaulthost"), Ok)?,
            plusdomain: env("QMAILPLUSDOMAIN").map_or_else(|| rldef(ctl, "plusdomain"), Ok)?,
            idhost: env("QMAILIDHOST").map_or_else(|| rldef(ctl, "idhost"), Ok)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 822 tokens.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Atom(String),
    /// A quoted string: the text between the quotes as written, and its value.
    Quote(String, String),
    /// A domain literal, without the brackets.
    Literal(String),
    Comment(String),
    Special(char),
    Space(String),
}

impl Tok {
    /// How the token is written in a header.
    fn text(&self) -> String {
        match self {
            Tok::Atom(s) | Tok::Comment(s) | Tok::Space(s) => s.clone(),
            Tok::Quote(raw, _) => format!("\"{raw}\""),
            Tok::Literal(s) => format!("[{s}]"),
            Tok::Special(c) => c.to_string(),
        }
    }
    /// The token's value in an envelope address.
    fn value(&self) -> String {
        match self {
            Tok::Quote(_, v) => v.clone(),
            other => other.text(),
        }
    }
    fn is(&self, c: char) -> bool {
        *self == Tok::Special(c)
    }
    fn quoted(value: &str) -> Tok {
        let raw: String = value
            .chars()
            .flat_map(|c| {
                if c == '"' || c == '\\' {
                    vec!['\\', c]
                } else {
                    vec![c]
                }
            })
            .collect();
        Tok::Quote(raw, value.to_string())
    }
}

const SPECIALS: &str = "()<>@,;:\\\".[]";

/// Split a header value into tokens; `None` when a quote, comment or literal is not closed.
fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            let st = i;
            while i < cs.len() && cs[i].is_whitespace() {
                i += 1;
            }
            out.push(Tok::Space(cs[st..i].iter().collect()));
        } else if c == '"' {
            let (mut raw, mut val) = (String::new(), String::new());
            i += 1;
            loop {
                let ch = *cs.get(i)?;
                i += 1;
                match ch {
                    '"' => break,
                    '\\' => {
                        let n = *cs.get(i)?;
                        i += 1;
                        raw.push('\\');
                        raw.push(n);
                        val.push(n);
                    }
                    '\n' => {}
                    _ => {
                        raw.push(ch);
                        val.push(ch);
                    }
                }
            }
            out.push(Tok::Quote(raw, val));
        } else if c == '(' {
            let st = i;
            let mut depth = 0;
            loop {
                let ch = *cs.get(i)?;
                i += 1;
                match ch {
                    '\\' => i += 1,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            out.push(Tok::Comment(cs[st..i.min(cs.len())].iter().collect()));
        } else if c == '[' {
            let st = i + 1;
            while *cs.get(i)? != ']' {
                i += 1;
            }
            out.push(Tok::Literal(cs[st..i].iter().collect()));
            i += 1;
        } else if SPECIALS.contains(c) {
            out.push(Tok::Special(c));
            i += 1;
        } else {
            let st = i;
            while i < cs.len() && !cs[i].is_whitespace() && !SPECIALS.contains(cs[i]) {
                i += 1;
            }
            out.push(Tok::Atom(cs[st..i].iter().collect()));
        }
    }
    Some(out)
}

/// Tokens of a plain address given on the command line (qmail's quote2: the local part is
/// quoted when it is not a dot-atom).
fn address_tokens(addr: &str) -> Option<Vec<Tok>> {
    let (local, domain) = match addr.rfind('@') {
        Some(a) => (&addr[..a], Some(&addr[a + 1..])),
        None => (addr, None),
    };
    let mut toks = match tokenize(local) {
        Some(t) if t.iter().all(|t| matches!(t, Tok::Atom(_)) || t.is('.')) => t,
        _ if local.is_empty() => Vec::new(),
        _ => vec![Tok::quoted(local)],
    };
    if let Some(d) = domain {
        toks.push(Tok::Special('@'));
        toks.extend(
            tokenize(d)?
                .into_iter()
                .filter(|t| !matches!(t, Tok::Space(_))),
        );
    }
    Some(toks)
}

fn host_tokens(host: &str) -> Vec<Tok> {
    tokenize(host)
        .unwrap_or_else(|| vec![Tok::Atom(host.to_string())])
        .into_iter()
        .filter(|t| !matches!(t, Tok::Space(_) | Tok::Comment(_)))
        .collect()
}

/// qmail-inject's address rewriting (see the module documentation).
fn rw_generic(mut a: Vec<Tok>, cfg: &Config) -> Vec<Tok> {
    if a.is_empty() {
        return a;
    }
    let n = a.len();
    if n >= 2 && a[n - 1] == Tok::Literal(String::new()) && a[n - 2].is('@') {
        return a;
    }
    // Source route: @a,@b:user@host → user@host.
    if a[0].is('@') {
        match a.iter().position(|t| t.is(':')) {
            Some(c) => {
                a.drain(..=c);
            }
            None => a.clear(),
        }
    }
    if a.last().is_some_and(|t| t.is('.')) {
        a.pop();
    }
    if a.last().is_some_and(|t| t.is('@')) {
        a.pop();
    }
    if a.is_empty() {
        return a;
    }
    if !a.iter().any(|t| t.is('@')) {
        a.push(Tok::Special('@'));
        a.extend(host_tokens(&cfg.defaulthost));
    }
    if let Some(Tok::Atom(s)) = a.last_mut()
        && s.len() > 1
        && s.ends_with('+')
    {
        s.pop();
        a.push(Tok::Special('.'));
        a.extend(host_tokens(&cfg.plusdomain));
    }
    let at = a.iter().rposition(|t| t.is('@')).unwrap_or(0);
    let domain = &a[at..];
    if !domain
        .iter()
        .any(|t| t.is('.') || matches!(t, Tok::Literal(_)))
    {
        a.push(Tok::Special('.'));
        a.extend(host_tokens(&cfg.defaultdomain));
    }
    a
}

fn render(a: &[Tok]) -> String {
    a.iter().map(Tok::text).collect()
}

fn envelope(a: &[Tok]) -> String {
    a.iter().map(Tok::value).collect()
}

/// Rewrite every address of an address-list value. Returns the new value and the addresses in
/// envelope form; `None` when the value cannot be parsed.
fn rewrite_list(value: &str, cfg: &Config) -> Option<(String, Vec<String>)> {
    let toks = tokenize(value)?;
    let mut texts: Vec<String> = toks.iter().map(Tok::text).collect();
    let mut addrs = Vec::new();
    // Segments: mailboxes separated by top-level ',' and ';', after a group's "name:".
    let mut segments: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    let mut angle = false;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Special('<') => angle = true,
            Tok::Special('>') => angle = false,
            Tok::Special(',') | Tok::Special(';') if !angle => {
                segments.push((start, i));
                start = i + 1;
            }
            // A group's display name ends with ':' outside angle brackets (unless this is a
            // bare source route, which starts with '@').
            Tok::Special(':')
                if !angle
                    && !toks[start..i]
                        .iter()
                        .find(|t| !matches!(t, Tok::Space(_) | Tok::Comment(_)))
                        .is_some_and(|t| t.is('@')) =>
            {
                start = i + 1;
            }
            _ => {}
        }
    }
    segments.push((start, toks.len()));
    for (s, e) in segments {
        let sig: Vec<usize> = (s..e)
            .filter(|&i| !matches!(toks[i], Tok::Space(_) | Tok::Comment(_)))
            .collect();
        if sig.is_empty() {
            continue;
        }
        let inner: Vec<usize> = match sig.iter().position(|&i| toks[i].is('<')) {
            Some(lt) => {
                let gt = sig[lt..].iter().position(|&i| toks[i].is('>'))? + lt;
                sig[lt + 1..gt].to_vec()
            }
            None => sig,
        };
        let addr: Vec<Tok> = inner.iter().map(|&i| toks[i].clone()).collect();
        let new = rw_generic(addr.clone(), cfg);
        addrs.push(envelope(&new));
        if new != addr
            && let (Some(&first), Some(&last)) = (inner.first(), inner.last())
        {
            texts[first] = render(&new);
            for t in texts.iter_mut().take(last + 1).skip(first + 1) {
                t.clear();
            }
        }
    }
    Some((texts.concat(), addrs))
}

// ---------------------------------------------------------------------------------------------
// Header fields.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ToCc,
    Bcc,
    ApparentlyTo,
    ResentRcpt,
    ResentBcc,
    ReturnPath,
    Sender,
    ResentSender,
    Date,
    ResentDate,
    MessageId,
    ResentMessageId,
    ContentLength,
    Other,
}

fn kind(name: &str) -> Kind {
    match name.to_ascii_lowercase().as_str() {
        "to" | "cc" => Kind::ToCc,
        "bcc" => Kind::Bcc,
        "apparently-to" => Kind::ApparentlyTo,
        "resent-to" | "resent-cc" => Kind::ResentRcpt,
        "resent-bcc" => Kind::ResentBcc,
        "return-path" => Kind::ReturnPath,
        "sender" | "from" | "reply-to" | "return-receipt-to" | "errors-to" => Kind::Sender,
        "resent-sender" | "resent-from" | "resent-reply-to" => Kind::ResentSender,
        "date" => Kind::Date,
        "resent-date" => Kind::ResentDate,
        "message-id" => Kind::MessageId,
        "resent-message-id" => Kind::ResentMessageId,
        "content-length" => Kind::ContentLength,
        _ => Kind::Other,
    }
}

/// The field name of a header line, if the line starts a field.
fn field_name(line: &[u8]) -> Option<&str> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// Split a message into header fields (each with its continuation lines) and the body (from the
/// empty line on, or from the first line that is not part of the header).
fn split_message(msg: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>, bool) {
    let mut fields: Vec<Vec<u8>> = Vec::new();
    let mut pos = 0;
    while pos < msg.len() {
        let end = msg[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |p| pos + p + 1);
        let line = &msg[pos..end];
        if line == b"\n" || line == b"\r\n" {
            return (fields, msg[pos..].to_vec(), true);
        }
        if (line[0] == b' ' || line[0] == b'\t') && !fields.is_empty() {
            if let Some(f) = fields.last_mut() {
                f.extend_from_slice(line);
            }
        } else if field_name(line).is_some() {
            let mut l = line.to_vec();
            if !l.ends_with(b"\n") {
                l.push(b'\n');
            }
            fields.push(l);
        } else {
            return (fields, msg[pos..].to_vec(), false);
        }
        pos = end;
    }
    (fields, Vec::new(), true)
}

/// Everything qmail-inject needs from its environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub mailuser: String,
    pub mailhost: Option<String>,
    pub mailruser: String,
    pub mailrhost: Option<String>,
    pub fullname: Option<String>,
    pub name_comment: bool,
    pub delete_sender: bool,
    pub delete_from: bool,
    pub delete_messid: bool,
    pub hack_recip: bool,
    pub hack_mess: bool,
    /// Lower-cased addresses from $QMAILMFTFILE, when it exists.
    pub mft: Option<Vec<String>>,
}

impl Settings {
    /// From the environment variables.
    /// From the environment variables; an unreadable QMAILMFTFILE is an error naming it.
    pub fn from_env() -> Result<Settings, String> {
        let env = |n: &str| std::env::var(n).ok();
        let first = |names: &[&str]| names.iter().find_map(|n| env(n));
        let mailuser =
            first(&["QMAILUSER", "MAILUSER", "USER", "LOGNAME"]).unwrap_or("anonymous".into());
        let mailhost = first(&["QMAILHOST", "MAILHOST"]);
        let mut s = Settings {
            mailruser: env("QMAILSUSER").unwrap_or_else(|| mailuser.clone()),
            mailrhost: env("QMAILSHOST").or_else(|| mailhost.clone()),
            mailuser,
            mailhost,
            fullname: first(&["QMAILNAME", "MAILNAME", "NAME"]),
            ..Default::default()
        };
        for c in env("QMAILINJECT").unwrap_or_default().chars() {
            match c {
                'c' => s.name_comment = true,
                's' => s.delete_sender = true,
                'f' => s.delete_from = true,
                'i' => s.delete_messid = true,
                'r' => s.hack_recip = true,
                'm' => s.hack_mess = true,
                _ => {}
            }
        }
        if let Some(f) = env("QMAILMFTFILE") {
            match std::fs::read(&f) {
                Ok(b) => {
                    s.mft = Some(
                        b.split(|&c| c == b'\n')
                            .map(|l| latin1(l).trim_end().to_ascii_lowercase())
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .collect(),
                    )
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("unable to read {f}: {e}")),
            }
        }
        Ok(s)
    }
}

/// Which recipients to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Default,
    Args,
    Header,
    ArgsAndHeader,
}

/// The result of preparing a message.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub message: Vec<u8>,
    pub sender: Vec<u8>,
    pub recipients: Vec<Vec<u8>>,
}

/// Header bytes as a string, one char per byte, so that 8-bit text survives the rewriting
/// unchanged whatever its charset.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

/// The inverse of [`latin1`]; characters above U+00FF (from the command line or the
/// environment) are written in UTF-8.
fn unlatin1(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if (c as u32) < 256 {
            out.push(c as u32 as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// An input problem (exit 100) with its message.
#[derive(Debug, Clone)]
pub struct Bad(pub String);

/// Prepare a message: fix the header, work out envelope sender and recipients.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    input: &[u8],
    cfg: &Config,
    st: &Settings,
    strategy: Strategy,
    args: &[String],
    sender_arg: Option<&str>,
    now: std::time::SystemTime,
    pid: u32,
) -> Result<Prepared, Bad> {
    let strategy = match strategy {
        Strategy::Default if args.is_empty() => Strategy::Header,
        Strategy::Default => Strategy::Args,
        s => s,
    };
    let mut sender: Option<String> = match sender_arg {
        Some(f) => {
            let t =
                address_tokens(f).ok_or_else(|| Bad(format!("unable to parse address: {f}")))?;
            Some(envelope(&rw_generic(t, cfg)))
        }
        None => None,
    };
    let mut reciplist = Vec::new();
    if strategy != Strategy::Header {
        for a in args {
            let t =
                address_tokens(a).ok_or_else(|| Bad(format!("unable to parse address: {a}")))?;
            reciplist.push(envelope(&rw_generic(t, cfg)));
        }
    }

    let (fields, body, had_blank) = split_message(input);
    let mut seen = std::collections::HashSet::new();
    let mut has_to_cc = false;
    let mut has_rto_rcc = false;
    let mut hrlist = Vec::new();
    let mut hrrlist = Vec::new();
    let mut tocclist: Vec<String> = Vec::new();
    let mut saved: Vec<Vec<u8>> = Vec::new();
    for f in fields {
        let Some(name) = field_name(&f).map(str::to_string) else {
            continue;
        };
        let k = kind(&name);
        let lname = name.to_ascii_lowercase();
        if (st.delete_from && lname == "from")
            || (st.delete_messid && k == Kind::MessageId)
            || (st.delete_sender && k == Kind::ReturnPath)
        {
            continue;
        }
        seen.insert(lname.clone());
        if k == Kind::ToCc {
            has_to_cc = true;
        }
        if k == Kind::ResentRcpt {
            has_rto_rcc = true;
        }
        let rewrite = matches!(
            k,
            Kind::ToCc
                | Kind::Bcc
                | Kind::ApparentlyTo
                | Kind::ResentRcpt
                | Kind::ResentBcc
                | Kind::ReturnPath
                | Kind::Sender
                | Kind::ResentSender
        );
        let mut out = f.clone();
        if rewrite {
            let text = latin1(&f);
            let value = text[name.len() + 1..].trim_end_matches('\n');
            let may_fail = matches!(
                k,
                Kind::ToCc | Kind::Bcc | Kind::ApparentlyTo | Kind::ResentRcpt | Kind::ResentBcc
            );
            match rewrite_list(value, cfg) {
                Some((new, addrs)) => {
                    out = unlatin1(&format!("{name}:{new}\n"));
                    match k {
                        Kind::ToCc => {
                            tocclist.extend(addrs.iter().cloned());
                            hrlist.extend(addrs);
                        }
                        Kind::Bcc | Kind::ApparentlyTo => hrlist.extend(addrs),
                        Kind::ResentRcpt | Kind::ResentBcc => hrrlist.extend(addrs),
                        Kind::ReturnPath => {
                            if sender.is_none()
                                && let Some(a) = addrs.into_iter().next()
                            {
                                sender = Some(if st.hack_recip { a + "-@[]" } else { a });
                            }
                        }
                        _ => {}
                    }
                }
                None if may_fail => {}
                None => {
                    return Err(Bad(format!(
                        "unable to parse this line:\n{}",
                        text.trim_end_matches('\n')
                    )));
                }
            }
        }
        if matches!(
            k,
            Kind::Bcc | Kind::ResentBcc | Kind::ReturnPath | Kind::ContentLength
        ) {
            continue;
        }
        saved.push(out);
    }
    let resent = [
        "resent-sender",
        "resent-from",
        "resent-reply-to",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "resent-date",
        "resent-message-id",
    ]
    .iter()
    .any(|n| seen.contains(*n));

    let sender = match sender {
        Some(s) => s,
        None => {
            let mut user = st.mailruser.clone();
            if st.hack_mess {
                let secs = now
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                user.push_str(&format!("-{secs}.{pid}"));
            }
            if st.hack_recip {
                user.push('-');
            }
            let mut t = vec![Tok::quoted(&user)];
            if let Some(h) = &st.mailrhost {
                t.push(Tok::Special('@'));
                t.extend(host_tokens(h));
            }
            let mut s = envelope(&rw_generic(t, cfg));
            if st.hack_recip {
                s.push_str("-@[]");
            }
            s
        }
    };

    let mut head = Vec::new();
    let prefix = if resent { "Resent-" } else { "" };
    let (date_seen, id_seen, from_seen, rcpt_seen) = if resent {
        (
            seen.contains("resent-date"),
            seen.contains("resent-message-id"),
            seen.contains("resent-from"),
            has_rto_rcc,
        )
    } else {
        (
            seen.contains("date"),
            seen.contains("message-id"),
            seen.contains("from"),
            has_to_cc,
        )
    };
    if !date_seen {
        head.push(format!("{prefix}Date: {}\n", crate::util::date822fmt(now)));
    }
    if !id_seen {
        let dt: chrono::DateTime<chrono::Utc> = now.into();
        head.push(format!(
            "{prefix}Message-ID: <{}.{pid}.qmail@{}>\n",
            dt.format("%Y%m%d%H%M%S"),
            cfg.idhost
        ));
    }
    if !from_seen {
        head.push(format!("{prefix}From: {}\n", default_from(cfg, st)));
    }
    if !rcpt_seen {
        head.push(format!("{prefix}Cc: recipient list not shown: ;\n"));
    }
    if !resent
        && !seen.contains("mail-followup-to")
        && let Some(lists) = &st.mft
        && tocclist
            .iter()
            .any(|a| lists.contains(&a.to_ascii_lowercase()))
    {
        // As qmail-inject: the To and Cc addresses, last first.
        let addrs: Vec<String> = tocclist.iter().rev().map(|a| quote_addr(a)).collect();
        head.push(format!("Mail-Followup-To: {}\n", addrs.join(",\n  ")));
    }

    let mut message = Vec::with_capacity(input.len() + 256);
    for h in head {
        message.extend_from_slice(h.as_bytes());
    }
    for s in saved {
        message.extend_from_slice(&s);
    }
    if !had_blank {
        message.push(b'\n');
    }
    message.extend_from_slice(&body);

    let mut recipients = reciplist;
    if strategy != Strategy::Args {
        recipients.extend(if resent { hrrlist } else { hrlist });
    }
    recipients.retain(|r| !r.is_empty());
    Ok(Prepared {
        message,
        sender: unlatin1(&sender),
        recipients: recipients.iter().map(|r| unlatin1(r)).collect(),
    })
}

/// An envelope address written for a header: the local part quoted when it is not a dot-atom.
fn quote_addr(a: &str) -> String {
    let (local, domain) = match a.rfind('@') {
        Some(i) => (&a[..i], Some(&a[i + 1..])),
        None => (a, None),
    };
    let plain = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_graphic() && (c == '.' || !SPECIALS.contains(c)));
    let l = if plain {
        local.to_string()
    } else {
        Tok::quoted(local).text()
    };
    match domain {
        Some(d) => format!("{l}@{d}"),
        None => l,
    }
}

/// The From field added when the message has none.
fn default_from(cfg: &Config, st: &Settings) -> String {
    let user = match address_tokens(&st.mailuser) {
        Some(t) if !t.iter().any(|t| t.is('@')) && !t.is_empty() => t,
        _ => vec![Tok::quoted(&st.mailuser)],
    };
    let mut addr = user;
    if let Some(h) = &st.mailhost {
        addr.push(Tok::Special('@'));
        addr.extend(host_tokens(h));
    }
    let addr = render(&rw_generic(addr, cfg));
    match &st.fullname {
        Some(n) if !st.name_comment => format!("{} <{addr}>", Tok::quoted(n).text()),
        Some(n) => format!("{addr} ({})", n.replace(['(', ')', '\\'], "")),
        None => addr,
    }
}

fn die(code: i32, msg: &str) -> i32 {
    eprintln!("qmail-inject: fatal: {msg}");
    code
}

/// The program; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let start = std::time::SystemTime::now();
    let mut strategy = Strategy::Default;
    let mut queue = true;
    let mut sender: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        let cs: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < cs.len() {
            match cs[j] {
                'a' => strategy = Strategy::Args,
                'A' => strategy = Strategy::Default,
                'h' => strategy = Strategy::Header,
                'H' => strategy = Strategy::ArgsAndHeader,
                'n' => queue = false,
                'N' => queue = true,
                'f' => {
                    let rest: String = cs[j + 1..].iter().collect();
                    if rest.is_empty() {
                        i += 1;
                        match args.get(i) {
                            Some(v) => sender = Some(v.clone()),
                            None => return usage(),
                        }
                    } else {
                        sender = Some(rest);
                    }
                    j = cs.len();
                    continue;
                }
                _ => return usage(),
            }
            j += 1;
        }
        i += 1;
    }
    let recips = &args[i.min(args.len())..];
    let cfg = match Config::load(&Control::new()) {
        Ok(c) => c,
        Err(e) => return die(EXIT_TEMP, &e.to_string()),
    };
    let mut input = Vec::new();
    if std::io::stdin().lock().read_to_end(&mut input).is_err() {
        return die(EXIT_TEMP, "read error");
    }
    let st = match Settings::from_env() {
        Ok(s) => s,
        Err(m) => return die(EXIT_TEMP, &m),
    };
    let p = match prepare(
        &input,
        &cfg,
        &st,
        strategy,
        recips,
        sender.as_deref(),
        start,
        std::process::id(),
    ) {
        Ok(p) => p,
        Err(Bad(m)) => return die(EXIT_PERM, &m),
    };
    if !queue {
        let mut out = std::io::stdout().lock();
        let r = out
            .write_all(b"Return-Path: <")
            .and_then(|_| out.write_all(&p.sender))
            .and_then(|_| out.write_all(b">\n"))
            .and_then(|_| out.write_all(&p.message))
            .and_then(|_| out.flush());
        return if r.is_ok() {
            0
        } else {
            die(EXIT_TEMP, "write error")
        };
    }
    if p.recipients.is_empty() {
        return die(EXIT_PERM, "no recipients");
    }
    queue_message(&p, "qmail-inject")
}

/// Hand a prepared message to qmail-queue; returns the exit code, printing failures as `prog`.
pub fn queue_message(p: &Prepared, prog: &str) -> i32 {
    let mut qq = match crate::qq::QueueClient::open() {
        Ok(q) => q,
        Err(_) => {
            eprintln!("{prog}: fatal: unable to run qmail-queue");
            return EXIT_TEMP;
        }
    };
    // A write error shows up as a failure in finish().
    let _ = qq.write_all(&p.message);
    match qq.finish(&p.sender, &p.recipients) {
        crate::qq::QueueResult::Ok => 0,
        crate::qq::QueueResult::Temporary(t) => {
            eprintln!("{prog}: fatal: {t}");
            EXIT_TEMP
        }
        crate::qq::QueueResult::Permanent(t) => {
            eprintln!("{prog}: fatal: {t}");
            EXIT_PERM
        }
    }
}

fn usage() -> i32 {
    eprintln!("qmail-inject: usage: qmail-inject [ -nNaAhH ] [ -fsender ] [ arg ... ]");
    EXIT_PERM
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            defaultdomain: "example.org".into(),
            defaulthost: "mail.example.org".into(),
            plusdomain: "example.org".into(),
            idhost: "id.example.org".into(),
        }
    }

    fn rw(a: &str) -> String {
        envelope(&rw_generic(address_tokens(a).unwrap(), &cfg()))
    }

    #[test]
    fn rewriting_like_qmail_inject() {
        assert_eq!(rw("joe"), "joe@mail.example.org");
        assert_eq!(rw("joe@host"), "joe@host.example.org");
        assert_eq!(rw("joe@host+"), "joe@host.example.org");
        assert_eq!(rw("joe@a.b"), "joe@a.b");
        assert_eq!(rw("joe@a.b."), "joe@a.b");
        assert_eq!(rw("joe@"), "joe@mail.example.org");
        assert_eq!(rw("joe@[1.2.3.4]"), "joe@[1.2.3.4]");
        assert_eq!(rw("a b@c.d"), "a b@c.d");
        assert_eq!(rw(""), "");
        let (v, a) = rewrite_list(
            " Joe <joe>, \"x, y\" <x@y.z> (c), <@r1,@r2:u@h.i>, grp: a@b.c, d;",
            &cfg(),
        )
        .unwrap();
        assert_eq!(
            v,
            " Joe <joe@mail.example.org>, \"x, y\" <x@y.z> (c), <u@h.i>, grp: a@b.c, d@mail.example.org;"
        );
        assert_eq!(
            a,
            [
                "joe@mail.example.org",
                "x@y.z",
                "u@h.i",
                "a@b.c",
                "d@mail.example.org"
            ]
        );
        let (v, _) = rewrite_list(" a,\n\tb (x)\n", &cfg()).unwrap();
        assert_eq!(v, " a@mail.example.org,\n\tb@mail.example.org (x)\n");
        let (_, a) = rewrite_list(" undisclosed-recipients: ;", &cfg()).unwrap();
        assert!(a.is_empty());
        assert!(rewrite_list(" \"unterminated", &cfg()).is_none());
    }
}
