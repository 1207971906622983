//! Replies to a caller whose reply queue is gone: the server keeps trying for
//! `kombu_missing_consumer_retry_timeout` (the caller may be reconnecting, as oslo allows for),
//! and answers other calls meanwhile.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rpc_integration_tests::Vhost;
use rpc_runtime::envelope::MessageId;
use rpc_runtime::{CallOptions, Context, ServerConfig};
use serde_json::{Value, json};

use crate::fixture::serve_url_with;

#[tokio::test]
async fn a_reply_waits_for_a_reply_queue_declared_again_and_blocks_no_other() {
    let Some(vhost) = Vhost::create("missing-reply-q") else {
        return;
    };
    // One request at a time: the good call below runs only after the first request's reply
    // was tried once (and came back: no queue yet).
    let served = serve_url_with(
        &vhost.url("?kombu_missing_consumer_retry_timeout=10"),
        &["h1"],
        ServerConfig::default().with_max_concurrency(1),
    )
    .await;
    let connection = vhost.raw_connection().await;
    let channel = connection.create_channel().await.expect("channel");

    // A caller that publishes its call, then loses its reply queue (it does not exist yet: the
    // caller is reconnecting).
    let reply_q = format!("reply_{}", MessageId::new());
    let msg_id = MessageId::new().to_string();
    let request = json!({
        "method": "echo", "args": {"value": "late"}, "version": "1.0",
        "_msg_id": msg_id, "_reply_q": reply_q, "_unique_id": MessageId::new().to_string(),
    });
    let body =
        serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": request.to_string()}))
            .expect("json");
    channel
        .basic_publish(
            "".into(),
            served.topic.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            lapin::BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("published");

    // Another caller's call, behind it on the one queue: answered while the first reply is
    // being retried.
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_secs(5)));
    let answer = client
        .echo(&Context::new(), json!("on time"))
        .await
        .expect("a call answered while another reply waits for its queue");
    // With one slot, this answer also shows the waiting reply holds none.
    assert_eq!(answer["value"], "on time");

    // The first caller is back: it declares its reply queue again, and the reply arrives.
    channel
        .queue_declare(
            reply_q.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare the reply queue again");
    let mut replies = channel
        .basic_consume(
            reply_q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume replies");
    let delivery = tokio::time::timeout(Duration::from_secs(8), replies.next())
        .await
        .expect("the reply was retried until its queue came back")
        .expect("a delivery")
        .expect("no consumer error");
    let outer: Value = serde_json::from_slice(&delivery.data).expect("an envelope");
    let inner: Value =
        serde_json::from_str(outer["oslo.message"].as_str().expect("a message")).expect("json");
    assert_eq!(inner["_msg_id"], msg_id.as_str());
    assert_eq!(inner["result"]["value"], "late");
    assert_eq!(inner["ending"], true);
    let _ = connection.close(200, "done".into()).await;
}
