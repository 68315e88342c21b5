#!/usr/bin/env bash
# rqmail's half of bench/queue/run.sh alone, for comparing two builds of rqmail and reading
# qmail-send's log: N injectors send M messages (qmail-inject → qmail-queue → qmail-send →
# qmail-lspawn → qmail-local → Maildir); prints the injection rate and the total rate, and how
# many local delivery slots the "status:" lines of the send log showed busy.
# usage (as root): [R=BUILD_DIR] [M=600] [N=20] [BENCH_TMP=DIR] bench/queue/rq-only.sh
#   R defaults to target/release. Wrap in bench/queue/cgroup-cpu.sh to get the CPU used.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${R:-$PWD/target/release}; M=${M:-600}; N=${N:-20}
[ "$(id -u)" = 0 ] || { echo "run as root (deliveries change uid)" >&2; exit 100; }
W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/rqmail-rqonly.XXXXXX"); chmod 755 "$W"
UIDN=64201; GIDN=64200
cleanup() {
  [ -n "${SENDPID:-}" ] && kill -TERM "$SENDPID" 2>/dev/null && wait "$SENDPID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
. bench/queue/common.sh
rq_start
BODY=$(head -c 1500 /dev/zero | tr '\0' x)
msg() { printf 'From: bench@bench.test\nTo: u@bench.test\nSubject: bench %s\n\n%s\n' "$1" "$BODY"; }
per=$((M / N))
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$N"); do
  ( for j in $(seq 1 "$per"); do msg "$i.$j" | "$Q/bin/qmail-inject" u@bench.test; done ) &
  pids+=($!)
done
wait "${pids[@]}"
mid=$(date +%s.%N)
deadline=$(( $(date +%s) + 600 ))
while [ "$(ls "$W/u/Maildir/new" | wc -l)" -lt $((per * N)) ]; do
  [ "$(date +%s)" -gt $deadline ] && { echo "timeout" >&2; exit 1; }
  sleep 0.02
done
end=$(date +%s.%N)
/usr/bin/python3 -c "print(f'inject {$((per*N))/($mid-$start):.1f} msg/s, total {$((per*N))/($end-$start):.1f} msg/s')"
echo "local slots busy in the send log's status lines (count, busy):"
grep -o 'status: local [0-9]*' "$W/send.log" | awk '{print $3}' | sort -n | uniq -c | tr '\n' ' '
echo
