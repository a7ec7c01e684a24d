// The web app in headless Chromium against a running `wavelake serve`:
//   node web/tests/e2e.mjs SERVER_URL TOKEN OUT_DIR TABLE UNTOUCHED
// TABLE (`schema.table`) has three versions: created (0), 500 rows
// inserted (1), every tenth row deleted as a deletion vector (2).
// UNTOUCHED has 100 rows and is first read by the query the test cancels.
// Signs in with TOKEN, opens the table's page, runs queries (Ctrl+Enter,
// progress, sorting, the explain view, a chart, completion), time-travels
// to version 1 and back, cancels a long query, uploads a CSV and queries
// it, and updates it with a statement the server runs; a query above the
// page's limit is offered to the server and runs there when accepted; a
// live table page and a live result update themselves after a commit made
// elsewhere. Saves a screenshot
// of each screen in OUT_DIR and prints the timings as JSON.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import assert from "node:assert/strict";
import { launchChromium } from "../../pkg/tests/chromium.mjs";

const [server, token, out, table, untouched] = process.argv.slice(2);
await mkdir(out, { recursive: true });
const { context: browser, close } = await launchChromium({ viewport: { width: 1280, height: 900 } });
const timings = {};
const shot = (page, name) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });

/** Runs `sql` in the editor and waits for the first cell to be `want`. */
async function firstCell(page, sql, want) {
  await page.click(".tabs .tab:has-text('Query')");
  await page.fill("textarea.sql", sql);
  await page.click("button.run");
  await page.waitForFunction(
    (want) => document.querySelector(".grid tbody td")?.textContent === want,
    want,
    { timeout: 60_000 },
  ).catch(async (error) => {
    const shown = await page.textContent(".main");
    throw new Error(`${sql}: wanted ${want}, the page shows: ${shown}`, { cause: error });
  });
}

