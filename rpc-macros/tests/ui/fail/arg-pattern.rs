use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    async fn add(&self, _ctx: &Context, (a, b): (i64, i64)) -> i64 {
        a + b
    }
}

fn main() {}
