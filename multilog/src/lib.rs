//! multilog, tai64n and tai64nlocal: daemontools-compatible log handling.
//!
//! * [`run`] — `multilog SCRIPT…`: the whole daemontools 0.76 script language ([`script`]),
//!   log directories with daemontools' files, modes, rotation points and crash-safe rotation
//!   order ([`dir`]). Same input and script ⇒ the same directory as Debian's multilog.
//! * [`tai`] — `tai64n` and `tai64nlocal`, byte for byte as daemontools'.
//!
//! Where we differ from daemontools on purpose:
//! * actions `STOTAL` (cap on the archived bytes, as s6-log) and `T` (ISO 8601 UTC prefix);
//! * unknown or malformed actions, a misplaced `t`, an empty `!`, and scripts that would
//!   discard every line are refused (exit 100) instead of silently ignored; no arguments at
//!   all give "multilog: usage: multilog script" (exit 100);
//! * a directory that cannot be created is reported as such ("unable to create directory
//!   D: …"), not as the later "unable to open directory D: file does not exist";
//! * a failing step is retried after 1 second (daemontools: 5), and messages name the exit
//!   status or signal of a failed processor; a processor still running after 5 s is reported;
//! * the log directory is fsynced after every rename, link and removal;
//! * without a processor, a full `current` is renamed first and fsynced/archived by a
//!   background thread while logging goes on, and that thread starts the writeback of
//!   `current` every 2 MiB as it grows (see [`dir`]);
//! * `t` stamps carry the clock's nanoseconds (daemontools: microseconds, then 500 ns) and
//!   never go backwards when the clock is stepped back; the clock is read once per read of
//!   input (daemontools: once per line), so lines that arrived together share a stamp;
//! * the processor runs with SIGTERM/SIGALRM unblocked (daemontools leaks its blocked mask);
//! * input is read up to 1 MiB at a time (what the pipe holds; daemontools: 1 KiB) and
//!   written once per read, while the files and cut points stay byte-identical (see
//!   [`dir`]). What a SIGKILL can lose is spelled out in [`run`]: over a pipe, the one read
//!   in progress (up to 1 MiB, between `read` and `write`) plus an unfinished line's first
//!   bytes (under 1000), as daemontools (its read is 1 KiB); when stdin is a stream socket,
//!   nothing (lines are peeked, written, then consumed), at the price of up to one peek
//!   (64 KiB) of lines logged twice;
//! * `e` output is written once per read instead of once per line;
//! * `tai64nlocal` leaves a line unchanged when its stamp is out of range, where daemontools'
//!   crashes.

pub mod dir;
pub mod errtext;
pub mod run;
pub mod script;
pub mod stamp;
pub mod tai;
