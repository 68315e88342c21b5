//! svscan: one supervise per service directory, with the service→log pipe; svscanboot and
//! readproctitle for boot scripts.

pub mod readproctitle;
pub mod svscan;
pub mod svscanboot;

use std::path::PathBuf;

/// A sibling program: next to the running executable when it is there, else found on `$PATH`.
pub fn sibling(name: &str) -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from(name)
}
