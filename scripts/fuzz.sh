#!/usr/bin/env bash
# Fuzzes the engine's codecs and parsers with cargo-fuzz (nightly, libFuzzer,
# AddressSanitizer), seeded from the golden Delta tables:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Prints, per target, executions, coverage and findings as a Markdown table;
# a crash leaves its input under engine/fuzz/artifacts/TARGET/ and fails.
# scripts/bench.sh runs it for 600 s per target. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(log_actions checkpoint deletion_vector partition_value statistics sharing_response statement
    upload_csv upload_json upload_parquet upload_arrow)
fi

rustup toolchain install nightly --profile minimal >/dev/null 2>&1 || true
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +stable install cargo-fuzz --locked
fi

# Seeds: the golden tables' commits, checkpoints, deletion vectors and
# statistics, and the SQL of the project's own tests.
corpus="$WAVELAKE_TEST_SCRATCH/fuzz-corpus"
golden="../shared/golden/kernel-golden"
if [ ! -f "$corpus/.seeded" ]; then
  rm -rf "$corpus"
  mkdir -p "$corpus"/{log_actions,checkpoint,deletion_vector,partition_value,statistics,sharing_response,statement}
  if [ -d "$golden" ]; then
    unpacked="$WAVELAKE_TEST_SCRATCH/fuzz-golden"
    mkdir -p "$unpacked"
    for archive in "$golden"/*.tar.zst; do
      tar --zstd -xf "$archive" -C "$unpacked" 2>/dev/null || true
    done
    n=0
    while IFS= read -r -d '' file; do
      n=$((n + 1))
      case "$file" in
        *.checkpoint*.parquet) cp "$file" "$corpus/checkpoint/$n" ;;
        *_delta_log/*.json) cp "$file" "$corpus/log_actions/$n"
          grep -o '"stats":"[^"]*\(\\"[^"]*\)*"' "$file" | head -3 |
            sed 's/^"stats":"//; s/"$//; s/\\"/"/g' >"$corpus/statistics/$n" || true ;;
        *.bin) { printf '\001'; cat "$file"; } >"$corpus/deletion_vector/$n" ;;
      esac
    done < <(find "$unpacked" -type f \( -name '*.json' -o -name '*.parquet' -o -name '*.bin' \) -print0)
    grep -rhoE '"deletionVector":\{[^}]*\}' "$unpacked" 2>/dev/null | head -50 |
      sed 's/^"deletionVector"://' | awk -v dir="$corpus/deletion_vector" '{f = dir "/dv" NR; printf "\002%s", $0 > f; close(f)}'
  else
    echo "SKIP seeds from the golden tables: ../shared/golden is absent"
  fi
  printf '\x0a2024-01-01 12:00:00' >"$corpus/partition_value/ts"
  printf '\x0c12345.67' >"$corpus/partition_value/dec"
  printf '\x041234' >"$corpus/partition_value/long"
  printf '\x09__HIVE_DEFAULT_PARTITION__' >"$corpus/partition_value/null"
  printf '{"protocol":{"minReaderVersion":1}}\n{"metaData":{"id":"x","format":{"provider":"parquet"},"schemaString":"{\\"type\\":\\"struct\\",\\"fields\\":[]}","partitionColumns":[],"configuration":{},"version":3}}\n{"file":{"id":"a","url":"https://h/a.parquet","partitionValues":{},"size":1,"stats":"{\\"numRecords\\":1}","version":3,"timestamp":1}}\n' \
    >"$corpus/sharing_response/delta-sharing"
  grep -rhoE '"(SELECT|INSERT|DELETE|UPDATE|MERGE|CREATE|WITH|EXPLAIN|OPTIMIZE|VACUUM|/\*)[^"]{3,200}"' \
    engine/src server/tests tests/integration 2>/dev/null | sort -u | head -400 |
    awk -v dir="$corpus/statement" '{gsub(/^"|"$/, ""); f = dir "/s" NR; printf "%s", $0 > f; close(f)}'
  touch "$corpus/.seeded"
fi

# Upload seeds: a CSV, a JSON and an Arrow IPC file with every type a
# table's column can have, and the golden tables' data files (filled
# whenever a directory is empty, so an older corpus gains them too).
mkdir -p "$corpus"/{upload_csv,upload_json,upload_parquet,upload_arrow}
if [ -z "$(ls -A "$corpus/upload_csv")" ]; then
  printf 'id,name,amount,ok,day,at,score\n1,a,1.25,true,2024-01-01,2024-01-01T00:00:00Z,0.5\n2,"b,c",-3,false,,,1e3\n' \
    >"$corpus/upload_csv/rows"
fi
if [ -z "$(ls -A "$corpus/upload_json")" ]; then
  printf '{"id":1,"name":"a","amount":1.25,"ok":true,"day":"2024-01-01","at":"2024-01-01T00:00:00Z","score":0.5,"tags":["x"],"s":{"k":1}}\n{"id":2,"name":null}\n' \
    >"$corpus/upload_json/rows"
fi
if [ -z "$(ls -A "$corpus/upload_parquet")" ] && [ -d "$WAVELAKE_TEST_SCRATCH/fuzz-golden" ]; then
  find "$WAVELAKE_TEST_SCRATCH/fuzz-golden" -name '*.parquet' -not -path '*_delta_log*' -size -256k |
    head -100 | awk -v dir="$corpus/upload_parquet" '{print $0 "\t" dir "/p" NR}' |
    while IFS=$'\t' read -r from to; do cp "$from" "$to"; done || true # head closes the pipe early
fi
if [ -z "$(ls -A "$corpus/upload_arrow")" ] && [ -x "$WAVELAKE_VENV/bin/python" ]; then
  "$WAVELAKE_VENV/bin/python" - "$corpus/upload_arrow/stream" <<'PY'
import sys, datetime, decimal
import pyarrow as pa
table = pa.table({
    "id": pa.array([1, 2], pa.int64()), "name": ["a", None],
    "amount": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(10, 2)),
    "ok": [True, False], "day": [datetime.date(2024, 1, 1), None],
    "at": pa.array([datetime.datetime(2024, 1, 1), None], pa.timestamp("us", "UTC")),
    "score": [0.5, None], "tags": [["x"], []],
})
with pa.ipc.new_stream(sys.argv[1], table.schema) as writer:
    writer.write_table(table)
PY
fi

export CARGO_TARGET_DIR="$HOME/.cache/wavelake/fuzz-target"
echo "## Fuzzing: ${seconds} s per target (libFuzzer, AddressSanitizer)"
echo
echo "| target | seeds | executions | coverage (edges) | findings |"
echo "|---|---|---|---|---|"
failed=0
for target in "${targets[@]}"; do
  log="$WAVELAKE_TEST_SCRATCH/fuzz-$target.log"
  seeds=$(find "$corpus/$target" -type f | wc -l)
  status=0
  # -O: release without debug assertions (the default adds them, and is a
  # second build of everything).
  (cd engine/fuzz && cargo +nightly fuzz run -O "$target" "$corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1) \
    >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | sed 's/cov: //')
  if [ "$status" -eq 0 ]; then
    findings=0
  else
    findings="crash (see $log and engine/fuzz/artifacts/$target/)"
    failed=1
  fi
  echo "| $target | $seeds | ${execs:-?} | ${cov:-?} | $findings |"
done
exit "$failed"
