// Runs each query through a WavelakeGroup and through one Wavelake session
// over the same tables, in a page or in Node: the rows of both (as sorted
// JSON text) or the error code of both, and how long each took.
const replacer = (_, value) => (typeof value === "bigint" ? value.toString() : value);

function rowsOf(table) {
  return table
    .toArray()
    .map((row) => JSON.stringify(row.toJSON(), replacer))
    .sort();
}

async function outcome(run) {
  const started = performance.now();
  try {
    const rows = rowsOf(await run());
    return { rows, ms: performance.now() - started };
  } catch (error) {
    return { code: error.code ?? null, message: String(error.message ?? error), ms: performance.now() - started };
  }
}

export async function compareGroup({ WavelakeGroup, Wavelake, base, tables, queries, workers }) {
  // Every query spread, and a group that runs queries under 16 MiB of
  // column chunks on one worker.
  const group = await WavelakeGroup.start({ workers });
  const sized = await WavelakeGroup.start({ workers, spreadFromBytes: 16 * 1024 * 1024 });
  const alone = Wavelake.empty({ persistentCacheBytes: 0 });
  try {
    for (const name of tables) {
      const url = `${base}/${name}`;
      const [grouped, single] = [await group.addTable(name, url), await alone.addTable(name, url)];
      if (grouped !== single) throw new Error(`${name}: version ${grouped} in the group, ${single} alone`);
      await sized.addTable(name, url);
    }
    const results = [];
    for (const sql of queries) {
      const readBytes = await sized.readBytes(sql).catch((error) => error.code ?? String(error));
      results.push({
        sql,
        readBytes,
        group: await outcome(() => group.sql(sql)),
        sized: await outcome(() => sized.sql(sql)),
        alone: await outcome(() => alone.sql(sql)),
      });
    }
    return { size: group.size, results };
  } finally {
    group.close();
    sized.close();
  }
}
