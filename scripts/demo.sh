#!/usr/bin/env bash
# Builds wavelake, writes a small demo Delta table with the reference writer
# (PyPI deltalake) and queries it with wavelake, including time travel.
# Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ensure_venv "${PYTHON_ORACLES[@]}"
demo="${WAVELAKE_DEMO_DIR:-data/demo}"
if [ ! -d "$demo/_delta_log" ]; then
  "$WAVELAKE_VENV/bin/python" scripts/make_demo_table.py "$demo"
fi
cargo build --release -p wavelake-server
bin="$CARGO_TARGET_DIR/release/wavelake"

echo "--- the latest version"
"$bin" sql "SELECT city, count(*) AS trips, round(avg(fare), 2) AS avg_fare FROM trips GROUP BY city ORDER BY trips DESC" --table trips="$demo"
echo "--- as it was at version 0 (before the delete)"
"$bin" sql "SELECT count(*) AS trips FROM trips VERSION AS OF 0" --table trips="$demo"
echo "--- the same query now (the delete removed the fares over 75)"
"$bin" sql "SELECT count(*) AS trips FROM trips" --table trips="$demo"
echo "--- the table's history and files"
"$bin" sql "SELECT version, timestamp, operation FROM delta_history('trips')" --table trips="$demo"
"$bin" sql "SELECT count(*) AS files, sum(num_records) AS rows, sum(size_bytes) AS bytes FROM delta_files('trips')" --table trips="$demo"
echo "--- what a selective query read (files and bytes)"
"$bin" sql "EXPLAIN ANALYZE SELECT count(*) FROM trips WHERE day = '2026-11-03'" --table trips="$demo" \
  | grep -o 'DeltaScanExec: [^|]*' | sed 's/ *$//' || true
