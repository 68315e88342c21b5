fn main() {
    std::process::exit(supervise::chain::fghack(std::env::args_os().collect()));
}
