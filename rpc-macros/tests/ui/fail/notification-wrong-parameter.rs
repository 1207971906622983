use rpc_runtime::notification_endpoint;

struct Listener;

#[notification_endpoint]
impl Listener {
    async fn info(&self, _n: String) {}
}

fn main() {}
