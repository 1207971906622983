use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "4.2")]
impl Manager {
    #[rpc(since = "4.3")]
    async fn ping(&self, _ctx: &Context) {}
}

fn main() {}