try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  const requests = [];
  page.on("request", (request) => requests.push({ url: request.url(), body: request.postData() }));
  const started = Date.now();
  await page.goto(`${server}/`);
  await page.waitForSelector("form.connect", { timeout: 120_000 });
  timings.signInShownMs = Date.now() - started;
  await shot(page, "1-sign-in");

  await page.fill("input[name=token]", token);
  await page.click("form.connect button[type=submit]");
  await page.waitForSelector(`.sidebar .table-link:text-is('${table}')`, { timeout: 60_000 });

  // The first query, from the editor with Ctrl+Enter.
  await page.fill("textarea.sql", `SELECT city, count(*) AS trips, sum(fare) AS fares FROM ${table} GROUP BY city ORDER BY city`);
  await page.focus("textarea.sql");
  const queried = Date.now();
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector(".grid tbody tr", { timeout: 120_000 });
  timings.firstResultMs = Date.now() - queried;
  timings.pageLoadToResultMs = Date.now() - started;
  const progress = await page.textContent(".progress");
  assert.match(progress, /^\d+ of \d+ files · [\d.]+ MB fetched/, progress);
  const summary = await page.textContent(".grid-summary");
  assert.match(summary, /^3 rows/, summary);
  const ranHere = await page.textContent(".ran");
  assert.match(ranHere, /^Ran in this page in [\d.]+ s, reading [\d.]+ (bytes|kB|MB), [\d.]+ (bytes|kB|MB) fetched\. Why: it reads \d+ bytes in \d+ files, within the page's limit of 268435456 bytes\.$/, ranHere);
  await page.click(".grid th >> nth=1");
  await page.waitForSelector(".grid th:has-text('▲')");
  await shot(page, "2-result");

  // The explain view shows what the query read.
  await page.click(".views button:has-text('Explain')");
  await page.waitForSelector(".explain table.scan");
  const explained = await page.textContent(".explain");
  assert.ok(explained.includes("Bytes fetched") && explained.includes("Range requests"), explained);
  await shot(page, "3-explain");

  // A chart of the result: bars, then a line.
  await page.click(".views button:has-text('Chart')");
  await page.selectOption("select.chart-y", { label: "trips" });
  await page.waitForSelector("svg.chart-svg rect.bar");
  assert.equal(await page.locator("svg.chart-svg rect.bar").count(), 3);
  await shot(page, "4-chart");
  await page.click(".chart-controls button:has-text('Line')");
  await page.waitForSelector("svg.chart-svg polyline.series", { state: "attached" });

  // Table and column names are offered while typing; Tab takes the first.
  await page.fill("textarea.sql", `SELECT * FROM ${table.slice(0, -2)}`);
  await page.waitForSelector(`.completions button:text-is('${table}')`);
  await page.focus("textarea.sql");
  await page.keyboard.press("Tab");
  assert.equal(await page.inputValue("textarea.sql"), `SELECT * FROM ${table}`);

  // The table's page: schema, history, files, preview.
  await page.click(`.sidebar .table-link:text-is('${table}')`);
  await page.waitForSelector(".table-page .version:has-text('(latest)')", { timeout: 60_000 });
  await page.waitForSelector(".table-history .commit >> nth=2");
  await page.waitForSelector(".table-preview .grid tbody tr");
  const schema = await page.textContent(".table-schema");
  assert.ok(schema.includes("trip_id") && schema.includes("column mapping"), schema);
  const files = await page.textContent(".table-files");
  assert.ok(files.includes("deleted_rows"), files);
  await shot(page, "5-table");

  // Time travel: version 1, before the delete, in every view.
  await page.click(".timeline .version-pick:text-is('v1')");
  await page.waitForSelector(".table-page .version.travelled:has-text('Version 1')");
  assert.ok((await page.textContent(".table-schema")).includes("500 rows"));
  await shot(page, "6-time-travel");
  await firstCell(page, `SELECT count(*) AS n FROM ${table}`, "500");
  await page.click(`.sidebar .table-link:text-is('${table}')`);
  await page.click(".table-page button.latest");
  await page.waitForSelector(".table-page .version:has-text('(latest)')");
  await firstCell(page, `SELECT count(*) AS n FROM ${table}`, "450");

  // A long query (every request slowed down) is cancelled, and the next
  // one runs.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 3000, downloadThroughput: -1, uploadThroughput: -1 });
  await page.fill("textarea.sql", `SELECT count(*) AS n FROM ${untouched}`);
  await page.click("button.run");
  await page.waitForSelector("button.cancel");
  await page.click("button.cancel");
  await page.waitForSelector(".error:has-text('Cancelled')");
  assert.equal(await page.isEnabled("button.run"), true);
  await shot(page, "7-cancelled");
  await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await firstCell(page, `SELECT count(*) AS n FROM ${untouched}`, "100");

  // With a limit of 0 MB, the page offers to send the query to the
  // server, which runs it; the result says where and why.
  await page.fill("input[name=max-page-mb]", "0");
  await page.fill("textarea.sql", `SELECT count(*) AS n FROM ${table}`);
  await page.click("button.run");
  await page.waitForSelector(".offer button.send-to-server");
  const offered = await page.textContent(".offer");
  assert.match(offered, /more than the page's limit of 0 bytes/, offered);
  await page.click(".offer button.send-to-server");
  await page.waitForSelector(".ran:has-text('Ran on the server')", { timeout: 60_000 });
  assert.equal(await page.textContent(".grid tbody td"), "450");
  const ranThere = await page.textContent(".ran");
  assert.match(ranThere, / (bytes|kB) received\. Why: you chose to send it to the server; the server: it reads \d+ bytes in \d+ files, and no cluster is configured\.$/, ranThere);
  await shot(page, "7b-ran-on-the-server");
  // Declined, the query runs in the page; set to keep queries, it is not
  // offered at all.
  await page.click("button.run");
  await page.click(".offer button.run-here");
  await page.waitForSelector(".ran:has-text('Ran in this page')");
  await page.selectOption("select[name=large-queries]", "keep");
  await firstCell(page, `SELECT count(*) AS n FROM ${table} WHERE fare > 0`, "450");
  assert.match(await page.textContent(".ran"), /Why: large queries are set to run in this page\.$/);
  await page.selectOption("select[name=large-queries]", "ask");
  await page.fill("input[name=max-page-mb]", "256");

  // Upload a CSV as a new table, query it in the page, change it on the
  // server.
  const namespace = table.split(".")[0];
  await page.click(".sidebar .upload-link");
  await page.setInputFiles("input[name=upload-file]", {
    name: "visits.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("city,visits\nOslo,3\nLima,7\nRome,1\n"),
  });
  assert.equal(await page.inputValue("input[name=upload-table]"), "visits");
  await page.fill("input[name=upload-namespace]", namespace);
  await page.click("form.upload button[type=submit]");
  await page.waitForSelector(`form.upload .done:has-text('Created ${namespace}.visits with 3 rows')`, { timeout: 60_000 });
  await page.waitForSelector(`.sidebar .table-link:text-is('${namespace}.visits')`);
  await shot(page, "8-upload");
  await firstCell(page, `SELECT sum(visits) AS total FROM ${namespace}.visits`, "11");
  await firstCell(page, `UPDATE ${namespace}.visits SET visits = 10 WHERE city = 'Oslo'`, "1");
  await page.waitForSelector(".done:has-text('ran on the server')");
  await firstCell(page, `SELECT sum(visits) AS total FROM ${namespace}.visits`, "18");
  await shot(page, "9-after-update");

  // The query history survives a reload.
  await page.reload();
  await page.waitForSelector("form.connect");
  await page.fill("input[name=token]", token);
  await page.click("form.connect button[type=submit]");
  await page.waitForSelector("select.history");
  const remembered = await page.$$eval("select.history option", (options) => options.map((o) => o.value));
  assert.ok(remembered.includes(`SELECT count(*) AS n FROM ${table}`), JSON.stringify(remembered));

  // Live: the table page and a query result update themselves after a
  // commit made elsewhere (here, through the SQL API from this process).
  const commit = async (sql) => {
    const response = await fetch(`${server}/api/v1/sql`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ sql }),
    });
    assert.equal(response.status, 200, await response.text());
  };
  await page.click(`.sidebar .table-link:text-is('${untouched}')`);
  await page.waitForSelector(".table-page .version", { timeout: 60_000 });
  const before = await page.textContent(".table-page .version");
  await page.check("input[name=live-table]");
  await page.waitForSelector(".table-page .live-status:has-text('Live:')", { timeout: 60_000 });
  let committed = Date.now();
  await commit(`INSERT INTO ${untouched} VALUES (1001)`);
  await page.waitForFunction(
    (before) => {
      const shown = document.querySelector(".table-page .version")?.textContent;
      return shown !== undefined && shown !== before;
    },
    before,
    { timeout: 60_000 },
  );
  timings.liveTablePageMs = Date.now() - committed;
  assert.match(await page.textContent(".table-page .version"), /\(latest\)/);
  await shot(page, "10-live-table");
  await page.uncheck("input[name=live-table]");
  await firstCell(page, `SELECT count(*) AS n FROM ${untouched}`, "101");
  await page.check("input[name=live-result]");
  await page.waitForSelector(".views .live-status:has-text('Live:')", { timeout: 60_000 });
  committed = Date.now();
  await commit(`INSERT INTO ${untouched} VALUES (1002)`);
  await page.waitForFunction(() => document.querySelector(".grid tbody td")?.textContent === "102", null, {
    timeout: 60_000,
  });
  timings.liveResultMs = Date.now() - committed;
  await shot(page, "11-live-result");
  await page.uncheck("input[name=live-result]");

  // Rows came from range reads of the tables' files; the server's SQL
  // endpoint saw only the query sent there and the statement that changes
  // a table.
  assert.ok(requests.some(({ url }) => url.includes("/files/") || url.includes("X-Amz-")), "range reads of files");
  const serverSql = requests.filter(({ url }) => url.includes("/api/v1/sql")).map(({ body }) => JSON.parse(body).sql);
  assert.deepEqual(serverSql, [
    `SELECT count(*) AS n FROM ${table}`,
    `UPDATE ${namespace}.visits SET visits = 10 WHERE city = 'Oslo'`,
  ]);
  assert.deepEqual(errors, [], "no page errors");
  console.log(JSON.stringify({ table, summary, progress, ...timings }));
} finally {
  await close();
}
