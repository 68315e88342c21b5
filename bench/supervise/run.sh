#!/bin/sh
# Idle RSS and restart latency of one supervise: rqmail's, as the README's build makes it
# (`cargo build --release`, the default dynamically linked release build), vs Debian's
# daemontools supervise, side by side in the same run.
# Usage (from anywhere): bench/supervise/run.sh   (ROUNDS=N to change the kills per program)
set -e
cd "$(dirname "$0")/../.."
cargo build --release -p supervise --bin supervise >&2
ls -l target/release/supervise >&2
/usr/bin/python3 bench/supervise/bench.py \
  "rqmail supervise (release)=target/release/supervise" \
  "daemontools 0.76 supervise (Debian)=/usr/bin/supervise"
