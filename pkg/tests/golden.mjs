// Runs the golden HTTP cases through the built `wavelake` package in Node:
//   node pkg/tests/golden.mjs BASE_URL OUT_DIR
// BASE_URL serves the unpacked golden tables and manifest.json
// (tests/bin/golden_http_server.rs). For case N of the manifest, writes OUT_DIR/N.arrows
// (the result as an Arrow IPC stream) or OUT_DIR/N.error.json ({code,
// message}); the Rust side compares them with the expected rows, exactly as
// it does the native engine's. Checks the apache-arrow Table API on the way.
import { readFile, writeFile, mkdir } from "node:fs/promises";
import assert from "node:assert/strict";
import init, { Wavelake } from "../dist/wavelake.js";

const [base, out] = process.argv.slice(2);
await init({ module_or_path: await readFile(new URL("../dist/wavelake_bg.wasm", import.meta.url)) });
await mkdir(out, { recursive: true });
const cases = await (await fetch(`${base}/manifest.json`)).json();
let failures = 0;
let historyChecked = false;
for (const [index, testCase] of cases.entries()) {
  const url = `${base}/${testCase.table}`;
  try {
    const lake = await Wavelake.openTable("t", url);
    const bytes = await lake.sql(testCase.sql, { ipc: true });
    assert.ok(bytes instanceof Uint8Array);
    await writeFile(`${out}/${index}.arrows`, bytes);
    const table = await lake.sql(testCase.sql);
    assert.equal(table.numRows, testCase.rows.length, `${testCase.name}: row count`);
    if (!historyChecked) {
      // The table's history and files are SQL too.
      const history = await lake.sql("SELECT version, operation FROM delta_history('t')");
      assert.ok(history.numRows >= 1, `${testCase.name}: history`);
      // A table whose answer has rows has at least one data file.
      const files = await lake.sql("SELECT count(*) AS n FROM delta_files('t')");
      const fileCount = Number(files.get(0).n);
      if (testCase.rows.length > 0) {
        assert.ok(fileCount >= 1, `${testCase.name}: ${fileCount} files for ${testCase.rows.length} rows`);
        historyChecked = true;
      }
    }
  } catch (error) {
    if (error?.code === undefined) {
      failures += 1;
      console.error(`${testCase.name}: ${error?.stack ?? error}`);
    }
    await writeFile(
      `${out}/${index}.error.json`,
      JSON.stringify({ code: error?.code ?? null, message: String(error?.message ?? error) }),
    );
  }
}
assert.ok(historyChecked, "a table's history was read");
console.log(`ran ${cases.length} cases through the npm package in Node`);
process.exit(failures === 0 ? 0 : 1);
