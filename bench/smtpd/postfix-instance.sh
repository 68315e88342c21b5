#!/bin/sh
# Start a private Postfix instance (Debian's postfix, must run as root) that accepts mail for
# bench.example on 127.0.0.1:PORT and delivers it with virtual(8) to DIR/mail/bench/Maildir/
# (fsyncs on, Postfix's defaults). Usage: postfix-instance.sh DIR PORT start|stop
set -e
dir=$1 port=$2 action=$3
case "$action" in
stop) postfix -c "$dir/etc" stop 2>/dev/null || true; exit 0 ;;
start) ;;
*) echo "usage: $0 DIR PORT start|stop" >&2; exit 100 ;;
esac
mkdir -p "$dir/etc" "$dir/spool" "$dir/data" "$dir/mail/bench/Maildir/new" "$dir/mail/bench/Maildir/cur" "$dir/mail/bench/Maildir/tmp"
chown -R 65534:65534 "$dir/mail"
chown postfix "$dir/data"
cat > "$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.bench.example
mydomain = bench.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = bench.example
virtual_mailbox_base = $dir/mail
virtual_mailbox_maps = texthash:$dir/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_destination_concurrency_limit = 20
default_process_limit = 100
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
anvil_rate_time_unit = 60s
maillog_file_prefixes = $dir
maillog_file = $dir/maillog
alias_maps =
alias_database =
local_recipient_maps =
biff = no
CF
echo "bench@bench.example bench/Maildir/" > "$dir/etc/vmailbox"
sed -e "s/^smtp      inet/$port      inet/" -e '/^#/d' /etc/postfix/master.cf > "$dir/etc/master.cf"
grep -q "^postlog" "$dir/etc/master.cf" || echo "postlog   unix-dgram n  -       n       -       1       postlogd" >> "$dir/etc/master.cf"
postconf -c "$dir/etc" -F "*/*/chroot = n"
postfix -c "$dir/etc" set-permissions >/dev/null 2>&1 || true
postfix -c "$dir/etc" check
postfix -c "$dir/etc" start
