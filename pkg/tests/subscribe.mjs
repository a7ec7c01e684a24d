// The built `wavelake` package in Node following a shared table's commits:
//   node pkg/tests/subscribe.mjs PROFILE_FILE TABLE COUNT
// Subscribes to TABLE (schema.table) with its change rows, prints
// "subscribed", then prints each of the next COUNT commits as one JSON line
// (read with `for await`), checks that versions follow each other, and
// that a closed subscription ends and refusals carry their codes.
import { readFile } from "node:fs/promises";
import assert from "node:assert/strict";
import init, { Wavelake } from "../dist/wavelake.js";

const [profilePath, table, count] = process.argv.slice(2);
await init({ module_or_path: await readFile(new URL("../dist/wavelake_bg.wasm", import.meta.url)) });
const profile = JSON.parse(await readFile(profilePath, "utf8"));
const lake = await Wavelake.connect(profile);

// Refusals first: an unknown table, a bad option.
await assert.rejects(lake.subscribe("nowhere.none"), (error) => error.code === "TABLE_NOT_FOUND");
await assert.rejects(lake.subscribe(table, { fromVersion: -1 }), (error) => error.code === "INVALID_ARGUMENT");

// The whole history from version 0, then closed: the iterator ends.
const history = await lake.subscribe(table, { fromVersion: 0 });
const first = await history.next();
assert.equal(first.version, 0, JSON.stringify(first));
history.close();
assert.equal(await history.next(), undefined, "a closed subscription ends");

const subscription = await lake.subscribe(table, { changes: true });
console.log("subscribed");
let previous;
let seen = 0;
for await (const commit of subscription) {
  if (previous !== undefined) {
    assert.equal(commit.version, previous + 1, "versions follow each other");
  }
  assert.ok(Array.isArray(commit.changes), JSON.stringify(commit));
  previous = commit.version;
  console.log(JSON.stringify(commit));
  seen += 1;
  if (seen === Number(count)) {
    break;
  }
}
// Leaving the loop closed it.
assert.equal(await subscription.next(), undefined);
console.log("done");
process.exit(0);
