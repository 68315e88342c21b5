//! The client side of qmail-queue (qmail's qmail.c), used by every program that queues mail:
//! qmail-smtpd, qmail-inject/sendmail, qmail-local (forwards) and qmail-send (bounces).
//!
//! It runs `$QMAILQUEUE` when set, else `QMAILHOME/bin/qmail-queue`, hands it the message on the
//! child's fd 0 and the envelope on the child's fd 1, and turns the exit code into qmail's
//! `Z…`/`D…` texts.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The program that queues: `$QMAILQUEUE` or `QMAILHOME/bin/qmail-queue`.
pub fn qmail_queue_program() -> PathBuf {
    match std::env::var_os("QMAILQUEUE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::home::bin("qmail-queue"),
    }
}

/// The outcome of handing a message to qmail-queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueResult {
    /// Queued (exit 0).
    Ok,
    /// Temporary failure: qmail's text without the leading `Z`, e.g.
    /// "qq write error or disk full (#4.3.0)".
    Temporary(String),
    /// Permanent failure: text without the leading `D`.
    Permanent(String),
}

impl QueueResult {
    /// qmail's report form: "" for success, else `Z…`/`D…`.
    pub fn report(&self) -> String {
        match self {
            QueueResult::Ok => String::new(),
            QueueResult::Temporary(t) => format!("Z{t}"),
            QueueResult::Permanent(t) => format!("D{t}"),
        }
    }
}

/// Map a qmail-queue exit code to qmail.c's result.
pub fn exit_code_result(code: i32) -> QueueResult {
    use QueueResult::*;
    let t = |s: &str| Temporary(s.to_string());
    let p = |s: &str| Permanent(s.to_string());
    match code {
        0 => Ok,
        11 | 115 => p("envelope address too long for qq (#5.1.3)"),
        31 => p("mail server permanently rejected message (#5.3.0)"),
        51 => t("qq out of memory (#4.3.0)"),
        52 => t("qq timeout (#4.3.0)"),
        53 => t("qq write error or disk full (#4.3.0)"),
        54 => t("qq read error (#4.3.0)"),
        55 => t("qq unable to read configuration (#4.3.0)"),
        56 => t("qq trouble making network connection (#4.3.0)"),
        61 => t("qq trouble in home directory (#4.3.0)"),
        62..=66 => t("qq trouble creating files in queue (#4.3.0)"),
        71 => t("mail server temporarily rejected message (#4.3.0)"),
        72 => t("connection to mail server timed out (#4.4.1)"),
        73 => t("connection to mail server rejected (#4.4.1)"),
        74 => t("communication with mail server failed (#4.4.2)"),
        81 | 91 => t("qq internal bug (#4.3.0)"),
        120 => t("unable to exec qq (#4.3.0)"),
        12..=40 => p("qq permanent problem (#5.3.0)"),
        _ => t("qq temporary problem (#4.3.0)"),
    }
}

/// A running qmail-queue: write the message with [`Write`], then call [`QueueClient::finish`]
/// with the envelope.
pub struct QueueClient {
    child: Child,
    message: Option<ChildStdin>,
    envelope: Option<std::fs::File>,
    write_failed: bool,
}

impl QueueClient {
    /// Start qmail-queue (or `$QMAILQUEUE`).
    pub fn open() -> io::Result<Self> {
        Self::open_program(qmail_queue_program())
    }

    /// Start a given queue program.
    pub fn open_program(program: PathBuf) -> io::Result<Self> {
        // O_CLOEXEC: the child must not inherit our write end, or it would never see EOF.
        let (env_read, env_write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let child = Command::new(&program)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_read))
            .spawn()?;
        let mut child = child;
        let message = child.stdin.take();
        Ok(QueueClient {
            child,
            message,
            envelope: Some(std::fs::File::from(env_write)),
            write_failed: false,
        })
    }

    /// The qmail-queue process id: the "qp" that qmail-send logs for bounces.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Finish: close the message, write the envelope (`F`sender`\0`, `T`rcpt`\0`…, `\0`) and
    /// wait for qmail-queue's verdict.
    pub fn finish<S: AsRef<[u8]>>(mut self, sender: &[u8], recipients: &[S]) -> QueueResult {
        if let Some(mut m) = self.message.take()
            && m.flush().is_err()
        {
            self.write_failed = true;
        }
        if let Some(mut env) = self.envelope.take() {
            let mut buf = Vec::with_capacity(64);
            buf.push(b'F');
            buf.extend_from_slice(sender);
            buf.push(0);
            for r in recipients {
                buf.push(b'T');
                buf.extend_from_slice(r.as_ref());
                buf.push(0);
            }
            buf.push(0);
            if env.write_all(&buf).is_err() {
                self.write_failed = true;
            }
        }
        let status = loop {
            match self.child.wait() {
                Ok(s) => break s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return QueueResult::Temporary("qq crashed (#4.3.0)".into()),
            }
        };
        match status.code() {
            None => QueueResult::Temporary("qq crashed (#4.3.0)".into()),
            Some(0) if self.write_failed => QueueResult::Temporary("qq read error (#4.3.0)".into()),
            Some(c) => exit_code_result(c),
        }
    }

    /// Give up: qmail-queue sees EOF before the envelope's final `\0` and queues nothing.
    pub fn abort(mut self) {
        drop(self.message.take());
        drop(self.envelope.take());
        let _ = self.child.wait();
    }
}

impl Write for QueueClient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.message.as_mut() {
            Some(m) => match m.write(buf) {
                Ok(n) => Ok(n),
                Err(e) => {
                    self.write_failed = true;
                    Err(e)
                }
            },
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "message closed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.message.as_mut() {
            Some(m) => m.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_like_qmail() {
        assert_eq!(exit_code_result(0), QueueResult::Ok);
        assert_eq!(
            exit_code_result(53).report(),
            "Zqq write error or disk full (#4.3.0)"
        );
        assert_eq!(
            exit_code_result(11).report(),
            "Denvelope address too long for qq (#5.1.3)"
        );
        assert_eq!(
            exit_code_result(35).report(),
            "Dqq permanent problem (#5.3.0)"
        );
        assert_eq!(
            exit_code_result(99).report(),
            "Zqq temporary problem (#4.3.0)"
        );
        assert_eq!(
            exit_code_result(64).report(),
            "Zqq trouble creating files in queue (#4.3.0)"
        );
    }

    #[test]
    fn hands_message_and_envelope_to_the_program() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("fakeqq");
        let out = d.path().join("out");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat > {0}.msg\ncat <&1 > {0}.env\nexit 0\n",
                out.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = QueueClient::open_program(script).unwrap();
        c.write_all(b"Subject: hi\n\nbody\n").unwrap();
        let r = c.finish(b"a@b", &["c@d", "e@f"]);
        assert_eq!(r, QueueResult::Ok);
        assert_eq!(
            std::fs::read(format!("{}.msg", out.display())).unwrap(),
            b"Subject: hi\n\nbody\n"
        );
        assert_eq!(
            std::fs::read(format!("{}.env", out.display())).unwrap(),
            b"Fa@b\0Tc@d\0Te@f\0\0"
        );
    }
}
