fn main() {
    std::process::exit(supervise::svstat::main(std::env::args_os().collect()));
}
