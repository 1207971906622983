use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[periodic_task(spacing = 10, run_immediatly)]
    async fn refresh(&self, _ctx: &Context) {}
}

fn main() {}
