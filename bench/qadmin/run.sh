#!/bin/sh
# qmail-qadmin list/delete times for generated queues of 10,000 and 100,000 messages.
# Usage: bench/qadmin/run.sh   (from the worktree; builds what it needs)
# Peers: our qmail-qread and qmail-qstat (qmail's own listing tools; qmHandle is not installed
# here and calls qmail-qread-like logic itself).
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
cargo build -q -p mta --bins
cargo build -q --release -p mta --bin qmail-qadmin --bin qmail-qread --bin qmail-qstat
work=$(mktemp -d /tmp/qadmin-bench.XXXXXX)
trap 'kill $sendpid 2>/dev/null; rm -rf "$work"' EXIT
t() { # label command...
  s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
  printf '| %s | %.2f s |\n' "$1 $2 $3 $4 $5" "$(echo "$e - $s" | bc)"
}
for n in ${SIZES:-10000 100000}; do
  home=$work/q$n
  mkdir -p "$home"
  target/debug/qmail-install "$home" >/dev/null
  QMAILHOME=$home "$home/bin/config-fast" example.org >/dev/null
  for p in qmail-qadmin qmail-qread qmail-qstat; do cp target/release/$p "$home/bin/$p"; done
  /usr/bin/python3 bench/qadmin/gen.py "$home" $n
  export QMAILHOME=$home
  sync
  echo "### $n messages"
  echo "| command | time |"
  echo "|---|---|"
  t "$home/bin/qmail-qstat"
  t "$home/bin/qmail-qread"
  t "$home/bin/qmail-qadmin" list
  t "$home/bin/qmail-qadmin" --json list
  t "$home/bin/qmail-qadmin" list --subject '*message 7*'
  # Delete 10 % by sender without qmail-send (direct mode, under lock/sendmutex).
  t "$home/bin/qmail-qadmin" delete --sender user3@example.org
  # The same with qmail-send running (concurrencyremote 0: nothing is delivered meanwhile).
  echo 0 > "$home/control/concurrencyremote"
  "$home/bin/qmail-start" ./Maildir/ </dev/null >"$work/send$n.log" 2>&1 &
  sendpid=$!
  until grep -q 'status: local 0/' "$work/send$n.log"; do sleep 0.1; done
  t "$home/bin/qmail-qadmin" --timeout 120 delete --sender user4@example.org
  kill $sendpid; wait $sendpid 2>/dev/null || true
  "$home/bin/qmail-qstat"
done
