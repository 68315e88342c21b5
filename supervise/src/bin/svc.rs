fn main() {
    std::process::exit(supervise::svc::main(std::env::args_os().collect()));
}
