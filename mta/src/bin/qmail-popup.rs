//! qmail-popup: see `mta::popup`.
fn main() {
    std::process::exit(mta::popup::main(std::env::args().collect()));
}
