//! Who owns a local address: users/cdb (from users/assign by qmail-newu), then the password
//! file with qmail-getpw's rules, then the alias user — as qmail-lspawn does.
//!
//! Contract used by `lspawn` (filled in by the local-delivery work):
//! `lookup(local)` returns the user, uid, gid, home, dash and extension for the local part of
//! an address, or `Ok(None)` when even the alias user is missing ("Unable to find alias user!").

/// What qmail-lspawn needs to run qmail-local for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
    /// "" or "-" (the dash that separates user and extension).
    pub dash: String,
    pub ext: String,
}

/// Errors that lspawn reports as temporary failures.
#[derive(Debug)]
pub enum LookupError {
    /// users/cdb exists but cannot be read (lspawn exit 117 text).
    UsersCdb(String),
    /// Any other system trouble (lspawn exit 118/121 texts).
    System(String),
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::UsersCdb(s) | LookupError::System(s) => f.write_str(s),
        }
    }
}

/// Look up the owner of local part `local` (already lower-cased as qmail-send hands it).
pub fn lookup(local: &str) -> Result<Option<Assignment>, LookupError> {
    let _ = local;
    Err(LookupError::System("users lookup not yet written".into()))
}
