#!/usr/bin/env bash
# Local delivery throughput: deliveries per second to a Maildir and to an mbox.
#
#   bench/local/run.sh [N]        (N messages per run, default 10000; run as root)
#
# 1. qmail-local alone: N runs of qmail-local (one process per message, message on a file, as
#    qmail-lspawn gives it), to ./Maildir/ and to ./mbox, one at a time and 10 at a time
#    (qmail-send's default concurrencylocal).
# 2. The whole local path, rqmail: N messages queued with qmail-queue while qmail-send is down,
#    then qmail-start is started and we time until all N are delivered (qmail-send → qmail-lspawn
#    → qmail-local as the recipient's uid, concurrencylocal 10).
# 3. The same for Postfix 3 (Debian's): a private instance in a temporary directory, N messages
#    submitted with `sendmail` while `defer_transports = local` holds them, then released with
#    `postqueue -f`; we time until local(8) has delivered all N (alias to a maildir/mbox file,
#    run as nobody; Postfix's default local concurrency).
# Both sides fsync every delivered message; rqmail also fsyncs new/ after each maildir link.
set -euo pipefail
N=${1:-10000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "run as root (uid switching and Postfix need it)" >&2; exit 1; }
rc/build -q >/dev/null  # the release build as installed
B=${BIN:-$ROOT/target/release}
W=$(mktemp -d /tmp/bench-local.XXXXXX)
chmod 755 "$W"
cleanup() {
  [ -n "${QPID:-}" ] && kill -TERM -- -"$QPID" 2>/dev/null || true
  [ -d "$W/pf/etc" ] && postfix -c "$W/pf/etc" stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
count_md() { { find "$1" -maxdepth 1 -type f 2>/dev/null || true; } | wc -l; }
count_mbox() { [ -f "$1" ] && grep -c '^From ' "$1" || echo 0; }
wait_for() { # wait_for KIND PATH N
  while :; do
    c=$("count_$1" "$2")
    [ "$c" -ge "$3" ] && break
    sleep 0.2
  done
}

# A 2 KB message.
{
  printf 'From: bench@example.net\nTo: user@example.org\nSubject: bench\n\n'
  for i in $(seq 30); do printf 'line %02d of the body, the quick brown fox jumps over the lazy dog\n' "$i"; done
} > "$W/msg"

echo "# bench/local: N=$N, $(nproc) cores, $(uname -r), $(date -u +%FT%TZ)"
# The disk's fsync rate right now (write 2 KB + fsync, 300 times), for context.
/usr/bin/python3 - "$W/fsync-probe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
t = time.time()
for i in range(300):
    os.write(fd, b"x" * 2048)
    os.fsync(fd)
print("disk: %.0f fsyncs/s (2 KB append + fsync), load average %s" % (300 / (time.time() - t), os.getloadavg()[0]))
PY
echo

# --- 1. qmail-local alone: one process per message, P loops in parallel ---
ql_run() { # ql_run KIND P
  local kind=$1 P=$2 H=$W/ql-$1-$2
  mkdir -p "$H"; chmod 755 "$H"
  "$B/maildirmake" "$H/Maildir"
  if [ "$kind" = maildir ]; then echo ./Maildir/ > "$H/.qmail"; else echo ./mbox > "$H/.qmail"; fi
  chmod 644 "$H/.qmail"
  t0=$(now)
  for p in $(seq "$P"); do
    (
      for i in $(seq $((N / P))); do
        "$B/qmail-local" -- user "$H" user '' '' example.org bench@example.net ./Maildir/ < "$W/msg" > /dev/null
      done
    ) &
  done
  wait
  t1=$(now)
  if [ "$kind" = maildir ]; then got=$(count_md "$H/Maildir/new"); else got=$(count_mbox "$H/mbox"); fi
  echo "qmail-local alone, $kind, $P at a time: $got messages, $(rate "$got" "$t0" "$t1")/s"
}
ql_run maildir 1
ql_run mbox 1
ql_run maildir 10
ql_run mbox 10
echo

# --- 2. rqmail, queue → qmail-send → qmail-lspawn → qmail-local ---
rq_run() { # rq_run KIND
  local kind=$1 Q=$W/rq-$1 H=$W/rq-$1-home
  mkdir -p "$Q"
  printf 'alias:7790:7780\nqmaild:7791:7781\nqmaill:7792:7781\nroot:0:0\nqmailp:7793:7781\nqmailq:7794:7780\nqmailr:7795:7780\nqmails:7796:7780\nqmail:4294967295:7780\nnofiles:4294967295:7781\n' > "$Q/ids"
  "$B/qmail-install" "$Q" > /dev/null
  echo example.org > "$Q/control/me"; echo example.org > "$Q/control/locals"
  mkdir -p "$H"; "$B/maildirmake" "$H/Maildir"
  if [ "$kind" = maildir ]; then echo ./Maildir/ > "$H/.qmail"; else echo ./mbox > "$H/.qmail"; fi
  chmod 644 "$H/.qmail"; chmod 700 "$H"; chown -R 7801:7801 "$H"
  printf '=user:user:7801:7801:%s:::\n.\n' "$H" > "$Q/users/assign"
  QMAILHOME=$Q "$Q/bin/qmail-newu"
  printf 'Fbench@example.net\0Tuser@example.org\0\0' > "$W/env"
  for i in $(seq "$N"); do QMAILHOME=$Q "$Q/bin/qmail-queue" < "$W/msg" 1< "$W/env"; done
  t0=$(now)
  setsid env QMAILHOME="$Q" "$Q/bin/qmail-start" ./Maildir/ > "$W/rq-$kind.log" 2>&1 &
  QPID=$!
  if [ "$kind" = maildir ]; then wait_for md "$H/Maildir/new" "$N"; else wait_for mbox "$H/mbox" "$N"; fi
  t1=$(now)
  kill -TERM -- -"$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; QPID=
  echo "rqmail queue→qmail-local, $kind: $N messages, $(rate "$N" "$t0" "$t1")/s"
}
rq_run maildir
rq_run mbox
echo

# --- 3. Postfix local(8) ---
if [ -x /usr/sbin/postfix ]; then
  PF=$W/pf
  mkdir -p "$PF/etc" "$PF/spool" "$PF/data" "$W/pfbox"
  chown nobody "$W/pfbox"
  chown postfix "$PF/data"
  sed -e 's/^smtp \{1,\}inet/#&/' /etc/postfix/master.cf > "$PF/etc/master.cf"
  cat > "$PF/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
myhostname = bench.invalid
mydomain = bench.invalid
myorigin = bench.invalid
mydestination = bench.invalid
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps = hash:$PF/etc/aliases
alias_database = hash:$PF/etc/aliases
default_privs = nobody
mailbox_size_limit = 0
message_size_limit = 0
biff = no
defer_transports = local
maillog_file = $PF/maillog
maillog_file_prefixes = $W
CF
  printf 'mdbox: %s/Maildir/\nmbbox: %s/mbox\n' "$W/pfbox" "$W/pfbox" > "$PF/etc/aliases"
  postalias "$PF/etc/aliases"
  postfix -c "$PF/etc" start > /dev/null 2>&1
  pf_run() { # pf_run KIND RCPT
    for i in $(seq "$N"); do /usr/sbin/sendmail -C "$PF/etc" -f bench@example.net "$2@bench.invalid" < "$W/msg"; done
    while [ "$(find "$PF/spool/deferred" -type f | wc -l)" -lt "$N" ]; do sleep 0.5; done
    postconf -c "$PF/etc" -e 'defer_transports =' ; postfix -c "$PF/etc" reload > /dev/null 2>&1
    t0=$(now)
    postqueue -c "$PF/etc" -f
    if [ "$1" = maildir ]; then wait_for md "$W/pfbox/Maildir/new" "$N"; else wait_for mbox "$W/pfbox/mbox" "$N"; fi
    t1=$(now)
    postconf -c "$PF/etc" -e 'defer_transports = local'; postfix -c "$PF/etc" reload > /dev/null 2>&1
    echo "postfix queue→local(8), $1: $N messages, $(rate "$N" "$t0" "$t1")/s"
  }
  pf_run maildir mdbox
  pf_run mbox mbbox
else
  echo "postfix not installed: no peer figures"
fi
