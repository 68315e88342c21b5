fn main() {
    std::process::exit(mta::showctl::main());
}
