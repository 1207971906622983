//! Notifications over RabbitMQ: the shared scenarios (`support/notifications.rs`), each in a vhost
//! of its own, and what only a broker shows (the queues oslo's notifier and listeners declare).

use std::sync::Arc;

use rpc_integration_tests::notifications as scenario;
use rpc_integration_tests::{Vhost, unique_name};
use rpc_runtime::{Transport, connect};

/// Three connections to the vhost: a notifier's and two listeners'.
async fn transports(vhost: &Vhost, query: &str) -> [Arc<dyn Transport>; 3] {
    let url = vhost.url(query);
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(connect(&url).await.expect("the vhost is reachable"));
    }
    [made.remove(0), made.remove(0), made.remove(0)]
}

macro_rules! over_rabbitmq {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(vhost) = Vhost::create("notify") else {
                return;
            };
            scenario::$name(transports(&vhost, "").await, &unique_name("n")).await;
        }
    )*};
}

over_rabbitmq!(
    every_priority_reaches_its_method,
    pools_share_and_pools_each_get_all,
    filters_choose_what_an_endpoint_sees,
    requeue_delivers_again,
    batches_are_bounded,
    bad_input_never_stops_the_listener,
    stop_finishes_what_runs_and_leaves_the_rest,
);

/// The notifier declares `<topic>.<priority>` durable (with `amqp_durable_queues`) and bound on
/// the control exchange, as oslo does, so what is sent before any listener waits there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notifier_declares_oslos_queue() {
    let Some(vhost) = Vhost::create("notify-queue") else {
        return;
    };
    let [notifier_side, _, _] = transports(&vhost, "?amqp_durable_queues=true").await;
    let notifier =
        rpc_runtime::notify::Notifier::new(notifier_side, "compute.host1").with_topics(["billing"]);
    notifier
        .error(&rpc_runtime::Context::new(), "e", &serde_json::json!({}))
        .await
        .unwrap();
    let queues = vhost.queues(&["name", "durable", "messages_ready"]);
    assert!(
        queues.iter().any(|q| q.starts_with("billing.error\ttrue")),
        "{queues:?}"
    );
    let bindings = rpc_integration_tests::rabbitmqctl(&[
        "list_bindings",
        "-p",
        vhost.name(),
        "source_name",
        "routing_key",
    ]);
    assert!(bindings.contains("openstack\tbilling.error"), "{bindings}");
}
