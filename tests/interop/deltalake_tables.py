"""Writes random Delta tables with the reference writer (PyPI `deltalake`)
and records, for every version, the rows `deltalake` itself reads there.

Usage: python deltalake_tables.py OUT_DIR SEED COUNT

Each table gets a random schema (primitive, decimal, temporal, nested
types), random partition columns, and a random history of appends,
overwrites, deletes, updates, schema evolution, compaction and checkpoints.
OUT_DIR/manifest.json lists the tables and versions; the rows of version V
of table T are in OUT_DIR/T/expected/vV.parquet. The Rust interop test reads
the same versions with Wavelake and compares.
"""

import datetime
import decimal
import json
import os
import random
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, QueryBuilder, write_deltalake

UTC = datetime.timezone.utc

# name -> (arrow type, value generator, usable as a partition column)
def _types():
    def text(r):
        return r.choice(["", "a", "b c", "ünï", "x/y", "p=q", "%20", "long-" + "z" * r.randint(1, 40)])

    def stamp(r):
        return datetime.datetime(2020, 1, 1, tzinfo=UTC) + datetime.timedelta(
            seconds=r.randint(0, 10**8), microseconds=r.randint(0, 999_999)
        )

    return {
        "byte": (pa.int8(), lambda r: r.randint(-128, 127), False),
        "short": (pa.int16(), lambda r: r.randint(-(2**15), 2**15 - 1), False),
        "int": (pa.int32(), lambda r: r.randint(-(2**31), 2**31 - 1), True),
        "long": (pa.int64(), lambda r: r.randint(-(2**63), 2**63 - 1), False),
        "float": (pa.float32(), lambda r: r.choice([0.5, -1.25, 3.0, 1e10]), False),
        "double": (pa.float64(), lambda r: r.uniform(-1e6, 1e6), False),
        "string": (pa.string(), text, True),
        "boolean": (pa.bool_(), lambda r: r.random() < 0.5, False),
        "date": (pa.date32(), lambda r: datetime.date(1970, 1, 1) + datetime.timedelta(days=r.randint(-5000, 30000)), True),
        "timestamp": (pa.timestamp("us", tz="UTC"), stamp, False),
        "decimal": (pa.decimal128(12, 3), lambda r: decimal.Decimal(r.randint(-(10**11), 10**11)) / 1000, False),
        "binary": (pa.binary(), lambda r: bytes(r.randint(0, 255) for _ in range(r.randint(0, 6))), False),
        "struct": (
            pa.struct([("a", pa.int32()), ("b", pa.string())]),
            lambda r: {"a": r.randint(0, 100), "b": text(r)},
            False,
        ),
        "list": (pa.list_(pa.int64()), lambda r: [r.randint(0, 9) for _ in range(r.randint(0, 3))], False),
        "map": (
            pa.map_(pa.string(), pa.int32()),
            lambda r: [(f"k{i}", r.randint(0, 9)) for i in range(r.randint(0, 2))],
            False,
        ),
    }


TYPES = _types()


def random_schema(r):
    names = r.sample(sorted(TYPES), r.randint(2, 6))
    columns = [("id", "long")] + [(f"c_{n}", n) for n in names]
    candidates = [c for c, t in columns[1:] if TYPES[t][2]]
    partitions = r.sample(candidates, min(len(candidates), r.randint(0, 2)))
    return columns, partitions


def batch(r, columns, start, rows, partitions):
    arrays, fields = [], []
    for name, type_name in columns:
        arrow_type, gen, _ = TYPES[type_name]
        if name == "id":
            values = list(range(start, start + rows))
        else:
            values = [None if r.random() < 0.1 else gen(r) for _ in range(rows)]
            if name in partitions:
                # An empty partition string is NULL to Spark, delta-kernel
                # and deltalake's to_pyarrow_table, but "" to its
                # QueryBuilder: keep the oracle unambiguous (the engine's
                # unit tests cover "" -> NULL).
                values = ["e" if v == "" else v for v in values]
        arrays.append(pa.array(values, type=arrow_type))
        fields.append(pa.field(name, arrow_type, nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def record(path, out, versions):
    version = DeltaTable(str(path)).version()
    # deltalake's QueryBuilder reads tables whose protocol lists
    # deletionVectors (to_pyarrow_table refuses them).
    snapshot = DeltaTable(str(path), version=version)
    rows = pa.table(QueryBuilder().register("t", snapshot).execute("SELECT * FROM t"))
    pq.write_table(rows, out / f"v{version}.parquet")
    versions.append(version)


def make_table(root, seed):
    r = random.Random(seed)
    columns, partitions = random_schema(r)
    path = root / "delta"
    expected = root / "expected"
    expected.mkdir(parents=True)
    next_id = 0
    versions, operations = [], []

    def append(mode="append", extra=None):
        nonlocal next_id
        rows = r.randint(1, 60)
        data = batch(r, columns, next_id, rows, partitions)
        next_id += rows
        kwargs = {"mode": mode, "partition_by": partitions or None}
        if extra:
            kwargs.update(extra)
        write_deltalake(str(path), data, **kwargs)

    # Some tables enable deletion vectors, which upgrades the protocol to
    # table features (delta-rs then also lists variantType).
    features = {"delta.enableDeletionVectors": "true"} if r.random() < 0.3 else None
    append(extra={"configuration": features} if features else None)
    operations.append("create-with-dv-feature" if features else "create")
    record(path, expected, versions)
    for _ in range(r.randint(3, 7)):
        op = r.choice(["append", "append", "overwrite", "delete", "update", "evolve", "optimize", "checkpoint"])
        dt = DeltaTable(str(path))
        if op == "append":
            append()
        elif op == "overwrite":
            append(mode="overwrite")
        elif op == "delete":
            dt.delete(f"id % {r.randint(2, 5)} = 0")
        elif op == "update":
            target = next((c for c, t in columns if t in ("int", "long", "short") and c not in partitions and c != "id"), None)
            if target is None:
                dt.delete("id % 7 = 1")
                op = "delete"
            else:
                dt.update(updates={target: "1"}, predicate="id % 2 = 1")
        elif op == "evolve":
            new_type = r.choice(["string", "long", "date", "double"])
            columns.append((f"added_{len(columns)}_{new_type}", new_type))
            append(extra={"schema_mode": "merge"})
        elif op == "optimize":
            dt.optimize.compact()
        elif op == "checkpoint":
            dt.create_checkpoint()
            operations.append(op)
            continue  # a checkpoint makes no new version
        operations.append(op)
        record(path, expected, versions)
    return {
        "name": root.name,
        "seed": seed,
        "columns": [c for c, _ in columns],
        "partitions": partitions,
        "operations": operations,
        "versions": versions,
    }


def main():
    out, seed, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    tables = [make_table(out / f"table-{i:02d}", seed * 1000 + i) for i in range(count)]
    (out / "manifest.json").write_text(json.dumps(tables, indent=1))
    print(f"wrote {len(tables)} tables, {sum(len(t['versions']) for t in tables)} versions to {out}")


if __name__ == "__main__":
    main()
    # delta-rs can abort in its runtime's destructors at interpreter exit
    # (delta-rs#2184) after all work is done; leave without running them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
