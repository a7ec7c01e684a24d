// Headless Chromium (Debian's, or $CHROMIUM) in a fresh profile, for the
// package's and the web app's browser tests and benchmarks.
import { createServer } from "node:http";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const contentTypes = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".wasm": "application/wasm",
};

/**
 * Serves pkg/ (the built package, its node_modules and tests/page.html) on
 * a loopback port. Returns the URL of tests/page.html and a `close`.
 */
async function servePackage() {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const server = createServer(async (request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname));
    if (path.includes("..")) {
      response.writeHead(400).end();
      return;
    }
    try {
      const body = await readFile(join(root, path));
      response.writeHead(200, { "content-type": contentTypes[extname(path)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    pageUrl: `http://127.0.0.1:${server.address().port}/tests/page.html`,
    close: () => server.close(),
  };
}

/**
 * Starts Chromium with an empty profile (nothing cached). `options` are
 * Playwright's, such as `viewport`. Returns the browser context and a
 * `close` that also removes the profile.
 */
export async function launchChromium(options = {}) {
  const profile = await mkdtemp(join(tmpdir(), "wavelake-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    ...options,
  });
  // Waits without their own timeout get a minute: a 2-core CI host running
  // other tests beside the browser is slow, not broken.
  context.setDefaultTimeout(60_000);
  const close = async () => {
    await context.close();
    await rm(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/**
 * Serves the package, opens tests/page.html in a fresh Chromium and waits
 * until the page has loaded the package; then runs `body(page, ready)`,
 * where `ready()` waits for the page again (after a reload). Closes
 * everything and exits the process: 1 when `body` threw.
 */
export async function runInPackagePage(body) {
  const server = await servePackage();
  const { context, close } = await launchChromium();
  let exitCode = 0;
  try {
    const page = await context.newPage();
    page.on("pageerror", (error) => console.error(`page error: ${error}`));
    const ready = () =>
      page.waitForSelector("body[data-ready=yes]", {
        state: "attached",
        timeout: Number(process.env.PAGE_TIMEOUT_MS ?? 120_000),
      });
    await page.goto(server.pageUrl);
    await ready();
    await body(page, ready);
  } catch (error) {
    console.error(error);
    exitCode = 1;
  } finally {
    await close();
    server.close();
  }
  process.exit(exitCode);
}
