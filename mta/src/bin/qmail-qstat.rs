fn main() {
    std::process::exit(mta::qread::qstat_main());
}
