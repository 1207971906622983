use rpc_runtime::{Context, rpc_endpoint};

struct Manager<T>(T);

#[rpc_endpoint(topic = "t", version = "1.0")]
impl<T: Send + Sync + 'static> Manager<T> {
    #[rpc]
    async fn ping(&self, _ctx: &Context) {}
}

fn main() {}
