//! `wavelake serve`: opens the root, loads the tokens (issuing the admin
//! token on first start), and serves the API until SIGINT or SIGTERM, then
//! lets requests in flight (and their commits) finish.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::auth::{Scope, TokenStore};
use crate::config::ServerConfig;
use crate::router;
use crate::state::{AppState, storage_opener};
use wavelake_engine::storage::check_exclusive_commits;

/// Starts logging: human-readable, or JSON lines when
/// `WAVELAKE_LOG_FORMAT=json`; the level from `RUST_LOG` (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("WAVELAKE_LOG_FORMAT").is_ok_and(|f| f == "json");
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs the server.
pub async fn serve(mut config: ServerConfig) -> Result<()> {
    tracing::info!(config = ?config, "starting");
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{bound}"));
    }
    if !config.root.contains("://") {
        std::fs::create_dir_all(&config.root)
            .with_context(|| format!("cannot create the table root {}", config.root))?;
    }
    let opener = storage_opener(config.storage.clone().into_iter().collect());
    let root = opener(&config.root).with_context(|| format!("cannot open {}", config.root))?;
    let writes_refused = match check_exclusive_commits(root.as_ref(), "_wavelake/").await {
        Ok(()) => None,
        Err(e @ wavelake_engine::Error::UnsafeStorage { .. }) => {
            tracing::error!(error = %e, "serving reads only");
            eprintln!("warning: {e}");
            Some(e.to_string())
        }
        Err(e) => return Err(e).context("cannot check the table root's store"),
    };
    let tokens = TokenStore::load(root.clone(), config.admin_token.as_deref()).await?;
    let signer = crate::signing::UrlSigner::load_or_create(&root, config.public_url()).await?;
    let shares = crate::shares::ShareStore::load(root.clone()).await?;
    crate::shares::apply_config(&shares, &tokens, &config.sharing)
        .await
        .context("bad [sharing] configuration")?;
    if !tokens.has_admin() {
        let (_, token) = tokens
            .issue("admin (first start)", vec![Scope::Admin])
            .await?;
        // Shown once, on the terminal only: the store keeps its hash.
        eprintln!("admin token (shown once, keep it): {token}");
    }
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("cannot start the metrics recorder")?;
    let state_url = config.public_url();
    let connection_limits = crate::connections::ConnectionLimits {
        max_connections: config.limits.max_connections,
        header_timeout: Duration::from_secs(config.limits.header_timeout_secs),
    };
    let state = Arc::new(AppState {
        tokens,
        opener,
        metrics,
        signer,
        shares,
        snapshots: Arc::default(),
        admission: crate::admission::Admission::new(
            config.limits.max_running_statements,
            config.limits.max_running_per_token,
        ),
        memory: wavelake_engine::memory::shared_pool(config.limits.server_memory_bytes),
        hot_data: (config.limits.hot_data_bytes > 0).then(|| {
            Arc::new(wavelake_engine::hot_data::HotData::new(
                config.limits.hot_data_bytes,
            ))
        }),
        result_cache: (config.limits.result_cache_bytes > 0).then(|| {
            Arc::new(wavelake_engine::result_cache::ResultCache::new(
                config.limits.result_cache_bytes,
            ))
        }),
        writes_refused,
        buffers: Arc::new(crate::ingest::Buffers::new(
            config.ingest.wal_dir(&config.root),
            config.ingest.settings(),
        )),
        watchers: crate::events::Watchers::new(Duration::from_millis(
            config.events.poll_interval_ms,
        )),
        subscriptions: crate::admission::Admission::new(
            config.events.max_subscriptions,
            config.events.max_subscriptions_per_token,
        ),
        transactions: crate::transactions::Transactions::default(),
        config,
    });
    recover_buffers(&state).await?;
    tokio::spawn(crate::background::run(state.clone()));
    tokio::spawn(sync_with_other_servers(state.clone()));
    tokio::spawn(expire_idle_transactions(state.clone()));
    let router = router::router(state.clone());
    // One shutdown signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let flight = match state.config.flight_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for Flight SQL on {address}"))?;
            let flight_bound = listener.local_addr()?;
            println!("wavelake flight sql listening on grpc://{flight_bound}");
            tracing::info!(%flight_bound, "Flight SQL listening");
            let mut stopped = stopped.clone();
            let signal = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            Some(tokio::spawn(crate::flight::serve(
                state.clone(),
                listener,
                signal,
            )))
        }
        None => None,
    };
    // Tests and scripts wait for this line.
    println!("wavelake listening on http://{bound}");
    tracing::info!(%bound, public_url = %state_url, "listening");
    let signal = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    crate::connections::serve(listener, router, connection_limits, signal)
        .await
        .context("the server failed")?;
    if let Some(flight) = flight {
        match flight.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "the Flight SQL server failed"),
            Err(e) => tracing::warn!(error = %e, "the Flight SQL server stopped abnormally"),
            Ok(Ok(())) => {}
        }
    }
    state.transactions.close().await;
    state.buffers.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Opens the buffer of every table whose write-ahead log holds segments,
/// so that rows a previous run acknowledged reach their tables (a table
/// dropped since keeps its log, with a warning).
async fn recover_buffers(state: &AppState) -> Result<()> {
    let logged = state
        .buffers
        .logged_tables()
        .context("cannot read the write-ahead log")?;
    for (namespace, table) in logged {
        match state.buffer(&namespace, &table).await {
            Ok(buffer) => tracing::info!(
                table = %format!("{namespace}.{table}"),
                rows = buffer.buffered_rows(),
                "recovered the write buffer"
            ),
            Err(e @ wavelake_engine::Error::TableNotFound { .. }) => tracing::warn!(
                table = %format!("{namespace}.{table}"),
                error = %e,
                "the write-ahead log holds rows of a table that is gone; they are kept"
            ),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot recover the write buffer of {namespace}.{table}")
                });
            }
        }
    }
    Ok(())
}

/// Rolls back transactions left idle (their clients went away), so the
/// files they wrote do not wait for the next transaction to be deleted.
async fn expire_idle_transactions(state: Arc<AppState>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(30));
    loop {
        ticker.tick().await;
        state.transactions.expire().await;
    }
}

/// Reads the tokens and shares other servers on the root changed, every
/// `sync_interval_secs`, so that a token issued or revoked on one server
/// holds on all of them within seconds.
async fn sync_with_other_servers(state: Arc<AppState>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(state.config.sync_interval_secs));
    loop {
        ticker.tick().await;
        if let Err(e) = state.tokens.sync().await {
            tracing::warn!(error = %e, "cannot read the tokens other servers changed");
        }
        if let Err(e) = state.shares.sync().await {
            tracing::warn!(error = %e, "cannot read the shares other servers changed");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
