//! Write-path benchmarks against PyPI `deltalake` (delta-rs), measured in
//! the same run on the same data shape (compare ratios; the machine is
//! noisy):
//!
//! - ingest: `WAVELAKE_BENCH_ROWS` rows (default 5 million) into a new table;
//! - a one-row UPDATE: time and bytes written, merge-on-read (deletion
//!   vector) against copy-on-write (Wavelake with deletion vectors off, and
//!   deltalake, which rewrites the file);
//! - commits: 100 one-row appends;
//! - OPTIMIZE compaction of those 100 files;
//! - Z-order by (id, bucket) into 4 MB files, and how many files a point
//!   query on each column then reads, on both engines' results.
//!
//! `cargo bench -p wavelake-tests --bench writes` (`scripts/bench.sh writes`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use wavelake_engine::SqlSession;
use wavelake_engine::storage::ObjectStoreStorage;
use wavelake_tests::{run_python, scratch_dir, venv_python_with};

const APPENDS: usize = 100;

fn peer_figure(results: &[serde_json::Value], what: &str, field: &str) -> f64 {
    results
        .iter()
        .find(|r| r["what"] == what)
        .and_then(|r| r[field].as_f64())
        .unwrap_or(f64::NAN)
}

async fn timed(engine: &SqlSession, sql: &str) -> f64 {
    let start = Instant::now();
    engine
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    start.elapsed().as_secs_f64()
}

