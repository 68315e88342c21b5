fn main() {
    std::process::exit(mta::serialmail::serialsmtp_main());
}
