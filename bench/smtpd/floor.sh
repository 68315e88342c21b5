#!/bin/sh
# The floor of the process model the inbound issue prescribes, on this machine, against
# Postfix in the same run. tcpserver starts a program per connection; that program (floor/
# smtpd.c, static C) answers smtp-source with fixed replies and at the end of each message
# starts 0, 1 or 2 no-op static C programs (floor/noop.c) and waits for them — standing for
# qmail-queue and for the delivery's qmail-local. Nothing touches the disk. So "3 programs"
# is what any implementation of tcpserver → qmail-smtpd → qmail-queue, … → qmail-local
# spends on program starts alone, with the cheapest programs C can make. Postfix runs as in
# run.sh: accepted and delivered to a Maildir, fsyncs on.
#
# usage (as root): bench/smtpd/floor.sh [MESSAGES [SESSIONS [ROUNDS]]]   (2000 20 3)
# TCPSERVER: the tcpserver to use (default Debian's /usr/bin/tcpserver, package ucspi-tcp).
# BENCH_TMP: where Postfix's queue and Maildir go (default /tmp).
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
gcc -O2 -static -o "$work/smtpd" "$here/floor/smtpd.c"
gcc -O2 -static -o "$work/noop" "$here/floor/noop.c"
rate() { awk -v m="$M" -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", m / (b - a) }'; }
floor() { # floor ARGS...: msg/s accepted by tcpserver + smtpd ARGS
  port=$(pick_port)
  "$tcpserver" -c 40 -H -R -l floor 127.0.0.1 "$port" "$work/smtpd" "$@" 2>/dev/null &
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
printf '%-6s %10s %10s %10s %10s %s\n' round "1 program" "2 programs" "3 programs" postfix "3 programs / postfix"
i=1
while [ "$i" -le "$R" ]; do
  f1=$(floor) && f2=$(floor "$work/noop") && f3=$(floor "$work/noop" "$work/noop") && pf=$(postfix_rate) ||
    exit 1
  printf '%-6s %10s %10s %10s %10s %.2f\n' "$i" "$f1" "$f2" "$f3" "$pf" "$(awk -v a="$f3" -v b="$pf" 'BEGIN { print a / b }')"
  i=$((i + 1))
done
