use rpc_runtime::rpc_endpoint;

#[rpc_endpoint(topic = "t", version = "1.0")]
struct Manager;

fn main() {}
