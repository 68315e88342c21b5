//! Integration tests of the mta crate's programs.

#[path = "it/remote.rs"]
mod remote;
