fn main() {
    std::process::exit(mta::lspawn::main(std::env::args().skip(1).collect()));
}
