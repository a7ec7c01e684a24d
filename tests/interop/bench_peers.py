"""The peers of Wavelake's benchmarks, timed in the same run.

  python bench_peers.py snapshot TABLE_DIR RUNS
      PyPI deltalake: load the latest snapshot with its file list.
  python bench_peers.py tpch TABLE_DIR RUNS QUERY.sql...
      DuckDB 1.5.5 (delta extension, delta_scan) and deltalake's QueryBuilder
      run each query; one warm-up run, then RUNS timed runs.
  python bench_peers.py writes OUT_DIR ROWS APPENDS
      deltalake's write path on the data the Rust side writes: ingest of
      ROWS rows, a one-row UPDATE (copy-on-write: delta-rs writes no
      deletion vectors), APPENDS one-row appends, OPTIMIZE compaction of
      them and Z-order of the ingested table.
  python bench_peers.py upload-data FILE ROWS
      Writes FILE, a Parquet file of ROWS rows (id, name, value), once.
  python bench_peers.py write-parquet FILE TABLE_DIR
      deltalake writes FILE's rows into a new table; times it.
  python bench_peers.py tpch-peers DELTA_DIR RUNS ANSWERS QUERY.sql...
      DuckDB, deltalake's QueryBuilder and PyPI datafusion run each TPC-H
      query, each peer in its own process (tpch-peer PEER ...).
  python bench_peers.py tpch-all OUT_DIR SCALE
      Generates all eight TPC-H tables with tpchgen-cli as Delta tables
      under OUT_DIR/delta (once; kept between runs).

  python bench_peers.py tpch-http ORIGIN SETUP_JSON QUERY_DIR [SELECTIVE_SQL]
      Native DuckDB 1.5.5 with httpfs runs each TPC-H query (and the
      selective one) over HTTP against the browser benchmark's server, each
      in a new database (nothing cached from an earlier query), with the
      bytes and requests the server counted for it.

  python bench_peers.py tpch-data OUT_DIR SCALE
      Generates TPC-H lineitem with tpchgen-cli and writes it as a Delta
      table with deltalake (once; kept between runs).

Prints one JSON object per measurement on stdout.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def median_seconds(fn, runs):
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def snapshot(table, runs):
    from deltalake import DeltaTable

    files = []

    def load():
        dt = DeltaTable(table)
        files[:] = [len(dt.file_uris())]

    seconds = median_seconds(load, runs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    emit(peer="deltalake", what="snapshot", seconds=seconds, files=files[0], peak_rss_bytes=peak)


def duckdb_with_delta():
    """A DuckDB connection with its delta extension loaded, given the memory
    the Wavelake servers have for a query (DuckDB's default, 80% of the
    machine, had the peers killed for want of memory at SF10)."""
    import duckdb
    import duckdb_extension_delta

    ext = sorted(Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))[0]
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "memory_limit": "8GiB"})
    con.execute(f"LOAD '{ext}'")
    return con


def tpch(table, runs, queries):
    from deltalake import DeltaTable, QueryBuilder

    con = duckdb_with_delta()
    con.execute(f"CREATE VIEW lineitem AS SELECT * FROM delta_scan('{table}')")
    builder = QueryBuilder().register("lineitem", DeltaTable(table))

    def run_qb(sql):
        result = builder.execute(sql)
        return result.read_all() if hasattr(result, "read_all") else result

    for query in queries:
        sql = Path(query).read_text()
        name = Path(query).stem
        rows = []
        seconds = median_seconds(lambda: rows.__setitem__(slice(None), con.execute(sql).fetchall()), runs)
        emit(peer="duckdb", what=name, seconds=seconds, first_row=str(rows[0]) if rows else None)
        seconds = median_seconds(lambda: run_qb(sql), runs)
        emit(peer="deltalake-querybuilder", what=name, seconds=seconds)


def plain(value):
    """A result value as JSON: decimals as numbers, dates as ISO text."""
    import datetime
    import decimal

    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


TPCH_PEERS = ["duckdb", "deltalake-querybuilder", "datafusion"]


def tpch_peers(delta, runs, answers, queries):
    """All of TPC-H's tables under DELTA (Delta tables) in DuckDB with its
    delta extension, deltalake's QueryBuilder and PyPI datafusion (over the
    same Parquet files, no Delta log): the median of RUNS warm runs of each
    query per peer; DuckDB's answers as JSON lines into ANSWERS. Each peer
    runs in a process of its own: at SF10 one that runs out of memory is
    killed without taking the others' figures with it."""
    for peer in TPCH_PEERS:
        done = subprocess.run(
            [sys.executable, __file__, "tpch-peer", peer, delta, str(runs), answers, *queries],
            stdout=subprocess.PIPE, text=True,
        )
        sys.stdout.write(done.stdout)
        sys.stdout.flush()
        if done.returncode != 0:
            print(f"peers: {peer} exited with status {done.returncode} "
                  "(killed for want of memory?); its later queries have no figures",
                  file=sys.stderr, flush=True)
            emit(peer=peer, what="failed", status=done.returncode)
            if peer == "duckdb":
                sys.exit(f"DuckDB, whose answers are the reference, failed ({done.returncode})")


