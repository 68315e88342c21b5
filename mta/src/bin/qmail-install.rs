fn main() {
    std::process::exit(mta::install::main(std::env::args().skip(1).collect()));
}
