//! Setup shared by the mta integration tests.

use std::path::Path;

/// Write `HOME/ids` with the qmail users and groups on unused numeric ids around `base`
/// (groups qmail = base, nofiles = base+10; users base+1 …), so tests running as root get
/// qmail's real owners without touching /etc/passwd.
pub fn write_test_ids(home: &Path, base: u32) {
    let (q, n) = (base, base + 10);
    let text = format!(
        "alias:{a}:{q}\nqmaild:{d}:{q}\nqmaill:{l}:{n}\nqmailp:{p}:{n}\nqmailq:{qq}:{q}\n\
         qmailr:{r}:{q}\nqmails:{s}:{q}\nqmail:{q}:{q}\nnofiles:{n}:{n}\n",
        a = base + 1,
        d = base + 2,
        l = base + 3,
        p = base + 4,
        qq = base + 5,
        r = base + 6,
        s = base + 7,
    );
    std::fs::write(home.join("ids"), text).expect("write ids");
}
