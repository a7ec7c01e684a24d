// Turns wasm-pack's output directory into the `wavelake` npm package:
// names it, declares apache-arrow (the generated module imports it), makes
// subscriptions async iterable, and adds the README written for JavaScript
// users and the worker group (`wavelake/group`: group.js starts
// group-worker.js once per core).
//   node pkg/npm/finish-package.mjs DIST_DIR
import { readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const dist = process.argv[2];
const here = dirname(fileURLToPath(import.meta.url));
const manifestPath = join(dist, "package.json");
const generated = JSON.parse(readFileSync(manifestPath, "utf8"));
const manifest = {
  name: "wavelake",
  version: generated.version,
  description:
    "SQL over Delta Lake tables in the browser, at the edge and in Node: Delta Sharing or any static host, read with HTTP range requests",
  license: generated.license ?? "Apache-2.0",
  type: "module",
  main: "wavelake.js",
  module: "wavelake.js",
  types: "wavelake.d.ts",
  exports: {
    ".": { types: "./wavelake.d.ts", default: "./wavelake.js" },
    "./group": { types: "./group.d.ts", default: "./group.js" },
    "./wavelake_bg.wasm": "./wavelake_bg.wasm",
  },
  files: [
    "wavelake.js", "wavelake.d.ts", "wavelake_bg.wasm", "wavelake_bg.wasm.d.ts",
    "group.js", "group.d.ts", "group-worker.js", "README.md",
  ],
  sideEffects: false,
  engines: { node: ">=20" },
  dependencies: { "apache-arrow": "^21.0.0" },
};
writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + "\n");

// Subscriptions are async iterables: `for await (const commit of sub)`;
// leaving the loop closes the subscription. (wasm-bindgen cannot declare
// Symbol.asyncIterator itself.)
const modulePath = join(dist, "wavelake.js");
const iterable = `
Subscription.prototype[Symbol.asyncIterator] = function () {
  const subscription = this;
  return {
    async next() {
      const value = await subscription.next();
      return value === undefined ? { done: true, value: undefined } : { done: false, value };
    },
    async return() {
      subscription.close();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
};
`;
const source = readFileSync(modulePath, "utf8");
if (!source.includes("Subscription.prototype[Symbol.asyncIterator]")) {
  writeFileSync(modulePath, source + iterable);
}
for (const file of ["README.md", "group.js", "group.d.ts", "group-worker.js"]) {
  copyFileSync(join(here, file), join(dist, file));
}
console.log(`${manifest.name}@${manifest.version} in ${dist}`);
