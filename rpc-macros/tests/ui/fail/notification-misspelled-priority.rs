use rpc_runtime::notification_endpoint;
use rpc_runtime::notify::Notification;

struct Listener;

#[notification_endpoint]
impl Listener {
    async fn info(&self, _n: Notification<serde_json::Value>) {}
    async fn warning(&self, _n: Notification<serde_json::Value>) {}
    // Helpers that take no notification are left alone.
    fn helper(&self) -> u8 {
        1
    }
}

fn main() {}
