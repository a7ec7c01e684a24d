#!/usr/bin/env bash
# Runs Wavelake's benchmarks with their peers in the same run and prints the
# figures (Markdown) that BENCHMARKS.md records. Safe to run twice; datasets
# are generated once into the scratch dir.
#   scripts/bench.sh            all benchmarks
#   scripts/bench.sh snapshot   one of: snapshot, tpch, writes, server, wasm-size
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ensure_venv "${PYTHON_ORACLES[@]}" "tpchgen-cli==4.0.0"
selected=("$@")
is_selected() { [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $1 "* ]]; }

engine_benches=()
is_selected snapshot && engine_benches+=(snapshot)
is_selected tpch && engine_benches+=(tpch)
if [ ${#engine_benches[@]} -gt 0 ]; then
  # The release profile (not "bench") shares its build with scripts/demo.sh.
  cargo bench --profile release -p wavelake-tests --bench engine -- "${engine_benches[@]}"
fi

if is_selected writes; then
  cargo bench --profile release -p wavelake-tests --bench writes
fi

if is_selected server; then
  cargo bench --profile release -p wavelake-server --bench server
fi

if is_selected wasm-size; then
  ensure_wasm_toolchain
  cargo build -p wavelake-pkg --target wasm32-unknown-unknown --profile wasm-release
  out="$WAVELAKE_TEST_SCRATCH/pkg-size"
  wasm-bindgen --target web --out-dir "$out" \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/wavelake_pkg.wasm"
  wasm="$out/wavelake_pkg_bg.wasm"
  raw=$(stat -c %s "$wasm")
  gz=$(gzip -9 -c "$wasm" | wc -c)
  echo "## wasm size: the engine with DataFusion (SQL, Parquet, all function families)"
  echo
  echo "| build | raw | gzip -9 |"
  echo "|---|---|---|"
  awk -v raw="$raw" -v gz="$gz" 'BEGIN {
    printf "| wasm-release (opt z, LTO, 1 CGU, abort, stripped) | %.2f MB | %.2f MB |\n", raw / 1e6, gz / 1e6
  }'
fi
