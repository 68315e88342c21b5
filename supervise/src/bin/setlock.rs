fn main() {
    std::process::exit(supervise::chain::setlock(std::env::args_os().collect()));
}
