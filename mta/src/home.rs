//! Where the qmail home lives.
//!
//! Every program finds it the same way: the compiled-in default `/var/qmail`, overridden by the
//! environment variable `QMAILHOME`, so tests and the demo run in a temporary root.

use std::path::PathBuf;

/// The compiled-in default home.
pub const DEFAULT_HOME: &str = "/var/qmail";

/// The qmail home directory: `$QMAILHOME` when set and non-empty, else `/var/qmail`.
pub fn qmail_home() -> PathBuf {
    match std::env::var_os("QMAILHOME") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_HOME),
    }
}

/// `QMAILHOME/control`.
pub fn control_dir() -> PathBuf {
    qmail_home().join("control")
}

/// `QMAILHOME/queue`.
pub fn queue_dir() -> PathBuf {
    qmail_home().join("queue")
}

/// `QMAILHOME/bin/NAME`: where the installed programs live.
pub fn bin(name: &str) -> PathBuf {
    qmail_home().join("bin").join(name)
}
