use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "4.2", aliases = "zed=4.1, antelope")]
impl Manager {
    #[rpc]
    async fn ping(&self, _ctx: &Context) {}
}

struct Other;

#[rpc_endpoint(topic = "t", version = "4.2", aliases = "zed=4.3, yoga=3.9")]
impl Other {
    #[rpc]
    async fn ping(&self, _ctx: &Context) {}
}

fn main() {}
