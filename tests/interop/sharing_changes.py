"""Reads the change data feed of shared tables three ways and writes the rows.

  python sharing_changes.py PROFILE OUT_FILE SHARE.SCHEMA.TABLE[@START][=PATH]...

For each table: `delta_sharing.load_table_changes_as_pandas` from version
START (0 by default) in the parquet and the delta response format, where PATH (the table's
directory) is given, PyPI `deltalake`'s own `load_cdf` as the oracle, and, with
WAVELAKE_URL and WAVELAKE_TOKEN set, Wavelake's own `table_changes('SCHEMA.TABLE', START)`
through the SQL API (as an Arrow stream). Rows
are the data columns plus `_change_type` and `_commit_version`, each value
as text, sorted. OUT_FILE gets {table: {method: rows or "error: ..."}}.
"""

import datetime
import json
import math
import os
import sys


def text(value):
    import pandas as pd

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if value is pd.NaT:
        return "null"
    if isinstance(value, (pd.Timestamp, datetime.datetime)):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return stamp.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "item"):
        return text(value.item())
    return str(value)


def rows(frame):
    columns = sorted(c for c in frame.columns if c != "_commit_timestamp")
    out = []
    for record in frame[columns].itertuples(index=False, name=None):
        out.append(" | ".join(f"{c}={text(v)}" for c, v in zip(columns, record)))
    return sorted(out)


def wavelake_changes(table, start):
    """`table_changes` of SHARE.SCHEMA.TABLE through Wavelake's SQL API."""
    import urllib.request

    import pyarrow as pa

    name = table.split(".", 1)[1]
    request = urllib.request.Request(
        os.environ["WAVELAKE_URL"] + "/api/v1/sql",
        data=json.dumps({"sql": f"SELECT * FROM table_changes('{name}', {start})"}).encode(),
        headers={
            "Authorization": "Bearer " + os.environ["WAVELAKE_TOKEN"],
            "Content-Type": "application/json",
            "Accept": "application/vnd.apache.arrow.stream",
        },
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return pa.ipc.open_stream(response.read()).read_all().to_pandas()


def main():
    profile, out_file, *specs = sys.argv[1:]
    import delta_sharing
    import deltalake
    import pyarrow as pa

    results = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        table, _, start = name.partition("@")
        start = int(start or 0)
        methods = {}
        for fmt in ("parquet", "delta"):
            try:
                frame = delta_sharing.load_table_changes_as_pandas(
                    f"{profile}#{table}", starting_version=start, use_delta_format=(fmt == "delta")
                )
                methods[fmt] = rows(frame)
            except Exception as error:  # the test reports it
                methods[fmt] = f"error: {type(error).__name__}: {error}"[:2000]
        if path:
            try:
                frame = pa.table(deltalake.DeltaTable(path).load_cdf(starting_version=start)).to_pandas()
                methods["deltalake"] = rows(frame)
            except Exception as error:
                methods["deltalake"] = f"error: {type(error).__name__}: {error}"[:2000]
        if os.environ.get("WAVELAKE_URL"):
            try:
                methods["wavelake"] = rows(wavelake_changes(table, start))
            except Exception as error:
                detail = error.read().decode() if hasattr(error, "read") else ""
                methods["wavelake"] = f"error: {type(error).__name__}: {error} {detail}"[:2000]
        results[name] = methods
    with open(out_file, "w") as out:
        json.dump(results, out, indent=1)
    print(f"read the changes of {len(specs)} tables")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
