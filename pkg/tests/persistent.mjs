// The package's persistent cache (the origin private file system) in a page
// of headless Chromium, across reloads:
//   node pkg/tests/persistent.mjs TABLE_URL SQL
// Runs SQL over the table in a new session three times: on a fresh page, after
// a reload, and after clearPersistentCache() and another reload. Before the
// second and third runs it requests TABLE_URL/__phase-reload and
// TABLE_URL/__phase-cleared, so the table server's request log shows what
// each run fetched (the Rust test reads it). Prints one JSON line:
// {"runs": [{rows, figures}, ...]}.
import { runInPackagePage } from "./chromium.mjs";

const [tableUrl, sql] = process.argv.slice(2);
await runInPackagePage(async (page, ready) => {
  const run = () => page.evaluate(([url, query]) => window.persistentQuery(url, query), [tableUrl, sql]);
  const mark = (phase) => page.evaluate((url) => fetch(url).then((r) => r.status), `${tableUrl}/__phase-${phase}`);
  const runs = [await run()];
  await mark("reload");
  await page.reload();
  await ready();
  runs.push(await run());
  await mark("cleared");
  await page.evaluate(() => window.clearPersistentCache());
  await page.reload();
  await ready();
  runs.push(await run());
  console.log(JSON.stringify({ runs }));
});
