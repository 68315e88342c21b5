# Align columns: all but the last right-aligned, two spaces between columns.
{ line[NR] = $0; if (NF - 1 > maxf) maxf = NF - 1
  for (i = 1; i <= NF; i++) if (length($i) > w[i]) w[i] = length($i) }
END {
  for (r = 1; r <= NR; r++) {
    n = split(line[r], f, /[ \t]+/)
    o = ""; k = 0
    for (i = 1; i <= n; i++) {
      if (f[i] == "") continue
      if (k < maxf) o = o sprintf("%" w[k + 1] "s  ", f[i]); else o = o f[i]
      k++
    }
    print o
  }
}
