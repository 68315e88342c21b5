//! qmail-poppass: see `mta::checkpassword`.
fn main() {
    std::process::exit(mta::checkpassword::poppass_main(std::env::args().collect()));
}
