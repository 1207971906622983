use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "four")]
impl Manager {
    #[rpc]
    async fn ping(&self, _ctx: &Context) {}
}

fn main() {}
