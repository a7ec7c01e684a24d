// One worker of a WavelakeGroup (group.js starts it): a Web Worker in a
// page, a worker thread in Node. It loads the package's module from the
// compiled WebAssembly.Module it is sent, opens the tables it is told to,
// and runs its part of every query; rows for other workers go out over
// the MessagePort to each, and what they send comes in over the same.
const inNode = typeof self === "undefined" && typeof process !== "undefined";
const parent = inNode ? (await import("node:worker_threads")).parentPort : null;

// The package's module imports apache-arrow to build result tables, which
// a worker never does (it returns IPC bytes). A page without a bundler
// resolves that import with an import map, which workers do not see: there
// the module is loaded with the import pointing at a stand-in.
async function loadPackage() {
  try {
    return await import("./wavelake.js");
  } catch (error) {
    if (inNode) throw error;
    const glue = new URL("./wavelake.js", import.meta.url);
    const standIn = "data:text/javascript,export function tableFromIPC() { throw new Error('no Arrow tables in a group worker'); }";
    const source = (await (await fetch(glue)).text()).replace(/from\s*["']apache-arrow["']/g, `from "${standIn}"`);
    return import(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
  }
}
const { default: init, GroupWorker } = await loadPackage();

function post(message) {
  if (parent) parent.postMessage(message);
  else self.postMessage(message);
}

function listen(target, handle) {
  if (typeof target.on === "function") target.on("message", handle);
  else target.onmessage = (event) => handle(event.data);
}

let worker = null;
const ports = [];

async function answer(request) {
  switch (request.type) {
    case "init": {
      await init({ module_or_path: request.module });
      for (const [peer, port] of Object.entries(request.ports)) {
        ports[Number(peer)] = port;
        listen(port, (bytes) => {
          try {
            worker.deliver(new Uint8Array(bytes));
          } catch (error) {
            console.error(`wavelake group worker ${request.index}: ${error.message}`);
          }
        });
      }
      const send = (to, bytes) => ports[to].postMessage(bytes.buffer, [bytes.buffer]);
      worker = new GroupWorker(request.index, request.size, send, request.options ?? undefined);
      return null;
    }
    case "addTable":
      return worker.addTable(request.name, request.baseUrl);
    case "addTableFromUrls":
      return worker.addTableFromUrls(request.name, request.files);
    case "run":
      return (await worker.run(request.query, request.sql)) ?? null;
    case "runAlone":
      return worker.runAlone(request.sql);
    case "readBytes":
      return worker.readBytes(request.sql);
    case "cancel":
      worker.cancel(request.query, request.reason);
      return null;
    default:
      throw Object.assign(new Error(`unknown request ${request.type}`), { code: "INVALID_ARGUMENT" });
  }
}

listen(parent ?? self, async (request) => {
  try {
    const value = await answer(request);
    const transfer = value instanceof Uint8Array ? [value.buffer] : [];
    if (parent) parent.postMessage({ id: request.id, value }, transfer);
    else self.postMessage({ id: request.id, value }, transfer);
  } catch (error) {
    post({ id: request.id, error: { code: error?.code ?? "WORKER_GROUP", message: String(error?.message ?? error) } });
  }
});
post({ id: 0, value: "loaded" });
