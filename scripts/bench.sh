#!/usr/bin/env bash
# Runs Wavelake's benchmarks with their peers in the same run and prints the
# figures (Markdown) that BENCHMARKS.md records. Safe to run twice; datasets
# are generated once into the scratch dir.
#   scripts/bench.sh            all benchmarks
#   scripts/bench.sh snapshot   one of: snapshot, tpch, writes, server, load, results
#                               (large query results: time and server memory), wasm-size
#                               (and where its bytes go, by crate, with twiggy),
#                               browser (TPC-H in Chromium against DuckDB-Wasm, and
#                               native DuckDB with httpfs over the same server),
#                               ingest (buffered appends against direct commits,
#                               64 clients, 1 and 100 rows per request),
#                               distributed (TPC-H single node against a Ballista
#                               cluster of 1 and 2 executors),
#                               web (the web app: size, page load to first result),
#                               faults (fault-injection campaigns, several seeds),
#                               history (concurrent histories replayed, several seeds),
#                               crash (kill -9 of the server during mixed writes, many times),
#                               api-fuzz (schemathesis against the OpenAPI document),
#                               fuzz (cargo-fuzz, 10 minutes a target)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ensure_venv "${PYTHON_ORACLES[@]}"
selected=("$@")
is_selected() { [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $1 "* ]]; }

engine_benches=()
is_selected snapshot && engine_benches+=(snapshot)
if [ ${#engine_benches[@]} -gt 0 ]; then
  # The snapshot benchmark loads the table through the npm package too.
  scripts/build-pkg.sh
  # The release profile (not "bench") shares its build with scripts/demo.sh.
  cargo bench --profile release -p wavelake-tests --bench engine -- "${engine_benches[@]}"
fi

if is_selected tpch; then
  # WAVELAKE_TPCH_SF (default 1), WAVELAKE_BENCH_RUNS (3), WAVELAKE_TPCH_QUERIES (all).
  cargo bench --profile release -p wavelake-server --bench tpch
fi

if is_selected writes; then
  cargo bench --profile release -p wavelake-tests --bench writes
fi

if is_selected server; then
  cargo bench --profile release -p wavelake-server --bench server
fi

if is_selected load; then
  cargo bench --profile release -p wavelake-server --bench load
fi

if is_selected results; then
  # WAVELAKE_BASELINE_BIN=path/to/an/older/wavelake measures both.
  cargo bench --profile release -p wavelake-server --bench results
fi

if is_selected ingest; then
  cargo bench --profile release -p wavelake-server --bench ingest
fi

if is_selected distributed; then
  # WAVELAKE_TPCH_SF (default 1) and WAVELAKE_BENCH_RUNS (3).
  cargo bench --profile release -p wavelake-server --bench distributed
fi

if is_selected faults; then
  # The test build of scripts/test.sh (same packages, so nothing rebuilds).
  ops="${WAVELAKE_FAULT_OPS:-3000}"
  echo "## Fault injection: $ops statements per seed through a storage that fails and loses answers"
  echo
  for seed in 1 2 3; do
    WAVELAKE_FAULT_OPS="$ops" WAVELAKE_FAULT_SEED="$seed" PATH="$WAVELAKE_VENV/bin:$PATH" \
      cargo test -p wavelake-engine -p wavelake-server -p wavelake-tests -p wavelake-web \
      --test integration faults:: -- --nocapture 2>&1 | grep -E '^(faults|racing writers under faults) \(seed|test result' | sed 's/^/- /'
  done
fi

if is_selected history; then
  ops="${WAVELAKE_HISTORY_OPS:-250}"
  echo "## Concurrent histories: 4 writers (2 threads, 2 processes) x $ops statements, replayed"
  echo
  for seed in 1 2 3 4 5; do
    WAVELAKE_HISTORY_OPS="$ops" WAVELAKE_HISTORY_SEED="$seed" PATH="$WAVELAKE_VENV/bin:$PATH" \
      cargo test -p wavelake-engine -p wavelake-server -p wavelake-tests -p wavelake-web \
      --test e2e concurrent_history:: -- --nocapture 2>&1 | grep -E '\(seed|test result' | sed 's/^/- /'
  done
fi

if is_selected crash; then
  rounds="${WAVELAKE_CRASH_ROUNDS:-50}"
  echo "## Crashes: kill -9 of the server at random moments of mixed writes, $rounds times per seed"
  echo
  for seed in 1 2; do
    WAVELAKE_CRASH_ROUNDS="$rounds" WAVELAKE_CRASH_SEED="$seed" PATH="$WAVELAKE_VENV/bin:$PATH" \
      cargo test -p wavelake-engine -p wavelake-server -p wavelake-tests -p wavelake-web \
      --test e2e crash::a_server_killed -- --nocapture 2>&1 | grep -E '^kill -9|test result' | sed 's/^/- /'
  done
fi

if is_selected api-fuzz; then
  examples="${WAVELAKE_API_FUZZ_EXAMPLES:-500}"
  echo "## API fuzzing: schemathesis, $examples examples per operation"
  echo
  WAVELAKE_API_FUZZ_EXAMPLES="$examples" PATH="$WAVELAKE_VENV/bin:$PATH" \
    cargo test -p wavelake-engine -p wavelake-server -p wavelake-tests -p wavelake-web \
    --test e2e api_fuzz:: -- --nocapture 2>&1 | grep -E '^schemathesis:|test result' | sed 's/^/- /'
fi

if is_selected fuzz; then
  scripts/fuzz.sh "${WAVELAKE_FUZZ_SECONDS:-600}"
fi

if is_selected wasm-size; then
  scripts/build-pkg.sh >/dev/null
  scripts/build-pkg.sh edge >/dev/null
  echo "## wasm size: the npm package (wasm-release: opt z, LTO, 1 CGU, abort, stripped)"
  echo
  echo "| build | raw | gzip -9 |"
  echo "|---|---|---|"
  for build in dist dist-edge; do
    wasm="pkg/$build/wavelake_bg.wasm"
    awk -v name="$build" -v raw="$(stat -c %s "$wasm")" -v gz="$(gzip -9 -c "$wasm" | wc -c)" 'BEGIN {
      printf "| %s | %.2f MB | %.2f MB |\n", name, raw / 1e6, gz / 1e6
    }'
  done
fi

if is_selected wasm-size; then
  # What the goals are up against: the same package built with a session
  # that registers no SQL functions, expression planners or file formats
  # (DataFusion's planner, optimizer and operators, arrow, parquet and the
  # engine alone), and binaryen's wasm-opt over the shipped package.
  floor_dir="$WAVELAKE_TEST_SCRATCH/wasm-floor"
  cargo build -p wavelake-pkg --target wasm32-unknown-unknown --profile wasm-release \
    --features bare-session >/dev/null
  wasm-bindgen --target web --out-dir "$floor_dir" --out-name wavelake \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/wavelake_pkg.wasm" 2>/dev/null
  binaryen="$WAVELAKE_TEST_SCRATCH/binaryen"
  [ -x "$binaryen/node_modules/.bin/wasm-opt" ] ||
    npm install --prefix "$binaryen" --no-audit --no-fund --loglevel=error binaryen@132
  for level in Oz Os; do
    "$binaryen/node_modules/.bin/wasm-opt" "-$level" --all-features \
      pkg/dist/wavelake_bg.wasm -o "$floor_dir/dist-$level.wasm"
  done
  echo
  echo "### Against the floor: no SQL functions, and wasm-opt (binaryen 132)"
  echo
  echo "| build | raw | gzip -9 | raw vs package | gzip vs package |"
  echo "|---|---|---|---|---|"
  base_raw="$(stat -c %s pkg/dist/wavelake_bg.wasm)"
  base_gz="$(gzip -9 -c pkg/dist/wavelake_bg.wasm | wc -c)"
  for wasm in pkg/dist/wavelake_bg.wasm "$floor_dir/wavelake_bg.wasm" \
    "$floor_dir/dist-Oz.wasm" "$floor_dir/dist-Os.wasm"; do
    case "$wasm" in
      pkg/dist/*) name="package" ;;
      */wavelake_bg.wasm) name="session without SQL functions" ;;
      *) name="package, wasm-opt $(basename "$wasm" .wasm | sed 's/dist-/-/')" ;;
    esac
    awk -v name="$name" -v raw="$(stat -c %s "$wasm")" -v gz="$(gzip -9 -c "$wasm" | wc -c)" \
      -v braw="$base_raw" -v bgz="$base_gz" 'BEGIN {
      printf "| %s | %.2f MB | %.2f MB | %.3fx | %.3fx |\n", name, raw / 1e6, gz / 1e6, raw / braw, gz / bgz
    }'
  done
