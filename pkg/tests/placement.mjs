// Queries too large for the page go to the server: the built `wavelake`
// package in Node against a Wavelake server whose cluster takes queries
// reading at least 200,000 bytes.
//   node pkg/tests/placement.mjs PROFILE_FILE STATIC_TABLE_URL
// The recipient must see `acme.big` (over 200,000 bytes: goes to the
// cluster) and `acme.small` (3 rows); STATIC_TABLE_URL is a copy of
// `acme.small` on a static host. Checks that
//   - placement() advises from the Delta log, against the page's limit;
//   - runOn "auto" sends a large query to the server, which runs it on its
//     cluster, and the answer equals the page's own, with where, why, time
//     and bytes;
//   - a session's runOn "auto" applies to every query; runOn "server"
//     sends a small one, which the server runs in-process;
//   - the server refuses writes as the page does (NOT_ALLOWED);
//   - a static-host table stays in the page and says why.
import { readFile } from "node:fs/promises";
import assert from "node:assert/strict";
import init, { Wavelake } from "../dist/wavelake.js";

const [profilePath, staticUrl] = process.argv.slice(2);
await init({ module_or_path: await readFile(new URL("../dist/wavelake_bg.wasm", import.meta.url)) });
const profile = JSON.parse(await readFile(profilePath, "utf8"));
const big = "SELECT count(DISTINCT name) AS n, sum(id) AS s FROM acme.big WHERE id >= 0";
const small = "SELECT count(*) AS n FROM acme.small";
const described = (result) => JSON.stringify({ ...result, table: undefined });
const rowsOf = (table) => table.toArray().map((row) => JSON.stringify(row.toJSON(), (_, v) => (typeof v === "bigint" ? Number(v) : v)));

// 1. By default the page advises and runs everything itself.
const advising = await Wavelake.connect(profile);
const advice = await advising.placement(big);
assert.equal(advice.runOn, "page", JSON.stringify(advice));
assert.match(advice.reason, /within the page's limit of 268435456 bytes/);
assert.ok(advice.estimate.bytes >= 200000 && advice.estimate.files >= 1, JSON.stringify(advice));
const here = await advising.query(big);
assert.equal(here.ranOn, "page", described(here));
assert.equal(here.serverReason, null);
assert.ok(here.bytesFetched > 0 && here.bytesReceived === 0, described(here));
assert.equal(here.bytesRead, null, "not estimated when asked to run in the page");

// 2. Above the page's limit: advised to the server, sent there by "auto".
const limited = await Wavelake.connect({ ...profile, server: { maxPageBytes: 100000 } });
const offer = await limited.placement(big);
assert.equal(offer.runOn, "server", JSON.stringify(offer));
assert.match(offer.reason, /more than the page's limit of 100000 bytes/);
const there = await limited.query(big, { runOn: "auto" });
assert.equal(there.ranOn, "cluster", described(there));
assert.match(there.serverReason, /at least the cluster threshold of 200000 bytes/);
assert.equal(there.bytesFetched, 0, "the page fetched no data file");
assert.ok(there.bytesReceived > 0);
assert.equal(there.bytesRead, offer.estimate.bytes, "the server read what the page estimated");
assert.ok(there.elapsedMs > 0);
assert.deepEqual(rowsOf(there.table), rowsOf(here.table), "the cluster's answer is the page's");
// Under the limit, "auto" keeps the query in the page.
const stays = await limited.query(small, { runOn: "auto" });
assert.equal(stays.ranOn, "page");
assert.match(stays.reason, /within the page's limit/);

// 3. A session deciding on its own; one query sent on purpose.
const deciding = await Wavelake.connect({ ...profile, server: { maxPageBytes: 100000, runOn: "auto" } });
const sent = await deciding.query(big);
assert.equal(sent.ranOn, "cluster");
assert.deepEqual(rowsOf(await deciding.sql(big)), rowsOf(here.table));
const onServer = await deciding.query(small, { runOn: "server" });
assert.equal(onServer.ranOn, "server", described(onServer));
assert.match(onServer.serverReason, /under the cluster threshold/);
assert.deepEqual(rowsOf(onServer.table), ['{"n":3}']);
await assert.rejects(deciding.sql("DELETE FROM acme.small", { runOn: "server" }), (e) => e.code === "NOT_ALLOWED");
await assert.rejects(deciding.sql(big, { runOn: "elsewhere" }), (e) => e.code === "INVALID_ARGUMENT");

// 4. A static host has no server: the query stays in the page.
const hosted = await Wavelake.openTable("t", staticUrl);
const local = await hosted.placement("SELECT count(*) AS n FROM t");
assert.equal(local.runOn, "page");
assert.match(local.reason, /static host, which has no server/);
const ran = await hosted.query("SELECT count(*) AS n FROM t", { runOn: "auto" });
assert.equal(ran.ranOn, "page");
assert.deepEqual(rowsOf(ran.table), ['{"n":3}']);
await assert.rejects(hosted.sql("SELECT 1", { runOn: "server" }), (e) => e.code === "INVALID_ARGUMENT");

console.log(
  `placement: page ${here.elapsedMs.toFixed(0)} ms fetching ${here.bytesFetched} bytes; ` +
    `cluster ${there.elapsedMs.toFixed(0)} ms reading ${there.bytesRead} bytes there, receiving ${there.bytesReceived}`,
);