def tpch_peer(peer, delta, runs, answers, queries):
    """One peer of `tpch_peers`, in its own process."""
    if peer == "duckdb":
        con = duckdb_with_delta()
        for name in TPCH_TABLES:
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM delta_scan('{Path(delta, name)}')")
    elif peer == "deltalake-querybuilder":
        from deltalake import DeltaTable, QueryBuilder

        builder = QueryBuilder()
        for name in TPCH_TABLES:
            builder = builder.register(name, DeltaTable(str(Path(delta, name))))
    else:
        import datafusion

        ctx = datafusion.SessionContext()
        for name in TPCH_TABLES:
            ctx.register_parquet(name, str(Path(delta, name)), file_extension=".parquet")

    def run_qb(sql):
        result = builder.execute(sql)
        return result.read_all() if hasattr(result, "read_all") else result

    out = open(answers, "w") if peer == "duckdb" else None
    for query in queries:
        sql = Path(query).read_text()
        name = Path(query).stem
        print(f"peers: {peer} {name}", file=sys.stderr, flush=True)
        if peer == "duckdb":
            rows = []

            def run_duckdb():
                rows[:] = con.execute(sql).fetchall()

            emit(peer=peer, what=name, seconds=median_seconds(run_duckdb, runs))
            out.write(json.dumps({"query": name, "rows": [[plain(v) for v in r] for r in rows]}) + "\n")
            out.flush()
        elif peer == "deltalake-querybuilder":
            emit(peer=peer, what=name, seconds=median_seconds(lambda: run_qb(sql), runs))
        else:
            emit(peer=peer, what=name, seconds=median_seconds(lambda: ctx.sql(sql).collect(), runs))
    if out is not None:
        out.close()


def bench_rows(rows):
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(range(rows), pa.int64())
    return pa.table({
        "id": ids,
        "name": pc.binary_join_element_wise(pa.scalar("name "), pc.cast(ids, pa.string()), ""),
        "value": pc.multiply(pc.cast(ids, pa.float64()), 0.5),
        "bucket": pc.cast(pc.bit_wise_and(pc.multiply(ids, 7919), 1023), pa.int64()),
    })


def added_bytes(table_dir):
    """Bytes of the files the table's latest commit added."""
    log = sorted(Path(table_dir, "_delta_log").glob("*.json"))[-1]
    total = 0
    for line in log.read_text().splitlines():
        action = json.loads(line)
        if "add" in action:
            total += action["add"]["size"]
    return total


def writes(out, rows, appends):
    from deltalake import DeltaTable, write_deltalake
    import shutil

    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    data = bench_rows(rows)
    start = time.perf_counter()
    write_deltalake(str(out / "ingest"), data)
    emit(peer="deltalake", what="ingest", seconds=time.perf_counter() - start, rows=rows)

    dt = DeltaTable(str(out / "ingest"))
    start = time.perf_counter()
    dt.update(updates={"name": "'changed'"}, predicate=f"id = {rows // 2}")
    emit(peer="deltalake", what="update-one-row", seconds=time.perf_counter() - start,
         bytes_written=added_bytes(out / "ingest"))

    one = bench_rows(1)
    start = time.perf_counter()
    for _ in range(appends):
        write_deltalake(str(out / "appends"), one, mode="append")
    emit(peer="deltalake", what="appends", seconds=time.perf_counter() - start, commits=appends)

    start = time.perf_counter()
    DeltaTable(str(out / "appends")).optimize.compact()
    emit(peer="deltalake", what="optimize-compact", seconds=time.perf_counter() - start)

    start = time.perf_counter()
    DeltaTable(str(out / "ingest")).optimize.z_order(["id", "bucket"], target_size=4 * 1024 * 1024)
    emit(peer="deltalake", what="zorder", seconds=time.perf_counter() - start)


def upload_data(path, rows):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if Path(path).exists():
        return
    ids = pa.array(range(rows), pa.int64())
    table = pa.table({
        "id": ids,
        "name": pc.binary_join_element_wise(pa.scalar("name "), pc.cast(ids, pa.string()), ""),
        "value": pc.multiply(pc.cast(ids, pa.float64()), 0.5),
    })
    pq.write_table(table, path)
    emit(what="upload-data", rows=rows)


