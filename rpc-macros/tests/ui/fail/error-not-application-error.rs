use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Busy;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    async fn work(&self, _ctx: &Context) -> Result<u64, Busy> {
        Err(Busy)
    }
}

fn main() {}
