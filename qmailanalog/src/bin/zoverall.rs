fn main() {
    std::process::exit(qmailanalog::cli::ztool_main("zoverall"));
}