def write_parquet(path, out):
    import pyarrow.parquet as pq
    import shutil
    from deltalake import write_deltalake

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    write_deltalake(out, pq.read_table(path))
    emit(peer="deltalake", what="write-parquet", seconds=time.perf_counter() - start)


def tpch_data(out, scale):
    from deltalake import write_deltalake
    import pyarrow.dataset as ds

    out = Path(out)
    table = out / "lineitem"
    if (table / "_delta_log").is_dir():
        emit(what="tpch-data", table=str(table), cached=True)
        return
    raw = out / "parquet"
    subprocess.run(
        [str(Path(sys.executable).parent / "tpchgen-cli"), "parquet", "-s", str(scale),
         "--tables", "lineitem", "--parts", "8", "-o", str(raw)],
        check=True,
    )
    dataset = ds.dataset(str(raw / "lineitem"), format="parquet")
    import pyarrow as pa

    # tpchgen-cli marks columns with Parquet field ids; without column mapping
    # they mean nothing to Delta, and DuckDB's delta extension then reads
    # NULLs. Plain fields, as any Delta writer produces.
    schema = pa.schema([pa.field(f.name, f.type, f.nullable) for f in dataset.schema])
    batches = (pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in dataset.to_batches())
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    write_deltalake(str(table), reader, mode="overwrite")
    emit(what="tpch-data", table=str(table), cached=False)


def tpch_http(origin, setup, query_dir, selective=None):
    """The browser benchmark's queries in native DuckDB over HTTP: each
    table a view over its data files' URLs (as DuckDB-Wasm reads them in
    the page), cold, timed with what the server counted for it."""
    import urllib.request

    import duckdb
    import duckdb_extension_httpfs

    ext = sorted(Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))[0]
    tables = json.loads(Path(setup).read_text())["tables"]
    queries = [(f"q{n}", Path(query_dir, f"q{n}.sql").read_text()) for n in range(1, 23)]
    if selective:
        queries.append(("selective", selective))

    def counter(reset):
        url = f"{origin}/bench/counter" + ("?reset=1" if reset else "")
        with urllib.request.urlopen(url) as response:
            return json.load(response)

    for name, sql in queries:
        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        con.execute(f"LOAD '{ext}'")
        for table, paths in tables.items():
            urls = ", ".join(f"'{origin}/data/{table}/{path}'" for path in paths)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{urls}])")
        counter(reset=True)
        start = time.perf_counter()
        try:
            con.execute(sql).fetchall()
            error = None
        except duckdb.Error as e:
            error = str(e)
        ms = (time.perf_counter() - start) * 1000
        counted = counter(reset=False)
        fields = dict(engine="duckdb-native", what=name, ms=ms, bytes=counted["bytes"],
                      requests=counted["requests"])
        if error:
            fields["error"] = error
        emit(**fields)
        con.close()


TPCH_TABLES = ["customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier"]


def tpch_all(out, scale):
    """All eight TPC-H tables as Delta tables under OUT/delta (once)."""
    from deltalake import write_deltalake
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    delta = out / "delta"
    if all((delta / t / "_delta_log").is_dir() for t in TPCH_TABLES):
        emit(what="tpch-all", tables=str(delta), cached=True)
        return
    raw = out / "parquet-all"
    subprocess.run(
        [str(Path(sys.executable).parent / "tpchgen-cli"), "parquet", "-s", str(scale),
         "-o", str(raw)],
        check=True,
    )
    for name in TPCH_TABLES:
        data = pq.read_table(raw / f"{name}.parquet")
        # Plain fields (tpchgen-cli's Parquet field ids mean nothing to Delta).
        schema = pa.schema([pa.field(f.name, f.type, f.nullable) for f in data.schema])
        write_deltalake(str(delta / name), data.cast(schema), mode="overwrite")
    emit(what="tpch-all", tables=str(delta), cached=False)


def main():
    command = sys.argv[1]
    if command == "snapshot":
        snapshot(sys.argv[2], int(sys.argv[3]))
    elif command == "tpch":
        tpch(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
    elif command == "writes":
        writes(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif command == "upload-data":
        upload_data(sys.argv[2], int(sys.argv[3]))
    elif command == "write-parquet":
        write_parquet(sys.argv[2], sys.argv[3])
    elif command == "tpch-data":
        tpch_data(sys.argv[2], sys.argv[3])
    elif command == "tpch-peers":
        tpch_peers(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:])
    elif command == "tpch-peer":
        tpch_peer(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6:])
    elif command == "tpch-http":
        tpch_http(*sys.argv[2:6])
    elif command == "tpch-all":
        tpch_all(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
    # delta-rs can abort in its runtime's destructors at interpreter exit
    # (delta-rs#2184) after all work is done; leave without running them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
