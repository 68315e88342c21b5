fn main() {
    std::process::exit(svscan::readproctitle::main(std::env::args_os().collect()));
}
