fn main() {
    std::process::exit(mta::tcpto::tcpok_main());
}
