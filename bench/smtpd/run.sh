#!/bin/sh
# SMTP messages per second accepted and delivered to a Maildir, rqmail against Postfix, in the
# same run on loopback, both with their fsyncs on. Needs root (Postfix, uid switches),
# /usr/sbin/smtp-source and Debian's postfix.
#
# usage: bench/smtpd/run.sh BINDIR [MESSAGES [SESSIONS]]
#   BINDIR: rqmail's built programs (target/release as rc/build makes it: the per-message
#   programs statically linked); tcpserver from BINDIR when present,
#   else Debian's /usr/bin/tcpserver.
# BENCH_TMP: where the work directory is made (default /tmp). On this machine's journal-less
# ext4 every file creation scans past the inodes deleted in the last minutes of its block
# group, so where the queues and Maildirs live changes the figures (bench/RESULTS.md).
# Prints one result line per server: messages, seconds until smtp-source finished (accepted),
# seconds until the last message was in Maildir/new (delivered), and messages per second.
set -e
BIN=$(cd "$1" && pwd) M=${2:-20000} S=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
work=$(mktemp -d "${BENCH_TMP:-/tmp}/rqbench.XXXXXX"); chmod 755 "$work"
# Ports: free ones picked at random unless given.
port_rq=${PORT_RQ:-$(pick_port)} port_pf=${PORT_PF:-$(pick_port)}
LIMIT=${LIMIT:-900}
count() { find "$1" -maxdepth 1 -type f | wc -l; }
wait_count() { # DIR N: poll until N files, at most LIMIT seconds
  end=$(( $(date +%s) + LIMIT ))
  while [ "$(count "$1")" -lt "$2" ]; do
    [ "$(date +%s)" -lt "$end" ] || { echo "only $(count "$1") of $2 delivered after ${LIMIT}s" >&2; exit 1; }
    sleep 0.1
  done
}
report() { # name t0 t1 t2
  awk -v n="$1" -v m="$M" -v a="$2" -v b="$3" -v c="$4" 'BEGIN {
    printf "%-8s %6d msgs  accepted in %7.2f s  delivered in %7.2f s  %8.1f msg/s delivered\n", n, m, b-a, c-a, m/(c-a) }'
}
cleanup() {
  [ -n "$tcpserver_pid" ] && kill "$tcpserver_pid" 2>/dev/null
  [ -n "$send_pid" ] && kill "$send_pid" 2>/dev/null
  [ -d "$work/postfix/etc" ] && "$here/postfix-instance.sh" "$work/postfix" "$port_pf" stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- rqmail ---
home=$work/qmail; mkdir "$home"
if [ "$(id -u)" = 0 ]; then
  printf 'alias:64301:64300\nqmaild:64302:64300\nqmaill:64303:64310\nqmailp:64304:64310\nqmailq:64305:64300\nqmailr:64306:64300\nqmails:64307:64300\nqmail:64300:64300\nnofiles:64310:64310\n' > "$home/ids"
  uid=65534 gid=65534
else
  uid=$(id -u) gid=$(id -g)
fi
"$BIN/qmail-install" "$home"
echo bench.example > "$home/control/me"
echo bench.example > "$home/control/locals"
echo bench.example > "$home/control/rcpthosts"
echo ./Maildir/ > "$home/control/defaultdelivery"
mkdir -p "$work/bench/Maildir/new" "$work/bench/Maildir/cur" "$work/bench/Maildir/tmp"
chown -R "$uid:$gid" "$work/bench"
printf '=bench:bench:%s:%s:%s:::\n.\n' "$uid" "$gid" "$work/bench" > "$home/users/assign"
QMAILHOME=$home "$home/bin/qmail-newu"
QMAILHOME=$home "$home/bin/qmail-start" > "$work/send.log" 2>&1 &
send_pid=$!
if [ -x "$BIN/tcpserver" ]; then tcpserver=$BIN/tcpserver; else tcpserver=/usr/bin/tcpserver; fi
QMAILHOME=$home "$tcpserver" -c 40 -H -R -l bench.example 127.0.0.1 "$port_rq" "$home/bin/qmail-smtpd" 2>"$work/smtpd.log" &
tcpserver_pid=$!
wait_listen "$port_rq"
source_to "$port_rq"
wait_count "$work/bench/Maildir/new" "$M"
t2=$(now)
rq=$(report rqmail "$t0" "$t1" "$t2")
echo "$rq" >&2
kill "$tcpserver_pid" "$send_pid" 2>/dev/null || true; tcpserver_pid= send_pid=
wait 2>/dev/null || true

# --- Postfix ---
"$here/postfix-instance.sh" "$work/postfix" "$port_pf" start >/dev/null
wait_listen "$port_pf"
source_to "$port_pf"
wait_count "$work/postfix/mail/bench/Maildir/new" "$M"
t2=$(now)
pf=$(report postfix "$t0" "$t1" "$t2")
echo "smtp-source -s $S -m $M ($(nproc) cores, tcpserver: $tcpserver)"
echo "$rq"
echo "$pf"
