fn main() {
    std::process::exit(qmailanalog::cli::qmailanalog_main());
}
