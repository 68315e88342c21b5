fn main() {
    std::process::exit(svscan::svscan::main(std::env::args_os().collect()));
}
