fn main() {
    std::process::exit(mta::tcpto::tcpto_main());
}
