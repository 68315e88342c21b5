fn main() {
    std::process::exit(mta::configfast::main(std::env::args().skip(1).collect()));
}
