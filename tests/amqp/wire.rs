//! What goes on the wire and into the broker is oslo.messaging's: topology, properties, bodies.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rpc_integration_tests::Vhost;
use rpc_runtime::{CallOptions, Context};
use serde_json::{Value, json};

use crate::fixture::serve;

#[tokio::test]
async fn server_declares_oslo_topology() {
    let Some(vhost) = Vhost::create("topology") else {
        return;
    };
    let served = serve(&vhost, "", &["host1"]).await;
    let topic = &served.topic;
    let queues = vhost.queues(&["name", "durable", "auto_delete", "arguments"]);
    let find = |name: &str| {
        queues
            .iter()
            .find(|line| line.split('\t').next() == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("queue {name} missing in {queues:?}"))
    };
    assert_eq!(find(topic), format!("{topic}\tfalse\tfalse\t[]"));
    assert_eq!(
        find(&format!("{topic}.host1")),
        format!("{topic}.host1\tfalse\tfalse\t[]")
    );
    let fanout = queues
        .iter()
        .find(|line| line.starts_with(&format!("{topic}_fanout_")))
        .unwrap_or_else(|| panic!("no fanout queue in {queues:?}"));
    let name = fanout.split('\t').next().unwrap();
    assert_eq!(name.len(), topic.len() + "_fanout_".len() + 32, "{name}");
    assert!(
        fanout.contains("x-expires") && fanout.contains("1800000"),
        "{fanout}"
    );
    // A call declares the client's reply queue, consumed once (its first call races the
    // transport's first restore; one consumer must come out of it).
    served
        .client()
        .echo(&Context::new(), json!(1))
        .await
        .unwrap();
    let queues = vhost.queues(&["name", "consumers"]);
    let reply = queues
        .iter()
        .find(|line| line.starts_with("reply_"))
        .unwrap_or_else(|| panic!("no reply queue in {queues:?}"));
    assert!(reply.ends_with("\t1"), "{reply}");
    let exchanges = vhost.exchanges(&["name", "type", "durable", "auto_delete"]);
    assert!(
        exchanges
            .iter()
            .any(|l| l == "openstack\ttopic\tfalse\tfalse"),
        "{exchanges:?}"
    );
    assert!(
        exchanges
            .iter()
            .any(|l| *l == format!("{topic}_fanout\tfanout\tfalse\ttrue")),
        "{exchanges:?}"
    );
}

/// A raw consumer of `queue`, declared with oslo's flags and bound to the control exchange under
/// `binding` when one is given: it stands where a server would and sees what clients send.
async fn spy(channel: &lapin::Channel, queue: &str, binding: Option<&str>) -> lapin::Consumer {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare the spy queue");
    if let Some(routing_key) = binding {
        channel
            .exchange_declare(
                "openstack".into(),
                lapin::ExchangeKind::Topic,
                Default::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare the control exchange");
        channel
            .queue_bind(
                queue.into(),
                "openstack".into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the spy queue");
    }
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume the spy queue")
}

#[tokio::test]
async fn requests_carry_oslo_properties_and_body() {
    let Some(vhost) = Vhost::create("wire") else {
        return;
    };
    // No server: the spy consumes the topic queue a server would.
    let served = serve(&vhost, "", &[]).await;
    let connection = vhost.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let mut consumer = spy(&channel, &served.topic, None).await;

    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_secs(7)));
    let ctx = Context::new()
        .with_user("u1")
        .with_project("p1")
        .with_roles(["member"]);
    let call = tokio::spawn(async move { client.echo(&ctx, json!("hello")).await });
    let delivery = consumer.next().await.unwrap().unwrap();
    call.abort();

    // Published straight to the queue (`direct_publish`, the default).
    assert_eq!(delivery.exchange.as_str(), "");
    assert_eq!(delivery.routing_key.as_str(), served.topic);
    let p = &delivery.properties;
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        p.content_encoding().as_ref().map(|s| s.as_str()),
        Some("utf-8")
    );
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(*p.priority(), Some(0));
    assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("7000"));
    assert!(p.correlation_id().is_none() && p.reply_to().is_none());

    let outer: Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(outer["oslo.version"], "2.0");
    let inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["method"], "echo");
    assert_eq!(inner["args"], json!({"value": "hello"}));
    assert_eq!(inner["version"], "1.0");
    assert_eq!(inner["_context_user_id"], "u1");
    assert_eq!(inner["_context_roles"], json!(["member"]));
    assert!(inner["_reply_q"].as_str().unwrap().starts_with("reply_"));
    assert_eq!(inner["_msg_id"].as_str().unwrap().len(), 32);
    assert_eq!(inner["_unique_id"].as_str().unwrap().len(), 32);
    assert!(inner["_deadline_ms"].is_u64());
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn without_direct_publish_requests_go_through_the_control_exchange() {
    let Some(vhost) = Vhost::create("via-exchange") else {
        return;
    };
    let served = serve(&vhost, "?direct_publish=false", &[]).await;
    let connection = vhost.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    // A tap: a queue of another name, bound to every routing key of the control exchange.
    let tap = rpc_integration_tests::unique_name("tap");
    let mut consumer = spy(&channel, &tap, Some("#")).await;

    served.client().note(&Context::new(), 7).await.unwrap();
    let delivery = consumer.next().await.unwrap().unwrap();
    assert_eq!(delivery.exchange.as_str(), "openstack");
    assert_eq!(delivery.routing_key.as_str(), served.topic);
    let outer: Value = serde_json::from_slice(&delivery.data).unwrap();
    let inner: Value = serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["method"], "note");
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn a_duplicate_delivery_runs_once_as_in_oslo() {
    let Some(vhost) = Vhost::create("dupes") else {
        return;
    };
    let mut served = serve(&vhost, "", &["h1"]).await;
    // The same cast, `_unique_id` and all, published twice (as a redelivery would be).
    let inner = json!({
        "method": "note", "args": {"value": 11}, "version": "1.1",
        "_unique_id": "f126625543314723bf8fa49cf616caec", "_context_request_id": "req-dupe"
    });
    let body =
        serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}))
            .unwrap();
    let connection = vhost.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let properties = lapin::BasicProperties::default().with_content_type("application/json".into());
    for _ in 0..2 {
        channel
            .basic_publish(
                "openstack".into(),
                served.topic.as_str().into(),
                Default::default(),
                &body,
                properties.clone(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A different cast after them; once it has run, the duplicates (ahead of it in the queue)
    // have been taken, and stopping the server waits for every request it took.
    served.client().note(&Context::new(), 12).await.unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&12) {
        seen.push(served.notes.recv().await.unwrap().1);
    }
    for server in served.servers.drain(..) {
        server.stop().await;
    }
    while let Ok((_, value)) = served.notes.try_recv() {
        seen.push(value);
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![11, 12], "the duplicate ran twice or not at all");
    let _ = connection.close(200, "done".into()).await;
}
