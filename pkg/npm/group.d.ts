import type { Table } from "apache-arrow";

/** How a group starts. */
export interface GroupOptions {
  /** How many workers (default: one per core). */
  workers?: number;
  /** The package's module, or where to fetch it (default: beside this file). */
  wasm?: WebAssembly.Module | URL | string;
  /** Each worker's in-memory range cache in bytes (default 64 MiB; 0 turns it off). */
  cacheBytes?: number;
  /**
   * A query fetching fewer bytes of column chunks than this (read from the
   * files' footers before it runs) runs on the first worker alone
   * (default 0: every query is spread, with no estimate first).
   */
  spreadFromBytes?: number;
}

/**
 * Every query run by a group of workers at once (Web Workers in a page,
 * worker threads in Node), each reading its share of the files.
 */
export declare class WavelakeGroup {
  /** Starts the workers and loads the module in each. */
  static start(options?: GroupOptions): Promise<WavelakeGroup>;
  /** The number of workers. */
  readonly size: number;
  /** Registers the Delta table under `baseUrl` as `name`; its version. */
  addTable(name: string, baseUrl: string): Promise<number>;
  /** Registers a table given as presigned URLs; its version. */
  addTableFromUrls(name: string, files: Record<string, string>): Promise<number>;
  /**
   * Runs one query; its rows (or with `{ ipc: true }` the Arrow IPC
   * stream). A query too small to gain from the group runs on one worker.
   */
  sql(sql: string, options?: { ipc?: false }): Promise<Table>;
  sql(sql: string, options: { ipc: true }): Promise<Uint8Array>;
  /**
   * The bytes of column chunks `sql` would fetch, from the footers of the
   * files the Delta log keeps for it.
   */
  readBytes(sql: string): Promise<number>;
  /** Stops every worker. */
  close(): void;
}
