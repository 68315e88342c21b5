fn main() {
    std::process::exit(svscan::svscanboot::main(std::env::args_os().collect()));
}
