fn main() {
    std::process::exit(multilog::tai::tai64n_main());
}
