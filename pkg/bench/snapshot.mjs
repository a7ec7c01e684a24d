// Opens a Delta table on a static HTTP host through the built `wavelake`
// package (wasm) in Node, RUNS times, each in a new session:
//   node pkg/bench/snapshot.mjs BASE_URL RUNS
// Prints one JSON line per run, {"seconds", "files"}: the time
// `Wavelake.openTable` took (log listing, checkpoint and commits read and
// replayed), then the active files the session sees (not timed). The
// engine benchmark (tests/benches/engine.rs) runs it beside the native
// reader over the same server.
import { readFile } from "node:fs/promises";
import init, { Wavelake } from "../dist/wavelake.js";

const [url, runs] = process.argv.slice(2);
if (!url || !(Number(runs) > 0)) {
  console.error("usage: node pkg/bench/snapshot.mjs BASE_URL RUNS");
  process.exit(2);
}
await init({ module_or_path: await readFile(new URL("../dist/wavelake_bg.wasm", import.meta.url)) });
for (let run = 0; run < Number(runs); run += 1) {
  const start = performance.now();
  // No range cache: every run reads the log as a first visit would.
  const lake = await Wavelake.openTable("t", url, { cacheBytes: 0 });
  const seconds = (performance.now() - start) / 1000;
  const answer = await lake.sql("SELECT count(*) AS files FROM delta_files('t')");
  console.log(JSON.stringify({ seconds, files: Number(answer.get(0).files) }));
  lake.free();
}
