use rpc_runtime::notification_endpoint;

#[notification_endpoint]
struct Listener;

fn main() {}
