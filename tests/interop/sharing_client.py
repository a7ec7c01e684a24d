"""Reads shared tables with the PyPI `delta-sharing` client.

  python sharing_client.py PROFILE OUT_DIR FORMAT SHARE.SCHEMA.TABLE...

FORMAT is `parquet` or `delta` (use_delta_format). For each table, writes
OUT_DIR/<share.schema.table>.parquet with the rows of `load_as_pandas`, and
OUT_DIR/results.json mapping each table to "ok" or the client's error.
"""

import json
import os
import sys
from pathlib import Path


def main():
    profile, out, fmt, *tables = sys.argv[1:]
    import delta_sharing
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for table in tables:
        try:
            frame = delta_sharing.load_as_pandas(
                f"{profile}#{table}", use_delta_format=(fmt == "delta")
            )
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out / f"{table}.parquet")
            results[table] = "ok"
        except Exception as error:  # the test reports it
            results[table] = f"{type(error).__name__}: {error}"[:2000]
    (out / "results.json").write_text(json.dumps(results))
    print(f"delta-sharing read {sum(v == 'ok' for v in results.values())} of {len(tables)} tables ({fmt})")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
