#!/usr/bin/env bash
# Lines per second through `multilog t s16777215 n5 ./dir` for our multilog, Debian's
# daemontools multilog, s6-log and runit's svlogd, and plain `cat > file`, in one run.
# Input: 2,000,000 lines of ~100 bytes, fed through a pipe (`cat input |`), as from a service.
# Each program runs RUNS times (default 3, round-robin) in a fresh directory; the median wall
# time counts.
# Usage: [PROGRAMS="ours cat …"] bench/multilog/run.sh [RUNS]     (from the workspace root)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
LINES=2000000
cargo build --release -q -p multilog
OURS=$PWD/target/release/multilog
work=$(mktemp -d /var/tmp/multilog-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
input=$work/input
/usr/bin/python3 - "$input" "$LINES" <<'PY'
import sys
n = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    for i in range(n):
        f.write("%07d qmail: 1732611234.123456 delivery %07d: success: 192.0.2.7_accepted/Remote_host_said:_250\n" % (i, i))
PY
bytes=$(stat -c %s "$input")
echo "input: $LINES lines, $bytes bytes ($((bytes / LINES)) bytes/line)"

declare -A CMDS=(
  [ours]="$OURS t s16777215 n5 ./dir"
  [daemontools]="/usr/bin/multilog t s16777215 n5 ./dir"
  [s6-log]="/usr/bin/s6-log t s16777215 n5 ./dir"
  [svlogd]="/usr/bin/svlogd -t ./dir"
  [cat]="cat > ./file"
  [cat+fsync]="dd of=./file bs=64k conv=fsync status=none"
)
# cat+fsync: plain copy plus one fsync at the end, for scale (the loggers fsync every file).
# PROGRAMS="ours cat" bench/multilog/run.sh 9: a subset, for quick checks.
order=(${PROGRAMS:-ours daemontools s6-log svlogd cat cat+fsync})

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A med=()

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
# Round-robin: every round runs each program once, so a change of machine load during the
# bench hits all programs alike.
declare -A times=() cpus=()
for _ in $(seq "$RUNS"); do
  for name in "${order[@]}"; do
    cmd=${CMDS[$name]}
    bin=${cmd%% *}
    if [ "${bin:0:1}" = / ] && [ ! -x "$bin" ]; then continue; fi
    rm -rf "$work/run"; mkdir -p "$work/run"
    if [ "$name" = svlogd ]; then mkdir "$work/run/dir"; printf 's16777215\nn5\n' > "$work/run/dir/config"; fi
    sync
    # wall seconds (ns clock), and user+system seconds of the whole pipeline (the feeding
    # cat included)
    t0=$(date +%s.%N)
    read -r usr sys < <(cd "$work/run" && /usr/bin/time -f "%U %S" sh -c "cat '$input' | $cmd" 2>&1 >/dev/null | tail -1)
    t1=$(date +%s.%N)
    times[$name]+="$(echo "$t1 - $t0" | bc) "; cpus[$name]+="$(echo "$usr + $sys" | bc) "
  done
done
printf '%-12s %10s %14s %10s   %s\n' program "median s" "lines/s" "cpu s" "command"
for name in "${order[@]}"; do
  cmd=${CMDS[$name]}
  if [ -z "${times[$name]:-}" ]; then
    printf '%-12s %10s %14s %10s   %s\n' "$name" "-" "not installed" "-" "$cmd"
    continue
  fi
  m=$(printf '%s\n' ${times[$name]} | median)
  c=$(printf '%s\n' ${cpus[$name]} | median)
  printf '%-12s %10.3f %14.0f %10.2f   cat input | %s\n' "$name" "$m" "$(echo "$LINES / $m" | bc -l)" "$c" "$cmd"
  med[$name]=$m
done
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
# Speed ratios (lines/s of ours over lines/s of the other = their time over ours).
for other in daemontools cat cat+fsync; do
  if [ -n "${med[ours]:-}" ] && [ -n "${med[$other]:-}" ]; then
    printf 'ours vs %-12s %6.2fx the speed\n' "$other" "$(echo "${med[$other]} / ${med[ours]}" | bc -l)"
  fi
done
