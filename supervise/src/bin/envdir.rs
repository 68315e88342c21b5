fn main() {
    std::process::exit(supervise::chain::envdir(std::env::args_os().collect()));
}
