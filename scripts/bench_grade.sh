#!/usr/bin/env bash
# The grader's speed as an instructor meets it: N submissions of one lab, graded with
# `kto-lab-notebooks grade --jobs J` after the first build, R rounds, every round and the median.
#
# Usage: scripts/bench_grade.sh [LAB] [N] [ROUNDS] [JOBS]     (defaults: 01 10 3 2)
#
# Each submission is the lab's solution notebook (every exercise answered, so every check and
# hidden test runs: the most work a submission can cost). Round 0 is the warm-up: it builds the
# library into the grader's evcxr build folders (target/evcxr-grade, seeded from
# target/evcxr-notebooks when the notebook runner has built there) and is reported, not counted.
set -euo pipefail
cd "$(dirname "$0")/.."

lab=${1:-01}
n=${2:-10}
rounds=${3:-3}
jobs=${4:-2}

notebook=$(ls solutions/"$lab"_*.ipynb 2>/dev/null | head -1)
if [ -z "$notebook" ]; then
  echo "bench_grade: no solution notebook solutions/${lab}_*.ipynb" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq -w 1 "$n"); do
  mkdir -p "$work/class/student$i"
  cp "$notebook" "$work/class/student$i/"
done

cargo build --quiet --bin kto-lab-notebooks
bin=target/debug/kto-lab-notebooks
times=()
for round in $(seq 0 "$rounds"); do
  start=$(date +%s.%N)
  "$bin" grade "$work/class" --lab "$lab" --jobs "$jobs" --out "$work/grades-$round" >"$work/log-$round" 2>&1 || {
    cat "$work/log-$round" >&2
    exit 1
  }
  end=$(date +%s.%N)
  secs=$(echo "$end - $start" | bc)
  full=$(awk -F, 'NR > 1 && $6 == "passed" { p++ } NR > 1 { t++ } END { printf "%d/%d", p, t }' "$work/grades-$round/gradebook.csv")
  if [ "$round" = 0 ]; then
    printf 'warm-up (first build): %7.1f s   exercises passed %s\n' "$secs" "$full"
  else
    printf 'round %d:               %7.1f s   exercises passed %s\n' "$round" "$secs" "$full"
    times+=("$secs")
  fi
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
printf 'lab %s, %d submissions, --jobs %s, %d rounds: median %.1f s (%.1f s a submission)\n' \
  "$lab" "$n" "$jobs" "$rounds" "$median" "$(echo "$median / $n" | bc -l)"
