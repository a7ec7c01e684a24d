// Runs the golden HTTP cases through the example edge worker
// (examples/edge-worker) in Cloudflare's workerd:
//   node pkg/tests/workerd.mjs BASE_URL OUT_DIR
// Bundles the worker with esbuild as a Worker deploy would (the wasm module
// stays a separate, statically imported module), starts workerd on a free
// port with TABLES_URL=BASE_URL, and asks it each case's query as Arrow IPC,
// writing OUT_DIR/N.arrows or OUT_DIR/N.error.json like golden.mjs.
import { spawn } from "node:child_process";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { build } from "esbuild";
import { tableFromIPC } from "apache-arrow";

const [base, out] = process.argv.slice(2);
const pkg = fileURLToPath(new URL("..", import.meta.url));
const bin = (name) => `${pkg}/node_modules/.bin/${name}`;
const dir = `${out}/worker`;
await mkdir(dir, { recursive: true });

await build({
  entryPoints: [`${pkg}/examples/edge-worker/worker.mjs`],
  bundle: true,
  format: "esm",
  platform: "neutral",
  mainFields: ["module", "main"],
  outfile: `${dir}/worker.js`,
  logLevel: "warning",
  plugins: [
    {
      // `wavelake` is the package built into dist/; its wasm module stays
      // an import that workerd serves as a compiled module.
      name: "wavelake-from-dist",
      setup(build) {
        build.onResolve({ filter: /\.wasm$/ }, (args) => ({ path: args.path, external: true }));
        build.onResolve({ filter: /^wavelake$/ }, () => ({ path: `${pkg}/dist/wavelake.js` }));
      },
    },
  ],
});
await copyFile(`${pkg}/dist/wavelake_bg.wasm`, `${dir}/wavelake_bg.wasm`);

const port = await new Promise((resolve) => {
  const probe = createServer().listen(0, "127.0.0.1", () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});
await writeFile(
  `${dir}/config.capnp`,
  `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "wavelake/wavelake_bg.wasm", wasm = embed "wavelake_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ["nodejs_compat"],
  bindings = [(name = "TABLES_URL", text = ${JSON.stringify(`${base}/`)})],
  globalOutbound = "internet",
);
`,
);

const workerd = spawn(bin("workerd"), ["serve", `${dir}/config.capnp`], {
  stdio: ["ignore", "inherit", "inherit"],
});
const exited = new Promise((resolve) => workerd.on("exit", resolve));
const origin = `http://127.0.0.1:${port}`;
try {
  let up = false;
  for (let i = 0; i < 300 && !up; i += 1) {
    up = await fetch(`${origin}/`).then(() => true, () => false);
    if (!up) await sleep(100);
  }
  assert.ok(up, "workerd answers");

  const cases = await (await fetch(`${base}/manifest.json`)).json();
  let failures = 0;
  let jsonChecked = false;
  for (const [index, testCase] of cases.entries()) {
    const url = `${origin}/${testCase.table}?sql=${encodeURIComponent(testCase.sql)}`;
    const response = await fetch(url, { headers: { accept: "application/vnd.apache.arrow.stream" } });
    const body = new Uint8Array(await response.arrayBuffer());
    if (response.ok) {
      await writeFile(`${out}/${index}.arrows`, body);
      if (!jsonChecked && testCase.rows.length > 0) {
        // The default answer: JSON rows, as many as the Arrow answer has.
        const rows = await (await fetch(url)).json();
        assert.equal(rows.length, tableFromIPC(body).numRows, `${testCase.name}: JSON rows`);
        jsonChecked = true;
      }
    } else {
      const error = JSON.parse(new TextDecoder().decode(body));
      if (error.code === "INTERNAL") {
        failures += 1;
        console.error(`${testCase.name}: ${error.message}`);
      }
      await writeFile(`${out}/${index}.error.json`, JSON.stringify(error));
    }
  }
  assert.ok(jsonChecked, "a JSON answer was checked");
  console.log(`ran ${cases.length} cases through the example worker in workerd`);
  process.exitCode = failures === 0 ? 0 : 1;
} finally {
  workerd.kill("SIGTERM");
  await exited;
}
