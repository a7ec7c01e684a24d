// The web app in headless Chromium against a running `wavelake serve`:
//   node web/tests/e2e.mjs SERVER_URL TOKEN OUT_DIR [SQL EXPECTED]
// Signs in to the server with TOKEN, opens the first table from the
// sidebar, runs its query with Ctrl+Enter and checks rows come back,
// sorts by a column, opens the explain view, then runs SQL (if given) and checks its first cell is
// EXPECTED; saves a screenshot of each screen in OUT_DIR.
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "../../pkg/node_modules/playwright-core/index.mjs";

const [server, token, out, checkSql, expected] = process.argv.slice(2);
await mkdir(out, { recursive: true });
const profile = await mkdtemp(join(tmpdir(), "wavelake-web-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const timings = {};
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  const started = Date.now();
  await page.goto(`${server}/`);
  await page.waitForSelector("form.connect", { timeout: 120_000 });
  timings.signInShownMs = Date.now() - started;
  await page.screenshot({ path: join(out, "1-sign-in.png") });

  await page.fill("input[name=token]", token);
  await page.click("form.connect button[type=submit]");
  await page.waitForSelector(".sidebar .table-link", { timeout: 60_000 });
  await page.screenshot({ path: join(out, "2-tables.png") });

  const first = await page.textContent(".sidebar .table-link");
  await page.click(".sidebar .table-link");
  await page.focus("textarea.sql");
  const queried = Date.now();
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector(".grid tbody tr", { timeout: 120_000 });
  timings.firstResultMs = Date.now() - queried;
  timings.pageLoadToResultMs = Date.now() - started;
  const progress = await page.textContent(".progress");
  assert.match(progress, /^\d+ of \d+ files · [\d.]+ MB fetched/, progress);
  const summary = await page.textContent(".grid-summary");
  assert.match(summary, /^\d+ rows/, summary);
  assert.ok(!summary.startsWith("0 rows"), `${first}: ${summary}`);
  await page.click(".grid th >> nth=0");
  await page.waitForSelector(".grid th:has-text('▲')");
  await page.screenshot({ path: join(out, "3-result.png") });

  // The explain view shows what the query read.
  await page.click(".views button:has-text('Explain')");
  await page.waitForSelector(".explain table.scan");
  const explained = await page.textContent(".explain");
  assert.ok(explained.includes("Bytes fetched") && explained.includes("Range requests"), explained);
  await page.screenshot({ path: join(out, "4-explain.png") });
  await page.click(".views button:has-text('Rows')");
  await page.waitForSelector(".grid tbody tr");

  if (checkSql) {
    await page.fill("textarea.sql", checkSql);
    await page.click("button.run");
    await page.waitForFunction(
      (want) => document.querySelector(".grid tbody td")?.textContent === want,
      expected,
      { timeout: 60_000 },
    );
  }

  // The query history survives a reload.
  await page.reload();
  await page.waitForSelector("form.connect");
  await page.fill("input[name=token]", token);
  await page.click("form.connect button[type=submit]");
  await page.waitForSelector("select.history");
  const remembered = await page.$$eval("select.history option", (options) => options.map((o) => o.value));
  assert.ok(remembered.includes(`SELECT * FROM ${first} LIMIT 100`), JSON.stringify(remembered));

  // The rows came from range reads of the table's files, not from a query
  // endpoint of the server.
  assert.ok(requests.some((url) => url.includes("/files/") || url.includes("X-Amz-")), "range reads of files");
  assert.ok(!requests.some((url) => url.includes("/api/v1/sql")), "no server-side query");
  assert.deepEqual(errors, [], "no page errors");
  console.log(JSON.stringify({ table: first, summary, progress, ...timings }));
} finally {
  await browser.close();
}
