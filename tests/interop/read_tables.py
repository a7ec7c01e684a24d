"""Reads Delta tables with an independent reader, as the oracle of the
interop tests: PyPI `deltalake` (delta-rs) or DuckDB 1.5.5 with its delta
extension (delta-kernel-rs).

Usage: python read_tables.py READER OUT_DIR TABLE_DIR...

READER is `deltalake` or `duckdb`. For each table, writes
OUT_DIR/<name>.parquet with the rows of a full scan of its latest version,
and records the outcome (ok, or the reader's error) in
OUT_DIR/results.json.
"""

import json
import os
import sys
from pathlib import Path


def duckdb_reader():
    import duckdb
    import duckdb_extension_delta

    root = Path(duckdb_extension_delta.__file__).parent
    found = sorted(root.rglob("delta.duckdb_extension"))
    if not found:
        raise SystemExit(f"no delta.duckdb_extension under {root}")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{found[0]}'")
    con.execute("SET TimeZone = 'UTC'")

    def read(table, target):
        con.execute(
            f"COPY (SELECT * FROM delta_scan('{table}')) TO '{target}' (FORMAT parquet)"
        )

    return read, duckdb.Error


def deltalake_reader():
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import DeltaTable, QueryBuilder
    from deltalake.exceptions import DeltaError

    def read(table, target):
        # QueryBuilder applies deletion vectors; to_pyarrow_table refuses
        # tables whose protocol lists them.
        snapshot = DeltaTable(str(table))
        rows = pa.table(QueryBuilder().register("t", snapshot).execute("SELECT * FROM t"))
        pq.write_table(rows, target)

    return read, (DeltaError, OSError, ValueError)


def main():
    reader, out = sys.argv[1], Path(sys.argv[2])
    read, errors = {"duckdb": duckdb_reader, "deltalake": deltalake_reader}[reader]()
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for table in sys.argv[3:]:
        table = Path(table)
        target = out / f"{table.name}.parquet"
        try:
            read(table, target)
            results[table.name] = "ok"
        except errors as e:
            results[table.name] = str(e).splitlines()[0] if str(e) else repr(e)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    ok = sum(v == "ok" for v in results.values())
    print(f"{reader} read {ok} of {len(results)} tables")


if __name__ == "__main__":
    main()
    # delta-rs can abort in its runtime's destructors at interpreter exit
    # ("terminate called without an active exception", delta-rs#2184) after
    # all work is done; leave without running them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
