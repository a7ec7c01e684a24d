// The worker group of the built package over tables on an HTTP server:
//   node pkg/tests/group.mjs node|chromium BASE_URL WORKERS TABLES_JSON QUERIES_JSON
// Prints one JSON line: {size, results: [{sql, group, alone}]} (see
// group-cases.mjs), from Node's worker threads or from a page's Web Workers.
import { compareGroup } from "./group-cases.mjs";

const [where, base, workers, tablesJson, queriesJson] = process.argv.slice(2);
const tables = JSON.parse(tablesJson);
const queries = JSON.parse(queriesJson);
if (where === "node") {
  const { default: init, Wavelake } = await import("../dist/wavelake.js");
  const { WavelakeGroup } = await import("../dist/group.js");
  const { readFile } = await import("node:fs/promises");
  await init({ module_or_path: await readFile(new URL("../dist/wavelake_bg.wasm", import.meta.url)) });
  const result = await compareGroup({ WavelakeGroup, Wavelake, base, tables, queries, workers: Number(workers) });
  // No process.exit here: it would cut a long line still being written
  // to a pipe; with the group closed, nothing keeps the process alive.
  console.log(JSON.stringify(result));
} else {
  const { runInPackagePage } = await import("./chromium.mjs");
  await runInPackagePage(async (page) => {
    const result = await page.evaluate(
      ([base, tables, queries, workers]) => window.compareGroup(base, tables, queries, workers),
      [base, tables, queries, Number(workers)],
    );
    console.log(JSON.stringify(result));
  });
}
