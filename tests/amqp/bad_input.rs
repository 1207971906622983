//! Bad input over RabbitMQ, table-driven: raw AMQP messages a broken or hostile peer could send.
//! Each is answered with a clear failure when it says where to reply, or logged and acknowledged
//! when it does not; the server keeps serving, and a good call right after each one succeeds;
//! nothing is left unacknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rpc_integration_tests::Vhost;
use rpc_runtime::envelope::{self, MessageId};
use rpc_runtime::{Context, ServerConfig};
use serde_json::{Value, json};

use crate::fixture::serve_url_with;

/// The largest message the server under test decodes.
const MAX_MESSAGE: usize = 64 * 1024;

/// What the peer should see for one bad message.
enum Expect {
    /// A failure reply whose message contains this.
    Failure(&'static str),
    /// No reply (nowhere to send one); logged and acknowledged.
    Nothing,
}

/// oslo's 2.0 envelope around `inner`.
fn wrap(version: &str, inner: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"oslo.version": version, "oslo.message": inner.to_string()}))
        .expect("json")
}

/// A call's keys: `method`, `args`, and the route back to `reply_q`.
fn call(method: &str, args: Value, msg_id: &str, reply_q: &str) -> Value {
    json!({
        "method": method, "args": args, "version": "1.0",
        "_msg_id": msg_id, "_reply_q": reply_q, "_unique_id": MessageId::new().to_string(),
        "_context_request_id": "req-bad-input",
    })
}

/// Set when code of the AMQP client library panicked (a request task's panic is caught by tokio,
/// so the server would keep serving and hide it).
static LIBRARY_PANICKED: AtomicBool = AtomicBool::new(false);

/// Records panics raised inside lapin or amq-protocol, whatever test thread they happen on.
fn watch_library_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let file = info.location().map_or("", |l| l.file());
        if file.contains("amq-protocol") || file.contains("lapin") {
            LIBRARY_PANICKED.store(true, Ordering::SeqCst);
        }
        previous(info);
    }));
}

