// The built `wavelake` package in a page of headless Chromium:
//   node pkg/tests/browser.mjs BASE_URL OUT_DIR
// Serves pkg/ (the package and tests/page.html) on a loopback port, opens
// the page in Chromium (playwright-core, /usr/bin/chromium), runs every
// case of BASE_URL/manifest.json in the page over cross-origin range
// requests, and writes OUT_DIR/N.arrows or OUT_DIR/N.error.json like
// golden.mjs, for the Rust side to compare. Saves a screenshot of the page.
import { writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { runInPackagePage } from "./chromium.mjs";

const [base, out] = process.argv.slice(2);
await runInPackagePage(async (page) => {
  const cases = await (await fetch(`${base}/manifest.json`)).json();
  const results = await page.evaluate(([b, c]) => window.runCases(b, c), [base, cases]);
  await mkdir(out, { recursive: true });
  for (const [index, result] of results.entries()) {
    if (result.ipc !== undefined) {
      await writeFile(join(out, `${index}.arrows`), Buffer.from(result.ipc, "base64"));
    } else {
      await writeFile(join(out, `${index}.error.json`), JSON.stringify(result));
    }
  }
  await page.screenshot({ path: join(out, "page.png") });
  const loaded = await page.evaluate(() => window.loadedMs);
  console.log(`ran ${results.length} cases in Chromium; the package loaded in ${Math.round(loaded)} ms`);
});
