use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0", topik = "x")]
impl Manager {
    #[rpc]
    async fn ping(&self, _ctx: &Context) {}
}

fn main() {}
