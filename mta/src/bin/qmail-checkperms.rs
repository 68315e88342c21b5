fn main() {
    std::process::exit(mta::checkperms::main());
}
