"""Reads Delta tables with DuckDB 1.5.5 and its delta extension (built on
delta-kernel-rs), as an independent reader for the interop tests.

Usage: python duckdb_scan.py OUT_DIR TABLE_DIR...

For each table, writes OUT_DIR/<name>.parquet with the rows of a full scan
of its latest version, and records the outcome (ok, or DuckDB's error) in
OUT_DIR/results.json.
"""

import json
import sys
from pathlib import Path

import duckdb
import duckdb_extension_delta


def extension_path():
    root = Path(duckdb_extension_delta.__file__).parent
    found = sorted(root.rglob("delta.duckdb_extension"))
    if not found:
        raise SystemExit(f"no delta.duckdb_extension under {root}")
    return found[0]


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension_path()}'")
    con.execute("SET TimeZone = 'UTC'")
    results = {}
    for table in sys.argv[2:]:
        table = Path(table)
        target = out / f"{table.name}.parquet"
        try:
            con.execute(
                f"COPY (SELECT * FROM delta_scan('{table}')) TO '{target}' (FORMAT parquet)"
            )
            results[table.name] = "ok"
        except duckdb.Error as e:
            results[table.name] = str(e).splitlines()[0]
    (out / "results.json").write_text(json.dumps(results, indent=1))
    ok = sum(v == "ok" for v in results.values())
    print(f"duckdb read {ok} of {len(results)} tables")


if __name__ == "__main__":
    main()
