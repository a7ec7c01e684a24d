// Headless Chromium (Debian's, or $CHROMIUM) in a fresh profile, for the
// package's and the web app's browser tests and benchmarks.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

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
