#!/bin/sh
# The accepting half alone: smtp-source against our tcpserver + qmail-smtpd with no qmail-send
# running, so nothing is delivered. MODE (default both):
#   noop   QMAILQUEUE is a tiny static C program that reads the message and the envelope and
#          exits 0 (what tcpserver + qmail-smtpd cost by themselves);
#   queue  the real qmail-queue (with all its fsyncs) into a fresh queue;
#   both   noop, then queue.
# QQ=PROGRAM runs that program as qmail-queue in mode queue (to compare two builds).
# usage: bench/smtpd/accept.sh BINDIR [MESSAGES [SESSIONS [MODE]]]
# BENCH_TMP: where the work directory is made (default /tmp). On this machine's journal-less
# ext4 every file creation scans past the inodes deleted in the last minutes of its block
# group, so where the queues and Maildirs live changes the figures (bench/RESULTS.md).
# Prints one line per mode: messages, seconds, messages per second accepted.
set -e
BIN=$(cd "$1" && pwd) M=${2:-2000} S=${3:-20} MODE=${4:-both}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
work=$(mktemp -d "${BENCH_TMP:-/tmp}/rqaccept.XXXXXX"); chmod 755 "$work"
cleanup() {
  [ -n "$tcpserver_pid" ] && kill "$tcpserver_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

cat > "$work/noop.c" <<'C'
#include <unistd.h>
int main(void) { char b[65536]; while (read(0, b, sizeof b) > 0); while (read(1, b, sizeof b) > 0); return 0; }
C
cc -O2 -static -o "$work/noopqq" "$work/noop.c"

home=$work/qmail; mkdir "$home"
if [ "$(id -u)" = 0 ]; then
  printf 'alias:64301:64300\nqmaild:64302:64300\nqmaill:64303:64310\nqmailp:64304:64310\nqmailq:64305:64300\nqmailr:64306:64300\nqmails:64307:64300\nqmail:64300:64300\nnofiles:64310:64310\n' > "$home/ids"
fi
"$BIN/qmail-install" "$home"
echo bench.example > "$home/control/me"
echo bench.example > "$home/control/locals"
echo bench.example > "$home/control/rcpthosts"
if [ -x "$BIN/tcpserver" ]; then tcpserver=$BIN/tcpserver; else tcpserver=/usr/bin/tcpserver; fi

one() { # mode
  port=$(pick_port)
  if [ "$1" = noop ]; then qq=$work/noopqq; else qq=${QQ:-}; fi
  QMAILQUEUE=$qq QMAILHOME=$home "$tcpserver" -c 40 -H -R -l bench.example 127.0.0.1 "$port" "$home/bin/qmail-smtpd" 2>"$work/smtpd.log" &
  tcpserver_pid=$!
  wait_listen "$port"
  source_to "$port"
  kill "$tcpserver_pid"; wait "$tcpserver_pid" 2>/dev/null || true; tcpserver_pid=
  awk -v n="$1" -v m="$M" -v a="$t0" -v b="$t1" 'BEGIN {
    printf "accept-%-6s %6d msgs  in %7.2f s  %8.1f msg/s accepted\n", n, m, b-a, m/(b-a) }'
}
case "$MODE" in
both) one noop; one queue ;;
noop|queue) one "$MODE" ;;
*) echo "usage: $0 BINDIR [MESSAGES [SESSIONS [noop|queue|both]]]" >&2; exit 100 ;;
esac
