//! Periodic tasks beside RPC methods: unit or `Result<(), E>` with `E: Display`.
#![deny(warnings)]

use rpc_runtime::{Context, Endpoint, rpc_endpoint};

struct Manager;

#[derive(Debug)]
struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("busy")
    }
}

#[rpc_endpoint(topic = "t", version = "1.0")]
impl Manager {
    #[rpc]
    async fn ping(&self, _ctx: &Context) {}

    #[periodic_task(spacing = 10, run_immediately)]
    async fn refresh(&self, _ctx: &Context) {}

    #[periodic_task]
    async fn audit(&self, _ctx: &Context) -> Result<(), Busy> {
        Err(Busy)
    }
}

fn main() {
    let tasks = Manager.descriptor().periodic_tasks;
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].name, "refresh");
    assert!(tasks[0].run_immediately);
    assert_eq!(tasks[1].spacing, std::time::Duration::from_secs(60));
}
