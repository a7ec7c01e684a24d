#!/usr/bin/env bash
# Builds the `wavelake` npm package into pkg/dist with wasm-pack (size
# profile, ES module that pages, bundlers, Node and workerd import), and
# prints its gzip size. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_wasm_toolchain
ensure_wasm_pack
wasm-pack build pkg --target web --out-dir dist --out-name wavelake \
  --profile wasm-release --no-opt
node pkg/npm/finish-package.mjs pkg/dist
wasm=pkg/dist/wavelake_bg.wasm
echo "wavelake_bg.wasm: $(stat -c %s "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) gzip -9"
