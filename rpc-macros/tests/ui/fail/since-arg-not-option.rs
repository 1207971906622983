use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "4.2")]
impl Manager {
    #[rpc(since = "4.0")]
    async fn select(&self, _ctx: &Context, #[since("4.2")] uuids: Vec<String>) {}
}

fn main() {}
