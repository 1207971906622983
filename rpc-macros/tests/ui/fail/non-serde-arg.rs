use rpc_runtime::{Context, rpc_endpoint};

struct Manager;
struct NotSerde;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    async fn take(&self, _ctx: &Context, value: NotSerde) {
        let _ = value;
    }
}

fn main() {}
