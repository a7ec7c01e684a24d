"""Talks to Wavelake's Arrow Flight SQL endpoint with the ADBC Flight SQL
driver (PyPI adbc-driver-flightsql), as a user of it would.

  python flight_sql.py GRPC_URL ADMIN_TOKEN READ_ONLY_TOKEN OUT_FILE HTTP_URL

Runs DDL, bulk ingest (create, append, replace), queries (plain and
prepared), an update through DoPut, catalog metadata, and refusals (a wrong
token, a read-only token writing, a bad statement), asserting what each
returns. OUT_FILE gets the figures the Rust test checks against the HTTP
API: {"rows": [...], "count": n}, and how many result cache hits
(HTTP_URL's /metrics) a query repeated over an unchanged table made.
"""

import json
import os
import sys
import urllib.request


def connect(url, token, namespace="default"):
    import adbc_driver_flightsql.dbapi as flight_sql

    return flight_sql.connect(
        url,
        db_kwargs={
            "adbc.flight.sql.authorization_header": f"Bearer {token}",
            "adbc.flight.sql.rpc.call_header.x-wavelake-namespace": namespace,
        },
        autocommit=True,
    )


def refused(action, words):
    """Runs `action`, which must fail with an error containing `words`."""
    try:
        action()
    except Exception as error:  # the driver raises its own classes
        text = f"{type(error).__name__}: {error}"
        assert any(w in text for w in words), f"refused for another reason: {text}"
        return text
    raise AssertionError(f"not refused (expected one of {words})")


def cache_hits(http_url):
    """The server's result cache hits so far, from its /metrics."""
    with urllib.request.urlopen(f"{http_url}/metrics") as response:
        for line in response.read().decode().splitlines():
            if line.startswith("wavelake_result_cache_hits_total "):
                return float(line.split()[1])
    return 0.0


