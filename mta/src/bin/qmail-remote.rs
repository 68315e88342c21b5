fn main() {
    std::process::exit(mta::remote::main());
}
