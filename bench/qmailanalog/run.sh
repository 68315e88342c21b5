#!/bin/sh
# Bench: ~1 GB of generated qmail-send log through
#   1. wc -l FILE                              (read-speed floor for the plain file)
#   2. qmailanalog zoverall FILE               (ours, one pass)
#   3. wc -l DIR/*                             (read-speed floor for the multilog directory)
#   4. qmailanalog zoverall DIR                (the same log tai64n-stamped in a multilog dir)
#   5. matchup | zoverall                      (ours, the classic pipeline; one round)
#   6. awk matchup | awk zoverall              (ref/: awk + sort scripts of the same logic;
#                                               qmailanalog itself is not installed here; one round)
# 1-4 run ROUNDS times, interleaved, so each of ours is compared with its floor in the same
# run; the table gives medians.
# Usage: [ROUNDS=7] bench/qmailanalog/run.sh [MESSAGES] [WORKDIR]
#        (default 1300000 messages ≈ 1 GB, /tmp/qabench)
# Writes bench/qmailanalog/last-run.md (its figures are recorded in bench/RESULTS.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-1300000}
work=${2:-/tmp/qabench}
rounds=${ROUNDS:-7}
mkdir -p "$work"
cd "$root"
cargo build --release -q -p qmailanalog --bins --examples
bin=$root/target/release
log=$work/send.log
if [ ! -s "$log" ] || [ ! -s "$work/truth.$n" ]; then
  "$bin/examples/genlog" "$n" numeric 1 > "$log" 2> "$work/truth.$n"
fi
dir=$work/multilog
if [ ! -s "$dir/current" ] || [ ! -s "$work/truth.tai.$n" ]; then
  rm -rf "$dir"; mkdir -p "$dir"
  "$bin/examples/genlog" "$n" tai64n 1 2> "$work/truth.tai.$n" \
    | (cd "$dir" && split -C 100000000 -d -a 3 - part.)
  # name the parts like multilog's rotated files: by the stamp of their last line
  last=$(ls "$dir"/part.* | tail -1)
  for f in "$dir"/part.*; do
    if [ "$f" = "$last" ]; then mv "$f" "$dir/current"
    else mv "$f" "$dir/$(tail -1 "$f" | cut -c1-25).s"; fi
  done
fi
size=$(stat -c %s "$log")
dsize=$(cat "$dir"/* | wc -c)
lines=$(wc -l < "$log")
cat "$log" "$dir"/* > /dev/null   # warm the page cache
t() { # label, command...; prints "label|elapsed|user|sys|maxrss" and keeps stdout
  label=$1; shift
  /usr/bin/time -f "%e|%U|%S|%M" -o "$work/time" sh -c "$*" > "$work/out.$label"
  echo "$label|$(cat "$work/time")"
}
R=$work/results
: > "$R"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
i=0
while [ $i -lt "$rounds" ]; do
  t wc "wc -l < '$log'" >> "$R"
  t ours "'$bin/qmailanalog' zoverall '$log'" >> "$R"
  t wc_dir "wc -l '$dir'/*" >> "$R"
  t ours_dir "'$bin/qmailanalog' zoverall '$dir'" >> "$R"
  i=$((i + 1))
done
load_mid=$(cut -d' ' -f1-3 /proc/loadavg)
t pipeline "'$bin/matchup' < '$log' | '$bin/zoverall'" >> "$R"
t awk "awk -f '$here/ref/matchup.awk' < '$log' | sh '$here/ref/ref.sh' zoverall" >> "$R"
same_awk=no; cmp -s "$work/out.ours" "$work/out.awk" && same_awk=yes
same_pipe=no; cmp -s "$work/out.ours" "$work/out.pipeline" && same_pipe=yes
same_dir=no; cmp -s "$work/out.ours" "$work/out.ours_dir" && same_dir=yes
# median of column $2 (1-based field) over the rows of a label
median() { grep "^$1|" "$R" | cut -d'|' -f"$2" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# the whole row (elapsed, user, sys, rss) of the median-elapsed run
medrow() { grep "^$1|" "$R" | sort -t'|' -k2,2n | awk -v k="$(grep -c "^$1|" "$R")" 'NR == int((k + 1) / 2)'; }
ratio() { awk -v a="$(median "$1" 2)" -v b="$(median "$2" 2)" 'BEGIN { printf "%.2f", a / b }'; }
all() { grep "^$1|" "$R" | cut -d'|' -f2 | tr '\n' ' '; }
# median over the rounds of (our elapsed / the floor's elapsed in the same round)
rratio() {
  grep "^$1|" "$R" | cut -d'|' -f2 > "$work/r.a"
  grep "^$2|" "$R" | cut -d'|' -f2 > "$work/r.b"
  paste -d'|' "$work/r.a" "$work/r.b" | awk -F'|' '{ printf "%.4f\n", $1 / $2 }' | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'
}
{
  echo "# qmailanalog bench"
  echo
  echo "Generated qmail-send log: $size bytes ($dsize in the tai64n multilog directory), $lines lines, $n messages"
  echo "($(sed 's/^Truth //' "$work/truth.$n"))."
  echo "Machine: $(nproc) cores; load average before: $load_before, after the timed rounds: $load_mid; files in the page cache."
  echo "Command: \`ROUNDS=$rounds bench/qmailanalog/run.sh $n\` — $rounds interleaved rounds of 1–4 (medians), one of 5–6; \`/usr/bin/time\`."
  echo
  echo "| what | elapsed s (median) | user s | sys s | peak RSS |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for l in wc ours wc_dir ours_dir pipeline awk; do
    medrow "$l" | awk -F'|' -v l="$l" '{
      name = l
      if (l == "wc") name = "`wc -l FILE` (read floor)"
      if (l == "ours") name = "`qmailanalog zoverall FILE`"
      if (l == "wc_dir") name = "`wc -l DIR/*` (read floor)"
      if (l == "ours_dir") name = "`qmailanalog zoverall DIR` (tai64n multilog dir)"
      if (l == "pipeline") name = "`matchup \\| zoverall` (ours)"
      if (l == "awk") name = "`awk matchup \\| awk zoverall` (mawk, ref/)"
      printf "| %s | %s | %s | %s | %.1f MB |\n", name, $2, $3, $4, $5 / 1024 }'
  done
  echo
  echo "All elapsed times (s): wc $(all wc)/ ours $(all ours)/ wc_dir $(all wc_dir)/ ours_dir $(all ours_dir)"
  echo
  echo "Ratio of medians: FILE $(ratio ours wc)× \`wc -l\`; DIR $(ratio ours_dir wc_dir)× \`wc -l\` (target ≤ 3×)."
  echo "Median of the per-round ratios: FILE $(rratio ours wc)×; DIR $(rratio ours_dir wc_dir)×."
  echo
  echo "Our output identical for FILE and DIR: $same_dir; to the awk pipeline's: $same_awk; to \`matchup | zoverall\`: $same_pipe."
  echo
  echo '```'
  cat "$work/out.ours"
  echo '```'
} > "$root/bench/qmailanalog/last-run.md"
cat "$root/bench/qmailanalog/last-run.md"
