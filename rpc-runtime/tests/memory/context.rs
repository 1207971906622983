//! The context travels end to end (its span is checked in `tests/spans.rs`).

use rpc_runtime::{Context, ReadDeleted, ServerConfig};
use serde_json::json;

use crate::fixture::serve;

#[tokio::test]
async fn context_round_trips_every_field() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let ctx = Context::new()
        .with_user("u1")
        .with_project("p1")
        .with_roles(["member", "reader"])
        .with_admin(true)
        .with_global_request_id("req-global-1")
        .with_read_deleted(ReadDeleted::Yes)
        .with_extra("tenant_name", "demo")
        .with_extra("nested", json!({"a": [1, 2, {"b": null}]}));
    let seen = served.client().whoami(&ctx).await.unwrap();
    assert_eq!(Context::from_dict(seen), ctx);
}
