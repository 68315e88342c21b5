#!/usr/bin/env bash
# Postfix side of the remote-delivery bench: a private Postfix instance (own config, queue and
# data directories under $WORK) relays N queued messages to an smtp-sink on 127.0.0.1:$PORT with
# 20 parallel SMTP deliveries. Prints "postfix N SECONDS RATE".
# Usage: postfix.sh WORK PORT N   (root: Postfix's daemons drop to the postfix user)
set -euo pipefail
WORK=$1 PORT=$2 N=$3
C=$WORK/pf-etc Q=$WORK/pf-spool D=$WORK/pf-data
mkdir -p "$C" "$Q" "$D"
chown postfix "$D"
# master.cf without the port-25 listener.
grep -v '^smtp[[:space:]]\+inet' /etc/postfix/master.cf > "$C/master.cf"
cat > "$C/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $Q
data_directory = $D
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.example.org
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:$PORT
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
initial_destination_concurrency = 20
default_process_limit = 100
alias_maps =
alias_database =
local_recipient_maps =
smtp_host_lookup = native
disable_dns_lookups = yes
maillog_file = $WORK/pf-maillog
maillog_file_prefixes = $WORK
defer_transports = smtp
CF
postfix -c "$C" check 2>/dev/null || true
postfix -c "$C" start >/dev/null 2>&1
trap 'postfix -c "$C" stop >/dev/null 2>&1 || true' EXIT
MSG=$WORK/message
for i in $(seq 1 "$N"); do
  sendmail -C "$C" -f sender@bench.example.org "rcpt$i@remote.example" < "$MSG"
done
# Wait until everything is queued (held by defer_transports).
count() { find "$Q/incoming" "$Q/active" "$Q/deferred" "$Q/maildrop" -type f 2>/dev/null | wc -l; }
until [ "$(count)" -ge "$N" ]; do sleep 0.2; done
until [ "$(find "$Q/maildrop" "$Q/incoming" -type f | wc -l)" = 0 ]; do sleep 0.2; done
postconf -c "$C" -e 'defer_transports =' 
start=$(date +%s.%N)
postfix -c "$C" reload >/dev/null 2>&1
postqueue -c "$C" -f
until [ "$(count)" = 0 ]; do sleep 0.05; done
end=$(date +%s.%N)
awk -v n="$N" -v s="$start" -v e="$end" 'BEGIN { t = e - s; printf "postfix %d %.2f %.1f\n", n, t, n / t }'
