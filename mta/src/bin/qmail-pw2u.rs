fn main() {
    std::process::exit(mta::pw2u::main());
}
