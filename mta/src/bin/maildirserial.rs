fn main() {
    std::process::exit(mta::serialmail::maildirserial_main());
}
