use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(version = "1.0")]
impl Manager {
    #[rpc]
    async fn ping(&self, _ctx: &Context) {}
}

fn main() {}
