#!/bin/sh
# Idle RSS and restart latency of one supervise: rqmail's, as the README's build makes it
# (`cargo build --release`, the default dynamically linked release build), vs Debian's
# daemontools supervise, side by side in the same run.
# Usage (from anywhere): bench/supervise/run.sh
#   ROUNDS=N  kills per program (default 40)
#   CHRT=1    run the measurement (python, both supervisors and their services) at real-time
#             priority (chrt -f 10), so other jobs on a busy machine do not sit in the
#             latencies; needs CAP_SYS_NICE
set -e
cd "$(dirname "$0")/../.."
cargo build --release -p supervise --bin supervise >&2
ls -l target/release/supervise >&2
rt=
[ "${CHRT:-0}" = 1 ] && rt="chrt -f 10"
$rt /usr/bin/python3 bench/supervise/bench.py \
  "rqmail supervise (release)=target/release/supervise" \
  "daemontools 0.76 supervise (Debian)=/usr/bin/supervise"
