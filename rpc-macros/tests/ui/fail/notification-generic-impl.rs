use rpc_runtime::notification_endpoint;
use rpc_runtime::notify::Notification;

struct Listener<T>(T);

#[notification_endpoint]
impl<T: Send + Sync + 'static> Listener<T> {
    async fn info(&self, _n: Notification<serde_json::Value>) {}
}

fn main() {}
