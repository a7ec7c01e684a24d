#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs them all.
# Safe to run twice. Golden-table tests skip with a message when
# ../shared/golden is not beside the project.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
ensure_rust_components
cargo --version

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --all-targets -p wavelake-engine -p wavelake-server -p wavelake-tests -- -D warnings

step "tests (engine unit tests, CLI, golden conformance)"
cargo test -p wavelake-engine -p wavelake-server -p wavelake-tests 2>&1 | tee "$WAVELAKE_TEST_SCRATCH/cargo-test.log"
