fn main() {
    std::process::exit(mta::users::getpw_main());
}
