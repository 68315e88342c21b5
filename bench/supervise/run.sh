#!/bin/sh
# Idle RSS and restart latency: rqmail's supervise vs Debian's daemontools supervise, same run.
# Usage (from the repository root): bench/supervise/run.sh
set -e
cd "$(dirname "$0")/../.."
cargo build --release -p supervise --bin supervise >&2
/usr/bin/python3 bench/supervise/bench.py target/release/supervise /usr/bin/supervise
