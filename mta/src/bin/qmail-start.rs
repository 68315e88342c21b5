fn main() {
    std::process::exit(mta::start::main(std::env::args().skip(1).collect()));
}
