fn main() {
    std::process::exit(mta::send::main());
}
