use std::future::Future;

use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    fn answer(&self, _ctx: &Context) -> impl Future<Output = u64> + Send + use<> {
        async { 42 }
    }

    /// Not an RPC method: left alone.
    fn helper(&self) -> u64 {
        1
    }
}

fn main() {
    let _ = Manager.helper();
}