fi

if is_selected wasm-size; then
  # The same package with its function names kept (its own target dir, so
  # the stripped builds stay warm), attributed by crate with twiggy.
  command -v twiggy >/dev/null || cargo install twiggy --locked
  names_target="${CARGO_TARGET_DIR}-names"
  CARGO_TARGET_DIR="$names_target" CARGO_PROFILE_WASM_RELEASE_STRIP=false \
    cargo build -p wavelake-pkg --target wasm32-unknown-unknown --profile wasm-release >/dev/null
  named="$names_target/wasm32-unknown-unknown/wasm-release/wavelake_pkg.wasm"
  twiggy top -n 1000000 --format csv "$named" >"$WAVELAKE_TEST_SCRATCH/wasm-top.csv"
  echo
  echo "### Where the package's bytes go, by crate (twiggy, function names kept)"
  echo
  python3 scripts/wasm-attribution.py "$WAVELAKE_TEST_SCRATCH/wasm-top.csv" 25
fi

if is_selected browser; then
  ensure_apt chromium
  # The page imports apache-arrow from pkg/node_modules.
  ensure_node_tools
  (cd pkg/bench && { npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund --loglevel=error; })
  scripts/build-pkg.sh >/dev/null
  scale="${WAVELAKE_TPCH_SF:-1}"
  data="$WAVELAKE_TEST_SCRATCH/tpch-all-sf$scale"
  "$WAVELAKE_VENV/bin/python" tests/interop/bench_peers.py tpch-all "$data" "$scale" >/dev/null
  cargo build --release -p wavelake-tests --bin answer-pages
  selective="SELECT * FROM lineitem WHERE l_orderkey = 3000000"
  answer=$("$CARGO_TARGET_DIR/release/answer-pages" "$data/delta/lineitem" l_orderkey 3000000)
  PYTHON="$WAVELAKE_VENV/bin/python" node pkg/bench/tpch.mjs "$data/delta" tests/benches/tpch "$selective" >"$data/results.jsonl"
  echo "## TPC-H SF$scale in headless Chromium: Wavelake against DuckDB-Wasm 1.28.0"
  echo
  node pkg/bench/report.mjs "$data/results.jsonl" "$answer" "$selective"
