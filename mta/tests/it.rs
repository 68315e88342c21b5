#[path = "it/local.rs"]
mod local;
