//! Write a generated qmail-send log to stdout (for the bench):
//! `genlog MESSAGES [numeric|tai64n] [SEED]`; prints the truth on stderr.
fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let messages = a.first().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let stamps = match a.get(1).map(String::as_str) {
        Some("tai64n") => qmailanalog::genlog::StampStyle::Tai64n,
        _ => qmailanalog::genlog::StampStyle::Numeric,
    };
    let seed = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let p = qmailanalog::genlog::Params {
        messages,
        stamps,
        seed,
        gap_us: 50_000,
        senders: 5000,
        users: 200_000,
        hosts: 2000,
        ..Default::default()
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match qmailanalog::genlog::generate(&p, &mut w) {
        Ok(t) => eprintln!("{t:?}"),
        Err(e) => {
            eprintln!("genlog: {e}");
            std::process::exit(111);
        }
    }
}
