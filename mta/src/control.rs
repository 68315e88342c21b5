//! Reading qmail control files (qmail-control(5)).
//!
//! Rules, as qmail's control.c: a single-value file uses its first line with trailing
//! white space removed; a list file yields its non-empty lines, each with trailing white space
//! removed; lines starting with `#` are comments in list files. A missing file gives the default;
//! any other error reading it is reported with the file name (callers turn that into a
//! temporary failure, e.g. qmail-queue exit 55 or an SMTP 421).

use std::io;
use std::path::{Path, PathBuf};

/// Error for one control file, naming it.
#[derive(Debug)]
pub struct ControlError {
    pub path: PathBuf,
    pub what: String,
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unable to read {}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for ControlError {}

/// A view of one control directory (normally `QMAILHOME/control`).
#[derive(Debug, Clone)]
pub struct Control {
    dir: PathBuf,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    /// The control directory of the current qmail home.
    pub fn new() -> Self {
        Control {
            dir: crate::home::control_dir(),
        }
    }

    /// A control directory somewhere else (tests, `qmail-showctl` of another home).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Control { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Raw bytes of a control file, `None` when it does not exist.
    pub fn read_raw(&self, name: &str) -> Result<Option<Vec<u8>>, ControlError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ControlError {
                path,
                what: e.to_string(),
            }),
        }
    }

    /// First line of a control file (trailing white space removed), `None` if the file is
    /// missing. An existing empty file gives `Some("")`.
    pub fn line(&self, name: &str) -> Result<Option<String>, ControlError> {
        Ok(self.read_raw(name)?.map(|b| {
            let first = b.split(|&c| c == b'\n').next().unwrap_or(&[]);
            String::from_utf8_lossy(first).trim_end().to_string()
        }))
    }

    /// First line, or `default` when the file is missing or its first line is empty.
    pub fn line_or(&self, name: &str, default: &str) -> Result<String, ControlError> {
        Ok(match self.line(name)? {
            Some(s) if !s.is_empty() => s,
            _ => default.to_string(),
        })
    }

    /// An integer control file (e.g. `databytes`, `timeoutsmtpd`), `default` when missing or
    /// empty. A value that is not a number is an error naming the file.
    pub fn int_or(&self, name: &str, default: u64) -> Result<u64, ControlError> {
        match self.line(name)? {
            None => Ok(default),
            Some(s) if s.trim().is_empty() => Ok(default),
            Some(s) => s.trim().parse::<u64>().map_err(|_| ControlError {
                path: self.path(name),
                what: format!("line 1: {s:?} is not a number"),
            }),
        }
    }

    /// The lines of a list file (`locals`, `rcpthosts`, `smtproutes`, …): empty lines and
    /// `#` comments skipped, trailing white space removed. `None` when the file is missing.
    pub fn lines(&self, name: &str) -> Result<Option<Vec<String>>, ControlError> {
        Ok(self.read_raw(name)?.map(|b| {
            b.split(|&c| c == b'\n')
                .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect()
        }))
    }

    /// Like [`Control::lines`], an empty list when the file is missing.
    pub fn lines_or_empty(&self, name: &str) -> Result<Vec<String>, ControlError> {
        Ok(self.lines(name)?.unwrap_or_default())
    }

    /// `me`, the fallback for most host names; "localhost" style fallback is the caller's.
    pub fn me(&self) -> Result<Option<String>, ControlError> {
        Ok(self.line("me")?.filter(|s| !s.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_ints_and_defaults() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("me"), "mail.example.org  \nignored\n").unwrap();
        std::fs::write(d.path().join("locals"), "a.org\n\n# c\nb.org \n").unwrap();
        std::fs::write(d.path().join("databytes"), "12x\n").unwrap();
        std::fs::write(d.path().join("timeoutsmtpd"), "1200\n").unwrap();
        let c = Control::at(d.path());
        assert_eq!(c.me().unwrap().as_deref(), Some("mail.example.org"));
        assert_eq!(c.lines("locals").unwrap().unwrap(), vec!["a.org", "b.org"]);
        assert!(c.lines("rcpthosts").unwrap().is_none());
        assert_eq!(c.int_or("timeoutsmtpd", 5).unwrap(), 1200);
        assert_eq!(c.int_or("nothere", 5).unwrap(), 5);
        let e = c.int_or("databytes", 0).unwrap_err().to_string();
        assert!(e.contains("databytes") && e.contains("not a number"), "{e}");
        assert_eq!(c.line_or("defaulthost", "x").unwrap(), "x");
    }
}
