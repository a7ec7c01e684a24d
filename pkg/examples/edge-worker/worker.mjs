// An edge worker that answers SQL over Delta tables in a bucket, running the
// query in the worker itself: it reads the tables' logs and Parquet pages
// with range requests and applies deletion vectors, no query server behind
// it.
//
//   GET /<table path>?sql=SELECT count(*) FROM t
//
// opens the Delta table at TABLES_URL/<table path> (a static host, a public
// bucket, or a bucket behind a presigning proxy) as `t` and answers with
// JSON rows, or with an Arrow IPC stream when the request accepts
// `application/vnd.apache.arrow.stream`. Errors are JSON `{ code, message }`.
//
// The wasm module is imported statically: a Worker may instantiate a
// compiled module but never compile one at run time.
import init, { Wavelake } from "wavelake";
import wasmModule from "wavelake/wavelake_bg.wasm";

const ARROW = "application/vnd.apache.arrow.stream";

/** One initialisation and one session per table for the isolate's life. */
let ready;
const sessions = new Map();

function session(base, path) {
  const url = new URL(path, base).href;
  if (!sessions.has(url)) {
    const opening = Wavelake.openTable("t", url);
    // A table that failed to open is tried again by the next request.
    opening.catch(() => sessions.delete(url));
    sessions.set(url, opening);
  }
  return sessions.get(url);
}

const STATUS = { TABLE_NOT_FOUND: 404, FILE_NOT_FOUND: 404, UNAUTHORIZED: 403, EXPIRED_URL: 403 };

/** Rows as JSON; 64-bit integers beyond 2^53 become strings. */
function jsonRows(table) {
  const rows = table.toArray().map((row) => row.toJSON());
  return JSON.stringify(rows, (_, value) =>
    typeof value === "bigint"
      ? Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()
      : value,
  );
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const sql = url.searchParams.get("sql");
    const path = decodeURIComponent(url.pathname.replace(/^\/+/, ""));
    if (!sql || !path) {
      return Response.json(
        { code: "INVALID_ARGUMENT", message: "GET /<table path>?sql=<query over t>" },
        { status: 400 },
      );
    }
    try {
      ready ??= init({ module_or_path: wasmModule });
      await ready;
      const base = env.TABLES_URL.endsWith("/") ? env.TABLES_URL : `${env.TABLES_URL}/`;
      const lake = await session(base, `${path}/`);
      if ((request.headers.get("accept") ?? "").includes(ARROW)) {
        const bytes = await lake.sql(sql, { ipc: true, signal: request.signal });
        return new Response(bytes, { headers: { "content-type": ARROW } });
      }
      const table = await lake.sql(sql, { signal: request.signal });
      return new Response(jsonRows(table), { headers: { "content-type": "application/json" } });
    } catch (error) {
      const code = error?.code ?? "INTERNAL";
      return Response.json(
        { code, message: String(error?.message ?? error) },
        { status: STATUS[code] ?? (code === "INTERNAL" ? 500 : 400) },
      );
    }
  },
};
