#!/bin/sh
# Assemble a BINDIR for run.sh/accept.sh in which the programs started once per message are
# statically linked and everything else is the ordinary release build: the measurement behind
# the proposal in bench/RESULTS.md (section "SMTP in → Maildir", accepting half). rc/build
# now does the glibc variant for every release build; the musl variant stays an experiment
# (it needs the musl target, which a fresh toolchain does not have).
#
# usage: bench/smtpd/static-bins.sh OUT [musl|glibc] [PROGRAM...]
#   musl  (default) x86_64-unknown-linux-musl (`rustup target add x86_64-unknown-linux-musl`):
#         no CPUID probing at start-up, the cheapest exec;
#   glibc the gnu target with `-C target-feature=+crt-static`.
#   PROGRAMs default to qmail-smtpd qmail-queue (they use no name service; qmail-queue only
#   reads /etc/passwd for qmail users missing from QMAILHOME/ids).
# Run from the workspace root; the static builds go to target/static-bins/.
set -e
out=$1 libc=${2:-musl}
[ -n "$out" ] || { echo "usage: $0 OUT [musl|glibc] [PROGRAM...]" >&2; exit 100; }
shift; [ $# -gt 0 ] && shift
progs=${*:-qmail-smtpd qmail-queue}
bins=; for p in $progs; do bins="$bins --bin $p"; done
cargo build --release -p mta -p ucspi
case "$libc" in
musl) triple=x86_64-unknown-linux-musl
      cargo build --release --target $triple -p mta $bins --target-dir target/static-bins ;;
glibc) triple=x86_64-unknown-linux-gnu
      RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release --target $triple -p mta $bins --target-dir target/static-bins ;;
*) echo "$0: musl or glibc, not $libc" >&2; exit 100 ;;
esac
mkdir -p "$out"
find target/release -maxdepth 1 -type f -perm -u+x -exec cp {} "$out/" \;
for p in $progs; do cp "target/static-bins/$triple/release/$p" "$out/"; done
echo "$out: release build with static ($libc) $progs"
