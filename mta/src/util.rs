//! Small shared helpers: qmail's date format and directory fsync.

use std::io;
use std::path::Path;

/// qmail's date822fmt: "24 Nov 2026 23:14:05 -0000" — day without a leading zero, GMT.
pub fn date822fmt(t: std::time::SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%-d %b %Y %H:%M:%S -0000").to_string()
}

/// fsync a directory, so that a link, rename or unlink inside it is on disk.
///
/// qmail assumed BSD's synchronous directory updates; Linux file systems need this call for
/// the queue's guarantee to hold.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date822_has_no_leading_zero() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_764_200_045);
        assert_eq!(date822fmt(t), "26 Nov 2025 23:34:05 -0000");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_762_041_600);
        assert_eq!(date822fmt(t), "2 Nov 2025 00:00:00 -0000");
    }
}
