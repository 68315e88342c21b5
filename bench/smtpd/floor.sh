#!/bin/sh
# The floor of the process model the inbound issue prescribes, on this machine, against
# Postfix in the same run. tcpserver starts a program per connection; that program
# (floor/smtpd.c, static C) answers smtp-source with fixed replies and at the end of each
# message starts other static C programs in turn and waits for each:
#   "1 program"      none: tcpserver + the SMTP dialogue alone;
#   "3 programs"     two no-op programs (floor/noop.c) standing for qmail-queue and, for the
#                    delivery, qmail-local: what program starts alone cost;
#   "3 + disk"       floor/disk.c as "queue" and as "maildir", doing only the file creations,
#                    links and fsyncs that a queued-then-delivered message needs (message and
#                    envelope durable before the 250; Maildir file and new/ durable; queue
#                    files removed) — no scheduler, no parsing, no logs;
#   "2 + disk"       the same, with the delivery's part done inside the SMTP program (as if
#                    delivery needed no program start of its own);
#   "1 + disk"       all of the disk work done inside the one program tcpserver starts: what
#                    is left when nothing but tcpserver's exec per connection is kept.
# So "3 + disk" bounds from above what any implementation of tcpserver → qmail-smtpd →
# qmail-queue → … → qmail-local with qmail's durability can reach here, and "1 + disk" what
# anything started by tcpserver per connection can. Postfix runs as in run.sh: accepted and
# delivered to a Maildir, fsyncs on.
#
# usage (as root): bench/smtpd/floor.sh [MESSAGES [SESSIONS [ROUNDS]]]   (2000 20 3)
# TCPSERVER: the tcpserver to use (default Debian's /usr/bin/tcpserver, package ucspi-tcp).
# BENCH_TMP: where the disk work and Postfix's queue and Maildir go (default /tmp).
# FLOOR_NO_DIRSYNC=1: the disk work fsyncs no directories (Postfix does not either).
# Needs gcc and glibc's static libraries (libc6-dev), smtp-source and postfix.
set -e
M=${1:-2000} S=${2:-20} R=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
tcpserver=${TCPSERVER:-/usr/bin/tcpserver}
work=$(mktemp -d "${BENCH_TMP:-/tmp}/rqfloor.XXXXXX"); chmod 755 "$work"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -d "$work/postfix/etc" ] && "$here/postfix-instance.sh" "$work/postfix" 0 stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
gcc -O2 -static -I "$here/floor" -o "$work/smtpd" "$here/floor/smtpd.c"
gcc -O2 -static -o "$work/noop" "$here/floor/noop.c"
gcc -O2 -static -I "$here/floor" -o "$work/queue" "$here/floor/disk.c"
gcc -O2 -static -I "$here/floor" -o "$work/maildir" "$here/floor/disk.c"
rate() { awk -v m="$M" -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", m / (b - a) }'; }
floor() { # floor ARGS...: msg/s accepted by tcpserver + smtpd ARGS
  port=$(pick_port)
  rm -rf "$work/disk"; mkdir -p "$work/disk/pid" "$work/disk/mess" "$work/disk/intd" \
    "$work/disk/todo" "$work/disk/tmp" "$work/disk/new" "$work/disk/cur"
  FLOOR_DIR=$work/disk "$tcpserver" -c 40 -H -R -l floor 127.0.0.1 "$port" "$work/smtpd" "$@" 2>/dev/null &
  pid=$!
  wait_listen "$port"
  source_to "$port"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  rate "$t0" "$t1"
}
postfix_rate() { # msg/s accepted and delivered to the Maildir by a fresh Postfix instance
  port=$(pick_port)
  rm -rf "$work/postfix"
  "$here/postfix-instance.sh" "$work/postfix" "$port" start >/dev/null
  wait_listen "$port"
  source_to "$port"
  while [ "$(find "$work/postfix/mail/bench/Maildir/new" -type f | wc -l)" -lt "$M" ]; do sleep 0.05; done
  t1=$(now)
  "$here/postfix-instance.sh" "$work/postfix" "$port" stop
  rate "$t0" "$t1"
}
echo "smtp-source -s $S -m $M, $(nproc) cores, tcpserver $tcpserver; msg/s"
printf '%-6s %10s %10s %10s %10s %10s %10s %s\n' round "1 program" "3 programs" "1 + disk" "2 + disk" \
  "3 + disk" postfix "ratios to postfix: 1 + disk, 2 + disk, 3 + disk"
i=1
while [ "$i" -le "$R" ]; do
  f1=$(floor) && f3=$(floor "$work/noop" "$work/noop") && d1=$(floor @queue @maildir) &&
    d2=$(floor "$work/queue" @maildir) && d3=$(floor "$work/queue" "$work/maildir") &&
    pf=$(postfix_rate) || exit 1
  [ "$(find "$work/disk/new" -type f | wc -l)" -eq "$M" ] || { echo "$0: not every message reached new/" >&2; exit 1; }
  printf '%-6s %10s %10s %10s %10s %10s %10s %.2f %.2f %.2f\n' "$i" "$f1" "$f3" "$d1" "$d2" "$d3" "$pf" \
    "$(awk -v a="$d1" -v b="$pf" 'BEGIN { print a / b }')" "$(awk -v a="$d2" -v b="$pf" 'BEGIN { print a / b }')" \
    "$(awk -v a="$d3" -v b="$pf" 'BEGIN { print a / b }')"
  i=$((i + 1))
done
