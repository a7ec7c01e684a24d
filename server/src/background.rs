//! Background maintenance: every `maintenance.interval_secs`, each table
//! under the root is compacted (OPTIMIZE, bin-packing) and vacuumed with its
//! own retention, unless the server's configuration or the table's
//! properties (`wavelake.autoOptimize`, `wavelake.autoVacuum` = `false`)
//! turn it off. Wavelake's commits write checkpoints themselves every
//! `delta.checkpointInterval` commits; the round checkpoints tables that
//! went that many commits without one (other writers' commits).

use std::sync::Arc;
use std::time::Duration;

use crate::config::MaintenanceConfig;
use tracing::Instrument;

use crate::state::AppState;
use wavelake_engine::log::segment::read_last_checkpoint;
use wavelake_engine::protocol::features::ensure_writable;
use wavelake_write::checkpoint::{checkpoint_interval, write_checkpoint};
use wavelake_write::now_ms;
use wavelake_write::optimize::{OptimizeOptions, optimize};
use wavelake_write::vacuum::{VacuumOptions, vacuum};

/// Table property that turns background compaction off for one table.
pub const AUTO_OPTIMIZE_PROPERTY: &str = "wavelake.autoOptimize";
/// Table property that turns background VACUUM off for one table.
pub const AUTO_VACUUM_PROPERTY: &str = "wavelake.autoVacuum";

/// Runs rounds until the process ends.
pub async fn run(state: Arc<AppState>) {
    let config = state.config.maintenance.clone();
    if config.interval_secs == 0 || state.writes_refused.is_some() {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(config.interval_secs));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(e) = round(&state, &config).await {
            tracing::warn!(error = %e, "maintenance round failed");
        }
    }
}

/// One round over every table.
pub async fn round(state: &AppState, config: &MaintenanceConfig) -> anyhow::Result<()> {
    let root = state.root_storage()?;
    for namespace in root.list_directories("").await? {
        if namespace.starts_with('_') {
            continue;
        }
        for name in root.list_directories(&format!("{namespace}/")).await? {
            let location = format!("{}/{namespace}/{name}", state.config.root);
            let span = tracing::info_span!("maintenance", table = %format!("{namespace}.{name}"));
            if let Err(e) = maintain(state, config, &location).instrument(span).await {
                tracing::warn!(error = %e, "table maintenance failed");
            }
        }
    }
    Ok(())
}

async fn maintain(
    state: &AppState,
    config: &MaintenanceConfig,
    location: &str,
) -> anyhow::Result<()> {
    let table = state.table(location)?;
    let snapshot = match table.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(wavelake_engine::Error::TableNotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let enabled = |property: &str| {
        !snapshot
            .metadata()
            .property(property)
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
    };
    if config.checkpoint && ensure_writable(snapshot.protocol(), snapshot.metadata()).is_ok() {
        let storage = table.storage().as_ref();
        let last = read_last_checkpoint(storage)
            .await?
            .map_or(-1, |hint| hint.version);
        if snapshot.version() - last >= checkpoint_interval(snapshot.metadata()) {
            let written = write_checkpoint(storage, Some(snapshot.version()), now_ms()).await?;
            metrics::counter!("wavelake_maintenance_checkpoints_total").increment(1);
            tracing::info!(version = written.version, "checkpointed");
        }
    }
    if config.optimize && enabled(AUTO_OPTIMIZE_PROPERTY) {
        let session = wavelake_write::session();
        let outcome = optimize(
            &table,
            &session.context().state(),
            &OptimizeOptions::default(),
        )
        .await?;
        if outcome.version.is_some() {
            metrics::counter!("wavelake_maintenance_files_compacted_total")
                .increment(outcome.files_removed as u64);
            tracing::info!(
                removed = outcome.files_removed,
                added = outcome.files_added,
                "compacted"
            );
        }
    }
    if config.vacuum && enabled(AUTO_VACUUM_PROPERTY) {
        let options = VacuumOptions {
            minimum_retention_ms: Some(state.config.limits.minimum_retention_ms()),
            ..VacuumOptions::default()
        };
        let outcome = vacuum(&table, &options).await?;
        metrics::counter!("wavelake_maintenance_files_vacuumed_total")
            .increment(outcome.files.len() as u64);
        if !outcome.files.is_empty() {
            tracing::info!(
                files = outcome.files.len(),
                bytes = outcome.bytes,
                "vacuumed"
            );
        }
    }
    Ok(())
}
