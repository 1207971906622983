use rpc_runtime::notification_endpoint;
use rpc_runtime::notify::Notification;

struct Listener;

#[notification_endpoint]
impl Listener {
    async fn info(&self, _batch: Vec<Notification<serde_json::Value>>) {}
    async fn error(&self, _n: Notification<serde_json::Value>) {}
}

fn main() {}