async fn last_bytes_written(engine: &SqlSession, table: &str) -> f64 {
    let batches = engine
        .query(&format!(
            "SELECT operation_metrics FROM delta_history('{table}') ORDER BY version DESC LIMIT 1"
        ))
        .await
        .unwrap();
    let text = arrow::array::AsArray::as_string::<i32>(batches[0].column(0)).value(0);
    let metrics: serde_json::Value = serde_json::from_str(text).unwrap();
    metrics["numBytesWritten"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Files read of all files, for `id = …` and `bucket = …` point queries.
async fn files_read(engine: &SqlSession, table: &str, rows: u64) -> (u64, u64, u64) {
    let mut read = Vec::new();
    let mut total = 0;
    for predicate in [format!("id = {}", rows / 3), "bucket = 517".to_owned()] {
        let profile = engine
            .profile(&format!("SELECT count(*) FROM {table} WHERE {predicate}"))
            .await
            .unwrap();
        let scan = profile.total();
        total = scan.files_scanned + scan.files_pruned;
        read.push(scan.files_scanned);
    }
    (read[0], read[1], total)
}

fn main() {
    let Some(python) = venv_python_with("write benchmarks", "deltalake") else {
        return;
    };
    let rows: u64 = std::env::var("WAVELAKE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let base = scratch_dir().join("writes-bench");
    let ours = base.join("wavelake");
    let theirs = base.join("deltalake");
    let _ = std::fs::remove_dir_all(&ours);
    std::fs::create_dir_all(&ours).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let engine = wavelake_write::session().with_storage_opener(Arc::new(|location: &str| {
            Ok(Arc::new(ObjectStoreStorage::open(location)?) as _)
        }));
        engine.register_root(ours.to_str().unwrap()).await.unwrap();
        let select = format!(
            "SELECT value AS id, 'name ' || value AS name, CAST(value AS DOUBLE) * 0.5 AS value, \
             (value * 7919) & 1023 AS bucket FROM range(0, {rows})"
        );
        let ingest = timed(
            &engine,
            &format!("CREATE TABLE ingest AS {select}"),
        )
        .await;
        timed(
            &engine,
            &format!(
                "CREATE TABLE ingest_cow TBLPROPERTIES ('delta.enableDeletionVectors' = 'false') \
                 AS {select}"
            ),
        )
        .await;
        let update = format!("SET name = 'changed' WHERE id = {}", rows / 2);
        let mor = timed(&engine, &format!("UPDATE ingest {update}")).await;
        let mor_bytes = last_bytes_written(&engine, "ingest").await;
        let cow = timed(&engine, &format!("UPDATE ingest_cow {update}")).await;
        let cow_bytes = last_bytes_written(&engine, "ingest_cow").await;
        timed(&engine, "CREATE TABLE appends (id BIGINT, name STRING, value DOUBLE, bucket BIGINT)").await;
        let start = Instant::now();
        for i in 0..APPENDS {
            engine
                .query(&format!("INSERT INTO appends VALUES ({i}, 'name {i}', 0.5, 1)"))
                .await
                .unwrap();
        }
        let appends = start.elapsed().as_secs_f64();
        let compact = timed(&engine, "OPTIMIZE appends").await;
        timed(
            &engine,
            "ALTER TABLE ingest SET TBLPROPERTIES ('delta.targetFileSize' = '4mb')",
        )
        .await;
        let zorder = timed(&engine, "OPTIMIZE ingest ZORDER BY (id, bucket)").await;
        let (id_read, bucket_read, files) = files_read(&engine, "ingest", rows).await;

        let peer_out = theirs.to_str().unwrap().to_owned();
        let peer: Vec<serde_json::Value> = run_python(
            &python,
            "bench_peers.py",
            &["writes", &peer_out, &rows.to_string(), &APPENDS.to_string()],
        )
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
        let peer_engine = wavelake_write::session();
        peer_engine
            .register(
                "zordered",
                Arc::new(ObjectStoreStorage::open(theirs.join("ingest").to_str().unwrap()).unwrap()),
            )
            .await
            .unwrap();
        let (peer_id_read, peer_bucket_read, peer_files) =
            files_read(&peer_engine, "zordered", rows).await;

        let ratio = |a: f64, b: f64| a / b;
        println!("## Writes: Wavelake against deltalake 1.6.6, {rows} rows, same run\n");
        println!("| measure | Wavelake | deltalake | Wavelake / deltalake |");
        println!("|---|---|---|---|");
        let peer_ingest = peer_figure(&peer, "ingest", "seconds");
        println!(
            "| ingest rows/s | {:.0} | {:.0} | {:.2} |",
            rows as f64 / ingest,
            rows as f64 / peer_ingest,
            ratio(peer_ingest, ingest)
        );
        let peer_update = peer_figure(&peer, "update-one-row", "seconds");
        let peer_update_bytes = peer_figure(&peer, "update-one-row", "bytes_written");
        println!(
            "| one-row UPDATE, merge-on-read: seconds | {mor:.3} | {peer_update:.3} (copy-on-write) | {:.3} |",
            ratio(mor, peer_update)
        );
        println!(
            "| one-row UPDATE, merge-on-read: bytes written | {mor_bytes:.0} | {peer_update_bytes:.0} (copy-on-write) | {:.5} |",
            ratio(mor_bytes, peer_update_bytes)
        );
        println!(
            "| one-row UPDATE, Wavelake copy-on-write: seconds, bytes | {cow:.3} s, {cow_bytes:.0} B | | bytes MoR / CoW {:.5} |",
            ratio(mor_bytes, cow_bytes)
        );
        let peer_appends = peer_figure(&peer, "appends", "seconds");
        println!(
            "| one-row appends: commits/s | {:.1} | {:.1} | {:.2} |",
            APPENDS as f64 / appends,
            APPENDS as f64 / peer_appends,
            ratio(peer_appends, appends)
        );
        let peer_compact = peer_figure(&peer, "optimize-compact", "seconds");
        println!(
            "| OPTIMIZE of {APPENDS} small files: seconds | {compact:.3} | {peer_compact:.3} | {:.2} |",
            ratio(compact, peer_compact)
        );
        let peer_zorder = peer_figure(&peer, "zorder", "seconds");
        println!(
            "| Z-order by (id, bucket): seconds | {zorder:.2} | {peer_zorder:.2} | {:.2} |",
            ratio(zorder, peer_zorder)
        );
        println!(
            "| after Z-order, files read for id = … / bucket = … | {id_read}/{files}, {bucket_read}/{files} | {peer_id_read}/{peer_files}, {peer_bucket_read}/{peer_files} | |"
        );
    });
}
