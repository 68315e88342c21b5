//! A qmail-send log generator for tests and benchmarks: simulates messages arriving,
//! local and remote deliveries (successes, failures, deferrals retried on qmail's
//! schedule), bounces and queue ends, and writes the qmail-send lines with numeric or
//! tai64n stamps. It also returns the true totals so tests can check the reports against
//! something computed independently of matchup.

use std::collections::BinaryHeap;
use std::io::{self, Write};

/// How the generated lines are stamped.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum StampStyle {
    /// `SECS.USECS text` (accustamp / what matchup reads)
    Numeric,
    /// `@4000… text` (multilog `t`)
    Tai64n,
}

#[derive(Clone, Debug)]
pub struct Params {
    pub seed: u64,
    pub messages: u64,
    pub start: u64,
    /// mean gap between arrivals, microseconds
    pub gap_us: u64,
    pub stamps: StampStyle,
    /// percent of delivery attempts that fail permanently / are deferred
    pub fail_pct: u64,
    pub defer_pct: u64,
    /// number of distinct senders / local users / remote hosts
    pub senders: u64,
    pub users: u64,
    pub hosts: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 1,
            messages: 100,
            start: 1_700_000_000,
            gap_us: 2_000_000,
            stamps: StampStyle::Numeric,
            fail_pct: 5,
            defer_pct: 10,
            senders: 20,
            users: 50,
            hosts: 10,
        }
    }
}

/// What really happened (for completed messages and all delivery attempts).
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Truth {
    pub completed: u64,
    pub completed_bytes: u64,
    pub recipients: u64,
    pub attempts: u64,
    pub successes: u64,
    pub failures: u64,
    pub deferrals: u64,
    pub still_queued: u64,
    pub lines: u64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrive,
    Start { msg: usize, rcpt: usize },
    Done { msg: usize, rcpt: usize, d: u64 },
}

struct Rcpt {
    remote: bool,
    addr: String,
    tries: u32,
    done: bool,
}

struct Msg {
    inode: u64,
    birth: u64,
    rcpts: Vec<Rcpt>,
    left: usize,
    failed: bool,
    bytes: u64,
}

