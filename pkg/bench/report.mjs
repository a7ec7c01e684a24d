// Prints the browser TPC-H benchmark as Markdown (BENCHMARKS.md): Wavelake
// on the page's thread and on its worker group, DuckDB-Wasm, and native
// DuckDB over the same HTTP server as the anchor:
//   node pkg/bench/report.mjs RESULTS_JSONL ANSWER_PAGES_JSON SELECTIVE_SQL
import { readFile } from "node:fs/promises";

const [resultsPath, answerJson, selectiveSql] = process.argv.slice(2);
const lines = (await readFile(resultsPath, "utf8")).split("\n").filter(Boolean).map(JSON.parse);
const answer = JSON.parse(answerJson);
const of = (engine, what) => lines.find((l) => l.engine === engine && l.what === what);
const mb = (bytes) => (bytes / 1e6).toFixed(1);
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : "–");

console.log(
  "| query | Wavelake ms | Wavelake, worker group ms | DuckDB-Wasm ms | DuckDB native (httpfs) ms | time vs Wasm | time vs native | group vs Wasm | group vs native | Wavelake MB fetched | group MB | DuckDB-Wasm MB | DuckDB native MB | bytes vs Wasm | group bytes vs Wasm |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
const engines = ["wavelake", "wavelake-group", "duckdb", "duckdb-native"];
const totals = Object.fromEntries(engines.map((e) => [e, { ms: 0, bytes: 0, failed: 0 }]));
for (let n = 1; n <= 22; n += 1) {
  const [w, g, d, native] = engines.map((e) => of(e, `q${n}`) ?? { error: "not run" });
  for (const [engine, r] of [["wavelake", w], ["wavelake-group", g], ["duckdb", d], ["duckdb-native", native]]) {
    if (r.error) totals[engine].failed += 1;
    else {
      totals[engine].ms += r.ms;
      totals[engine].bytes += r.bytes;
    }
  }
  const cell = (r) => (r.error ? `failed: ${r.error.slice(0, 60)}` : r.ms.toFixed(0));
  console.log(
    `| Q${n} | ${cell(w)} | ${cell(g)} | ${cell(d)} | ${cell(native)} | ${ratio(w.ms, d.ms)} | ${ratio(w.ms, native.ms)} | ` +
      `${ratio(g.ms, d.ms)} | ${ratio(g.ms, native.ms)} | ${mb(w.bytes)} | ${mb(g.bytes)} | ${mb(d.bytes)} | ${mb(native.bytes)} | ` +
      `${ratio(w.bytes, d.bytes)} | ${ratio(g.bytes, d.bytes)} |`,
  );
}
const w = totals.wavelake;
const g = totals["wavelake-group"];
const d = totals.duckdb;
const native = totals["duckdb-native"];
console.log(
  `| **all 22** | **${w.ms.toFixed(0)}** | **${g.ms.toFixed(0)}** | **${d.ms.toFixed(0)}** | **${native.ms.toFixed(0)}** | ` +
    `**${ratio(w.ms, d.ms)}** | **${ratio(w.ms, native.ms)}** | **${ratio(g.ms, d.ms)}** | **${ratio(g.ms, native.ms)}** | ` +
    `**${mb(w.bytes)}** | **${mb(g.bytes)}** | **${mb(d.bytes)}** | **${mb(native.bytes)}** | **${ratio(w.bytes, d.bytes)}** | **${ratio(g.bytes, d.bytes)}** |`,
);
console.log(
  `\nFailed queries: Wavelake ${w.failed}, its worker group ${g.failed}, DuckDB-Wasm ${d.failed}, DuckDB native ${native.failed}. ` +
    `Goals: Wavelake in the page at most 2x native DuckDB's total time (${ratio(w.ms, native.ms)}x on the page's thread, ` +
    `${ratio(g.ms, native.ms)}x on its worker group), at most 0.5x DuckDB-Wasm's time (${ratio(w.ms, d.ms)}x, ${ratio(g.ms, d.ms)}x) ` +
    `and 0.4x its bytes (${ratio(w.bytes, d.bytes)}x, ${ratio(g.bytes, d.bytes)}x).`,
);

const wf = of("wavelake", "first-result");
const df = of("duckdb", "first-result");
console.log(
  `\nTime to first result from a cold page load (\`SELECT count(*) FROM lineitem\`): Wavelake ${wf.ms.toFixed(0)} ms, ` +
    `DuckDB-Wasm ${df.ms.toFixed(0)} ms (ratio ${ratio(wf.ms, df.ms)}); to an instantiated module: ` +
    `Wavelake ${wf.instantiatedMs.toFixed(0)} ms, DuckDB-Wasm ${df.instantiatedMs.toFixed(0)} ms ` +
    `(ratio ${ratio(wf.instantiatedMs, df.instantiatedMs)}).`,
);
const ws = of("wavelake", "selective");
const ds = of("duckdb", "selective");
const ns = of("duckdb-native", "selective") ?? { bytes: 0, requests: 0 };
const floor = answer.page_bytes + answer.dictionary_bytes;
console.log(
  `\nSelective query \`${selectiveSql}\` (${answer.rows} rows): the pages holding the answer are ` +
    `${answer.pages} pages, ${(answer.page_bytes / 1e3).toFixed(0)} kB (+ ${(answer.dictionary_bytes / 1e3).toFixed(0)} kB of their dictionaries). ` +
    `Wavelake fetched ${(ws.bytes / 1e3).toFixed(0)} kB in ${ws.requests} requests (${ratio(ws.bytes, floor)}× the answer's pages); ` +
    `DuckDB-Wasm ${(ds.bytes / 1e3).toFixed(0)} kB in ${ds.requests} requests (${ratio(ds.bytes, floor)}×); ` +
    `native DuckDB ${(ns.bytes / 1e3).toFixed(0)} kB in ${ns.requests} requests (${ratio(ns.bytes, floor)}×).`,
);
