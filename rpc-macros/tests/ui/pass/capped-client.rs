//! A client capped by type: the methods of its version compile, and it converts both ways.
#![deny(warnings)]

use rpc_runtime::{Context, MemoryBroker, Version, VersionMarker, rpc_endpoint};
use std::sync::Arc;

struct Scheduler;

#[rpc_endpoint(topic = "scheduler", version = "4.2")]
impl Scheduler {
    #[rpc(since = "4.0")]
    async fn select(&self, _ctx: &Context, count: u32) -> u32 {
        count
    }

    #[rpc(since = "4.1", cast)]
    async fn update(&self, _ctx: &Context, host: String) {
        let _ = host;
    }
}

async fn callers() {
    let client: SchedulerClient = SchedulerClient::new(Arc::new(MemoryBroker::new().transport()));
    let at_4_1: SchedulerClient<scheduler_versions::V4_1> = client.capped();
    let _ = at_4_1.select(&Context::new(), 1).await;
    let _ = at_4_1.update(&Context::new(), "h".into()).await;
    let at_4_0 = at_4_1.capped::<scheduler_versions::V4_0>();
    let _ = at_4_0.select(&Context::new(), 1).await;
}

fn main() {
    assert_eq!(scheduler_versions::V4_1::VERSION, Version::new(4, 1));
    drop(callers());
}
