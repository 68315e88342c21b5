//! Bounce messages, as qmail-send writes them (qmail's injectbounce).
//!
//! A failed recipient's report is appended to `queue/bounce/N` as "<addr>:\n" + the text (ending
//! in "\n", a blank line inside becoming "/") + an empty line. When the bounce is sent, that text
//! goes into a message with qmail's exact wording ("Hi. This is the qmail-send program at …"),
//! followed by the original message with a Return-Path line. A single bounce (the original
//! sender is not empty) goes from "" to the sender; a double bounce (the original sender is "")
//! goes from "#@[]" to doublebounceto@doublebouncehost; a bounce of a double bounce (sender
//! "#@[]") is dropped: "triple bounce".

use std::io::{Read, Write};
use std::path::Path;

/// Settings from control/: bouncefrom, bouncehost, doublebounceto, doublebouncehost.
#[derive(Debug, Clone)]
pub struct BounceConfig {
    pub bouncefrom: String,
    pub bouncehost: String,
    pub doublebounceto: String,
    pub doublebouncehost: String,
}

/// The outcome of trying to send the bounce for one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Queued; the value is the qp of the new message.
    Injected(u32),
    /// The message was itself a double bounce: the text is dropped.
    Triple,
    /// qmail-queue failed or could not be run; try again later.
    Failed(String),
}

/// The text block for one failed recipient, as appended to bounce/N.
pub fn block(addr: &[u8], text: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(addr.len() + text.len() + 8);
    v.push(b'<');
    v.extend_from_slice(addr);
    v.extend_from_slice(b">:\n");
    let mut prev = b'\n';
    for &c in text {
        if c == b'\n' && prev == b'\n' {
            v.push(b'/');
        }
        v.push(c);
        prev = c;
    }
    if prev != b'\n' {
        v.push(b'\n');
    }
    v.push(b'\n');
    v
}

fn needs_quoting(local: &[u8]) -> bool {
    local.is_empty()
        || local[0] == b'.'
        || local[local.len() - 1] == b'.'
        || local.windows(2).any(|w| w == b"..")
        || local
            .iter()
            .any(|&c| !(33..=126).contains(&c) || b"()<>,;:\\\"[]@".contains(&c))
}

/// qmail's quote(): quote the local part when it is not a plain dot-atom.
pub fn quote(addr: &[u8]) -> Vec<u8> {
    let at = addr.iter().rposition(|&b| b == b'@');
    let (local, rest) = match at {
        Some(i) => (&addr[..i], &addr[i..]),
        None => (addr, &b""[..]),
    };
    if addr.is_empty() || !needs_quoting(local) {
        return addr.to_vec();
    }
    let mut v = vec![b'"'];
    for &c in local {
        if c == b'"' || c == b'\\' {
            v.push(b'\\');
        }
        v.push(c);
    }
    v.push(b'"');
    v.extend_from_slice(rest);
    v
}

/// Envelope (sender, recipient) of the bounce for a message from `sender`; `None` for a triple
/// bounce.
pub fn envelope(sender: &[u8], cfg: &BounceConfig) -> Option<(Vec<u8>, Vec<u8>)> {
    if sender == b"#@[]" {
        return None;
    }
    if sender.is_empty() {
        let to = format!("{}@{}", cfg.doublebounceto, cfg.doublebouncehost).into_bytes();
        return Some((b"#@[]".to_vec(), to));
    }
    let to = sender.strip_suffix(b"-@[]").unwrap_or(sender).to_vec();
    Some((Vec::new(), to))
}

