// WavelakeGroup: every query run by a group of workers at once — one Web
// Worker per core in a page, one worker thread per core in Node — each
// reading its share of the files and passing rows to the others where a
// join or a grouping needs them. The page's own thread stays free.
//
//   import { WavelakeGroup } from "wavelake/group";
//   const group = await WavelakeGroup.start();
//   await group.addTable("orders", "https://host/lake/orders/");
//   const table = await group.sql("SELECT count(*) FROM orders");
//   group.close();
import { tableFromIPC } from "apache-arrow";

const inNode = typeof window === "undefined" && typeof process !== "undefined" && !!process.versions?.node;

function groupError(code, message) {
  return Object.assign(new Error(message), { code });
}

/** The number of workers a group gets when `start` is not told. */
async function defaultSize() {
  if (typeof navigator !== "undefined" && navigator.hardwareConcurrency) return navigator.hardwareConcurrency;
  if (inNode) return (await import("node:os")).availableParallelism();
  return 2;
}

async function compile(wasm) {
  if (wasm instanceof WebAssembly.Module) return wasm;
  const url = wasm ?? new URL("./wavelake_bg.wasm", import.meta.url);
  if (String(url).startsWith("file:")) {
    const { readFile } = await import("node:fs/promises");
    return WebAssembly.compile(await readFile(new URL(String(url))));
  }
  return WebAssembly.compileStreaming(fetch(url));
}

/** One worker and the requests it has not answered yet. */
class Member {
  constructor(thread, isNodeThread) {
    this.thread = thread;
    this.pending = new Map();
    this.nextId = 1;
    const handle = (reply) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (reply.error) waiting.reject(groupError(reply.error.code, reply.error.message));
      else waiting.resolve(reply.value);
    };
    const fail = (error) => {
      for (const waiting of this.pending.values()) waiting.reject(groupError("WORKER_GROUP", `a worker stopped: ${error?.message ?? error}`));
      this.pending.clear();
    };
    this.loaded = new Promise((resolve, reject) => this.pending.set(0, { resolve, reject }));
    if (isNodeThread) {
      thread.on("message", handle);
      thread.on("error", fail);
      thread.on("exit", (code) => fail(new Error(`exit code ${code}`)));
    } else {
      thread.onmessage = (event) => handle(event.data);
      thread.onerror = (event) => fail(new Error(event.message));
    }
  }

  request(message, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...message, id }, transfer);
    });
  }
}

/**
 * By default every query is spread. Given `spreadFromBytes`, a query
 * fetching fewer bytes of column chunks runs on one worker: spreading a
 * small query costs every worker a plan and its build sides, more than the
 * work it shares (TPC-H SF1 in Chromium, two workers: Q11 took 183 ms
 * alone against 594 spread, Q2 510 against 635), but deciding costs every
 * spread query an estimate first (17-130 ms, about 35 typically), which
 * over TPC-H's 22 queries took about what the small ones gained.
 */
const SPREAD_FROM_BYTES = 0;

export class WavelakeGroup {
  constructor(members, spreadFromBytes = SPREAD_FROM_BYTES) {
    this.members = members;
    this.nextQuery = 1;
    this.spreadFromBytes = spreadFromBytes;
  }

  /**
   * Starts a group of `workers` (default: one per core), each loading the
   * package's WebAssembly module (compiled once, here). `cacheBytes` is
   * each worker's in-memory range cache, as in `Wavelake.empty`; a query
   * fetching fewer than `spreadFromBytes` bytes of column chunks runs on
   * the first worker alone.
   */
  static async start({ workers, wasm, cacheBytes, spreadFromBytes } = {}) {
    const size = Math.max(1, Math.floor(workers ?? (await defaultSize())));
    const module = await compile(wasm);
    const script = new URL("./group-worker.js", import.meta.url);
    const WorkerThread = inNode ? (await import("node:worker_threads")).Worker : null;
    const members = [];
    for (let i = 0; i < size; i++) {
      const thread = WorkerThread ? new WorkerThread(script) : new Worker(script, { type: "module" });
      members.push(new Member(thread, !!WorkerThread));
    }
    const group = new WavelakeGroup(members, spreadFromBytes ?? SPREAD_FROM_BYTES);
    try {
      await Promise.all(members.map((m) => m.loaded));
      const ports = members.map(() => ({}));
      for (let i = 0; i < size; i++) {
        for (let j = i + 1; j < size; j++) {
          const { port1, port2 } = new MessageChannel();
          ports[i][j] = port1;
          ports[j][i] = port2;
        }
      }
      const options = cacheBytes === undefined ? null : { cacheBytes };
      await Promise.all(
        members.map((member, index) =>
          member.request({ type: "init", index, size, module, ports: ports[index], options }, Object.values(ports[index])),
        ),
      );
    } catch (error) {
      group.close();
      throw error;
    }
    return group;
  }

  /** The number of workers. */
  get size() {
    return this.members.length;
  }

  /** Registers the Delta table under `baseUrl` as `name` on every worker; its version. */
  async addTable(name, baseUrl) {
    return this.#everywhere({ type: "addTable", name, baseUrl }, name);
  }

  /** Registers a table given as presigned URLs (see `Wavelake.addTableFromUrls`); its version. */
  async addTableFromUrls(name, files) {
    return this.#everywhere({ type: "addTableFromUrls", name, files }, name);
  }

  async #everywhere(message, name) {
    const versions = await Promise.all(this.members.map((m) => m.request(message)));
    if (new Set(versions).size !== 1) {
      throw groupError("COMMIT_CONFLICT", `${name} changed while the workers opened it (versions ${versions.join(", ")}); add it again`);
    }
    return versions[0];
  }

  /**
   * Runs one SQL query on every worker and resolves to an `apache-arrow`
   * Table (with `{ ipc: true }`, the Arrow IPC stream bytes). A query the
   * group cannot spread, or smaller than `spreadFromBytes`, runs on the
   * first worker alone.
   */
  async sql(sql, { ipc = false } = {}) {
    const bytes = (await this.#spreads(sql)) ? await this.#spread(sql) : await this.members[0].request({ type: "runAlone", sql });
    return ipc ? bytes : tableFromIPC(bytes);
  }

  /**
   * The bytes of column chunks the query `sql` would fetch, read from the
   * footers of the files the Delta log keeps for it (the first worker
   * reads them and keeps them for the query).
   */
  async readBytes(sql) {
    return this.members[0].request({ type: "readBytes", sql });
  }

  /** Whether `sql` fetches enough to spread. */
  async #spreads(sql) {
    if (this.members.length < 2) return false;
    if (this.spreadFromBytes <= 0) return true;
    try {
      return (await this.readBytes(sql)) >= this.spreadFromBytes;
    } catch {
      // Not a query with an estimate: running it says what is wrong.
      return true;
    }
  }

  async #spread(sql) {
    const query = this.nextQuery++;
    const parts = this.members.map((m) => m.request({ type: "run", query, sql }));
    try {
      // Worker 0's answer, or the first failure of any worker.
      return await Promise.race([parts[0], ...parts.slice(1).map((p) => p.then(() => new Promise(() => {})))]);
    } catch (error) {
      if (error.code !== "NOT_SPREADABLE") throw error;
      return await this.members[0].request({ type: "runAlone", sql });
    } finally {
      for (const member of this.members) member.thread.postMessage({ type: "cancel", query, reason: "the query ended" });
      await Promise.allSettled(parts);
    }
  }

  /** Stops every worker. */
  close() {
    for (const member of this.members) member.thread.terminate();
    this.members = [];
  }
}
