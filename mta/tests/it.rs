//! Integration tests of the mta crate, one module per area.

#[path = "it/local.rs"]
mod local;

#[path = "it/inject.rs"]
mod inject;
