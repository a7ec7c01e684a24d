#!/usr/bin/env bash
# Fails when a wasm artefact weighs more than 3% over its figures in
# scripts/size-budget.txt (raw bytes and gzip -9), printing the new ones.
#   scripts/check-size.sh ARTEFACT
set -euo pipefail
cd "$(dirname "$0")/.."
artefact="$1"
budget_file=scripts/size-budget.txt
read -r _ budget_raw budget_gzip < <(grep -E "^${artefact}[[:space:]]" "$budget_file") || {
  echo "no budget for $artefact in $budget_file" >&2
  exit 1
}
raw="$(stat -c %s "$artefact")"
gzipped="$(gzip -9 -c "$artefact" | wc -c)"
echo "$artefact: $raw bytes ($budget_raw budgeted), $gzipped gzip -9 ($budget_gzip budgeted)"
over=0
for pair in "raw $raw $budget_raw" "gzip-9 $gzipped $budget_gzip"; do
  read -r what size budget <<<"$pair"
  if (( size * 100 > budget * 103 )); then
    echo "$artefact: $what size $size is over its budget $budget by more than 3%" \
      "($(( (size - budget) * 1000 / budget / 10 )).$(( (size - budget) * 1000 / budget % 10 ))%):" \
      "find what grew, or raise the budget in $budget_file with the reason in the commit" >&2
    over=1
  fi
done
exit "$over"
