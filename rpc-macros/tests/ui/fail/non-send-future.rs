use std::rc::Rc;

use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    async fn ping(&self, _ctx: &Context) -> u64 {
        let local = Rc::new(1_u64);
        std::future::ready(()).await;
        *local
    }
}

fn main() {}
