// Prints the browser TPC-H benchmark as Markdown (BENCHMARKS.md):
//   node pkg/bench/report.mjs RESULTS_JSONL ANSWER_PAGES_JSON SELECTIVE_SQL
import { readFile } from "node:fs/promises";

const [resultsPath, answerJson, selectiveSql] = process.argv.slice(2);
const lines = (await readFile(resultsPath, "utf8")).split("\n").filter(Boolean).map(JSON.parse);
const answer = JSON.parse(answerJson);
const of = (engine, what) => lines.find((l) => l.engine === engine && l.what === what);
const mb = (bytes) => (bytes / 1e6).toFixed(1);
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : "–");

console.log("| query | Wavelake ms | DuckDB-Wasm ms | time ratio | Wavelake MB fetched | DuckDB-Wasm MB fetched | bytes ratio |");
console.log("|---|---|---|---|---|---|---|");
const totals = { wavelake: { ms: 0, bytes: 0, failed: 0 }, duckdb: { ms: 0, bytes: 0, failed: 0 } };
for (let n = 1; n <= 22; n += 1) {
  const w = of("wavelake", `q${n}`);
  const d = of("duckdb", `q${n}`);
  for (const [engine, r] of [["wavelake", w], ["duckdb", d]]) {
    if (r.error) totals[engine].failed += 1;
    else {
      totals[engine].ms += r.ms;
      totals[engine].bytes += r.bytes;
    }
  }
  const cell = (r) => (r.error ? `failed: ${r.error.slice(0, 60)}` : r.ms.toFixed(0));
  console.log(
    `| Q${n} | ${cell(w)} | ${cell(d)} | ${ratio(w.ms, d.ms)} | ${mb(w.bytes)} | ${mb(d.bytes)} | ${ratio(w.bytes, d.bytes)} |`,
  );
}
const w = totals.wavelake;
const d = totals.duckdb;
console.log(
  `| **all 22** | **${w.ms.toFixed(0)}** | **${d.ms.toFixed(0)}** | **${ratio(w.ms, d.ms)}** | **${mb(w.bytes)}** | **${mb(d.bytes)}** | **${ratio(w.bytes, d.bytes)}** |`,
);
console.log(`\nFailed queries: Wavelake ${w.failed}, DuckDB-Wasm ${d.failed}.`);

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
const floor = answer.page_bytes + answer.dictionary_bytes;
console.log(
  `\nSelective query \`${selectiveSql}\` (${answer.rows} rows): the pages holding the answer are ` +
    `${answer.pages} pages, ${(answer.page_bytes / 1e3).toFixed(0)} kB (+ ${(answer.dictionary_bytes / 1e3).toFixed(0)} kB of their dictionaries). ` +
    `Wavelake fetched ${(ws.bytes / 1e3).toFixed(0)} kB in ${ws.requests} requests (${ratio(ws.bytes, floor)}× the answer's pages); ` +
    `DuckDB-Wasm ${(ds.bytes / 1e3).toFixed(0)} kB in ${ds.requests} requests (${ratio(ds.bytes, floor)}×).`,
);
