#!/bin/sh
# Reference reports in awk + sort (our own re-statement of the qmailanalog report rules):
#   ref.sh TOOL [ARG] < matchup-output
# Used by the tests as an oracle and by the bench as the awk pipeline.
here=$(dirname "$0")
LC_ALL=C.UTF-8; export LC_ALL
col() { awk -f "$here/columnt.awk"; }
reasons() { # $1 = k|d|z
  awk -v want="$1" '$1 == "d" && $2 == want && /^d [kdz]/ { n[$11]++; x[$11] += $5 - $4 }
    END { for (r in n) print n[r], sprintf("%.2f", x[r]), r }'
}
recips() { # $1 = 1 for hosts
  awk -v hosts="$1" '/^d/ { r = $8; if (hosts) { while ((i = index(r, "@")) > 0) r = substr(r, i + 1) }
      x[r] += $5 - $4; t[r]++
      if ($2 == "k") { sb[r] += $6; ok[r]++ } else if ($2 == "d") bad[r]++ }
    END { for (r in x) print sb[r] + 0, ok[r] + bad[r], t[r], sprintf("%.2f", x[r]), r }'
}
senders() { # $1 = 1 for uids
  awk -v uids="$1" '
    /^m/ { k = uids ? $10 : $10 "/" $8; n[k]++; ok[k] += $5; bad[k] += $6; tmp[k] += $7
           b[k] += $4; sb[k] += $4 * $5; rb[k] += $4 * ($5 + $6) }
    /^d/ { k = uids ? $10 : $10 "/" $7; x[k] += $5 - $4 }
    END { for (k in n) print n[k], b[k], sb[k], rb[k], ok[k] + bad[k], ok[k] + bad[k] + tmp[k], sprintf("%.6f", x[k]), k }'
}
case "$1" in
zoverall)
  printf 'Basic statistics\n\nqtime is the time spent by a message in the queue.\n\nddelay is the latency for a successful delivery to one recipient---the\nend of successful delivery, minus the time when the message was queued.\n\nxdelay is the latency for a delivery attempt---the time when the attempt\nfinished, minus the time when it started. The average concurrency is the\ntotal xdelay for all deliveries divided by the time span; this is a good\nmeasure of how busy the mailer is.\n\n'
  awk '
    /^m/ { msgs++; mb += $4; wb += $4 * $5; qt += $3 - $2; rc += $5 + $6; tr += $5 + $6 + $7
           if (!seen || $2 < lo) lo = $2; if (!seen || $3 > hi) hi = $3; seen = 1 }
    /^d k/ { ok++; dd += $5 - $3 }
    /^d d/ { bad++ }
    /^d/ { del++; xd += $5 - $4
           if (!seen || $3 < lo) lo = $3; if (!seen || $5 > hi) hi = $5; seen = 1 }
    END {
      print "Completed messages:", msgs + 0
      if (msgs) {
        print "Recipients for completed messages:", rc
        print "Total delivery attempts for completed messages:", tr
        print "Average delivery attempts per completed message:", tr / msgs
        print "Bytes in completed messages:", mb
        print "Bytes weighted by success:", wb
        print "Average message qtime (s):", qt / msgs
      }
      print ""
      print "Total delivery attempts:", del + 0
      if (del) {
        print "  success:", ok + 0
        print "  failure:", bad + 0
        print "  deferral:", del - ok - bad
        printf "Total ddelay (s): %.6f\n", dd
        if (ok) printf "Average ddelay per success (s): %.6f\n", dd / ok
        printf "Total xdelay (s): %.6f\n", xd
        printf "Average xdelay per delivery attempt (s): %.6f\n", xd / del
        if (hi > lo) {
          print "Time span (days):", (hi - lo) / 86400
          print "Average concurrency:", xd / (hi - lo)
        }
      }
    }' ;;
