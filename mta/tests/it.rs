//! Integration tests of the mta crate (one binary; each engineer adds a module line).

#[path = "it/pop3.rs"]
mod pop3;
#[path = "it/smtpd.rs"]
mod smtpd;
