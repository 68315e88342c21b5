//! qmail-smtpd: receive mail via SMTP on stdin/stdout. See `mta::smtpd`.
//! Started once per connection, so it uses the lean start-up of `mta::fast_main!`.
#![no_main]
mta::fast_main!(mta::smtpd::main);
