fn main() {
    std::process::exit(mta::local::main());
}
