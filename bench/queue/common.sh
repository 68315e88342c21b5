# Shared by bench/queue/run.sh and rq-only.sh (sourced, bash).

# rq_start: a fresh rqmail home in $W/rq with one local user u (uid $UIDN, gid $GIDN) whose
# Maildir is $W/u/Maildir, built from the programs in $R; starts qmail-start (its log in
# $W/send.log, pid in SENDPID) and exports QMAILHOME.
rq_start() {
  Q=$W/rq
  mkdir -p "$Q"
  printf 'alias:64101:64100\nqmaild:64102:64100\nqmaill:64103:64110\nqmailp:64104:64110\nqmailq:64105:64100\nqmailr:64106:64100\nqmails:64107:64100\nqmail:64100:64100\nnofiles:64110:64110\n' > "$Q/ids"
  "$R/qmail-install" "$Q" >/dev/null
  echo bench.test > "$Q/control/me"; echo bench.test > "$Q/control/locals"
  mkdir -p "$W/u/Maildir/"{tmp,new,cur}; chown -R "$UIDN:$GIDN" "$W/u"; chmod 755 "$W/u"
  printf '=u:u:%s:%s:%s:::\n.\n' "$UIDN" "$GIDN" "$W/u" > "$Q/users/assign"
  QMAILHOME=$Q "$Q/bin/qmail-newu"
  QMAILHOME=$Q "$Q/bin/qmail-start" ./Maildir/ > "$W/send.log" 2>&1 &
  SENDPID=$!
  sleep 1
  export QMAILHOME=$Q
}
