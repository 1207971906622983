use rpc_runtime::{Context, rpc_endpoint};

struct Manager;

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    async fn r#match(&self, _ctx: &Context, r#type: String) -> String {
        r#type
    }
}

fn main() {
    // The wire names are `match` and `type`.
    let descriptor = rpc_runtime::Endpoint::descriptor(&Manager);
    assert_eq!(descriptor.methods[0].name, "match");
    assert_eq!(descriptor.methods[0].args[0].name, "type");
}
