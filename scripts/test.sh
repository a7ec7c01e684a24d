#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them all.
# Safe to run twice. Golden-table tests skip with a message when
# ../shared/golden is not beside the project.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n==> %s\n' "$*"; }

step "disk: the executables of earlier builds out of the shared target dir"
prune_stale_executables
df -h "$CARGO_TARGET_DIR" | tail -1

step "toolchain (rustfmt, clippy, wasm32 target, clang, wasm-bindgen-cli)"
ensure_rust_components
ensure_wasm_toolchain
cargo --version
wasm-bindgen --version

step "Python oracles (deltalake, DuckDB 1.5.5 with its delta extension) in $WAVELAKE_VENV"
ensure_venv "${PYTHON_ORACLES[@]}"

step "JavaScript tools (Azurite in tests/js, apache-arrow and playwright-core in pkg) and Chromium"
ensure_node_tools
ensure_apt chromium

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --all-targets -p wavelake-kernel -p wavelake-storage -p wavelake-sharing -p wavelake-engine -p wavelake-write -p wavelake-server -p wavelake-allocator -p wavelake-tests -p wavelake-web -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p wavelake-kernel -p wavelake-storage --features wavelake-storage/http --lib -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p wavelake-engine --features http --lib --test wasm_http -- -D warnings
cargo clippy --target wasm32-unknown-unknown -p wavelake-pkg -p wavelake-web -- -D warnings

step "the npm package and the web app link the read path only"
for reader in wavelake-pkg wavelake-web; do
  crates="$(cargo tree -p "$reader" --target wasm32-unknown-unknown -e normal --prefix none)"
  if grep -qE '^wavelake-write ' <<<"$crates"; then
    echo "$reader links the write path (the wavelake-write crate):" >&2
    cargo tree -p "$reader" --target wasm32-unknown-unknown -e normal -i wavelake-write >&2
    exit 1
  fi
  features="$(cargo tree -p "$reader" --target wasm32-unknown-unknown -e features -i wavelake-engine)"
  if grep -qE 'wavelake-engine feature "native"' <<<"$features"; then
    echo "$reader builds the engine with its native backends (feature native)" >&2
    exit 1
  fi
done
echo "wavelake-pkg and wavelake-web do not link wavelake-write"

step "the npm package (wasm-pack) into pkg/dist"
scripts/build-pkg.sh

step "the web app (Dioxus, wasm-bindgen) into www/generated"
scripts/build-web.sh
# Built here, so its end-to-end test in Chromium must run, not skip.
export WAVELAKE_REQUIRE_WEB_E2E=1

# A failing test ends with its message, not a backtrace that pushes the
# message out of a log's tail; rerun one test with RUST_BACKTRACE=1 for it.
export RUST_BACKTRACE=0
step "tests (engine unit tests, CLI, golden conformance, the npm package, the web app's components and end to end)"
cargo test -p wavelake-kernel -p wavelake-storage -p wavelake-sharing -p wavelake-engine -p wavelake-write -p wavelake-server -p wavelake-allocator -p wavelake-tests -p wavelake-web 2>&1 | tee "$WAVELAKE_TEST_SCRATCH/cargo-test.log"

step "wasm32: the engine's tests over HTTP, under wasm-bindgen-test in Node"
cargo build -p wavelake-tests --bin golden-http-server
server_out="$WAVELAKE_TEST_SCRATCH/golden-http-server.out"
"$CARGO_TARGET_DIR/debug/golden-http-server" >"$server_out" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  grep -q '^WAVELAKE_TEST_HTTP_URL=\|^SKIPPED' "$server_out" && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.5
done
cat "$server_out"
url="$(sed -n 's/^WAVELAKE_TEST_HTTP_URL=//p' "$server_out")"
WAVELAKE_TEST_HTTP_URL="$url" cargo test --target wasm32-unknown-unknown -p wavelake-engine --features http --test wasm_http