fi

if is_selected web; then
  ensure_apt chromium
  cargo build --release -p wavelake-server
  scripts/build-web.sh >/dev/null
  bin="$CARGO_TARGET_DIR/release/wavelake"
  root="$WAVELAKE_TEST_SCRATCH/web-bench/lake"
  scripts/demo-table.sh "$root" "$bin"
  config="$WAVELAKE_TEST_SCRATCH/web-bench/wavelake.toml"
  printf 'root = "%s"\n[[sharing.shares]]\nname = "demo"\ntables = ["demo.trips"]\n' "$root" >"$config"
  token="bench-$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')"
  out="$WAVELAKE_TEST_SCRATCH/web-bench/serve.out"
  WAVELAKE_ADMIN_TOKEN="$token" RUST_LOG=warn "$bin" serve --config "$config" --listen 127.0.0.1:0 >"$out" &
  server_pid=$!
  trap 'kill "$server_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do grep -q '^wavelake listening on ' "$out" && break; sleep 0.5; done
  url="$(sed -n 's/^wavelake listening on //p' "$out" | head -1)"
  wasm=www/generated/wavelake_web_bg.wasm
  echo "## The web app (issue #6): size, and page load to first result on the demo table"
  echo
  awk -v raw="$(stat -c %s "$wasm")" -v gz="$(gzip -9 -c "$wasm" | wc -c)" 'BEGIN {
    printf "app wasm: %.2f MB raw, %.2f MB gzip -9\n\n", raw / 1e6, gz / 1e6
  }'
  node web/bench/first-result.mjs "$url" "$token" demo.trips "${WAVELAKE_WEB_RUNS:-5}"
  kill "$server_pid"
fi
