use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[periodic_task(spacing = 10)]
    fn not_async(&self, _ctx: &Context) {}

    #[periodic_task(spacing = 10)]
    async fn no_context(&self) {}

    #[periodic_task(spacing = 10)]
    async fn with_argument(&self, _ctx: &Context, _limit: u32) {}

    #[periodic_task(spacing = 10)]
    async fn returns_a_value(&self, _ctx: &Context) -> u32 {
        1
    }
}

fn main() {}
