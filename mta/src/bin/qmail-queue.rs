fn main() {
    std::process::exit(mta::queue::main());
}
