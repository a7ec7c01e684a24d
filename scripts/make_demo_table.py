"""Writes the demo Delta table: trips in a few cities, then a delete.

Uses the reference writer (PyPI deltalake) so the demo also shows Wavelake
reading a table another engine wrote.
"""
import random
import sys

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

path = sys.argv[1]
rng = random.Random(7)
cities = ["Lisbon", "Oslo", "Lima", "Osaka", "Accra"]
n = 10_000
table = pa.table(
    {
        "trip_id": pa.array(range(n), pa.int64()),
        "city": pa.array([rng.choice(cities) for _ in range(n)]),
        "fare": pa.array([round(rng.uniform(3, 80), 2) for _ in range(n)]),
        "day": pa.array([f"2026-11-{1 + i % 20:02d}" for i in range(n)]),
    }
)
write_deltalake(path, table, partition_by=["day"],
                configuration={"delta.enableDeletionVectors": "true"})
DeltaTable(path).delete("fare > 75")
print(f"wrote {path}: version {DeltaTable(path).version()}")
