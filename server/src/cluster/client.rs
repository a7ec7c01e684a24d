//! The client side: sending a query to the cluster (where it runs is
//! [`crate::placement`]'s decision).

use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SessionStateBuilder;
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
}

impl Cluster {
    /// The cluster whose scheduler is at `scheduler` (`HOST:PORT`).
    pub fn new(scheduler: &str) -> Self {
        let scheduler = scheduler
            .trim_start_matches("http://")
            .trim_start_matches("df://")
            .trim_end_matches('/');
        Self {
            scheduler: scheduler.to_owned(),
            scheduler_url: format!("http://{scheduler}"),
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
