//! The service group (nova's database driver): a heartbeat every `report_interval` increments the
//! service's `report_count` and sets `updated_at`. A heartbeat that fails is logged and tried again
//! at the next interval; it never touches the RPC server.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::registry::{Registry, ServiceRecord};

/// What the heartbeat loop has done so far, for whoever watches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatStatus {
    /// Heartbeats the registry took.
    pub succeeded: u64,
    /// Heartbeats that failed.
    pub failed: u64,
    /// The row after the last heartbeat that succeeded.
    pub record: Option<ServiceRecord>,
    /// The last failure, if the last heartbeat failed.
    pub last_error: Option<String>,
}

/// Joins the group: a heartbeat now, then one every `interval` until `stop` turns true.
pub(crate) fn join(
    registry: Arc<dyn Registry>,
    id: i64,
    topic: &str,
    interval: Duration,
    status: watch::Sender<HeartbeatStatus>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let topic = topic.to_owned();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = ticks.tick() => {}
            }
            // A heartbeat slower than the interval is already late: give up on it then (a
            // database that does not answer would otherwise hold the loop for the pool's
            // acquire timeout), count it failed, and try again on the next tick.
            let attempt = tokio::time::timeout(interval, registry.heartbeat(id)).await;
            match attempt {
                Ok(Ok(record)) => status.send_modify(|s| {
                    s.succeeded += 1;
                    s.record = Some(record);
                    s.last_error = None;
                }),
                failed => {
                    let reason = match failed {
                        Ok(Err(error)) => crate::error::chain(&error),
                        _ => format!("the registry did not answer within {interval:?}"),
                    };
                    tracing::warn!(error = %reason, retry_in = ?interval, "heartbeat failed; the service keeps serving");
                    if let Some(metrics) = crate::metrics::get() {
                        metrics.heartbeat_failed(&topic);
                    }
                    status.send_modify(|s| {
                        s.failed += 1;
                        s.last_error = Some(reason);
                    });
                }
            }
        }
    })
}
