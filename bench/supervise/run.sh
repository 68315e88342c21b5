#!/bin/sh
# Idle RSS and restart latency of one supervise: rqmail's (the default dynamic release build,
# and a static build) vs Debian's daemontools supervise, measured in the same run.
# Usage (from anywhere): bench/supervise/run.sh   (ROUNDS=N to change the kills per program)
set -e
cd "$(dirname "$0")/../.."
cargo build --release -p supervise --bin supervise >&2
CARGO_TARGET_DIR=target/static RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release -p supervise --bin supervise >&2
/usr/bin/python3 bench/supervise/bench.py \
  "rqmail supervise (release)=target/release/supervise" \
  "rqmail supervise (release, static glibc)=target/static/release/supervise" \
  "daemontools 0.76 supervise (Debian)=/usr/bin/supervise"
