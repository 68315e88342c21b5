//! qmail-pop3d: see `mta::pop3d`.
fn main() {
    std::process::exit(mta::pop3d::main(std::env::args().collect()));
}
