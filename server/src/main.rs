//! `wavelake`: the command-line front end of the Wavelake engine.
//!
//! `wavelake sql "<query>" --table name=LOCATION [--format table|csv|json|parquet]`
//! queries Delta tables in a directory, on S3 or on any HTTP host, printing
//! the result on standard output. `wavelake optimize | vacuum | restore |
//! checkpoint LOCATION` maintain one table. `wavelake serve` is the server.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod admission;
mod api;
mod auth;
mod background;
#[cfg(feature = "cluster")]
mod cluster;
mod config;
mod connections;
mod document;
mod error;
mod events;
mod files;
mod flight;
mod ingest;
mod maintenance;
mod names;
mod output;
mod placement;
mod router;
mod secrets;
mod serve;
mod shares;
mod sharing;
mod signing;
mod state;
mod transactions;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: a server allocates and frees
/// small buffers on every request and every batch from several threads,
/// where glibc's arenas spent a sixth of a one-row append's CPU time. It
/// keeps what a query frees for the next one
/// ([`wavelake_allocator::keep_freed_memory`]).
#[global_allocator]
static ALLOCATOR: wavelake_allocator::Allocator = wavelake_allocator::Allocator;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use wavelake_engine::storage;

use output::{Format, write_batches};

/// Wavelake: SQL over Delta Lake tables.
#[derive(Debug, Parser)]
#[command(name = "wavelake", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs one SQL statement over Delta tables and prints the result.
    Sql {
        /// The statement, e.g. "SELECT count(*) FROM t VERSION AS OF 3".
        query: String,
        /// A table to register, as NAME=LOCATION (a directory, s3://bucket/path
        /// or an http(s):// base URL). Repeatable.
        #[arg(long = "table", short = 't', value_name = "NAME=LOCATION")]
        tables: Vec<String>,
        /// A table root: every Delta table in a directory directly under it
        /// is registered by its directory name, and CREATE TABLE without a
        /// LOCATION creates the table there.
        #[arg(long, value_name = "DIR")]
        root: Option<String>,
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Runs the query on the DataFusion Ballista cluster whose
        /// scheduler is at HOST:PORT (its executors must serve --root).
        #[cfg(feature = "cluster")]
        #[arg(long, value_name = "HOST:PORT", requires = "root")]
        cluster: Option<String>,
    },
    /// Compacts small files (and files with deletion vectors), or Z-orders.
    Optimize(maintenance::OptimizeArgs),
    /// Deletes files no version within the retention window needs.
    Vacuum(maintenance::VacuumArgs),
    /// Makes the latest version hold an earlier version's data again.
    Restore(maintenance::RestoreArgs),
    /// Writes a checkpoint of the latest version.
    Checkpoint {
        /// The table's location.
        table: String,
    },
    /// Serves the tables under a root over HTTP: SQL, tables, tokens,
    /// health and metrics.
    Serve {
        /// The table root (tables at ROOT/<namespace>/<table>).
        #[arg(long, value_name = "DIR")]
        root: Option<String>,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Also speak Arrow Flight SQL (gRPC) on this address, with the
        /// same tokens and sandbox as the HTTP API.
        #[arg(long, value_name = "ADDR")]
        flight_listen: Option<std::net::SocketAddr>,
        /// A TOML configuration file (environment and flags override it).
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
        /// A DataFusion Ballista scheduler (HOST:PORT) that queries reading
        /// much data go to (see `[cluster]` in the configuration).
        #[arg(long, value_name = "HOST:PORT")]
        cluster: Option<String>,
    },
    /// Runs a cluster scheduler: large queries from `serve --cluster` and
    /// `sql --cluster` are planned here and run on the executors.
    #[cfg(feature = "cluster")]
    Scheduler(cluster::SchedulerArgs),
    /// Runs a cluster executor, which reads the tables under its root.
    #[cfg(feature = "cluster")]
    Executor(cluster::ExecutorArgs),
}

