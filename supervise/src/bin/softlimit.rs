fn main() {
    std::process::exit(supervise::chain::softlimit(std::env::args_os().collect()));
}
