//! `wavelake scheduler` and `wavelake executor`: Ballista's processes,
//! with Wavelake's codecs, storage and limits.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

use super::{
    MAX_MESSAGE_BYTES, NO_WORK_STEALING, allowed_locations, codecs, registry_without_defaults,
};
use crate::config::{Overrides, ServerConfig};

/// `wavelake scheduler`.
#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// Address to listen on. Loopback by default: the cluster's ports carry
    /// no authentication and belong on a private network.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50050")]
    listen: SocketAddr,
    /// The host executors and clients reach this scheduler at (the listen
    /// address's when unset).
    #[arg(long, value_name = "HOST")]
    advertise_host: Option<String>,
    /// The table root the cluster reads (tables at ROOT/<namespace>/<table>);
    /// plans naming other locations are refused.
    #[arg(long, value_name = "DIR")]
    root: Option<String>,
    /// A TOML configuration file (as for `serve`: its root and storage
    /// options).
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// Seconds without a heartbeat after which an executor is declared
    /// dead and its tasks run elsewhere.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    executor_timeout_secs: u64,
}

/// `wavelake executor`.
#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    /// The scheduler, `HOST:PORT`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// Address to serve shuffle data on (Arrow Flight). Loopback by default.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Port the scheduler hands tasks to (gRPC); the listen port + 1 when unset.
    #[arg(long, value_name = "PORT")]
    control_port: Option<u16>,
    /// The host the scheduler and other executors reach this executor at
    /// (the listen address's when unset).
    #[arg(long, value_name = "HOST")]
    advertise_host: Option<String>,
    /// Tasks run at once (the number of cores when unset).
    #[arg(long, value_name = "N")]
    slots: Option<usize>,
    /// Where shuffle files go (a new temporary directory when unset).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<String>,
    /// Seconds between two heartbeats to the scheduler.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    heartbeat_secs: u64,
    /// The table root the executor reads; plans naming other locations
    /// are refused.
    #[arg(long, value_name = "DIR")]
    root: Option<String>,
    /// A TOML configuration file (as for `serve`: its root and storage
    /// options).
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
}

fn load(config: Option<String>, root: Option<String>) -> Result<ServerConfig> {
    ServerConfig::load(&Overrides {
        config_file: config,
        root,
        ..Overrides::default()
    })
}

/// Runs Ballista's scheduler until the process is stopped.
pub async fn run_scheduler(args: SchedulerArgs) -> Result<()> {
    let config = load(args.config, args.root)?;
    let (logical, physical) = codecs(allowed_locations(&config)?);
    let session_builder = Arc::new(|config: SessionConfig| {
        let state = ballista_core::utils::default_session_builder(config)?;
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(registry_without_defaults())
            .build_arc()?;
        Ok(SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(runtime)
            .build())
    });
    let host = args.listen.ip().to_string();
    let scheduler = SchedulerConfig {
        bind_host: host.clone(),
        bind_port: args.listen.port(),
        external_host: args.advertise_host.unwrap_or(host),
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        override_session_builder: Some(session_builder),
        // Tasks spread over every executor, rather than filling the first.
        task_distribution: ballista_scheduler::config::TaskDistributionPolicy::RoundRobin,
        executor_timeout_seconds: args.executor_timeout_secs,
        expire_dead_executor_interval_seconds: (args.executor_timeout_secs / 3).clamp(1, 15),
        no_executors_grace_period_seconds: args.executor_timeout_secs,
        grpc_server_max_decoding_message_size: MAX_MESSAGE_BYTES,
        grpc_server_max_encoding_message_size: MAX_MESSAGE_BYTES,
        grpc_client_max_message_size: MAX_MESSAGE_BYTES,
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&scheduler)
        .await
        .map_err(|e| anyhow!("cannot set up the scheduler: {e}"))?;
    println!("wavelake scheduler listening on {}", args.listen);
    ballista_scheduler::scheduler_process::start_server(cluster, args.listen, Arc::new(scheduler))
        .await
        .map_err(|e| anyhow!("the scheduler stopped: {e}"))
}

/// Runs a Ballista executor until the process is stopped.
pub async fn run_executor(args: ExecutorArgs) -> Result<()> {
    let config = load(args.config, args.root)?;
    let (logical, physical) = codecs(allowed_locations(&config)?);
    let (scheduler_host, scheduler_port) = args
        .scheduler
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
        .ok_or_else(|| anyhow!("--scheduler takes HOST:PORT, got {:?}", args.scheduler))?;
    let work_dir = match args.work_dir {
        Some(dir) => dir,
        None => tempfile::Builder::new()
            .prefix("wavelake-executor-")
            .tempdir()
            .context("cannot create a work directory")?
            .keep()
            .to_string_lossy()
            .into_owned(),
    };
    let spill_dir = work_dir.clone();
    let runtime_producer = Arc::new(move |_: &SessionConfig| {
        RuntimeEnvBuilder::new()
            .with_temp_file_path(spill_dir.clone())
            .with_object_store_registry(registry_without_defaults())
            .build_arc()
    });
    let config_producer = Arc::new(|| {
        let (key, value) = NO_WORK_STEALING;
        let mut config = ballista_core::utils::default_config_producer();
        config.options_mut().set(key, value).ok();
        config
    });
    let host = args.listen.ip().to_string();
    let control_port = match args.control_port {
        Some(port) => port,
        None => args
            .listen
            .port()
            .checked_add(1)
            .ok_or_else(|| anyhow!("--listen's port leaves no room for --control-port"))?,
    };
    let executor = ExecutorProcessConfig {
        bind_host: host.clone(),
        external_host: Some(args.advertise_host.unwrap_or(host)),
        port: args.listen.port(),
        grpc_port: control_port,
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores: args.slots.unwrap_or(0),
        work_dir: Some(work_dir),
        executor_heartbeat_interval_seconds: args.heartbeat_secs.max(1),
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES,
        print_thread_info: false,
        override_logical_codec: Some(logical),
        override_physical_codec: Some(physical),
        override_runtime_producer: Some(runtime_producer),
        override_config_producer: Some(config_producer),
        ..ExecutorProcessConfig::default()
    };
    println!(
        "wavelake executor listening on {} (control port {control_port})",
        args.listen
    );
    start_executor_process(Arc::new(executor))
        .await
        .map_err(|e| anyhow!("the executor stopped: {e}"))
}
