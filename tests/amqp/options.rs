//! Deployment options: quorum queues, publisher confirms off, prefetch.

use rpc_integration_tests::Vhost;
use rpc_runtime::Context;
use serde_json::json;

use crate::fixture::serve;

#[tokio::test]
async fn quorum_queues_are_declared_durable_and_quorum() {
    let Some(vhost) = Vhost::create("quorum") else {
        return;
    };
    let served = serve(&vhost, "?rabbit_quorum_queue=true", &["h1"]).await;
    assert_answers(&served).await;
    let queues = vhost.queues(&["name", "durable", "type"]);
    let topic = queues
        .iter()
        .find(|l| l.split('\t').next() == Some(served.topic.as_str()))
        .unwrap_or_else(|| panic!("{queues:?}"));
    assert_eq!(*topic, format!("{}\ttrue\tquorum", served.topic));
}

#[tokio::test]
async fn calls_work_without_publisher_confirms_and_with_prefetch() {
    let Some(vhost) = Vhost::create("options") else {
        return;
    };
    let served = serve(
        &vhost,
        "?confirm_publish=false&rabbit_qos_prefetch_count=8",
        &["h1"],
    )
    .await;
    let client = served.client();
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.echo(&Context::new(), json!(i)).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap()["value"], json!(i));
    }
}

#[tokio::test]
async fn durable_queues_make_the_exchange_and_topic_queues_durable() {
    let Some(vhost) = Vhost::create("durable") else {
        return;
    };
    let served = serve(&vhost, "?amqp_durable_queues=true", &["h1"]).await;
    assert_answers(&served).await;
    let queues = vhost.queues(&["name", "durable"]);
    assert!(
        queues.contains(&format!("{}\ttrue", served.topic)),
        "{queues:?}"
    );
    assert!(
        queues.contains(&format!("{}.h1\ttrue", served.topic)),
        "{queues:?}"
    );
    let exchanges = vhost.exchanges(&["name", "durable"]);
    assert!(
        exchanges.iter().any(|l| l == "openstack\ttrue"),
        "{exchanges:?}"
    );
}

/// One call goes through.
async fn assert_answers(served: &crate::fixture::Served) {
    let reply = served
        .client()
        .echo(&Context::new(), json!(1))
        .await
        .expect("a call through RabbitMQ");
    assert_eq!(reply["value"], 1);
}
