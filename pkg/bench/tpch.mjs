// TPC-H in headless Chromium: Wavelake (the built package, on the page's
// thread and on its worker group) against
// DuckDB-Wasm 1.28.0 on the same Parquet files, in the same run, and
// native DuckDB 1.5.5 with httpfs over the same server (the anchor: what
// the same engine does outside the browser).
//   node pkg/bench/tpch.mjs DELTA_DIR QUERY_DIR [SELECTIVE_SQL]
// PYTHON (the venv's interpreter) runs tests/interop/bench_peers.py.
// DELTA_DIR holds the eight tables as Delta tables (bench_peers.py
// tpch-all); QUERY_DIR holds q1.sql … q22.sql. Serves them over HTTP from
// localhost (Range, HEAD) counting the bytes each query pulls, opens each
// engine's page in a fresh browser profile (time to an instantiated module
// and to the first result from a cold load), then runs each query in a freshly loaded page, so that no
// engine answers from what an earlier query cached, and prints a JSON line
// per measurement.
import { createServer } from "node:http";
import { spawn } from "node:child_process";
import { open, readFile, readdir, stat, mkdtemp, writeFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const [deltaDir, queryDir, selective] = process.argv.slice(2);
const pkg = fileURLToPath(new URL("..", import.meta.url));
const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

// The data files each table's (single-commit) log adds; a server's own
// directory (`_wavelake`) or any other hidden entry is not a table.
const tables = {};
for (const name of await readdir(deltaDir)) {
  if (name.startsWith("_") || name.startsWith(".")) continue;
  const log = await readFile(join(deltaDir, name, "_delta_log/00000000000000000000.json"), "utf8");
  tables[name] = log.split("\n").filter(Boolean).map(JSON.parse).filter((a) => a.add).map((a) => a.add.path);
}
const setup = JSON.stringify({ tables, first: "SELECT count(*) FROM lineitem" });

const isEngineCode = (path) => !path.startsWith("/data/") && [".wasm", ".js", ".mjs"].includes(extname(path));

let dataBytes = 0;
let dataRequests = 0;
const server = createServer(async (request, response) => {
  const url = new URL(request.url, "http://x");
  const path = normalize(decodeURIComponent(url.pathname));
  if (path.includes("..")) return response.writeHead(400).end();
  if (path === "/bench/setup.json") return response.writeHead(200, { "content-type": "application/json" }).end(setup);
  if (path === "/bench/counter") {
    const counted = JSON.stringify({ bytes: dataBytes, requests: dataRequests });
    if (url.searchParams.has("reset")) {
      dataBytes = 0;
      dataRequests = 0;
    }
    return response.writeHead(200, { "content-type": "application/json" }).end(counted);
  }
  const file = path.startsWith("/data/") ? join(deltaDir, path.slice(6)) : join(pkg, path);
  let size;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new Error("not a file");
    size = info.size;
  } catch {
    return response.writeHead(404).end();
  }
  const headers = {
    "content-type": types[extname(file)] ?? "application/octet-stream",
    "accept-ranges": "bytes",
    // Data never comes from the browser's cache; each engine's code (its
    // scripts and WebAssembly) does, as for a returning visitor: the
    // browser then also keeps the module's optimized machine code, so a
    // freshly loaded page does not compile the engine again.
    "cache-control": isEngineCode(path) ? "max-age=31536000, immutable" : "no-store",
  };
  let start = 0;
  let end = size - 1;
  const range = /^bytes=(\d*)-(\d*)$/.exec(request.headers.range ?? "");
  if (range) {
    if (range[1] === "") {
      start = Math.max(0, size - Number(range[2]));
    } else {
      start = Number(range[1]);
      if (range[2] !== "") end = Math.min(end, Number(range[2]));
    }
    headers["content-range"] = `bytes ${start}-${end}/${size}`;
  }
  const length = Math.max(0, end - start + 1);
  headers["content-length"] = length;
  response.writeHead(range ? 206 : 200, headers);
  if (request.method === "HEAD" || length === 0) return response.end();
  const handle = await open(file);
  const body = Buffer.alloc(length);
  await handle.read(body, 0, length, start);
  await handle.close();
  if (path.startsWith("/data/")) {
    dataBytes += length;
    dataRequests += 1;
  }
  response.end(body);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;
const emit = (fields) => console.log(JSON.stringify(fields));

const queries = [];
for (let n = 1; n <= 22; n += 1) {
  queries.push({ name: `q${n}`, sql: await readFile(join(queryDir, `q${n}.sql`), "utf8") });
}
if (selective) queries.push({ name: "selective", sql: selective });

// WAVELAKE_BENCH_ENGINES narrows the pages run (a comma list), and
// WAVELAKE_BENCH_NATIVE=0 leaves out the native anchor: for iterating on
// one engine, never for figures.
const engines = (process.env.WAVELAKE_BENCH_ENGINES ?? "wavelake,wavelake-group,duckdb").split(",");
for (const engine of engines) {
  const profile = await mkdtemp(join(tmpdir(), "wavelake-bench-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    page.on("pageerror", (error) => console.error(`${engine} page error: ${error}`));
    // A module the page imports and cannot fetch stops it silently (404s
    // under /data/ are the engines probing for log versions).
    page.on("response", (response) => {
      if (response.status() >= 400 && !new URL(response.url()).pathname.startsWith("/data/")) {
        console.error(`${engine} page: ${response.status()} for ${response.url()}`);
      }
    });
    const load = async () => {
      dataBytes = 0;
      await page.goto(`${origin}/bench/${engine}.html`);
      await page.waitForSelector("body[data-ready=yes]", { state: "attached", timeout: 600_000 });
      const [ms, instantiatedMs] = await page.evaluate(() => [window.firstResultMs, window.instantiatedMs]);
      return { ms, instantiatedMs, bytes: dataBytes };
    };
    emit({ engine, what: "first-result", ...(await load()) });
    for (const query of queries) {
      await load();
      dataBytes = 0;
      dataRequests = 0;
      const result = await page.evaluate((sql) => window.run(sql), query.sql);
      emit({ engine, what: query.name, ...result, bytes: dataBytes, requests: dataRequests });
    }
  } finally {
    await browser.close();
  }
}
// The anchor: native DuckDB over the same server, each query in a new
// database. Its lines are this run's lines.
if (process.env.WAVELAKE_BENCH_NATIVE === "0") {
  server.close();
  process.exit(0);
}
const setupFile = join(await mkdtemp(join(tmpdir(), "wavelake-bench-")), "setup.json");
await writeFile(setupFile, setup);
const peers = fileURLToPath(new URL("../../tests/interop/bench_peers.py", import.meta.url));
const args = [peers, "tpch-http", origin, setupFile, queryDir];
if (selective) args.push(selective);
await new Promise((resolve, reject) => {
  const child = spawn(process.env.PYTHON ?? "python3", args, { stdio: ["ignore", "inherit", "inherit"] });
  child.on("error", reject);
  child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`bench_peers.py tpch-http exited ${code}`))));
});
server.close();
