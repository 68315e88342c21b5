fn main() {
    std::process::exit(supervise::chain::pgrphack(std::env::args_os().collect()));
}
