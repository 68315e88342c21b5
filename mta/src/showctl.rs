//! qmail-showctl: describe the qmail configuration.
//!
//! Prints the compiled-in settings (home, user-ext delimiter, paternalism, spawn limit, split),
//! the qmail user and group ids, then one paragraph per control file of qmail-control(5), saying
//! "(Default.)" when the file is missing, and "I have no idea what this file does." for any other
//! file found in control/. The wording follows qmail's program.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;

use crate::control::Control;

enum Kind {
    /// Single value: default, prefix, suffix.
    Str(&'static str, &'static str, &'static str),
    Int(u64, &'static str, &'static str),
    /// List: default text, prefix, suffix.
    Lst(&'static str, &'static str, &'static str),
}

const ME: &str = "\u{0}me"; // marker: default is the value of me

const FILES: &[(&str, Kind)] = &[
    (
        "badmailfrom",
        Kind::Lst(
            "Any MAIL FROM is allowed.",
            "MAIL FROM:<",
            "> not accepted.",
        ),
    ),
    (
        "batchremote",
        Kind::Int(
            100,
            "Remote recipients of one message at one host sent together (one SMTP transaction): up to ",
            ".",
        ),
    ),
    (
        "bouncefrom",
        Kind::Str("MAILER-DAEMON", "Bounce user name is ", "."),
    ),
    ("bouncehost", Kind::Str(ME, "Bounce host name is ", ".")),
    (
        "concurrencyincoming",
        Kind::Int(20, "Incoming SMTP concurrency (for tcpserver -c) is ", "."),
    ),
    (
        "concurrencylocal",
        Kind::Int(10, "Local concurrency is ", "."),
    ),
    (
        "concurrencyremote",
        Kind::Int(20, "Remote concurrency is ", "."),
    ),
    ("databytes", Kind::Int(0, "SMTP DATA limit is ", " bytes.")),
    (
        "defaultdelivery",
        Kind::Str("./Mailbox", "Default delivery (for qmail-start) is ", "."),
    ),
    (
        "defaultdomain",
        Kind::Str(ME, "Default domain name is ", "."),
    ),
    ("defaulthost", Kind::Str(ME, "Default host name is ", ".")),
    (
        "doublebouncehost",
        Kind::Str(ME, "2B recipient host: ", "."),
    ),
    (
        "doublebounceto",
        Kind::Str("postmaster", "2B recipient user: ", "."),
    ),
    (
        "envnoathost",
        Kind::Str(ME, "Presumed domain name is ", "."),
    ),
    (
        "helohost",
        Kind::Str(ME, "SMTP client HELO host name is ", "."),
    ),
    ("idhost", Kind::Str(ME, "Message-ID host name is ", ".")),
    (
        "localiphost",
        Kind::Str(ME, "Local IP address becomes ", "."),
    ),
    (
        "locals",
        Kind::Lst(
            "Messages for me are delivered locally.",
            "Messages for ",
            " are delivered locally.",
        ),
    ),
    ("me", Kind::Str("", "My name is ", ".")),
    (
        "percenthack",
        Kind::Lst(
            "The percent hack is not allowed.",
            "The percent hack is allowed for user%host@",
            ".",
        ),
    ),
    ("plusdomain", Kind::Str(ME, "Plus domain name is ", ".")),
    (
        "qmqpservers",
        Kind::Lst("No QMQP servers.", "QMQP server: ", "."),
    ),
    (
        "queuelifetime",
        Kind::Int(604_800, "Message lifetime in the queue is ", " seconds."),
    ),
    (
        "rcpthosts",
        Kind::Lst(
            "SMTP clients may send messages to any recipient.",
            "SMTP clients may send messages to recipients at ",
            ".",
        ),
    ),
    (
        "morercpthosts",
        Kind::Lst(
            "No effect.",
            "SMTP clients may send messages to recipients at ",
            ".",
        ),
    ),
    (
        "morercpthosts.cdb",
        Kind::Str("", "Compiled from morercpthosts", "."),
    ),
    ("smtpgreeting", Kind::Str(ME, "SMTP greeting: 220 ", ".")),
    (
        "smtproutes",
        Kind::Lst("No artificial SMTP routes.", "SMTP route: ", ""),
    ),
    (
        "timeoutconnect",
        Kind::Int(60, "SMTP client connection timeout is ", " seconds."),
    ),
    (
        "timeoutremote",
        Kind::Int(1200, "SMTP client data timeout is ", " seconds."),
    ),
    (
        "timeoutsmtpd",
        Kind::Int(1200, "SMTP server data timeout is ", " seconds."),
    ),
    (
        "virtualdomains",
        Kind::Lst("No virtual domains.", "Virtual domain: ", ""),
    ),
];

/// The whole description of a qmail home's configuration.
pub fn describe(home: &std::path::Path) -> String {
    let c = Control::at(home.join("control"));
    let mut o = String::new();
    let _ = writeln!(o, "qmail home directory: {}.", home.display());
    let _ = writeln!(o, "user-ext delimiter: -.");
    let _ = writeln!(o, "paternalism (in decimal): 2.");
    let _ = writeln!(o, "silent concurrency limit: {}.", crate::spawn::LIMIT);
    let _ = writeln!(o, "subdirectory split: {}.", crate::install::SPLIT);
    let ids = crate::ids::QmailIds::load_from(&home.join("ids")).unwrap_or_default();
    let show = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "?".into());
    let users: Vec<String> = crate::ids::USERS
        .iter()
        .map(|u| show(if *u == "root" { Some(0) } else { ids.uid(u) }))
        .collect();
    let groups: Vec<String> = crate::ids::GROUPS
        .iter()
        .map(|g| show(ids.gid(g)))
        .collect();
    let _ = writeln!(o, "user ids: {}.", users.join(", "));
    let _ = writeln!(o, "group ids: {}.", groups.join(", "));
    let me = c.me().ok().flatten();
    let known: HashSet<&str> = FILES.iter().map(|(n, _)| *n).collect();
    for (name, kind) in FILES {
        let _ = write!(o, "\n{name}: ");
        match kind {
            Kind::Str(def, pre, post) => match c.line(name) {
                Err(_) => o.push_str("Oops! Trouble reading this file.\n"),
                Ok(v) => {
                    let (dflt, val) = match v {
                        Some(v) => (false, v),
                        None if *def == ME => (true, me.clone().unwrap_or_else(|| "(none)".into())),
                        None => (true, def.to_string()),
                    };
                    if dflt {
                        o.push_str("(Default.) ");
                    }
                    let _ = writeln!(o, "{pre}{val}{post}");
                }
            },
            Kind::Int(def, pre, post) => match c.line(name) {
                Err(_) => o.push_str("Oops! Trouble reading this file.\n"),
                Ok(None) => {
                    let _ = writeln!(o, "(Default.) {pre}{def}{post}");
                }
                Ok(Some(v)) => match v.trim().parse::<i64>() {
                    Ok(n) => {
                        let _ = writeln!(o, "{pre}{n}{post}");
                    }
                    Err(_) => o.push_str("Oops! Trouble parsing this file.\n"),
                },
            },
            Kind::Lst(def, pre, post) => match c.lines(name) {
                Err(_) => o.push_str("Oops! Trouble reading this file.\n"),
                Ok(None) => {
                    let _ = writeln!(o, "(Default.) {def}");
                }
                Ok(Some(lines)) => {
                    o.push('\n');
                    for l in lines {
                        let _ = writeln!(o, "{pre}{l}{post}");
                    }
                }
            },
        }
    }
    if let Ok(rd) = std::fs::read_dir(c.dir()) {
        let mut others: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !known.contains(n.as_str()))
            .collect();
        others.sort();
        for n in others {
            let _ = write!(o, "\n{n}: I have no idea what this file does.\n");
        }
    }
    o
}

/// qmail-showctl's main.
pub fn main() -> i32 {
    let home = crate::home::qmail_home();
    if !home.join("control").is_dir() {
        eprintln!(
            "qmail-showctl: fatal: unable to read {}",
            home.join("control").display()
        );
        return 111;
    }
    let _ = std::io::stdout()
        .lock()
        .write_all(describe(&home).as_bytes());
    0
}
