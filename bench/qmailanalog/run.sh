#!/bin/sh
# Bench: ~1 GB of generated qmail-send log through
#   1. wc -l                                   (read-speed floor)
#   2. qmailanalog zoverall FILE               (ours, one pass)
#   3. matchup | zoverall                      (ours, the classic pipeline)
#   4. awk matchup | awk zoverall              (ref/: awk + sort scripts of the same logic;
#                                               qmailanalog itself is not installed here)
#   5. qmailanalog zoverall DIR on the same log tai64n-stamped in a multilog directory
# Usage: bench/qmailanalog/run.sh [MESSAGES] [WORKDIR]   (default 1300000 ≈ 1 GB, /tmp/qabench)
# Writes bench/qmailanalog/last-run.md (its figures are recorded in bench/RESULTS.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-1300000}
work=${2:-/tmp/qabench}
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
lines=$(wc -l < "$log")
cat "$log" > /dev/null   # warm the page cache
t() { # label, command...; prints "label|elapsed|user|sys|maxrss" and keeps stdout
  label=$1; shift
  /usr/bin/time -f "%e|%U|%S|%M" -o "$work/time" sh -c "$*" > "$work/out.$label"
  echo "$label|$(cat "$work/time")"
}
R=$work/results
: > "$R"
for round in 1 2; do
  t wc "wc -l < '$log'" >> "$R"
  t ours "'$bin/qmailanalog' zoverall '$log'" >> "$R"
  t pipeline "'$bin/matchup' < '$log' | '$bin/zoverall'" >> "$R"
  t awk "awk -f '$here/ref/matchup.awk' < '$log' | sh '$here/ref/ref.sh' zoverall" >> "$R"
  t ours_dir "'$bin/qmailanalog' zoverall '$dir'" >> "$R"
done
same_awk=no; cmp -s "$work/out.ours" "$work/out.awk" && same_awk=yes
same_pipe=no; cmp -s "$work/out.ours" "$work/out.pipeline" && same_pipe=yes
best() { grep "^$1|" "$R" | sort -t'|' -k2,2n | head -1; }
{
  echo "# qmailanalog bench"
  echo
  echo "Generated qmail-send log: $size bytes, $lines lines, $n messages"
  echo "($(sed 's/^Truth //' "$work/truth.$n"))."
  echo "Machine: $(nproc) cores shared with other jobs (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)), file in the page cache."
  echo "Command: \`bench/qmailanalog/run.sh $n\` — best of 2 rounds, \`/usr/bin/time\`."
  echo
  echo "| what | elapsed s | user s | sys s | peak RSS |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  for l in wc ours pipeline awk ours_dir; do
    best "$l" | awk -F'|' -v l="$l" '{
      name = l
      if (l == "wc") name = "`wc -l` (read floor)"
      if (l == "ours") name = "`qmailanalog zoverall FILE` (one pass)"
      if (l == "pipeline") name = "`matchup \\| zoverall` (ours)"
      if (l == "awk") name = "`awk matchup \\| awk zoverall` (mawk, ref/)"
      if (l == "ours_dir") name = "`qmailanalog zoverall DIR` (tai64n multilog dir)"
      printf "| %s | %s | %s | %s | %.1f MB |\n", name, $2, $3, $4, $5 / 1024 }'
  done
  echo
  echo "Our one-pass output identical to the awk pipeline's: $same_awk; to \`matchup | zoverall\`: $same_pipe."
  echo
  echo '```'
  cat "$work/out.ours"
  echo '```'
} > "$root/bench/qmailanalog/last-run.md"
cat "$root/bench/qmailanalog/last-run.md"
