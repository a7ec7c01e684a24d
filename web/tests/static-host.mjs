// The web app from a static host, reading a Delta table from a static
// host (no Delta Sharing server, no API):
//   node web/tests/static-host.mjs PAGE_URL TABLE_URL OUT_DIR EXPECTED_ROWS
// Connects to the table at TABLE_URL as `t`, opens its page (schema,
// history from the log, files) and checks `count(*)` is EXPECTED_ROWS.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import assert from "node:assert/strict";
import { launchChromium } from "../../pkg/tests/chromium.mjs";

const [pageUrl, tableUrl, out, expected] = process.argv.slice(2);
await mkdir(out, { recursive: true });
const { context: browser, close } = await launchChromium({ viewport: { width: 1280, height: 900 } });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(pageUrl);
  await page.waitForSelector("form.connect", { timeout: 120_000 });
  await page.check("input[name=kind] >> nth=2");
  await page.fill("input[name=table-name]", "t");
  await page.fill("input[name=table-url]", tableUrl);
  await page.click("form.connect button[type=submit]");
  await page.waitForSelector(".sidebar .table-link:text-is('t')", { timeout: 60_000 });

  await page.click(".sidebar .table-link:text-is('t')");
  await page.waitForSelector(".table-page .version:has-text('(latest)')", { timeout: 60_000 });
  await page.waitForSelector(".table-history .commit");
  await page.waitForSelector(".table-files .grid tbody tr");
  await page.screenshot({ path: join(out, "static-table.png"), fullPage: true });

  await page.click(".tabs .tab:has-text('Query')");
  await page.fill("textarea.sql", "SELECT count(*) AS n FROM t");
  await page.click("button.run");
  await page.waitForFunction(
    (want) => document.querySelector(".grid tbody td")?.textContent === want,
    expected,
    { timeout: 60_000 },
  );
  // No server to send queries to: they stay in the page, which says why.
  const ran = await page.textContent(".ran");
  assert.match(ran, /Why: it runs in the page: the table is on a static host, which has no server to run queries\.$/, ran);
  // No server to write through: a write is refused in words.
  await page.fill("textarea.sql", "DELETE FROM t");
  await page.click("button.run");
  await page.waitForSelector(".error:has-text('Not allowed')");
  assert.deepEqual(errors, [], "no page errors");
  console.log(JSON.stringify({ table: tableUrl, rows: expected }));
} finally {
  await close();
}