/// The bounce message text up to the copy of the original (which follows a Return-Path line).
pub fn head(
    sender: &[u8],
    to: &[u8],
    blocks: &[u8],
    cfg: &BounceConfig,
    now: std::time::SystemTime,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(blocks.len() + 600);
    m.extend_from_slice(format!("Date: {}\n", crate::util::date822fmt(now)).as_bytes());
    m.extend_from_slice(format!("From: {}@{}\nTo: ", cfg.bouncefrom, cfg.bouncehost).as_bytes());
    m.extend_from_slice(&quote(to));
    m.extend_from_slice(b"\nSubject: failure notice\n\n");
    m.extend_from_slice(
        format!(
            "Hi. This is the qmail-send program at {}.\n",
            cfg.bouncehost
        )
        .as_bytes(),
    );
    if sender.is_empty() {
        m.extend_from_slice(
            b"I tried to deliver a bounce message to this address, but the bounce bounced!\n\n",
        );
    } else {
        m.extend_from_slice(
            b"I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\n",
        );
    }
    m.extend_from_slice(blocks);
    if sender.is_empty() {
        m.extend_from_slice(b"--- Below this line is the original bounce.\n\n");
    } else {
        m.extend_from_slice(b"--- Below this line is a copy of the message.\n\n");
    }
    m.extend_from_slice(b"Return-Path: <");
    m.extend_from_slice(&quote(sender));
    m.extend_from_slice(b">\n");
    m
}

/// Send the bounce for a message: `blocks` from bounce/N, the original in `mess`.
pub fn inject(sender: &[u8], blocks: &[u8], mess: &Path, cfg: &BounceConfig) -> Outcome {
    let Some((bsender, to)) = envelope(sender, cfg) else {
        return Outcome::Triple;
    };
    let mut orig = match std::fs::File::open(mess) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(format!("unable to open {}: {e}", mess.display())),
    };
    let mut qq = match crate::qq::QueueClient::open() {
        Ok(q) => q,
        Err(e) => return Outcome::Failed(format!("unable to start qmail-queue: {e}")),
    };
    let qp = qq.pid();
    let h = head(sender, &to, blocks, cfg, std::time::SystemTime::now());
    let mut ok = qq.write_all(&h).is_ok();
    let mut buf = vec![0u8; 64 * 1024];
    while ok {
        match orig.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => ok = qq.write_all(&buf[..k]).is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => ok = false,
        }
    }
    if !ok {
        qq.abort();
        return Outcome::Failed("trouble copying the message".into());
    }
    match qq.finish(&bsender, &[to]) {
        crate::qq::QueueResult::Ok => Outcome::Injected(qp),
        r => Outcome::Failed(r.report()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BounceConfig {
        BounceConfig {
            bouncefrom: "MAILER-DAEMON".into(),
            bouncehost: "mail.example.org".into(),
            doublebounceto: "postmaster".into(),
            doublebouncehost: "example.org".into(),
        }
    }

    #[test]
    fn blocks_and_envelopes() {
        assert_eq!(
            block(
                b"nobody@example.org",
                b"Sorry, no mailbox here by that name. (#5.1.1)\n"
            ),
            b"<nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        );
        assert_eq!(block(b"a@b", b"x\n\ny"), b"<a@b>:\nx\n/\ny\n\n");
        assert_eq!(envelope(b"#@[]", &cfg()), None);
        assert_eq!(
            envelope(b"", &cfg()),
            Some((b"#@[]".to_vec(), b"postmaster@example.org".to_vec()))
        );
        assert_eq!(
            envelope(b"x-@host-@[]", &cfg()),
            Some((b"".to_vec(), b"x-@host".to_vec()))
        );
        assert_eq!(quote(b"a b@c"), b"\"a b\"@c");
        assert_eq!(quote(b"alice@example.org"), b"alice@example.org");
    }

    #[test]
    fn head_has_qmails_words() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_200_045);
        let h = head(
            b"alice@example.org",
            b"alice@example.org",
            b"<n@x>:\nno\n\n",
            &cfg(),
            t,
        );
        let h = String::from_utf8(h).unwrap();
        assert_eq!(
            h,
            "Date: 26 Nov 2025 23:34:05 -0000\nFrom: MAILER-DAEMON@mail.example.org\n\
To: alice@example.org\nSubject: failure notice\n\n\
Hi. This is the qmail-send program at mail.example.org.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
<n@x>:\nno\n\n--- Below this line is a copy of the message.\n\n\
Return-Path: <alice@example.org>\n"
        );
        let d = String::from_utf8(head(b"", b"pm@x", b"", &cfg(), t)).unwrap();
        assert!(d.contains("but the bounce bounced!\n\n--- Below this line is the original bounce.\n\nReturn-Path: <>\n"));
    }
}
