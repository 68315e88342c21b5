//! qmail-smtpd: receive mail via SMTP on stdin/stdout. See `mta::smtpd`.
fn main() {
    std::process::exit(mta::smtpd::main());
}
