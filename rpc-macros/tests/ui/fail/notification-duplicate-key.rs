use rpc_runtime::notification_endpoint;
use rpc_runtime::notify::Notification;

struct Listener;

#[notification_endpoint(event_type = "a", event_type = "b", payload(state = "x", state = "y"))]
impl Listener {
    async fn info(&self, _n: Notification<serde_json::Value>) {}
}

fn main() {}
