//! The client side: deciding where a query runs, and sending it to the
//! cluster when it goes there.

use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use wavelake_engine::distributed::DeltaLogicalCodec;

use super::NO_WORK_STEALING;

/// How long the scheduler has to accept a connection before a query sent
/// there fails as `CLUSTER_UNAVAILABLE`.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A Ballista cluster the queries that read much data go to.
#[derive(Debug, Clone)]
pub struct Cluster {
    scheduler: String,
    scheduler_url: String,
    min_scan_bytes: u64,
}

/// Where a query runs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// In this process.
    Local(String),
    /// On the cluster.
    Cluster(String),
}

impl Placement {
    /// `server` or `cluster`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Local(_) => "server",
            Self::Cluster(_) => "cluster",
        }
    }

    /// Why the query runs there.
    pub fn reason(&self) -> &str {
        match self {
            Self::Local(reason) | Self::Cluster(reason) => reason,
        }
    }
}

impl Cluster {
    /// The cluster whose scheduler is at `scheduler` (`HOST:PORT`), for
    /// queries reading at least `min_scan_bytes`.
    pub fn new(scheduler: &str, min_scan_bytes: u64) -> Self {
        let scheduler = scheduler
            .trim_start_matches("http://")
            .trim_start_matches("df://")
            .trim_end_matches('/');
        Self {
            scheduler: scheduler.to_owned(),
            scheduler_url: format!("http://{scheduler}"),
            min_scan_bytes,
        }
    }

    /// Where `plan` (optimized, so that its scans carry their filters)
    /// should run: on the cluster when it reads only Delta tables and
    /// would read at least the threshold after partition and statistics
    /// pruning, estimated from the Delta log alone.
    pub fn place(&self, plan: &LogicalPlan, state: &SessionState) -> Placement {
        if !matches!(
            plan,
            LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_)
                | LogicalPlan::Sort(_)
                | LogicalPlan::Join(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Window(_)
                | LogicalPlan::Distinct(_)
                | LogicalPlan::Union(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::TableScan(_)
        ) {
            return Placement::Local(format!(
                "{} runs in the server",
                plan.display()
                    .to_string()
                    .split(':')
                    .next()
                    .unwrap_or("this statement")
            ));
        }
        let estimate = wavelake_engine::ReadEstimate::of(plan, state);
        if let Some(source) = estimate.other_source {
            return Placement::Local(format!(
                "{source} is not a Delta table the cluster can read"
            ));
        }
        if estimate.scans == 0 {
            return Placement::Local("it reads no table".into());
        }
        let (bytes, files) = (estimate.bytes, estimate.files);
        if bytes >= self.min_scan_bytes {
            Placement::Cluster(format!(
                "it reads {bytes} bytes in {files} files, at least the cluster threshold of {} bytes",
                self.min_scan_bytes
            ))
        } else {
            Placement::Local(format!(
                "it reads {bytes} bytes in {files} files, under the cluster threshold of {} bytes",
                self.min_scan_bytes
            ))
        }
    }

    /// `frame` as a frame that runs on the cluster: its plan goes to the
    /// scheduler, Delta tables as location and version. A scheduler that
    /// does not accept a connection is `ClusterUnavailable`, before
    /// anything is sent.
    pub async fn distribute(&self, frame: DataFrame) -> wavelake_engine::Result<DataFrame> {
        let unavailable = |reason: String| wavelake_engine::Error::ClusterUnavailable {
            scheduler: self.scheduler.clone(),
            reason,
        };
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect(self.scheduler.as_str()),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => {
                return Err(unavailable(format!(
                    "no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        }
        Ok(self.on_scheduler(frame)?)
    }

    fn on_scheduler(&self, frame: DataFrame) -> datafusion::error::Result<DataFrame> {
        let (state, plan) = frame.into_parts();
        let (key, value) = NO_WORK_STEALING;
        let mut config = state
            .config()
            .clone()
            .upgrade_for_ballista()
            .with_ballista_grpc_client_max_message_size(super::MAX_MESSAGE_BYTES as usize)
            .with_ballista_logical_extension_codec(Arc::new(DeltaLogicalCodec::new(Arc::new(
                ballista_core::serde::BallistaLogicalExtensionCodec::default(),
            ))));
        config.options_mut().set(key, value)?;
        let (key, value) = super::STATIC_PLANNER;
        config.options_mut().set(key, value)?;
        let state = SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build()
            .upgrade_for_ballista(self.scheduler_url.clone())?;
        Ok(DataFrame::new(state, plan))
    }
}
