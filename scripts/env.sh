# Shared settings for Wavelake's scripts (sourced, not run).
# Builds go to one target directory outside the clone, so that every clone on
# this machine (and every CI run) reuses the same warm build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wavelake/target}"
export WAVELAKE_VENV="${WAVELAKE_VENV:-$HOME/.cache/wavelake/venv}"
export WAVELAKE_TEST_SCRATCH="${WAVELAKE_TEST_SCRATCH:-$HOME/.cache/wavelake/scratch}"
mkdir -p "$CARGO_TARGET_DIR" "$WAVELAKE_TEST_SCRATCH"

# Installs the Rust components the checks use (safe to repeat).
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
