//! The scheduler's interface (topic `scheduler`): the 4.x API and the 3.x compatibility API, and
//! the capacity reports compute agents send to every scheduler.

use std::sync::Arc;

use rpc_runtime::{CallOptions, Context, Transport};

use crate::compute::ReportSink;
pub use crate::manager::{SchedulerManagerClient, SchedulerV3Client};

/// Capacity reports sent to every scheduler over `transport`: `report_capacity`, a fanout cast.
pub fn capacity_reports(transport: Arc<dyn Transport>) -> ReportSink {
    let schedulers =
        SchedulerManagerClient::new(transport).prepare(CallOptions::new().fanout(true));
    ReportSink::new(move |report| {
        let schedulers = schedulers.clone();
        Box::pin(async move { schedulers.report_capacity(&Context::new(), report).await })
    })
}
