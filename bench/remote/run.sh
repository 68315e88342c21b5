#!/usr/bin/env bash
# Remote-delivery bench: N queued messages (one remote recipient each, ~3 KB) delivered to
# Postfix's smtp-sink on loopback with 20 parallel deliveries, by rqmail (qmail-send →
# qmail-rspawn → qmail-remote, concurrencyremote 20, control/smtproutes) and by a private
# Postfix instance (relayhost, destination concurrency 20), in the same run against the same
# sink; and, to separate the queue from the delivery agent, the same N qmail-remote runs started
# directly 20 at a time. The clock starts when the queue is full and delivery is released, and stops when the
# queue is empty.
#
# Usage (as root, from the repository): bench/remote/run.sh [N]      (default N = 20000)
# Needs /usr/sbin/smtp-sink and /usr/sbin/postfix (Debian's postfix package).
set -euo pipefail
N=${1:-20000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
"$ROOT/rc/build" -q >/dev/null  # the release build as installed
B=$ROOT/target/release
WORK=$(mktemp -d /tmp/rqbench.XXXXXX)
chmod 755 "$WORK"
PORT=${PORT:-$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
/usr/sbin/smtp-sink -u postfix 127.0.0.1:"$PORT" 1024 &
SINK=$!
SEND=
cleanup() {
  [ -n "$SEND" ] && kill -TERM "$SEND" 2>/dev/null && wait "$SEND" 2>/dev/null
  kill "$SINK" 2>/dev/null || true
}
trap cleanup EXIT
{ printf 'From: sender@bench.example.org\nTo: somebody@remote.example\nSubject: bench\n\n'
  for i in $(seq 1 40); do printf '%s\n' "line $i of the bench message, padding padding padding padding pad"; done
} > "$WORK/message"

# ---- rqmail ----
Q=$WORK/rq
mkdir "$Q"
if [ "$(id -u)" = 0 ]; then
  printf 'alias:64301:64300\nqmaild:64302:64300\nqmaill:64303:64310\nqmailp:64304:64310\nqmailq:64305:64300\nqmailr:64306:64300\nqmails:64307:64300\nqmail:64300:64300\nnofiles:64310:64310\n' > "$Q/ids"
fi
"$B/qmail-install" "$Q" >/dev/null
echo bench.example.org > "$Q/control/me"
echo bench.example.org > "$Q/control/locals"
echo ":127.0.0.1:$PORT" > "$Q/control/smtproutes"
echo 20 > "$Q/control/concurrencyremote"
export QMAILHOME=$Q
for i in $(seq 1 "$N"); do
  "$Q/bin/qmail-queue" < "$WORK/message" 1< <(printf 'Fsender@bench.example.org\0Trcpt%d@remote.example\0\0' "$i")
done
start=$(date +%s.%N)
"$Q/bin/qmail-start" > "$WORK/rq-send.log" 2>&1 &
SEND=$!
until [ "$(find "$Q/queue/mess" -type f | wc -l)" = 0 ]; do sleep 0.05; done
end=$(date +%s.%N)
ok=$(grep -c ': success: ' "$WORK/rq-send.log" || true)
kill -TERM "$SEND"; wait "$SEND" 2>/dev/null || true; SEND=

awk -v n="$N" -v s="$start" -v e="$end" -v ok="$ok" \
  'BEGIN { t = e - s; printf "rqmail  %d messages (%d successes) in %.2f s: %.1f deliveries/s\n", n, ok, t, n / t }'

# ---- qmail-remote alone: the same N deliveries without the queue, 20 at a time ----
start=$(date +%s.%N)
seq 1 "$N" | xargs -P 20 -I{} sh -c '"$0" remote.example sender@bench.example.org "r{}@remote.example" < "$1" > /dev/null' \
  "$Q/bin/qmail-remote" "$WORK/message"
end=$(date +%s.%N)
awk -v n="$N" -v s="$start" -v e="$end" \
  'BEGIN { t = e - s; printf "qmail-remote alone (xargs -P 20) %d in %.2f s: %.1f deliveries/s\n", n, t, n / t }'
unset QMAILHOME

# ---- Postfix ----
"$HERE/postfix.sh" "$WORK" "$PORT" "$N" | awk -v mlog="$WORK/pf-maillog" '{
  cmd = "grep -c status=sent " mlog; cmd | getline ok; close(cmd)
  printf "postfix %d messages (%d sent) in %.2f s: %.1f deliveries/s\n", $2, ok, $3, $4 }'
echo "work directory: $WORK"
