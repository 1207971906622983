use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    fn ping(&self, _ctx: &Context) -> String {
        String::new()
    }
}

fn main() {}