#[tokio::test]
async fn bad_messages_get_clear_answers_and_the_server_keeps_serving() {
    let Some(vhost) = Vhost::create("bad-input") else {
        return;
    };
    watch_library_panics();
    let mut served = serve_url_with(
        &vhost.url(""),
        &["h1"],
        ServerConfig::default().with_max_message_size(MAX_MESSAGE),
    )
    .await;
    let topic = served.topic.clone();
    let client = served
        .client()
        .prepare(rpc_runtime::CallOptions::new().timeout(Duration::from_secs(10)));

    // The peer: a raw connection with a reply queue of its own.
    let connection = vhost.raw_connection().await;
    let channel = connection.create_channel().await.expect("channel");
    let reply_q = format!("reply_{}", MessageId::new());
    let declare = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(reply_q.as_str().into(), declare, FieldTable::default())
        .await
        .expect("declare the peer's reply queue");
    let consume = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut replies = channel
        .basic_consume(
            reply_q.as_str().into(),
            "".into(),
            consume,
            FieldTable::default(),
        )
        .await
        .expect("consume replies");

    // The client transport's reply queue, for a reply nobody waits for: the one `reply_` queue
    // that is not the peer's (it exists once the client has called).
    client
        .echo(&Context::new(), json!("warm up"))
        .await
        .expect("a first call");
    let client_reply_q = vhost
        .queues(&["name"])
        .into_iter()
        .find(|q| q.starts_with("reply_") && *q != reply_q)
        .expect("the client's reply queue");

    let id = || MessageId::new().to_string();
    let huge = "x".repeat(MAX_MESSAGE * 2);
    let cases: Vec<(&str, String, Vec<u8>, Expect)> = vec![
        (
            "not JSON",
            topic.clone(),
            b"\xff\xfe{ this is not json".to_vec(),
            Expect::Nothing,
        ),
        (
            "JSON, not an envelope nor a message",
            topic.clone(),
            b"[1, 2, 3]".to_vec(),
            Expect::Nothing,
        ),
        (
            "an envelope of another oslo.version",
            topic.clone(),
            wrap("3.0", &call("echo", json!({"value": 1}), &id(), &reply_q)),
            Expect::Failure("unsupported envelope"),
        ),
        (
            "no method",
            topic.clone(),
            wrap(
                "2.0",
                &json!({"args": {}, "_msg_id": id(), "_reply_q": reply_q, "_unique_id": id()}),
            ),
            Expect::Failure("method"),
        ),
        (
            "arguments of the wrong types",
            topic.clone(),
            wrap(
                "2.0",
                &call(
                    "slow",
                    json!({"millis": "soon", "value": []}),
                    &id(),
                    &reply_q,
                ),
            ),
            Expect::Failure("millis"),
        ),
        (
            "a missing argument",
            topic.clone(),
            wrap("2.0", &call("slow", json!({"value": 1}), &id(), &reply_q)),
            Expect::Failure("millis"),
        ),
        (
            "args that are not an object",
            topic.clone(),
            wrap("2.0", &call("echo", json!([1, 2]), &id(), &reply_q)),
            Expect::Failure("args"),
        ),
        (
            "a message over the configured maximum",
            topic.clone(),
            wrap(
                "2.0",
                &call("echo", json!({"value": huge}), &id(), &reply_q),
            ),
            Expect::Failure("over this server's maximum"),
        ),
        (
            "a reply to an unknown _msg_id",
            client_reply_q.clone(),
            envelope::encode_reply(
                &envelope::Reply::result(rpc_runtime::envelope::JsonText::null()),
                &id(),
                &id(),
            ),
            Expect::Nothing,
        ),
        (
            // lapin panics on names over 255 bytes: the server must check, not crash.
            "a _reply_q longer than AMQP allows",
            topic.clone(),
            wrap(
                "2.0",
                &call("echo", json!({"value": 3}), &id(), &"q".repeat(300)),
            ),
            Expect::Nothing,
        ),
        (
            "a _reply_q that does not exist",
            topic.clone(),
            wrap(
                "2.0",
                &call("echo", json!({"value": 2}), &id(), "reply_nobody_here"),
            ),
            Expect::Nothing,
        ),
    ];

    for (name, queue, body, expect) in cases {
        let exchange = if queue == topic { "openstack" } else { "" };
        channel
            .basic_publish(
                exchange.into(),
                queue.as_str().into(),
                Default::default(),
                &body,
                lapin::BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("published");
        if let Expect::Failure(needle) = expect {
            let delivery = tokio::time::timeout(Duration::from_secs(10), replies.next())
                .await
                .unwrap_or_else(|_| panic!("{name}: no failure reply within 10 s"))
                .expect("a reply")
                .expect("a delivery");
            let (reply, _) = envelope::decode_reply(&delivery.data).expect("a reply envelope");
            let failure = reply
                .failure
                .unwrap_or_else(|| panic!("{name}: a result instead of a failure"));
            assert!(
                failure.message.contains(needle),
                "{name}: `{}` does not say `{needle}`",
                failure.message
            );
            assert!(failure.traceback.is_empty(), "{name}: a server traceback");
        }
        // The server still serves.
        let answer = client
            .echo(&Context::new(), json!(name))
            .await
            .unwrap_or_else(|e| panic!("a good call after {name}: {e}"));
        assert_eq!(answer["value"], json!(name));
    }

    // Nothing was left unacknowledged on the server's queues, and nothing was answered twice.
    let server_queues = [topic.clone(), format!("{topic}.h1")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pending: Vec<String> = vhost
            .queues(&["name", "messages"])
            .into_iter()
            .filter(|line| {
                server_queues
                    .iter()
                    .any(|q| line.split_whitespace().next() == Some(q))
            })
            .filter(|line| line.split_whitespace().nth(1) != Some("0"))
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages left on the server's queues: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), replies.next())
            .await
            .is_err(),
        "an extra reply"
    );
    assert!(
        !LIBRARY_PANICKED.load(Ordering::SeqCst),
        "a bad message made the AMQP library panic"
    );
    for server in served.servers.drain(..) {
        server.stop().await;
    }
    let _ = connection.close(200, "done".into()).await;
}
