//! Integration tests of the mta crate, one module per area.

#[path = "it/common.rs"]
mod common;

#[path = "it/local.rs"]
mod local;

#[path = "it/inject.rs"]
mod inject;
#[path = "it/pop3.rs"]
mod pop3;
#[path = "it/smtpd.rs"]
mod smtpd;

#[path = "it/remote.rs"]
mod remote;

#[path = "it/qadmin.rs"]
mod qadmin;
#[path = "it/queue.rs"]
mod queue;
