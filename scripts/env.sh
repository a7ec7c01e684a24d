# Shared settings for Wavelake's scripts (sourced, not run).
# Builds go to one target directory outside the clone, so that every clone on
# this machine (and every CI run) reuses the same warm build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wavelake/target}"
export WAVELAKE_VENV="${WAVELAKE_VENV:-$HOME/.cache/wavelake/venv}"
export WAVELAKE_TEST_SCRATCH="${WAVELAKE_TEST_SCRATCH:-$HOME/.cache/wavelake/scratch}"
mkdir -p "$CARGO_TARGET_DIR" "$WAVELAKE_TEST_SCRATCH"

# Every clone shares that target dir, but Cargo fingerprints the project's
# own crates by relative path while their code embeds the absolute one
# (`CARGO_MANIFEST_DIR`: fixture paths, wasm-bindgen's package.json): a
# build another clone left (CI's) looks fresh here and reads that clone's
# files. When the last build came from another clone, the project's own
# targets are recompiled (their dependencies stay warm).
wavelake_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ "$(cat "$CARGO_TARGET_DIR/.checkout" 2>/dev/null)" != "$wavelake_root" ]]; then
  (cd "$wavelake_root" && cargo metadata --no-deps --format-version 1 2>/dev/null |
    python3 -c 'import json, os, sys
for package in json.load(sys.stdin)["packages"]:
    for target in package["targets"]:
        os.utime(target["src_path"])') || true
  echo "$wavelake_root" > "$CARGO_TARGET_DIR/.checkout"
fi

# Installs the Rust components the checks use (safe to repeat).
# Deletes the test and bench executables of earlier builds from the shared
# debug target dir, keeping the newest of each name: each is hundreds of
# megabytes, and a day of rebuilds filled this machine's disk with them
# (the linker then dies with a bus error). Cargo relinks what it needs.
prune_stale_executables() {
  local deps="$CARGO_TARGET_DIR/debug/deps"
  [ -d "$deps" ] || return 0
  find "$deps" -maxdepth 1 -type f -perm -u+x ! -name '*.*' -printf '%T@ %f\n' |
    sort -rn |
    awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $2 }' |
    (cd "$deps" && xargs -r rm -f --)
}

ensure_rust_components() {
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
}

# Creates the Python virtualenv with the given PyPI packages (safe to repeat).
ensure_venv() {
  if [ ! -x "$WAVELAKE_VENV/bin/python" ]; then
    python3 -m venv "$WAVELAKE_VENV"
  fi
  "$WAVELAKE_VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
}

# The Python oracles and peers, pinned once for every script; moto, the S3
# server the tests start; the Delta Sharing client the server is tested
# with (which caps pyarrow at 23.0.1); schemathesis, which fuzzes the API
# from its OpenAPI document; and tpchgen-cli, the TPC-H data of the cluster
# test and the benchmarks; the ADBC Flight SQL driver, the client the
# Flight SQL endpoint is tested with.
PYTHON_ORACLES=("deltalake==1.6.6" "pyarrow==23.0.1" "duckdb==1.5.5"
  "duckdb-extension-delta==1.5.5" "duckdb-extension-httpfs==1.5.5" "moto[server]==5.2.5"
  "delta-sharing==1.4.2" "schemathesis==4.32.5" "tpchgen-cli==4.0.0"
  "adbc-driver-flightsql==1.13.0" "adbc-driver-manager==1.13.0" "datafusion==55.0.0")

# Installs Debian packages that are missing (safe to repeat; needs root).
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The wasm-bindgen version pinned in Cargo.lock; the CLI must match it exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

# Installs the wasm32 target, clang (zstd-sys for wasm) and the matching
# wasm-bindgen CLI with its test runner (safe to repeat).
ensure_wasm_toolchain() {
  rustup target add wasm32-unknown-unknown >/dev/null 2>&1
  ensure_apt clang
  local want
  want="$(wasm_bindgen_version)"
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

# Installs the JavaScript tools the tests use from their lockfiles: Azurite
# (the Azure Storage emulator) in tests/js, apache-arrow for the npm
# package's tests in pkg (safe to repeat).
ensure_node_tools() {
  local dir
  for dir in tests/js pkg; do
    if ! (cd "$dir" && npm ls --silent >/dev/null 2>&1); then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
}

# Installs wasm-pack, which builds the npm package (safe to repeat).
ensure_wasm_pack() {
  if ! wasm-pack --version 2>/dev/null | grep -q "^wasm-pack 0.15.1"; then
    cargo install wasm-pack --version 0.15.1 --locked
  fi
}
