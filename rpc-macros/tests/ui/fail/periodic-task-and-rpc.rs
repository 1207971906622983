use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    #[periodic_task(spacing = 10)]
    async fn refresh(&self, _ctx: &Context) {}
}

fn main() {}
