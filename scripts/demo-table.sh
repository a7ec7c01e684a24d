#!/usr/bin/env bash
# Writes the demo table into ROOT/demo/trips once: rows by the reference
# writer (PyPI deltalake), then an UPDATE as a deletion vector and an
# OPTIMIZE of one partition by Wavelake. Safe to run twice.
#   scripts/demo-table.sh ROOT WAVELAKE_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
root="$1"
bin="$2"
table="$root/demo/trips"
if [ ! -d "$table/_delta_log" ]; then
  ensure_venv "${PYTHON_ORACLES[@]}"
  "$WAVELAKE_VENV/bin/python" scripts/make_demo_table.py "$table"
  "$bin" sql "UPDATE trips SET fare = fare * 1.1 WHERE city = 'Oslo'" --table trips="$table" >/dev/null
  "$bin" optimize "$table" --where "day = '2026-11-01'"
fi
