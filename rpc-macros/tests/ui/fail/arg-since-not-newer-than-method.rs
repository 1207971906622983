use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "4.2")]
impl Manager {
    #[rpc(since = "4.1")]
    async fn select(&self, _ctx: &Context, #[since("4.1")] hint: Option<String>) {
        let _ = hint;
    }
}

fn main() {}
