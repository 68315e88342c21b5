fn main() {
    std::process::exit(supervise::supervisor::main(std::env::args_os().collect()));
}
