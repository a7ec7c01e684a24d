// The built `wavelake` package in Node against a Wavelake server whose file
// URLs live two seconds:
//   node pkg/tests/refresh.mjs PROFILE_FILE API_URL ADMIN_TOKEN
// The shared table `acme.t` (in share `s`) must exist. Checks that
//   - a query after the URLs expired succeeds, their refresh token fetching
//     fresh ones, and reports its progress (files and bytes);
//   - a read estimate names the files the query then reads, fetching none;
//   - a repeated query is served from the session's range cache;
//   - when no fresh URL can be had (the table left the share), the query
//     fails with code EXPIRED_URL.
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import assert from "node:assert/strict";
import init, { Wavelake } from "../dist/wavelake.js";

const [profilePath, apiUrl, adminToken] = process.argv.slice(2);
await init({ module_or_path: await readFile(new URL("../dist/wavelake_bg.wasm", import.meta.url)) });
const profile = JSON.parse(await readFile(profilePath, "utf8"));
const query = "SELECT count(*) AS n, sum(id) AS s FROM acme.t";
const rowOf = (table) => ({ n: Number(table.get(0).n), s: Number(table.get(0).s) });
// Past the URLs' lifetime (2 s, rounded to whole seconds by the server).
const expiry = () => sleep(3200);

// 1. Expired URLs are refreshed; progress is reported.
const uncached = await Wavelake.connect({ ...profile, cacheBytes: 0 });
const before = rowOf(await uncached.sql(query));
assert.ok(before.n > 0, "the table has rows");
await expiry();
const events = [];
const after = rowOf(await uncached.sql(query, { onProgress: (p) => events.push(p) }));
assert.deepEqual(after, before, "the same rows through refreshed URLs");
assert.ok(events.length >= 2, `progress was reported: ${JSON.stringify(events)}`);
const last = events.at(-1);
assert.ok(last.bytesFetched > 0 && last.requests > 0, JSON.stringify(last));
assert.equal(last.filesRead, last.filesTotal, JSON.stringify(last));
assert.ok(last.filesTotal > 0, JSON.stringify(last));
assert.equal(last.bytesFromCache, 0, "no cache in this session");

// 2. A read estimate fetches no data; a repeated query is served from the
// range cache.
const cached = await Wavelake.connect(profile);
const estimate = await cached.estimate(query);
const cold = (await cached.explain(query)).scans[0];
assert.equal(estimate.scans, 1, JSON.stringify(estimate));
assert.equal(estimate.files, cold.files_scanned, JSON.stringify(estimate));
assert.ok(estimate.bytes > 0 && estimate.otherSource === null, JSON.stringify(estimate));
assert.equal(cold.bytes_from_cache, 0, "the estimate fetched nothing into the cache");
const warm = (await cached.explain(query)).scans[0];
assert.ok(cold.bytes_fetched > 0, JSON.stringify(cold));
assert.equal(warm.bytes_fetched, 0, `nothing fetched again: ${JSON.stringify(warm)}`);
assert.ok(warm.bytes_from_cache > 0, JSON.stringify(warm));

// 3. No fresh URL to be had: EXPIRED_URL.
const doomed = await Wavelake.connect({ ...profile, cacheBytes: 0 });
await doomed.sql(query);
const admin = async (sql) => {
  const response = await fetch(`${apiUrl}/api/v1/sql`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ sql }),
  });
  assert.equal(response.status, 200, `${sql}: ${await response.text()}`);
};
await admin("ALTER SHARE s REMOVE TABLE acme.t");
await expiry();
try {
  await doomed.sql(query);
  assert.fail("a query over expired URLs that cannot be refreshed resolved");
} catch (error) {
  assert.equal(error.code, "EXPIRED_URL", `${error.code}: ${error.message}`);
}
await admin("ALTER SHARE s ADD TABLE acme.t");
console.log(
  `refreshed expired URLs (${events.length} progress events, last ${JSON.stringify(last)}); ` +
    `cache served ${warm.bytes_from_cache} bytes; unrefreshable URLs gave EXPIRED_URL`,
);
