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

/// How long a queue the broker deleted may take to be declared and consumed again.
const RESUMED_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_deleted_queue_is_declared_and_consumed_again_without_a_reconnect() {
    let Some(vhost) = Vhost::create("deleted-queues") else {
        return;
    };
    let mut served = serve(&vhost, "", &["h1"]).await;
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_secs(5)));
    let to_h1 = client.prepare(CallOptions::new().server("h1"));
    let fanout = client.prepare(CallOptions::new().fanout(true));
    assert_eq!(
        client.echo(&Context::new(), json!(0)).await.unwrap()["value"],
        0
    );
    // The server and the client share one transport: one connection.
    let connections = vhost.connections();
    assert_eq!(connections.len(), 1, "{connections:?}");
    let named = |prefix: &str| {
        vhost
            .queues(&["name"])
            .into_iter()
            .find(|q| q.starts_with(prefix))
            .unwrap_or_else(|| panic!("a queue named {prefix}…"))
    };
    let queues = [
        served.topic.clone(),
        format!("{}.h1", served.topic),
        named(&format!("{}_fanout_", served.topic)),
        named("reply_"),
    ];
    for (round, queue) in (1..).zip(&queues) {
        vhost.delete_queue(queue);
        assert!(
            vhost.wait_for_consumers(queue, 1, RESUMED_WITHIN),
            "{queue} was not declared and consumed again within {RESUMED_WITHIN:?}: {:?}",
            vhost.queues(&["name", "consumers"])
        );
        // Every queue serves again: the topic, the server's own, the fanout, and the replies.
        assert_eq!(
            client.echo(&Context::new(), json!(round)).await.unwrap()["value"],
            round,
            "a call to the topic after deleting {queue}"
        );
        assert_eq!(
            to_h1.echo(&Context::new(), json!(round)).await.unwrap()["value"],
            round,
            "a call to h1 after deleting {queue}"
        );
        fanout
            .note(&Context::new(), round)
            .await
            .expect("a fanout cast");
        let noted = tokio::time::timeout(Duration::from_secs(5), served.notes.recv()).await;
        assert_eq!(
            noted.expect("the fanout cast arrives"),
            Some(("h1".to_owned(), round)),
            "after deleting {queue}"
        );
    }
    assert_eq!(
        vhost.connections(),
        connections,
        "the queues came back on the same connection"
    );
}

/// Calls running at once while the reply queue is deleted under them.
const IN_FLIGHT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_queue_deleted_under_live_calls_costs_at_most_the_calls_in_flight() {
    let Some(vhost) = Vhost::create("replyq-live") else {
        return;
    };
    let served = serve(&vhost, "", &["h1"]).await;
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_secs(5)));
    assert_eq!(
        client.echo(&Context::new(), json!(0)).await.unwrap()["value"],
        0
    );
    let reply_queue = vhost
        .queues(&["name"])
        .into_iter()
        .find(|q| q.starts_with("reply_"))
        .expect("a reply queue after a call");
    let (deleted_tx, deleted) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for worker in 0..IN_FLIGHT {
        let client = client.clone();
        let deleted = deleted.clone();
        workers.push(tokio::spawn(async move {
            // Calls until 50 calls after the deletion have ended: (ok, failed) before it was
            // seen, and after.
            let mut counts = [(0_u32, Vec::new()), (0_u32, Vec::new())];
            let mut after = 0;
            for n in 0.. {
                let value = json!(worker * 1_000_000 + n);
                let seen = usize::from(*deleted.borrow());
                match client.echo(&Context::new(), value.clone()).await {
                    Ok(reply) => {
                        assert_eq!(reply["value"], value);
                        counts[seen].0 += 1;
                    }
                    Err(error) => counts[seen].1.push(error.to_string()),
                }
                after += seen;
                if after >= 50 {
                    break;
                }
            }
            counts
        }));
    }
    // Under load: the deletion lands among calls in flight.
    let warm = client.echo(&Context::new(), json!("warm")).await;
    assert!(warm.is_ok(), "{warm:?}");
    vhost.delete_queue(&reply_queue);
    deleted_tx.send_replace(true);
    let (mut ok_after, mut failed_before, mut failed_after) = (0, Vec::new(), Vec::new());
    for worker in workers {
        let [before, after] = worker.await.expect("a caller");
        failed_before.extend(before.1);
        ok_after += after.0;
        failed_after.extend(after.1);
    }
    eprintln!(
        "reply queue deleted under {IN_FLIGHT} callers: {} failed around the deletion, {} failed \
         and {ok_after} answered after it",
        failed_before.len(),
        failed_after.len()
    );
    // The calls started before the deletion was seen are at most the ones in flight then; a
    // call started after it was seen may still have been published before the queue came
    // back, so each caller's first call after is counted with them.
    let lost = failed_before.len() + failed_after.len();
    assert!(
        lost <= 2 * IN_FLIGHT,
        "{lost} calls failed: {failed_before:?} {failed_after:?}"
    );
    assert!(ok_after >= 50 * IN_FLIGHT as u32 - lost as u32);
    assert!(
        vhost.wait_for_consumers(&reply_queue, 1, RESUMED_WITHIN),
        "the reply queue is consumed again"
    );
}
