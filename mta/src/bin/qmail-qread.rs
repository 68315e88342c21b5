fn main() {
    std::process::exit(mta::qread::qread_main());
}
