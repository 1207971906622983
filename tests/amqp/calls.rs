//! Call, cast, fanout, server-targeted calls, typed errors, timeouts and many calls in flight.

use std::collections::BTreeSet;
use std::time::Duration;

use rpc_integration_tests::Vhost;
use rpc_runtime::transport::ListenOptions;
use rpc_runtime::{CallError, CallOptions, Context, RpcError};
use serde_json::json;

use crate::fixture::{Refused, serve};

#[tokio::test]
async fn call_cast_fanout_and_server_targeted_calls() {
    let Some(vhost) = Vhost::create("calls") else {
        return;
    };
    let mut served = serve(&vhost, "", &["h1", "h2", "h3"]).await;
    let client = served.client();
    let ctx = Context::new().with_user("alice");

    let reply = client.echo(&ctx, json!({"n": [1, 2]})).await.unwrap();
    assert_eq!(reply["value"], json!({"n": [1, 2]}));
    assert_eq!(reply["user"], "alice");

    let to_h2 = client.prepare(CallOptions::new().server("h2"));
    for _ in 0..10 {
        assert_eq!(to_h2.echo(&ctx, json!(null)).await.unwrap()["host"], "h2");
    }

    client.note(&ctx, 5).await.unwrap();
    let (_, value) = served.notes.recv().await.unwrap();
    assert_eq!(value, 5);

    client
        .prepare(CallOptions::new().fanout(true))
        .note(&ctx, 9)
        .await
        .unwrap();
    let mut hosts = BTreeSet::new();
    for _ in 0..3 {
        let (host, value) = served.notes.recv().await.unwrap();
        assert_eq!(value, 9);
        hosts.insert(host);
    }
    assert_eq!(hosts.len(), 3, "{hosts:?}");

    match client.refuse(&ctx, "no room".into()).await {
        Err(CallError::Application(e)) => assert_eq!(
            e,
            Refused {
                reason: "no room".into()
            }
        ),
        other => panic!("unexpected {other:?}"),
    }
    for server in served.servers.drain(..) {
        server.stop().await;
    }
}

#[tokio::test]
async fn a_call_to_a_topic_nobody_serves_times_out_and_a_late_reply_is_dropped() {
    let Some(vhost) = Vhost::create("timeouts") else {
        return;
    };
    let served = serve(&vhost, "", &["h1"]).await;
    let nobody = rpc_runtime::Client::new(
        served.transport.clone(),
        rpc_runtime::Target::new("nobody-serves-this"),
    )
    .prepare(CallOptions::new().timeout(Duration::from_millis(300)));
    let err = nobody
        .call::<i64>(&Context::new(), "slow", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");

    // `slow` answers after the caller gave up; the next call gets its own answer, not that one.
    let client = served.client();
    let err = client
        .prepare(CallOptions::new().timeout(Duration::from_millis(200)))
        .slow(&Context::new(), 600, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    assert_eq!(client.slow(&Context::new(), 800, 2).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_in_flight_are_matched_by_msg_id() {
    let Some(vhost) = Vhost::create("inflight") else {
        return;
    };
    let served = serve(&vhost, "", &["h1", "h2"]).await;
    let client = served.client();
    let calls: Vec<_> = (0..500)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { (i, client.echo(&Context::new(), json!(i)).await) })
        })
        .collect();
    for call in calls {
        let (i, reply) = call.await.unwrap();
        assert_eq!(reply.unwrap()["value"], json!(i));
    }
}

#[tokio::test]
async fn names_longer_than_amqp_allows_are_errors_not_panics() {
    let Some(vhost) = Vhost::create("long-names") else {
        return;
    };
    let served = serve(&vhost, "", &["h1"]).await;
    let long = rpc_runtime::Target::new("t".repeat(300));
    let client = rpc_runtime::Client::new(served.transport.clone(), long.clone());
    let too_long = |err: &RpcError| {
        matches!(
            err,
            RpcError::Transport(rpc_runtime::TransportError::NameTooLong { length: 300, .. })
        )
    };
    let err = client
        .call::<i64>(&Context::new(), "echo", &json!({}))
        .await
        .unwrap_err();
    assert!(too_long(&err), "{err:?}");
    let err = client
        .cast(&Context::new(), "echo", &json!({}))
        .await
        .unwrap_err();
    assert!(too_long(&err), "{err:?}");
    let err = served
        .transport
        .listen(&long, ListenOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, rpc_runtime::TransportError::NameTooLong { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at most 255"), "{err}");
    // The transport is still good.
    let answer = served.client().echo(&Context::new(), json!(1)).await;
    assert_eq!(answer.unwrap()["value"], json!(1));
}
