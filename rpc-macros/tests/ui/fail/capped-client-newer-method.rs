use rpc_runtime::{Context, MemoryBroker, rpc_endpoint};
use std::sync::Arc;

struct Scheduler;

#[rpc_endpoint(topic = "scheduler", version = "4.2")]
impl Scheduler {
    #[rpc(since = "4.0")]
    async fn select(&self, _ctx: &Context, count: u32) -> u32 {
        count
    }

    #[rpc(since = "4.2")]
    async fn reserve(&self, _ctx: &Context, host: String) -> bool {
        !host.is_empty()
    }
}

async fn old_caller() {
    let client = SchedulerClient::new(Arc::new(MemoryBroker::new().transport()));
    let capped = client.capped::<scheduler_versions::V4_1>();
    let _ = capped.select(&rpc_runtime::Context::new(), 1).await;
    let _ = capped.reserve(&rpc_runtime::Context::new(), "h1".into()).await;
}

fn main() {
    drop(old_caller());
}
