//! multilog, tai64n and tai64nlocal: daemontools-compatible log handling.
