//! Integration tests of the mta crate, one module per area.

#[path = "it/inject.rs"]
mod inject;
