fn main() {
    std::process::exit(multilog::tai::tai64nlocal_main());
}
