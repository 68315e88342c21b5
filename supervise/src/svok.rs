//! `svok DIR`: exit 0 when a supervise is running on DIR, 100 when not, 111 (with a message)
//! when DIR cannot be reached.

use crate::control::supervise_running;
use crate::errstr::{err_str, nix_str};
use nix::errno::Errno;
use std::ffi::OsString;
use std::path::Path;

pub fn main(args: Vec<OsString>) -> i32 {
    let Some(dir) = args.get(1) else {
        eprintln!("svok: usage: svok dir");
        return 100;
    };
    let shown = dir.to_string_lossy();
    if let Err(e) = std::env::set_current_dir(dir) {
        eprintln!("svok: fatal: unable to chdir to {shown}: {}", err_str(&e));
        return 111;
    }
    match supervise_running(Path::new("supervise")) {
        Ok(true) => 0,
        Ok(false) | Err(Errno::ENOENT) => 100,
        Err(e) => {
            eprintln!(
                "svok: fatal: unable to open {shown}/supervise/ok: {}",
                nix_str(e)
            );
            111
        }
    }
}
