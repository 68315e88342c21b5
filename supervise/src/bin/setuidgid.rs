fn main() {
    std::process::exit(supervise::chain::setuidgid(std::env::args_os().collect()));
}
