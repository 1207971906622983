use rpc_runtime::notification_endpoint;
use rpc_runtime::notify::Notification;

struct Listener;

#[notification_endpoint]
impl Listener {
    fn info(&self, _n: Notification<serde_json::Value>) {}
}

fn main() {}
