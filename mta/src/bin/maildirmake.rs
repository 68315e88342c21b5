fn main() {
    std::process::exit(mta::maildir::maildirmake_main());
}