fn main() -> ExitCode {
    wavelake_allocator::keep_freed_memory();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let engine_error = e
                .chain()
                .find_map(|c| c.downcast_ref::<wavelake_engine::Error>());
            match engine_error {
                Some(engine_error) => eprintln!("error [{}]: {e:#}", engine_error.code()),
                None => eprintln!("error: {e:#}"),
            }
            match engine_error {
                Some(wavelake_engine::Error::CommitConflict { .. }) => {
                    ExitCode::from(CONFLICT_EXIT_CODE)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// `frame` sent to the cluster at `scheduler` when it can run there (it
/// reads only Delta tables); otherwise run here, saying why on stderr.
#[cfg(feature = "cluster")]
async fn on_cluster(
    frame: datafusion::dataframe::DataFrame,
    scheduler: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    let cluster = cluster::Cluster::new(scheduler);
    let (state, plan) = frame.into_parts();
    let optimized = state
        .optimize(&plan)
        .map_err(wavelake_engine::Error::from)?;
    let placement = placement::Placement::of(&optimized, &state, Some(0));
    let frame = datafusion::dataframe::DataFrame::new(state, plan);
    match placement.site {
        placement::Site::Cluster => Ok(cluster.distribute(frame).await?),
        placement::Site::Server => {
            eprintln!("running here, not on the cluster: {}", placement.reason);
            Ok(frame)
        }
    }
}

/// The exit status of a command whose commit lost to a concurrent,
/// conflicting one (nothing was changed: running it again may succeed);
/// other failures exit with 1.
const CONFLICT_EXIT_CODE: u8 = 3;

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            root,
            listen,
            flight_listen,
            config,
            cluster,
        } => {
            serve::init_logging();
            let config = config::ServerConfig::load(&config::Overrides {
                config_file: config,
                root,
                listen,
                flight_listen,
                cluster,
            })?;
            serve::serve(config).await
        }
        #[cfg(feature = "cluster")]
        Command::Scheduler(args) => {
            serve::init_logging();
            cluster::run_scheduler(args).await
        }
        #[cfg(feature = "cluster")]
        Command::Executor(args) => {
            serve::init_logging();
            cluster::run_executor(args).await
        }
        Command::Optimize(args) => maintenance::run_optimize(args).await,
        Command::Vacuum(args) => maintenance::run_vacuum(args).await,
        Command::Restore(args) => maintenance::run_restore(args).await,
        Command::Checkpoint { table } => maintenance::run_checkpoint(&table).await,
        Command::Sql {
            query,
            tables,
            root,
            format,
            #[cfg(feature = "cluster")]
            cluster,
        } => {
            let engine = wavelake_write::session()
                .with_storage_opener(Arc::new(|location: &str| storage::open(location)));
            if let Some(root) = &root {
                if !root.contains("://") {
                    std::fs::create_dir_all(root)
                        .with_context(|| format!("cannot create the table root {root}"))?;
                }
                engine
                    .register_root(root)
                    .await
                    .with_context(|| format!("cannot open the tables under {root}"))?;
            }
            for spec in &tables {
                let Some((name, location)) = spec.split_once('=') else {
                    bail!("--table takes NAME=LOCATION, got {spec:?}");
                };
                if name.is_empty() || location.is_empty() {
                    bail!("--table takes NAME=LOCATION, got {spec:?}");
                }
                let storage = storage::open(location)?;
                engine
                    .register(name, storage)
                    .await
                    .with_context(|| format!("cannot open table {name} at {location}"))?;
            }
            let frame = engine.sql(&query).await?;
            #[cfg(feature = "cluster")]
            let frame = match cluster {
                Some(scheduler) => on_cluster(frame, &scheduler).await?,
                None => frame,
            };
            let schema = frame.schema().as_arrow().clone();
            let batches = frame
                .collect()
                .await
                .map_err(wavelake_engine::Error::from)?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write_batches(&mut lock, format, &schema, &batches)
        }
    }
}
