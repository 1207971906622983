//! A crate that denies missing docs and warnings still compiles with generated items.
#![deny(missing_docs, warnings)]

use rpc_runtime::{Context, rpc_endpoint};

/// The manager.
pub struct Manager;

#[rpc_endpoint(topic = "t", version = "2.3")]
impl Manager {
    /// Pings.
    #[rpc(since = "2.0")]
    pub async fn ping(&self, _ctx: &Context, arg: String) -> String {
        arg
    }
}

fn main() {
    let _ = ManagerClient::TOPIC;
}
