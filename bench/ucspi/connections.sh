#!/bin/sh
# tcpserver cost per connection: ours (release build) next to Debian's ucspi-tcp tcpserver in
# the same run, same options (-R -H -l0 -c 40 -x rules.cdb), same served program (/bin/true),
# same client (Python, PARALLEL threads connecting to 127.0.0.1 and waiting for the close).
# Reports connections/s and, when perf is installed, the CPU time (task-clock of tcpserver and
# all its children, /bin/true included) and page faults per connection: on a shared, loaded
# machine the CPU figures are the ones to compare.
# Usage: bench/ucspi/connections.sh [CONNECTIONS] [PARALLEL] [ROUNDS]
set -eu
N="${1:-2000}"
P="${2:-8}"
R="${3:-3}"
cd "$(dirname "$0")/../.."
cargo build --release -p ucspi >/dev/null 2>&1
OURS="$PWD/target/release/tcpserver"
DEB=/usr/bin/tcpserver
[ -x "$DEB" ] || { echo "Debian ucspi-tcp is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '127.:allow,RELAYCLIENT=""\n:deny\n' | ./target/release/tcprules "$tmp/r.cdb" "$tmp/r.tmp"
cat > "$tmp/client.py" <<'PY'
import socket, sys, time, threading
port, n, par = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def work(k):
    for _ in range(k):
        s = socket.create_connection(("127.0.0.1", port)); s.recv(64); s.close()
t = time.time()
th = [threading.Thread(target=work, args=(n // par,)) for _ in range(par)]
[x.start() for x in th]; [x.join() for x in th]
print(f"{(n // par) * par / (time.time() - t):.0f}")
PY
PERF=$(command -v perf || true)
round=1
while [ "$round" -le "$R" ]; do
  for name in debian ours; do
    bin=$DEB; [ $name = ours ] && bin=$OURS
    rm -f "$tmp/port"
    if [ -n "$PERF" ]; then
      "$PERF" stat -x, -e task-clock,page-faults -o "$tmp/perf" \
        "$bin" -1 -R -H -l0 -x "$tmp/r.cdb" -c 40 127.0.0.1 0 /bin/true >"$tmp/port" 2>/dev/null &
    else
      "$bin" -1 -R -H -l0 -x "$tmp/r.cdb" -c 40 127.0.0.1 0 /bin/true >"$tmp/port" 2>/dev/null &
    fi
    wrapper=$!
    while [ ! -s "$tmp/port" ]; do sleep 0.1; done
    rate=$(/usr/bin/python3 "$tmp/client.py" "$(cat "$tmp/port")" "$N" "$P")
    if [ -n "$PERF" ]; then
      kill "$(pgrep -P "$wrapper")"; wait "$wrapper" || true
      cpu=$(awk -F, '/task-clock/ {printf "%.3f", $1 / '"$N"'}' "$tmp/perf")
      pf=$(awk -F, '/page-faults/ {printf "%.0f", $1 / '"$N"'}' "$tmp/perf")
      echo "round $round $name: $rate conn/s, $cpu ms CPU and $pf page faults per connection"
    else
      kill "$wrapper"; wait "$wrapper" || true
      echo "round $round $name: $rate conn/s"
    fi
  done
  round=$((round + 1))
done
