//! config-fast FQDN: qmail's quick configuration.
//!
//! Writes FQDN to control/me, FQDN without its first label to control/defaultdomain, the last
//! two labels to control/plusdomain, and appends FQDN to control/locals and control/rcpthosts,
//! printing what it does and finally "Now qmail will refuse to accept SMTP messages except to
//! FQDN.".

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn write_file(dir: &Path, name: &str, text: &str, append: bool) -> std::io::Result<()> {
    let p = dir.join(name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .open(&p)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
}

/// FQDN minus its first label (the whole name when it has no dot).
pub fn default_domain(fqdn: &str) -> &str {
    match fqdn.split_once('.') {
        Some((_, rest)) if !rest.is_empty() => rest,
        _ => fqdn,
    }
}

/// The last two labels of FQDN.
pub fn plus_domain(fqdn: &str) -> &str {
    let mut dots = fqdn.rmatch_indices('.');
    dots.next();
    match dots.next() {
        Some((i, _)) => &fqdn[i + 1..],
        None => fqdn,
    }
}

/// config-fast's main.
pub fn main(args: Vec<String>) -> i32 {
    let [fqdn] = args.as_slice() else {
        eprintln!("config-fast: usage: config-fast fqdn");
        return 100;
    };
    let fqdn = fqdn.trim_end_matches('.').to_ascii_lowercase();
    if fqdn.is_empty() || fqdn.contains(['/', '\n', ' ']) {
        eprintln!("config-fast: fatal: {fqdn:?} is not a host name");
        return 100;
    }
    let dir = crate::home::control_dir();
    let dd = default_domain(&fqdn).to_string();
    let pd = plus_domain(&fqdn).to_string();
    let steps: [(&str, String, bool, String); 5] = [
        (
            "me",
            format!("{fqdn}\n"),
            false,
            format!("Putting {fqdn} into control/me..."),
        ),
        (
            "defaultdomain",
            format!("{dd}\n"),
            false,
            format!("Putting {dd} into control/defaultdomain..."),
        ),
        (
            "plusdomain",
            format!("{pd}\n"),
            false,
            format!("Putting {pd} into control/plusdomain..."),
        ),
        (
            "locals",
            format!("{fqdn}\n"),
            true,
            format!("Putting {fqdn} into control/locals..."),
        ),
        (
            "rcpthosts",
            format!("{fqdn}\n"),
            true,
            format!("Putting {fqdn} into control/rcpthosts..."),
        ),
    ];
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Your fully qualified host name is {fqdn}.");
    for (name, text, append, say) in steps {
        let _ = writeln!(out, "{say}");
        if let Err(e) = write_file(&dir, name, &text, append) {
            eprintln!(
                "config-fast: fatal: unable to write {}: {e}",
                dir.join(name).display()
            );
            return 111;
        }
    }
    let _ = writeln!(
        out,
        "Now qmail will refuse to accept SMTP messages except to {fqdn}."
    );
    let _ = writeln!(
        out,
        "Make sure to change rcpthosts if you add hosts to locals or virtualdomains!"
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(default_domain("mail.example.org"), "example.org");
        assert_eq!(plus_domain("a.mail.example.org"), "example.org");
        assert_eq!(plus_domain("localhost"), "localhost");
        assert_eq!(default_domain("localhost"), "localhost");
    }
}
