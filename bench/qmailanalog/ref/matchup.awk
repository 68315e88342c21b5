# Reference matchup in awk (our own re-statement of qmailanalog's matching rules, used by
# the tests as an independent oracle and by the bench as the "awk pipeline").
# Input: qmail-send lines with a numeric timestamp first. Output: d/m records on stdout;
# open state (matchup's fd-5 format) to the file named by -v pending=FILE, if given.
{
  kw = $2
  if (kw == "status:") next
  if (kw == "starting") {
    dn = $4 + 0
    dmsg[dn] = $6 + 0; dstart[dn] = $1; dchan[dn] = $8; drecip[dn] = tolower($9)
    next
  }
  if (kw == "delivery") {
    dn = $3 + 0
    if (!(dn in dmsg)) next
    mn = dmsg[dn]
    known = (mn in birth)
    how = $4; reason = $5
    if (how ~ /^succ/) { res = "d k"; if (known) nk[mn]++ }
    else if (how ~ /^fail/) { res = "d d"; if (known) nd[mn]++ }
    else if (how ~ /^defer/) { res = "d z"; if (known) nz[mn]++ }
    else if (how ~ /^report/) { res = "d z"; reason = "report_mangled"; if (known) nz[mn]++ }
    else { res = "?"; reason = "" }
    if (known)
      print res " " birth[mn] " " dstart[dn] " " $1 " " bytes[mn] " " sender[mn] " " dchan[dn] "." drecip[dn] " " qp[mn] " " uid[mn] " " reason
    else
      print res " " dstart[dn] " " dstart[dn] " " $1 " 0 ? " dchan[dn] "." drecip[dn] " ? ? " reason
    delete dmsg[dn]; delete dstart[dn]; delete dchan[dn]; delete drecip[dn]
    next
  }
  if (kw == "new") { mn = $4 + 0; if (mn in birth) forget(mn); next }
  if (kw == "end") {
    mn = $4 + 0
    if (!(mn in birth)) next
    print "m " birth[mn] " " $1 " " bytes[mn] " " nk[mn] " " nd[mn] " " nz[mn] " " sender[mn] " " qp[mn] " " uid[mn]
    forget(mn)
    next
  }
  if (kw == "info") {
    mn = $4 + 0
    birth[mn] = $1; bytes[mn] = sprintf("%.0f", $6 + 0); sender[mn] = tolower($8)
    qp[mn] = sprintf("%.0f", $10 + 0); uid[mn] = sprintf("%.0f", $12 + 0); nk[mn] = 0; nd[mn] = 0; nz[mn] = 0
    next
  }
  if (kw == "extra") {
    mn = $3 + 0
    if (mn in birth) { nk[mn] = $4 + 0; nz[mn] = $5 + 0; nd[mn] = $6 + 0 }
    next
  }
  if (kw == "running" || kw == "exiting") { for (dn in dmsg) { delete dmsg[dn] }; next }
  if (kw == "number" || kw == "local" || kw == "remote") next
  if (kw == "warning:" || kw == "alert:") { print; next }
  print "? " $0
}
function forget(mn) {
  delete birth[mn]; delete bytes[mn]; delete sender[mn]; delete qp[mn]; delete uid[mn]
  delete nk[mn]; delete nd[mn]; delete nz[mn]
}
END {
  if (pending == "") exit
  for (mn in birth) {
    print birth[mn] " info msg " mn ": bytes " bytes[mn] " from " sender[mn] " qp " qp[mn] " uid " uid[mn] > pending
    print birth[mn] " extra " mn " " nk[mn] " " nz[mn] " " nd[mn] > pending
  }
  for (dn in dmsg)
    print dstart[dn] " starting delivery " dn ": msg " dmsg[dn] " to " dchan[dn] " " drecip[dn] > pending
}
