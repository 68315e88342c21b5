//! daemontools-compatible supervision: the `supervise/status` and `supervise/control`
//! formats (kept here, once: src/shared.rs), and the library code behind svc, svstat, svok,
//! svscan and the run-script chain-loaders (setuidgid, envuidgid, envdir, softlimit, setlock,
//! pgrphack, fghack). The `supervise` program itself (src/bin/supervise/) is built without
//! std, so it does not link this library; it includes src/shared.rs for the byte formats,
//! the error wording and the reset of a child's signal state.
//!
//! Where we differ from daemontools 0.76 on purpose (all additions, nothing removed):
//! - supervise runs `./finish CODE SIGNAL` after each exit of `./run` (daemontools-encore/runit);
//! - control letters `1` and `2` send SIGUSR1/SIGUSR2;
//! - readiness notification (s6): `notification-fd` names a descriptor on which the service
//!   writes a newline when ready; kept in `supervise/ready`, not in the 18-byte status;
//! - the once-a-second restart guard does not block command processing;
//! - svc `-wu/-wd/-wr -T SECONDS` waits for a state; `svstat --json`.

pub mod chain;
pub mod childproc;
pub mod control;
pub mod errstr;
mod shared;
pub mod status;
pub mod svc;
pub mod svok;
pub mod svstat;
pub mod tai;
