use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc(cast)]
    async fn count(&self, _ctx: &Context) -> u64 {
        0
    }
}

fn main() {}
