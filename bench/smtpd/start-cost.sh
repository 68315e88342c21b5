#!/bin/sh
# CPU per program start: the per-message programs of a BINDIR against static and dynamic C
# programs that do nothing. Each program is started N times in turn, stdin on /dev/null and
# QMAILHOME an empty directory, so each gives up at once (qmail-smtpd on its missing control
# files, qmail-queue on its missing queue, qmail-local on its missing arguments) — this is
# start-up and exit, nothing else.
#
# usage: bench/smtpd/start-cost.sh BINDIR [N]      (N: 1000)
#   e.g. compare `RQMAIL_DYNAMIC=1 rc/build` with `rc/build` by copying target/release aside.
# Needs gcc and glibc's static libraries (libc6-dev).
set -e
BIN=$(cd "$1" && pwd) N=${2:-1000}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rqstart.XXXXXX")
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/spawn" "$here/floor/spawn.c"
gcc -O2 -static -o "$work/noop-static" "$here/floor/noop.c"
gcc -O2 -o "$work/noop-dynamic" "$here/floor/noop.c"
mkdir "$work/home"
export QMAILHOME="$work/home"
for p in "$work/noop-static" "$work/noop-dynamic" "$BIN/qmail-smtpd" "$BIN/qmail-queue" "$BIN/qmail-local"; do
  "$work/spawn" "$N" "$p"
done
