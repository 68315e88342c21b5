//! Error texts as daemontools prints them (`error_str`): admins' scripts match on
//! "file does not exist", "temporary failure", "access denied", …

use std::io;

/// The daemontools wording for an errno.
pub fn errno_str(errno: i32) -> String {
    match crate::shared::errno_words(errno) {
        Some(s) => s.to_string(),
        None => io::Error::from_raw_os_error(errno)
            .to_string()
            .to_lowercase(),
    }
}

/// The daemontools wording for an I/O error.
pub fn err_str(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_str(n),
        None => e.to_string(),
    }
}

/// The daemontools wording for a nix errno.
pub fn nix_str(e: nix::errno::Errno) -> String {
    errno_str(e as i32)
}
