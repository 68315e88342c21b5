fn main() {
    std::process::exit(mta::qadmin::main());
}
