//! Failover across hosts, and a reply queue that disappears.

use rpc_integration_tests::Vhost;
use std::time::Duration;

use rpc_runtime::{CallOptions, Context};
use serde_json::json;

use crate::fixture::{serve, serve_url};

#[tokio::test]
async fn a_url_with_a_dead_host_first_fails_over_to_the_next() {
    let Some(vhost) = Vhost::create("failover") else {
        return;
    };
    // Nothing listens on port 1.
    let url = format!(
        "rabbit://guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:5672/{}",
        vhost.name()
    );
    // The server and the client share the one failed-over connection: the request and its reply
    // both travel through it.
    let served = serve_url(&url, &["h1"]).await;
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_secs(10)));
    let reply = client
        .echo(&Context::new(), json!("through the second host"))
        .await
        .expect("a call through the failed-over connection");
    assert_eq!(reply["value"], "through the second host");
    assert_eq!(reply["host"], "h1");
}

#[tokio::test]
async fn a_deleted_reply_queue_is_redeclared_and_calls_go_on() {
    let Some(vhost) = Vhost::create("replyq") else {
        return;
    };
    let served = serve(&vhost, "", &["h1"]).await;
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_secs(5)));
    assert_eq!(
        client.echo(&Context::new(), json!(1)).await.unwrap()["value"],
        1
    );
    let reply_queue = vhost
        .queues(&["name"])
        .into_iter()
        .find(|q| q.starts_with("reply_"))
        .expect("a reply queue after a call");
    vhost.delete_queue(&reply_queue);
    // The transport sees its reply consumer cancelled, reconnects and redeclares; later calls
    // succeed instead of timing out one after another.
    let mut answered = 0;
    for i in 0..5 {
        match client.echo(&Context::new(), json!(i)).await {
            Ok(reply) => {
                assert_eq!(reply["value"], i);
                answered += 1;
            }
            Err(error) => assert!(i == 0, "call {i} failed after recovery: {error}"),
        }
    }
    assert!(answered >= 4, "{answered}");
    assert!(
        vhost.queues(&["name"]).contains(&reply_queue),
        "reply queue redeclared"
    );
}
