"""CHECK constraints across writers, with the reference writer (PyPI
`deltalake`):

  python constraints.py make TABLE_DIR   a table with constraint `positive`
                                         (value > 0) and one row, by deltalake
  python constraints.py write TABLE_DIR VALUE
                                         tries to append the row (7, VALUE);
                                         prints "written" or "refused: …"
"""

import json
import sys

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake


def rows(value):
    return pa.table({"id": pa.array([7], pa.int64()), "value": pa.array([value], pa.float64())})


def main():
    action, path = sys.argv[1:3]
    if action == "make":
        write_deltalake(path, rows(1.0))
        DeltaTable(path).alter.add_constraint({"positive": "value > 0"})
        print(json.dumps({"made": path}))
        return
    try:
        write_deltalake(path, rows(float(sys.argv[3])), mode="append")
        print("written")
    except Exception as error:  # deltalake raises its own classes
        print(f"refused: {type(error).__name__}: {error}"[:500])

if __name__ == "__main__":
    main()
