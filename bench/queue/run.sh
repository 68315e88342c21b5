#!/usr/bin/env bash
# Injection + local Maildir delivery rate: rqmail (qmail-inject → qmail-queue → qmail-send →
# qmail-lspawn → qmail-local) next to Debian's Postfix (sendmail → postdrop → pickup → cleanup →
# qmgr → virtual, Maildir), both with their fsyncs on, on the same disk, in the same run.
#
# usage (as root): bench/queue/run.sh [MESSAGES_PER_POINT] [INJECTOR_COUNTS...]
#   defaults: 600 messages per point, injectors 1 2 5 10 20
# Writes a Markdown table to stdout (bench/RESULTS.md holds copies of the runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
M=${1:-600}; shift || true
COUNTS=${*:-"1 2 5 10 20"}
[ "$(id -u)" = 0 ] || { echo "run as root (postfix needs it)" >&2; exit 100; }

rc/build -q >/dev/null  # the release build as installed
R=$PWD/target/release
# BENCH_TMP: where the work directory is made (default /var/tmp); see bench/smtpd/journaled-fs.sh
W=$(mktemp -d "${BENCH_TMP:-/var/tmp}/rqmail-bench.XXXXXX")
chmod 755 "$W"
UIDN=64201; GIDN=64200
cleanup() {
  [ -n "${SENDPID:-}" ] && kill -TERM "$SENDPID" 2>/dev/null && sleep 1
  [ -d "$W/pf" ] && postfix -c "$W/pf" stop >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
. bench/queue/common.sh

# The disk's fsync rate (1 KB file create + write + fsync, 3 s).
FSYNC=$(/usr/bin/python3 - "$W" <<'EOF'
import os, sys, time
d = os.path.join(sys.argv[1], "fsync"); os.makedirs(d)
n = 0; t = time.time()
while time.time() - t < 3:
    fd = os.open(f"{d}/f{n}", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 1024); os.fsync(fd); os.close(fd); n += 1
print(int(n / (time.time() - t)))
EOF
)

# The body is made once: the injecting shell should cost as little as possible per message
# (it is the same for both systems and only dilutes the comparison).
BODY=$(head -c 1500 /dev/zero | tr '\0' x)
msg() { printf 'From: bench@bench.test\nTo: u@bench.test\nSubject: bench %s\n\n%s\n' "$1" "$BODY"; }

count() { find "$1" -type f 2>/dev/null | wc -l; }

# run NAME INJECT_CMD MAILDIR_NEW N: N injectors send M messages together; prints msgs/s.
run() {
  local inject=$1 new=$2 n=$3 per=$((M / $3)) total before start end
  total=$((per * n)); before=$(count "$new")
  start=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    ( for j in $(seq 1 "$per"); do msg "$i.$j" | $inject || echo "inject failed" >&2; done ) &
  done
  wait
  local deadline=$(( $(date +%s) + 600 ))
  while [ "$(count "$new")" -lt $((before + total)) ]; do
    [ "$(date +%s)" -gt $deadline ] && { echo "timeout: $(count "$new") of $((before+total))" >&2; break; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  /usr/bin/python3 -c "print(f'{$total / ($end - $start):.1f}')"
}

rq_block() {
# --- rqmail ---
rq_start
for n in $COUNTS; do RQ[$n]=$(run "$Q/bin/qmail-inject u@bench.test" "$W/u/Maildir/new" "$n"); done
unset QMAILHOME
kill -TERM "$SENDPID"; wait "$SENDPID" 2>/dev/null || true; SENDPID=
}

pf_block() {
# --- Postfix ---
PF=$W/pf; mkdir -p "$PF" "$W/pfq" "$W/pfdata" "$W/pfmail"
chown $UIDN:$GIDN "$W/pfmail"
chown postfix "$W/pfdata"
echo "u@bench.test u/" > "$PF/vmailbox"
cat > "$PF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $W/pfq
data_directory = $W/pfdata
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.test
mydomain = bench.test
mydestination =
inet_interfaces = loopback-only
alias_maps =
alias_database =
append_dot_mydomain = no
biff = no
smtputf8_enable = no
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $W/pfmail
virtual_mailbox_maps = texthash:$PF/vmailbox
virtual_uid_maps = static:$UIDN
virtual_gid_maps = static:$GIDN
virtual_minimum_uid = 100
maillog_file_prefixes = $W
maillog_file = $W/pf/maillog
EOF
# Debian's master.cf without network listeners and without chroot.
awk '/^[#[:space:]]/ || NF < 8 { print; next } $2 == "inet" { next } { $5 = "n"; print }' \
  /etc/postfix/master.cf > "$PF/master.cf"
postfix -c "$PF" check >/dev/null 2>&1 || true
postfix -c "$PF" start >/dev/null 2>&1
sleep 2
for n in $COUNTS; do PFX[$n]=$(run "/usr/sbin/sendmail -C $PF -f bench@bench.test u@bench.test" "$W/pfmail/u/new" "$n"); done
postfix -c "$PF" stop >/dev/null 2>&1 || true
}

# FIRST=postfix runs Postfix's points first. On a file system where creating files gets
# dearer after many deletions (ext4 without a journal, see bench/smtpd/journaled-fs.sh), the
# system that runs second pays for the first one's deletions: run both orders.
declare -A RQ PFX
# PAUSE=S sleeps S seconds before each system's block, so that neither pays for file
# deletions made just before it (ext4 without a journal remembers them for up to 300 s).
pause() { [ "${PAUSE:-0}" -gt 0 ] && sleep "$PAUSE"; return 0; }
if [ "${FIRST:-rqmail}" = postfix ]; then pause; pf_block; pause; rq_block; else pause; rq_block; pause; pf_block; fi

echo "Disk: $(df --output=source,fstype "$W" | tail -1 | tr -s ' '), fsync rate $FSYNC/s (1 KB create+write+fsync)."
echo "Order: ${FIRST:-rqmail} first; pause before each system: ${PAUSE:-0} s."
echo "Messages per point: $M; message size ~1.6 KB; one local recipient; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)."
echo
echo "| injectors | rqmail msg/s | Postfix msg/s | ratio |"
echo "| --- | --- | --- | --- |"
for n in $COUNTS; do
  echo "| $n | ${RQ[$n]} | ${PFX[$n]} | $(/usr/bin/python3 -c "print(f'{${RQ[$n]}/max(${PFX[$n]},0.001):.2f}')") |"
done
