fn main() {
    std::process::exit(mta::serialmail::maildirsmtp_main());
}
