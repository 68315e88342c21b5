fn main() {
    std::process::exit(mta::rspawn::main());
}
