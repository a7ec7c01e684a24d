// Time from page load to the first query result in the web app, in
// headless Chromium against a running `wavelake serve`:
//   node web/bench/first-result.mjs SERVER_URL TOKEN TABLE RUNS
// Each run is a fresh browser profile (nothing cached): load the page,
// sign in with TOKEN, run the editor's first query on TABLE and wait for
// its rows. Prints one JSON line per run, then the median.
import { launchChromium } from "../../pkg/tests/chromium.mjs";

const [server, token, table, runs = "5"] = process.argv.slice(2);
const query = `SELECT city, count(*) AS trips, round(avg(fare), 2) AS avg_fare FROM ${table} GROUP BY city ORDER BY trips DESC`;
const results = [];
for (let run = 0; run < Number(runs); run += 1) {
  const { context: browser, close } = await launchChromium();
  try {
    const page = await browser.newPage();
    let bytes = 0;
    page.on("response", async (response) => {
      const length = Number(response.headers()["content-length"] ?? 0);
      bytes += Number.isFinite(length) ? length : 0;
    });
    const started = performance.now();
    await page.goto(`${server}/`);
    await page.waitForSelector("form.connect", { timeout: 120_000 });
    const appShown = performance.now() - started;
    await page.fill("input[name=token]", token);
    await page.click("form.connect button[type=submit]");
    await page.waitForSelector(".sidebar .table-link", { timeout: 60_000 });
    const signedIn = performance.now() - started;
    await page.fill("textarea.sql", query);
    const queried = performance.now();
    await page.click("button.run");
    await page.waitForSelector(".grid tbody tr", { timeout: 120_000 });
    const done = performance.now();
    const result = {
      run,
      appShownMs: Math.round(appShown),
      signedInMs: Math.round(signedIn),
      queryMs: Math.round(done - queried),
      pageLoadToFirstResultMs: Math.round(done - started),
      bytesTransferred: bytes,
    };
    results.push(result);
    console.log(JSON.stringify(result));
  } finally {
    await close();
  }
}
const median = (key) => {
  const sorted = results.map((r) => r[key]).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
console.log(JSON.stringify({
  median: {
    appShownMs: median("appShownMs"),
    signedInMs: median("signedInMs"),
    queryMs: median("queryMs"),
    pageLoadToFirstResultMs: median("pageLoadToFirstResultMs"),
    bytesTransferred: median("bytesTransferred"),
  },
}));