zddist)
  printf 'Distribution of ddelays for successful deliveries\n\nMeaning of each line: The first pct%% of successful deliveries\nall happened within doneby seconds. The average ddelay was avg.\n\n'
  { echo doneby avg pct
    awk '/^d k/ { print $5 - $3 }' | sort -n | awk '
      { n++; last[$1] = n }
      END { if (n) {
        for (v in last) { p = int(last[v] * 100 / n)
          if (!(p in lo) || v < lo[p]) lo[p] = v; sum[p] += v; cnt[p]++ }
        for (p = 0; p <= 100; p++) { s += sum[p]; c += cnt[p]
          if (p >= 10 && c > 0 && (p in lo) && lo[p] >= "0") printf "%.2f %.2f %d\n", lo[p], s / c, p }
      } }'
  } | col ;;
zdeferrals|zfailures|zsuccesses)
  case "$1" in
    zdeferrals) t='deferral'; h='Reasons for deferral'; k=z ;;
    zfailures) t='delivery failure'; h='Reasons for failure'; k=d ;;
    *) t='successful delivery'; h='Reasons for success'; k=k ;;
  esac
  printf '%s\n\nOne line per reason for %s. Information on each line:\n* del is the number of deliveries that ended for this reason.\n* xdelay is the total xdelay on those deliveries.\n\n' "$h" "$t"
  { echo del xdelay reason; reasons $k | sort -k2; } | col | tr _ ' ' ;;
zrecipients|zrhosts)
  if [ "$1" = zrecipients ]; then w=recipient; h=Recipients; x=0; p=recipient; else w=host; h='Recipient hosts'; x=1; p='recipient host'; fi
  printf '%s\n\nOne line per %s. Information on each line:\n* sbytes is the number of bytes successfully delivered to this %s.\n* mess is the number of messages sent to this %s (success plus failure).\n* tries is the number of delivery attempts (success, failure, deferral).\n* xdelay is the total xdelay incurred by this %s.\n\n' "$h" "$p" "$w" "$w" "$w"
  { echo sbytes mess tries xdelay $w; recips $x | sort -k4; } | col ;;
zrxdelay)
  printf 'Recipients in the best order for mailing lists\n\nOne line per recipient, sorted by avg. Information on each line:\n* avg is the _average_ xdelay for the recipient.\n* tries is the number of deliveries that avg is based on.\n\n'
  { echo avg tries recipient; recips 0 | awk '{ printf "%.2f %s %s\n", $4 / $3, $3, $5 }' | sort -n; } | col ;;
zsenders|zsuids)
  if [ "$1" = zsenders ]; then w=sender; h=Senders; x=0; p=sender; else w=uid; h='Sender uids'; x=1; p='sender uid'; fi
  printf '%s\n\nOne line per %s. Information on each line:\n* mess is the number of messages sent by this %s.\n* bytes is the number of bytes sent by this %s.\n* sbytes is the number of bytes successfully received from this %s.\n* rbytes is the number of bytes from this %s, weighted by recipient.\n* recips is the number of recipients (success plus failure).\n* tries is the number of delivery attempts (success, failure, deferral).\n* xdelay is the total xdelay incurred by this %s.\n\n' "$h" "$p" $w $w $w $w $w
  { echo mess bytes sbytes rbytes recips tries xdelay $w; senders $x | sort -n -k7; } | col ;;
zsendmail)
  awk '/^d/ { s = $2 == "k" ? "Sent" : $2 == "d" ? "Failed" : "Deferred"
              printf "%s qp %s: to=%s, uid=%s, ddelay=%.6f, xdelay=%.6f, stat=%s (%s)\n", $5, $9, $8, $10, $5 - $3, $5 - $4, s, $11; next }
       /^m/ { printf "%s qp %s: from=%s, uid=%s, size=%s, nrcpts=%s, deferrals=%s, qtime=%.6f\n", $3, $9, $8, $10, $4, ($5 + $6) "", $7, $3 - $2; next }
       { print }' ;;
xqp) awk -v q="$2" '/^[dm]/ && $9 == q' ;;
xrecipient) awk -v r="$2" '/^d/ && $8 == r' ;;
xsender) awk -v s="<$2>" '(/^d/ && $7 == s) || (/^m/ && $8 == s)' ;;
*) echo "usage: ref.sh TOOL [ARG]" >&2; exit 100 ;;
esac