def main():
    url, admin, reader, out_file, http_url = sys.argv[1:]
    import pyarrow as pa

    results = {}
    with connect(url, admin) as conn:
        cursor = conn.cursor()

        # DDL runs once, at GetFlightInfo.
        cursor.execute("CREATE TABLE flights (id BIGINT NOT NULL, name STRING, score DOUBLE)")
        cursor.fetchall()

        # Bulk ingest: append into the write buffer; read at once.
        first = pa.table(
            {
                "id": pa.array([1, 2, 3], pa.int64()),
                "name": ["ann", "bob", None],
                "score": [1.5, 2.5, 3.5],
            }
        )
        written = cursor.adbc_ingest("flights", first, mode="append")
        assert written == 3, f"append wrote {written}"
        cursor.execute("SELECT id, name, score FROM flights ORDER BY id")
        table = cursor.fetch_arrow_table()
        assert table.column("id").to_pylist() == [1, 2, 3], table
        assert table.column("name").to_pylist() == ["ann", "bob", None], table

        # Create a table from the ingested data, then replace its rows.
        made = cursor.adbc_ingest(
            "made", pa.table({"k": pa.array([10, 20], pa.int32()), "v": ["x", "y"]}), mode="create"
        )
        assert made == 2, f"create wrote {made}"
        refused(
            lambda: cursor.adbc_ingest("made", pa.table({"k": pa.array([1], pa.int32()), "v": ["z"]}), mode="create"),
            ["exists", "ALREADY_EXISTS", "TABLE_EXISTS"],
        )
        replaced = cursor.adbc_ingest(
            "made", pa.table({"k": pa.array([30], pa.int32()), "v": ["w"]}), mode="replace"
        )
        assert replaced == 1, f"replace wrote {replaced}"
        cursor.execute("SELECT k, v FROM made")
        assert cursor.fetch_arrow_table().to_pylist() == [{"k": 30, "v": "w"}]
        # Rows the table cannot hold are refused whole.
        refused(
            lambda: cursor.adbc_ingest(
                "flights", pa.table({"id": pa.array([None, 9], pa.int64()), "name": ["n", "m"], "score": [0.0, 1.0]}), mode="append"
            ),
            ["id", "null", "NULL"],
        )

        # An append larger than the server's flush_rows commits at once;
        # one over its upload limit is refused whole.
        assert cursor.adbc_ingest("bulk", pa.table({"n": pa.array(range(3), pa.int64())}), mode="create") == 3
        assert cursor.adbc_ingest("bulk", pa.table({"n": pa.array(range(3, 23), pa.int64())}), mode="append") == 20
        refused(
            lambda: cursor.adbc_ingest("bulk", pa.table({"n": pa.array(range(100_000), pa.int64())}), mode="append"),
            ["PAYLOAD_TOO_LARGE", "RESOURCE_EXHAUSTED"],
        )
        cursor.execute("SELECT count(*) FROM bulk")
        results["bulk"] = cursor.fetchone()[0]

        # A prepared statement, run twice.
        cursor.adbc_prepare("SELECT count(*) AS n FROM flights")
        for _ in range(2):
            cursor.execute("SELECT count(*) AS n FROM flights")
            assert cursor.fetchone()[0] == 3

        # Parameters bound to prepared statements: ? and $n, rows of an
        # update (executemany, one DoPut), a hostile string kept one value,
        # and a missing parameter refused.
        hostile = "x' OR 1=1; DROP TABLE params; --"
        cursor.execute("CREATE TABLE params (id BIGINT, name STRING, score DOUBLE)")
        cursor.executemany(
            "INSERT INTO params VALUES (?, ?, ?)",
            [(1, "one", 1.5), (2, hostile, None), (3, "three", 3.25)],
        )
        cursor.execute("SELECT name FROM params WHERE id = ?", parameters=(2,))
        assert cursor.fetchall() == [(hostile,)]
        cursor.execute("SELECT id FROM params WHERE name = $1 OR id = $2 ORDER BY id", parameters=(hostile, 3))
        assert cursor.fetchall() == [(2,), (3,)]
        cursor.execute("SELECT count(*) FROM params WHERE name = ?", parameters=("nobody' OR '1'='1",))
        assert cursor.fetchone()[0] == 0
        cursor.execute("UPDATE params SET score = ? WHERE id = ?", parameters=(9.5, 2))
        cursor.execute("SELECT score FROM params WHERE id = 2")
        assert cursor.fetchone()[0] == 9.5
        refused(lambda: cursor.execute("SELECT ?, ?", parameters=(1,)), ["parameter", "INVALID_ARGUMENT", "InvalidArgument"])
        cursor.execute("SELECT count(*) FROM params")
        assert cursor.fetchone()[0] == 3
        results["parameters"] = 3

        # DML through DoPut (execute_update) and through a query.
        from adbc_driver_manager import AdbcStatement

        statement = AdbcStatement(conn.adbc_connection)
        statement.set_sql_query("UPDATE flights SET score = 0 WHERE id = 2")
        updated = statement.execute_update()
        statement.close()
        assert updated == 1, f"update changed {updated}"
        cursor.execute("DELETE FROM flights WHERE id = 3")
        assert cursor.fetchone()[0] == 1

        # Catalog metadata.
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        schemas = [s["db_schema_name"] for c in objects for s in (c["catalog_db_schemas"] or [])]
        assert "default" in schemas, objects
        tables = [
            t["table_name"]
            for c in objects
            for s in (c["catalog_db_schemas"] or [])
            for t in (s["db_schema_tables"] or [])
        ]
        assert "flights" in tables and "made" in tables, tables
        schema = conn.adbc_get_table_schema("flights", db_schema_filter="default")
        assert schema.names == ["id", "name", "score"], schema
        assert "TABLE" in conn.adbc_get_table_types()
        info = conn.adbc_get_info()
        assert info.get("vendor_name") == "Wavelake", info

        # A bad statement is a clear error, and the connection goes on.
        refused(lambda: cursor.execute("SELECT * FROM nowhere"), ["nowhere", "NOT_FOUND", "not found"])
        cursor.execute("SELECT id, name, score FROM flights ORDER BY id")
        results["rows"] = cursor.fetch_arrow_table().to_pylist()
        cursor.close()

    # A read-only token reads and cannot write, whatever the edge.
    with connect(url, reader) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM flights")
        results["count"] = cursor.fetchone()[0]
        refused(lambda: cursor.execute("DELETE FROM flights"), ["PERMISSION_DENIED", "Forbidden", "NOT_ALLOWED", "cannot write", "may not"])
        refused(
            lambda: cursor.executemany("INSERT INTO params VALUES (?, ?, ?)", [(9, "x", 1.0)]),
            ["PERMISSION_DENIED", "Forbidden", "NOT_ALLOWED", "cannot write", "may not"],
        )
        cursor.execute("SELECT count(*) FROM params WHERE id = ?", parameters=(1,))
        assert cursor.fetchone()[0] == 1
        refused(
            lambda: cursor.adbc_ingest("flights", pa.table({"id": pa.array([7], pa.int64()), "name": ["x"], "score": [1.0]}), mode="append"),
            ["PERMISSION_DENIED", "Forbidden", "NOT_ALLOWED", "cannot write", "may not"],
        )
        cursor.close()

    # The namespace header routes unqualified names, ingest included.
    with connect(url, admin, namespace="sales") as conn:
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE orders (id BIGINT)")
        cursor.fetchall()
        assert cursor.adbc_ingest("orders", pa.table({"id": pa.array([1, 2, 3], pa.int64())}), mode="append") == 3
        cursor.execute("SELECT count(*) FROM orders")
        assert cursor.fetchone()[0] == 3
        cursor.close()
    with connect(url, admin) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT count(*) FROM sales.orders")
        results["sales"] = cursor.fetchone()[0]
        refused(lambda: cursor.execute("SELECT count(*) FROM orders"), ["orders", "NOT_FOUND", "not found"])
        cursor.close()

    # A query repeated over an unchanged table: the second answer is the
    # result cache's, the same rows.
    with connect(url, admin) as conn:
        cursor = conn.cursor()
        before = cache_hits(http_url)
        cursor.execute("SELECT count(*) AS n, sum(n) AS total FROM bulk")
        first = cursor.fetchall()
        cursor.execute("SELECT count(*) AS n, sum(n) AS total FROM bulk")
        assert cursor.fetchall() == first == [(23, 253)], first
        results["cache_hits"] = cache_hits(http_url) - before
        # All 23 rows, kept for the HTTP API's test of its row cap.
        cursor.execute("SELECT n FROM bulk ORDER BY n")
        assert len(cursor.fetchall()) == 23
        cursor.close()

    # A wrong token is refused.
    with connect(url, "not-a-token") as conn:
        cursor = conn.cursor()
        refused(lambda: cursor.execute("SELECT 1"), ["UNAUTHENTICATED", "Unauthenticated", "UNAUTHORIZED"])
        cursor.close()

    with open(out_file, "w") as out:
        json.dump(results, out)
    print("Flight SQL through ADBC: every check passed")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
