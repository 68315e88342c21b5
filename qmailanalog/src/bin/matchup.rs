fn main() {
    std::process::exit(qmailanalog::cli::matchup_main());
}
