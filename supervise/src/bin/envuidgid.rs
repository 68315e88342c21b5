fn main() {
    std::process::exit(supervise::chain::envuidgid(std::env::args_os().collect()));
}
