fn main() {
    std::process::exit(mta::newu::main());
}
