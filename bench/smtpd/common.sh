# Shell functions the bench/smtpd scripts share (sourced, not run).

# pick_port: a random TCP port in 20000–49999 that nothing listens on now.
pick_port() {
  while :; do
    p=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 30000 ))
    ss -ltn | grep -q ":$p " || { echo "$p"; return; }
  done
}

# now: the time in seconds, with nanoseconds.
now() { date +%s.%N; }

# wait_listen PORT: return once something listens on PORT.
wait_listen() { while ! ss -ltn | grep -q ":$1 "; do sleep 0.05; done; }

# source_to PORT: smtp-source -s $S -m $M to 127.0.0.1:PORT; sets t0 and t1 (start, end).
# smtp-source gives up on the first lost connection; then there is no rate to report.
source_to() {
  t0=$(now)
  if ! smtp-source -s "$S" -m "$M" -f a@client.example -t bench@bench.example "127.0.0.1:$1"; then
    echo "$0: smtp-source to port $1 failed: no figure for this run" >&2
    exit 1
  fi
  t1=$(now)
}
