// The built `wavelake` package in Node against a Delta Sharing server:
//   node pkg/tests/sharing.mjs PROFILE_FILE TABLE=ROWS... [TABLE@VERSION=ROWS...] [TABLE#history=COMMITS...]
// Connects with the profile, checks that every TABLE (schema.table) is
// listed and has ROWS rows (deletion vectors applied from presigned URLs),
// ROWS rows at VERSION (`VERSION AS OF`) and COMMITS rows of
// `delta_history`, and that refusals carry their codes: a wrong token, a
// cancelled query, bad SQL, an unknown table.
import { readFile } from "node:fs/promises";
import assert from "node:assert/strict";
import init, { Wavelake } from "../dist/wavelake.js";

const [profilePath, ...specs] = process.argv.slice(2);
const expected = specs.filter((spec) => !spec.includes("@") && !spec.includes("#"));
const versioned = specs.filter((spec) => spec.includes("@"));
const histories = specs.filter((spec) => spec.includes("#history="));
await init({ module_or_path: await readFile(new URL("../dist/wavelake_bg.wasm", import.meta.url)) });
const profile = JSON.parse(await readFile(profilePath, "utf8"));

const lake = await Wavelake.connect(profile);
const shares = await lake.shares();
assert.ok(shares.length > 0, "the recipient's shares are listed");
const schemas = (await Promise.all(shares.map((share) => lake.schemas(share)))).flat();
for (const spec of expected) {
  assert.ok(schemas.includes(spec.split(".")[0]), `${spec}'s schema in ${schemas}`);
}
for (const spec of expected) {
  const [name, rows] = spec.split("=");
  assert.ok(lake.tables().includes(name), `${name} in ${lake.tables()}`);
  const table = await lake.sql(`SELECT count(*) AS n FROM ${name}`);
  assert.equal(Number(table.get(0).n), Number(rows), `${name} rows`);
  const report = await lake.explain(`SELECT * FROM ${name}`);
  assert.ok(report.scans.length === 1 && report.scans[0].files_total > 0, JSON.stringify(report.scans));
  // Small files are read whole, so the count above may have brought
  // everything into the session's cache already.
  const scan = report.scans[0];
  assert.ok(scan.bytes_fetched + scan.bytes_from_cache > 0, `bytes read are reported: ${JSON.stringify(scan)}`);
}

// Time travel and history on shared tables, asked of the server.
for (const spec of versioned) {
  const [name, rest] = spec.split("@");
  const [version, rows] = rest.split("=");
  const table = await lake.sql(`SELECT count(*) AS n FROM ${name} VERSION AS OF ${version}`);
  assert.equal(Number(table.get(0).n), Number(rows), `${name} VERSION AS OF ${version}`);
}
for (const spec of histories) {
  const [name, commits] = spec.split("#history=");
  const history = await lake.sql(`SELECT version, operation FROM delta_history('${name}') ORDER BY version`);
  assert.equal(history.numRows, Number(commits), `delta_history('${name}')`);
  const versions = history.toArray().map((row) => Number(row.version));
  assert.deepEqual(versions, [...versions.keys()], `delta_history('${name}') versions`);
  const newest = versions[versions.length - 1];
  const now = await lake.sql(`SELECT count(*) AS n FROM ${name}`);
  const atNewest = await lake.sql(`SELECT count(*) AS n FROM ${name} VERSION AS OF ${newest}`);
  assert.equal(Number(atNewest.get(0).n), Number(now.get(0).n), `${name} at its newest version`);
}

const codeOf = async (promise) => {
  try {
    await promise;
    return "resolved";
  } catch (error) {
    assert.ok(error instanceof Error, `${error} is an Error`);
    return error.code;
  }
};
assert.equal(await codeOf(Wavelake.connect({ ...profile, bearerToken: "wrong" })), "UNAUTHORIZED");
const [first] = expected[0].split("=");
const controller = new AbortController();
controller.abort();
assert.equal(await codeOf(lake.sql(`SELECT * FROM ${first}`, { signal: controller.signal })), "ABORTED");
const badSql = await codeOf(lake.sql("SELEC nonsense"));
assert.ok(["SQL_ERROR", "QUERY_ERROR"].includes(badSql), badSql);
assert.notEqual(await codeOf(lake.sql("SELECT * FROM no_such.table")), "resolved");
// The package only reads, however a write is disguised.
for (const write of [`/* sneaky */ DELETE FROM ${first}`, `EXPLAIN ANALYZE DELETE FROM ${first}`]) {
  assert.equal(await codeOf(lake.sql(write)), "NOT_ALLOWED", write);
}
const [historyTable] = (histories[0] ?? "").split("#");
if (historyTable) {
  const [schema] = historyTable.split(".");
  assert.notEqual(await codeOf(lake.sql(`SELECT * FROM delta_history('${schema}.no_such_table')`)), "resolved");
}
console.log(
  `read ${expected.length} shared tables, ${versioned.length} old versions and ${histories.length} histories through the npm package in Node`,
);
