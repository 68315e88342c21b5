fn main() {
    std::process::exit(mta::clean::main());
}
