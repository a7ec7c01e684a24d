//! `wavelake optimize | vacuum | restore | checkpoint`: table maintenance
//! from the shell, with progress bars for the long operations.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use wavelake_engine::{Table, storage};
use wavelake_write::optimize::{OptimizeOptions, ProgressFn, optimize};
use wavelake_write::vacuum::{VacuumOptions, vacuum};

/// `wavelake optimize`.
#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// The table's location (a directory or s3://bucket/path).
    pub table: String,
    /// Only partitions matching this predicate over partition columns.
    #[arg(long = "where", value_name = "PREDICATE")]
    pub predicate: Option<String>,
    /// Z-order by these columns (comma-separated) instead of bin-packing.
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub zorder_by: Vec<String>,
}

/// `wavelake vacuum`.
#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// The table's location.
    pub table: String,
    /// Keep files removed within this many hours (default: the table's
    /// delta.deletedFileRetentionDuration, 7 days unless set).
    #[arg(long, value_name = "HOURS")]
    pub retain_hours: Option<f64>,
    /// List the files that would be deleted, deleting nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a retention shorter than the table's.
    #[arg(long)]
    pub force: bool,
}

/// `wavelake restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The table's location.
    pub table: String,
    /// The version to restore.
    #[arg(
        long,
        conflicts_with = "timestamp",
        required_unless_present = "timestamp"
    )]
    pub version: Option<i64>,
    /// Restore the version current at this time ('2024-01-01 12:00:00').
    #[arg(long)]
    pub timestamp: Option<String>,
}

fn open(location: &str) -> Result<Table> {
    Ok(Table::new(storage::open(location)?)?)
}

fn bar(message: &'static str) -> (ProgressBar, ProgressFn) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    let reporter = bar.clone();
    let progress: ProgressFn = Arc::new(move |done, total| {
        reporter.set_length(total);
        reporter.set_position(done);
    });
    (bar, progress)
}

/// Runs `wavelake optimize`.
pub async fn run_optimize(args: OptimizeArgs) -> Result<()> {
    let table = open(&args.table)?;
    let (bar, progress) = bar("rows written");
    let options = OptimizeOptions {
        predicate: args.predicate,
        zorder_by: args.zorder_by,
        progress: Some(progress),
    };
    let state = wavelake_write::session().context().state();
    let outcome = optimize(&table, &state, &options)
        .await
        .with_context(|| format!("cannot optimize {}", args.table))?;
    bar.finish_and_clear();
    match outcome.version {
        None => println!("nothing to optimize"),
        Some(version) => println!(
            "version {version}: {} files ({} bytes) rewritten into {} files ({} bytes), {} rows",
            outcome.files_removed,
            outcome.bytes_removed,
            outcome.files_added,
            outcome.bytes_added,
            outcome.rows
        ),
    }
    Ok(())
}

/// Runs `wavelake vacuum`.
pub async fn run_vacuum(args: VacuumArgs) -> Result<()> {
    let table = open(&args.table)?;
    let (bar, progress) = bar("files deleted");
    let options = VacuumOptions {
        retain_hours: args.retain_hours,
        dry_run: args.dry_run,
        skip_retention_check: args.force,
        // `--force` is the operator's: it may go below the safe minimum.
        minimum_retention_ms: args.force.then_some(0),
        progress: Some(progress),
    };
    let outcome = vacuum(&table, &options)
        .await
        .with_context(|| format!("cannot vacuum {}", args.table))?;
    bar.finish_and_clear();
    if outcome.dry_run {
        for file in &outcome.files {
            println!("{file}");
        }
        println!(
            "would delete {} files ({} bytes)",
            outcome.files.len(),
            outcome.bytes
        );
    } else {
        println!(
            "deleted {} files ({} bytes)",
            outcome.files.len(),
            outcome.bytes
        );
    }
    Ok(())
}

/// Runs `wavelake restore`.
pub async fn run_restore(args: RestoreArgs) -> Result<()> {
    let table = open(&args.table)?;
    let snapshot = match (args.version, &args.timestamp) {
        (Some(version), _) => table.snapshot_at(Some(version)).await?,
        (None, Some(text)) => {
            let engine = wavelake_write::session();
            engine.register("t", table.storage().clone()).await?;
            let sql = format!(
                "SELECT max(version) FROM delta_history('t') WHERE timestamp <= TIMESTAMP '{}'",
                text.replace('\'', "''")
            );
            let batches = engine.query(&sql).await?;
            let version = batches
                .first()
                .and_then(|b| {
                    arrow::array::AsArray::as_primitive_opt::<arrow::datatypes::Int64Type>(
                        b.column(0),
                    )
                    .filter(|c| !c.is_empty() && arrow::array::Array::is_valid(*c, 0))
                    .map(|c| c.value(0))
                })
                .with_context(|| format!("no version of the table is as old as {text}"))?;
            table.snapshot_at(Some(version)).await?
        }
        (None, None) => bail!("restore needs --version or --timestamp"),
    };
    let outcome = wavelake_write::restore::restore(&table, &snapshot)
        .await
        .with_context(|| format!("cannot restore {}", args.table))?;
    println!(
        "version {}: restored version {} ({} files removed, {} brought back)",
        outcome.version, outcome.restored_version, outcome.files_removed, outcome.files_restored
    );
    Ok(())
}

/// Runs `wavelake checkpoint`.
pub async fn run_checkpoint(location: &str) -> Result<()> {
    let table = open(location)?;
    let info = wavelake_write::checkpoint::write_checkpoint(
        table.storage().as_ref(),
        None,
        wavelake_write::now_ms(),
    )
    .await
    .with_context(|| format!("cannot checkpoint {location}"))?;
    println!(
        "checkpoint of version {}: {} actions, {} files, {} bytes",
        info.version, info.actions, info.add_files, info.size_in_bytes
    );
    Ok(())
}
