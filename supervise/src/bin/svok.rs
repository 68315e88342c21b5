fn main() {
    std::process::exit(supervise::svok::main(std::env::args_os().collect()));
}
