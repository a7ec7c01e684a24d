// Type-checked (tsc --noEmit --strict) against the built package's .d.ts by
// tests/integration/npm_package.rs: the README's uses of the API, written
// as a TypeScript user would.
import init, {
  Wavelake,
  type PersistentCacheFigures,
  type Placement,
  type QueryProgress,
  type QueryReport,
  type QueryResult,
} from "../dist/wavelake.js";
import { WavelakeGroup } from "../dist/group.js";
import type { Table } from "apache-arrow";

export async function tour(endpoint: string, bearerToken: string): Promise<number> {
  await init();
  const lake: Wavelake = await Wavelake.connect({ endpoint, bearerToken, cacheBytes: 1 << 20 });
  const shares: string[] = await lake.shares();
  const schemas: string[] = await lake.schemas(shares[0]);
  const names: string[] = lake.tables();
  const controller = new AbortController();
  const seen: QueryProgress[] = [];
  const result = await lake.sql(`SELECT count(*) AS n FROM ${names[0]}`, {
    signal: controller.signal,
    onProgress: (progress) => seen.push(progress),
  });
  const table = result as Table;
  const bytes = (await lake.sql("SELECT 1", { ipc: true })) as Uint8Array;
  const report: QueryReport = await lake.explain(`SELECT * FROM ${names[0]}`);
  const fetched: number = report.scans.reduce((sum, scan) => sum + scan.bytes_fetched, 0);
  const offloading = await Wavelake.connect({ endpoint, bearerToken, server: { maxPageBytes: 1 << 28, runOn: "auto" } });
  const advice: Placement = await offloading.placement(`SELECT * FROM ${names[0]}`);
  const ran: QueryResult = await offloading.query(`SELECT * FROM ${names[0]}`, {
    runOn: advice.runOn === "server" ? "server" : "page",
  });
  const where: "page" | "server" | "cluster" = ran.ranOn;
  const took: number = ran.elapsedMs + ran.bytesFetched + ran.bytesReceived + (ran.bytesRead ?? 0);
  void where;
  const onHost = await Wavelake.openTable("trips", "https://data.example.com/trips/", { cacheBytes: 0 });
  const persisted = await Wavelake.openTable("trips", "https://data.example.com/trips/", {
    persistentCacheBytes: 512 << 20,
  });
  const figures: PersistentCacheFigures | null = await persisted.persistentCache();
  const served: number = (figures?.bytesServed ?? 0) + (figures?.hits ?? 0) + (figures?.bytesHeld ?? 0);
  await Wavelake.clearPersistentCache();
  const version: number = await onHost.addTableFromUrls("presigned", {
    "_delta_log/00000000000000000000.json": "https://bucket.example.com/t/00.json?sig=1",
  });
  try {
    await Wavelake.empty().sql("SELEC nonsense");
  } catch (error) {
    const code: unknown = (error as Error & { code: string }).code;
    void code;
  }
  return table.numRows + bytes.length + fetched + version + schemas.length + seen.length + took + served;
}

export async function everyCore(url: string): Promise<number> {
  const group: WavelakeGroup = await WavelakeGroup.start({ workers: 2, cacheBytes: 32 << 20, spreadFromBytes: 16 << 20 });
  const version: number = await group.addTable("orders", url);
  const chunks: number = await group.readBytes("SELECT count(*) FROM orders");
  const table: Table = await group.sql("SELECT count(*) FROM orders");
  const ipc: Uint8Array = await group.sql("SELECT 1", { ipc: true });
  const size: number = group.size;
  group.close();
  return version + table.numRows + ipc.length + size + chunks;
}
