//! ucspi-tcp compatible network front: `tcpserver`, `tcprules`, `tcprulescheck` and `tcp-env`.
//!
//! The programs follow ucspi-tcp 0.88 (options, environment, log lines, rule syntax and the
//! rules cdb format, so a cdb made by Debian's `tcprules` works with our `tcpserver` and the
//! other way round). Deliberate differences, all additions:
//!
//! * IPv6: `tcpserver -6` (or an IPv6 address as host) listens on IPv6; connections then get
//!   `PROTO=TCP6` and both the `TCP6…` variables of the IPv6 patch and the plain `TCP…` ones (so
//!   programs that only read `TCPREMOTEIP` keep working). IPv4-mapped addresses are shown as IPv4.
//!   Rules for IPv6 addresses are written `[2001:db8::1]:allow`; prefixes end in `:`.
//! * `tcprules` names the line number in its parse error and removes the temporary file on error;
//!   it fsyncs the directory after the rename.
//! * `-o`/`-O` (IP options) are accepted but ignored: Linux drops source-routed packets already.

pub mod common;
pub mod rules;
pub mod tcpenv;
pub mod tcprules;
pub mod tcprulescheck;
pub mod tcpserver;
