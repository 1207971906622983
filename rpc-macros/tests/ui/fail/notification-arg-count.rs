use rpc_runtime::notification_endpoint;
use rpc_runtime::notify::Notification;

struct Listener;

#[notification_endpoint]
impl Listener {
    async fn info(&self) {}
    async fn error(&self, _n: Notification<serde_json::Value>, _extra: u8) {}
}

fn main() {}
