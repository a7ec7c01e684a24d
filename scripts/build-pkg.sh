#!/usr/bin/env bash
# Builds the `wavelake` npm package with wasm-pack (size profile, an ES
# module that pages, bundlers, Node and workerd import) and prints its gzip
# size. Safe to run twice.
#   scripts/build-pkg.sh        every SQL function, into pkg/dist
#   scripts/build-pkg.sh edge   without regex, hash, Unicode and encoding
#                               functions, into pkg/dist-edge
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_wasm_toolchain
ensure_wasm_pack
out=dist
features=()
if [[ "${1:-}" == "edge" ]]; then
  out=dist-edge
  features=(--no-default-features)
fi
wasm-pack build pkg --target web --out-dir "$out" --out-name wavelake \
  --profile wasm-release --no-opt -- "${features[@]}"
node pkg/npm/finish-package.mjs "pkg/$out"
wasm="pkg/$out/wavelake_bg.wasm"
if grep -qE "^$wasm[[:space:]]" scripts/size-budget.txt; then
  scripts/check-size.sh "$wasm"
else
  echo "$out/wavelake_bg.wasm: $(stat -c %s "$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) gzip -9"
fi
