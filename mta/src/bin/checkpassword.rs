//! checkpassword: see `mta::checkpassword`.
fn main() {
    std::process::exit(mta::checkpassword::main(std::env::args().collect()));
}
