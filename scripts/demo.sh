#!/usr/bin/env bash
# Wavelake's main job on a demo table: builds wavelake, writes a demo Delta
# table with the reference writer (PyPI deltalake) into a local table root,
# changes it with Wavelake (UPDATE as a deletion vector, OPTIMIZE), shares
# it, builds the web app, and serves the root and the app with
# `wavelake serve` until Ctrl-C.
# Safe to run twice.
#   WAVELAKE_DEMO_ROOT   table root (default data/lake)
#   WAVELAKE_LISTEN      address (default 127.0.0.1:8080)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

ensure_venv "${PYTHON_ORACLES[@]}"
root="${WAVELAKE_DEMO_ROOT:-data/lake}"
listen="${WAVELAKE_LISTEN:-127.0.0.1:8080}"
table="$root/demo/trips"
cargo build --release -p wavelake-server
bin="$CARGO_TARGET_DIR/release/wavelake"
scripts/build-web.sh

scripts/demo-table.sh "$root" "$bin"

echo "--- the demo table, demo.trips: latest version"
"$bin" sql "SELECT city, count(*) AS trips, round(avg(fare), 2) AS avg_fare FROM trips GROUP BY city ORDER BY trips DESC" --table trips="$table"
echo "--- its history"
"$bin" sql "SELECT version, operation FROM delta_history('trips')" --table trips="$table"

token_file="$root/_wavelake/demo-admin-token"
if [ -z "${WAVELAKE_ADMIN_TOKEN:-}" ]; then
  mkdir -p "$(dirname "$token_file")"
  if [ ! -s "$token_file" ]; then
    # A demo convenience: the token stays in the demo root, readable by you.
    (umask 077; head -c 24 /dev/urandom | base64 | tr '+/' '-_' > "$token_file")
  fi
  WAVELAKE_ADMIN_TOKEN="$(cat "$token_file")"
  export WAVELAKE_ADMIN_TOKEN
fi

# The demo table is shared, so the web app (which reads through Delta
# Sharing) lists it after sign-in.
config="$root/_wavelake/demo.toml"
mkdir -p "$(dirname "$config")"
cat >"$config" <<TOML
[[sharing.shares]]
name = "demo"
tables = ["demo.trips"]
TOML

cat <<INFO
--- serving $root on http://$listen (Ctrl-C stops)
    the web app: http://$listen/ (sign in to this server with the admin token)
    admin token: in $token_file (or your WAVELAKE_ADMIN_TOKEN)
    try:
      curl -s -X POST http://$listen/api/v1/sql -H "Authorization: Bearer \$(cat $token_file)" \\
           -H 'content-type: application/json' -d '{"sql": "SELECT count(*) FROM demo.trips"}'
      curl -s http://$listen/api/v1/openapi.json
      # Delta Sharing: CREATE SHARE s; ALTER SHARE s ADD TABLE demo.trips; CREATE RECIPIENT r;
      #                GRANT SELECT ON SHARE s TO RECIPIENT r  (the profile comes back from CREATE RECIPIENT)
INFO
exec "$bin" serve --config "$config" --root "$root" --listen "$listen"
