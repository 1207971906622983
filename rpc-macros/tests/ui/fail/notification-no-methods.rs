use rpc_runtime::notification_endpoint;

struct Listener;

#[notification_endpoint]
impl Listener {
    fn helper(&self) {}
}

fn main() {}