/// Generate a log into `w`; returns the truth.
pub fn generate(p: &Params, w: &mut dyn Write) -> io::Result<Truth> {
    let mut g = Gen {
        rng: Rng(p.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        heap: BinaryHeap::new(),
        seq: 0,
        msgs: Vec::new(),
        free: Vec::new(),
        next_inode: 786_433,
        next_qp: 30_000,
        next_d: 1,
        local: 0,
        remote: 0,
        arrived: 0,
        truth: Truth::default(),
        out: Vec::with_capacity(1 << 16),
        p: p.clone(),
        last: 0,
    };
    let t0 = p.start * 1_000_000;
    g.line(t0, "status: local 0/10 remote 0/20");
    g.push(t0 + 1000, Ev::Arrive);
    while let Some(std::cmp::Reverse((t, _, ev))) = g.heap.pop() {
        g.handle(t, ev);
        if g.out.len() >= 1 << 16 {
            w.write_all(&g.out)?;
            g.out.clear();
        }
    }
    let t = g.last + 1000;
    g.line(t, "status: exiting");
    g.truth.still_queued = g.msgs.iter().filter(|m| m.left > 0).count() as u64;
    w.write_all(&g.out)?;
    w.flush()?;
    Ok(g.truth)
}

type Entry = std::cmp::Reverse<(u64, u64, Ev)>;

struct Gen {
    rng: Rng,
    heap: BinaryHeap<Entry>,
    seq: u64,
    msgs: Vec<Msg>,
    free: Vec<usize>,
    next_inode: u64,
    next_qp: u64,
    next_d: u64,
    local: u64,
    remote: u64,
    arrived: u64,
    truth: Truth,
    out: Vec<u8>,
    p: Params,
    last: u64,
}

impl Gen {
    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(std::cmp::Reverse((t, self.seq, ev)));
    }

    fn line(&mut self, t: u64, text: &str) {
        let t = t.max(self.last);
        self.last = t;
        let (s, us) = (t / 1_000_000, t % 1_000_000);
        match self.p.stamps {
            StampStyle::Numeric => {
                let _ = write!(self.out, "{s}.{us:06} ");
            }
            StampStyle::Tai64n => {
                let _ = write!(
                    self.out,
                    "@{:016x}{:08x} ",
                    s + (1u64 << 62) + 10,
                    us * 1000
                );
            }
        }
        self.out.extend_from_slice(text.as_bytes());
        self.out.push(b'\n');
        self.truth.lines += 1;
    }

    fn status(&mut self, t: u64) {
        let s = format!("status: local {}/10 remote {}/20", self.local, self.remote);
        self.line(t, &s);
    }

    fn handle(&mut self, t: u64, ev: Ev) {
        match ev {
            Ev::Arrive => {
                self.arrived += 1;
                let inode = self.next_inode;
                self.next_inode += 1;
                self.next_qp += 1;
                let qp = self.next_qp;
                let sender_n = self.rng.below(self.p.senders);
                let sender = if sender_n == 0 {
                    String::new()
                } else {
                    format!("User{sender_n}@Example.org")
                };
                let uid = 1000 + sender_n;
                let bytes = 300 + self.rng.below(20_000);
                let nr = 1 + self.rng.below(3) as usize;
                let mut rcpts = Vec::new();
                for _ in 0..nr {
                    let remote = self.rng.below(2) == 0;
                    let u = self.rng.below(self.p.users);
                    let addr = if remote {
                        format!("user{u}@host{}.example", self.rng.below(self.p.hosts))
                    } else {
                        format!("user{u}@example.org")
                    };
                    rcpts.push(Rcpt {
                        remote,
                        addr,
                        tries: 0,
                        done: false,
                    });
                }
                self.line(t, &format!("new msg {inode}"));
                let birth = t + 300;
                self.line(
                    birth,
                    &format!("info msg {inode}: bytes {bytes} from <{sender}> qp {qp} uid {uid}"),
                );
                let m = Msg {
                    inode,
                    birth,
                    left: rcpts.len(),
                    rcpts,
                    failed: false,
                    bytes,
                };
                let idx = match self.free.pop() {
                    Some(i) => {
                        self.msgs[i] = m;
                        i
                    }
                    None => {
                        self.msgs.push(m);
                        self.msgs.len() - 1
                    }
                };
                for r in 0..self.msgs[idx].rcpts.len() {
                    self.push(birth + 200 + 50 * r as u64, Ev::Start { msg: idx, rcpt: r });
                }
                if self.arrived < self.p.messages {
                    let gap = 1 + self.rng.below(2 * self.p.gap_us);
                    self.push(t + gap, Ev::Arrive);
                }
            }
            Ev::Start { msg, rcpt } => {
                let d = self.next_d;
                self.next_d += 1;
                let (remote, addr) = {
                    let r = &mut self.msgs[msg].rcpts[rcpt];
                    r.tries += 1;
                    (r.remote, r.addr.clone())
                };
                let inode = self.msgs[msg].inode;
                let chan = if remote { "remote" } else { "local" };
                self.line(
                    t,
                    &format!("starting delivery {d}: msg {inode} to {chan} {addr}"),
                );
                if remote {
                    self.remote += 1;
                } else {
                    self.local += 1;
                }
                self.status(t + 40);
                let x = if remote {
                    50_000 + self.rng.below(3_000_000)
                } else {
                    5_000 + self.rng.below(60_000)
                };
                self.push(t + x, Ev::Done { msg, rcpt, d });
            }
            Ev::Done { msg, rcpt, d } => {
                let roll = self.rng.below(100);
                let (remote, tries) = {
                    let r = &self.msgs[msg].rcpts[rcpt];
                    (r.remote, r.tries)
                };
                let outcome = if roll < self.p.fail_pct {
                    2
                } else if roll < self.p.fail_pct + self.p.defer_pct {
                    if tries >= 4 { 2 } else { 1 }
                } else {
                    0
                };
                let text = match (outcome, remote) {
                    (0, false) => "success: did_1+0+0/".to_string(),
                    (0, true) => format!(
                        "success: 192.0.2.{}_accepted_message./Remote_host_said:_250_ok_{}_qp_{}/",
                        d % 250,
                        t / 1_000_000,
                        d % 10_000
                    ),
                    (1, _) => {
                        "deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._(#4.4.1)/"
                            .to_string()
                    }
                    (_, false) => {
                        "failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/".to_string()
                    }
                    (_, true) => "failure: 192.0.2.25_does_not_like_recipient./Remote_host_said:_550_5.1.1_unknown_user/Giving_up_on_192.0.2.25./".to_string(),
                };
                self.line(t, &format!("delivery {d}: {text}"));
                if remote {
                    self.remote -= 1;
                } else {
                    self.local -= 1;
                }
                self.status(t + 40);
                self.truth.attempts += 1;
                match outcome {
                    0 => self.truth.successes += 1,
                    1 => self.truth.deferrals += 1,
                    _ => self.truth.failures += 1,
                }
                if outcome == 1 {
                    // retry later, growing quadratically with the attempts like qmail's schedule
                    let c = tries as u64 + 1;
                    let birth = self.msgs[msg].birth;
                    let next = (birth + c * c * 100_000_000).max(t + 1_000_000);
                    self.push(next, Ev::Start { msg, rcpt });
                    return;
                }
                let m = &mut self.msgs[msg];
                m.rcpts[rcpt].done = true;
                m.left -= 1;
                if outcome == 2 {
                    m.failed = true;
                }
                if m.left == 0 {
                    let (inode, failed, bytes) = (m.inode, m.failed, m.bytes);
                    if failed {
                        self.next_qp += 1;
                        let bqp = self.next_qp;
                        self.line(t + 100, &format!("bounce msg {inode} qp {bqp}"));
                    }
                    self.line(t + 200, &format!("end msg {inode}"));
                    self.truth.completed_bytes += bytes;
                    let m = &self.msgs[msg];
                    self.truth.completed += 1;
                    self.truth.recipients += m.rcpts.len() as u64;
                    self.free.push(msg);
                }
            }
        }
    }
}
