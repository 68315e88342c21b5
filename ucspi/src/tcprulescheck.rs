//! `tcprulescheck rules.cdb`: show which rule tcpserver would apply to a connection described
//! by `$TCPREMOTEIP`, `$TCPREMOTEHOST` and `$TCPREMOTEINFO`, in ucspi-tcp's words.

use crate::common::errtext;
use crate::rules::Rules;
use std::path::Path;

/// The report for one lookup, as tcprulescheck prints it.
pub fn report(v: &crate::rules::Verdict) -> String {
    let mut s = String::new();
    match &v.key {
        Some(k) => s.push_str(&format!("rule {}:\n", String::from_utf8_lossy(k))),
        None => s.push_str("default:\n"),
    }
    // ucspi-tcp stops at the deny entry, which tcprules always writes first.
    if !v.deny {
        for (k, val) in &v.env {
            s.push_str(&format!("set environment variable {k}={val}\n"));
        }
    }
    s.push_str(if v.deny {
        "deny connection\n"
    } else {
        "allow connection\n"
    });
    s
}

pub fn main(args: &[String]) -> i32 {
    let Some(path) = args.first() else {
        eprintln!("tcprulescheck: usage: tcprulescheck rules.cdb");
        return 100;
    };
    let var = |n: &str| std::env::var(n).ok();
    let ip = var("TCPREMOTEIP").unwrap_or_else(|| "0.0.0.0".to_string());
    let host = var("TCPREMOTEHOST");
    let info = var("TCPREMOTEINFO");
    let rules = match Rules::open(Path::new(path)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "tcprulescheck: fatal: unable to read {path}: {}",
                errtext(&e)
            );
            return 111;
        }
    };
    match rules.lookup(&ip, host.as_deref(), info.as_deref()) {
        Ok(v) => {
            print!("{}", report(&v));
            0
        }
        Err(e) => {
            eprintln!(
                "tcprulescheck: fatal: unable to read {path}: {}",
                errtext(&e)
            );
            111
        }
    }
}
