//! The `supervise/control` and `supervise/ok` fifos. A client writes one byte per command to
//! `control` (opened write-only, non-blocking: ENXIO means no supervise has it open for
//! reading); opening `ok` for writing tells whether a supervise is running.

use nix::errno::Errno;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Every command letter supervise understands, in svc's option order.
pub const COMMANDS: &[u8] = b"udopchaitkx12";

/// The signal a command letter delivers to the service (for the pure signal letters).
pub fn signal_for(c: u8) -> Option<nix::sys::signal::Signal> {
    crate::shared::signal_for_letter(c).and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
}

/// Open a fifo for writing without blocking; `Err(ENXIO)` when nobody reads it.
pub fn open_write_nb(path: &Path) -> Result<File, Errno> {
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Whether a supervise is running on the service whose supervise directory is `supdir`:
/// `Ok(true)` running, `Ok(false)` not (ENXIO, or no ok fifo), `Err` other errors.
pub fn supervise_running(supdir: &Path) -> Result<bool, Errno> {
    match open_write_nb(&supdir.join("ok")) {
        Ok(_) => Ok(true),
        Err(Errno::ENXIO) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Send command letters to `supdir/control`.
pub fn send(supdir: &Path, cmds: &[u8]) -> Result<(), SendError> {
    let mut f = open_write_nb(&supdir.join("control")).map_err(SendError::Open)?;
    std::io::Write::write_all(&mut f, cmds).map_err(SendError::Write)
}

#[derive(Debug)]
pub enum SendError {
    Open(Errno),
    Write(std::io::Error),
}
