#!/usr/bin/env bash
# Builds the Dioxus web app (web/) to wasm into www/generated, where
# www/index.html loads it and `wavelake serve` serves it at /; prints the
# app's gzip size. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_wasm_toolchain
cargo build -p wavelake-web --target wasm32-unknown-unknown --profile wasm-release
wasm-bindgen --target web --no-typescript --out-dir www/generated --out-name wavelake_web \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/wavelake_web.wasm"
scripts/check-size.sh www/generated/wavelake_web_bg.wasm
