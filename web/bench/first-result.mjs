// Time from page load to the first query result in the web app, in
// headless Chromium against a running `wavelake serve`:
//   node web/bench/first-result.mjs SERVER_URL TOKEN TABLE RUNS
// Each run is a fresh browser profile: load the page, sign in with TOKEN,
// run a query on TABLE and wait for its rows (cold), then load the page
// again in the same profile and do the same (warm: the table's files come
// from the app's persistent cache). Times are the page's own clock from
// navigation start (the automation's typing is instant). Prints one JSON
// line per visit, then the medians of cold and warm visits.
import { launchChromium } from "../../pkg/tests/chromium.mjs";

const [server, token, table, runs = "5"] = process.argv.slice(2);
const query = `SELECT city, count(*) AS trips, round(avg(fare), 2) AS avg_fare FROM ${table} GROUP BY city ORDER BY trips DESC`;
const results = [];

/**
 * When (the page's `performance.now()`, from navigation start) `selector`
 * first matches, after running `action`; read in the page, so the
 * driver's polling does not round it.
 */
async function timeOf(page, selector, action) {
  const when = page.evaluate((wanted) => new Promise((resolve) => {
    const found = () => document.querySelector(wanted);
    if (found()) {
      resolve(performance.now());
      return;
    }
    const observer = new MutationObserver(() => {
      if (found()) {
        observer.disconnect();
        resolve(performance.now());
      }
    });
    observer.observe(document, { childList: true, subtree: true });
  }), selector);
  await action?.();
  return when;
}
/**
 * Loads the app in `page`, signs in, runs the query and waits for its
 * rows: the page's times and the bytes it received.
 */
async function firstResult(page) {
  let bytes = 0;
  let rangeBytes = 0;
  const count = (response) => {
    const length = Number(response.headers()["content-length"] ?? 0);
    const counted = Number.isFinite(length) ? length : 0;
    bytes += counted;
    // Table files are read with range requests; nothing else is.
    if (response.status() === 206) rangeBytes += counted;
  };
  page.on("response", count);
  await page.goto(`${server}/`);
  const appShown = await timeOf(page, "form.connect");
  await page.fill("input[name=token]", token);
  const signedIn = await timeOf(page, ".sidebar .table-link", () => page.click("form.connect button[type=submit]"));
  await page.fill("textarea.sql", query);
  const queried = await page.evaluate(() => performance.now());
  const done = await timeOf(page, ".grid tbody tr", () => page.click("button.run"));
  page.off("response", count);
  return {
    appShownMs: Math.round(appShown),
    signedInMs: Math.round(signedIn),
    queryMs: Math.round(done - queried),
    pageLoadToFirstResultMs: Math.round(done),
    bytesTransferred: bytes,
    tableBytesFetched: rangeBytes,
  };
}

for (let run = 0; run < Number(runs); run += 1) {
  const { context: browser, close } = await launchChromium();
  try {
    const page = await browser.newPage();
    // Cold: a fresh profile. Warm: the same page loaded again, with what
    // the app kept in the origin private file system (the HTTP cache is
    // bypassed, as the table's files are fetched with range requests).
    for (const visit of ["cold", "warm"]) {
      const result = { run, visit, ...(await firstResult(page)) };
      results.push(result);
      console.log(JSON.stringify(result));
    }
  } finally {
    await close();
  }
}
const median = (visit, key) => {
  const sorted = results.filter((r) => r.visit === visit).map((r) => r[key]).sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
for (const visit of ["cold", "warm"]) {
  const keys = ["appShownMs", "signedInMs", "queryMs", "pageLoadToFirstResultMs", "bytesTransferred", "tableBytesFetched"];
  console.log(JSON.stringify({ median: visit, ...Object.fromEntries(keys.map((key) => [key, median(visit, key)])) }));
}
