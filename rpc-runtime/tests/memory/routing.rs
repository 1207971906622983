//! Call, cast, fanout, server-targeted calls and timeouts.

use std::collections::BTreeSet;
use std::time::Duration;

use rpc_runtime::{CallOptions, Client, Context, RpcError, ServerConfig, Target};

use crate::fixture::{CalculatorClient, serve};

#[tokio::test(start_paused = true)]
async fn call_to_topic_without_server_times_out_within_its_timeout() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let timeout = Duration::from_millis(250);
    let client = CalculatorClient::from_client(Client::new(
        served.transport(),
        Target::new("no-such-topic"),
    ))
    .prepare(CallOptions::new().timeout(timeout));
    let started = tokio::time::Instant::now();
    let err = client.add(&Context::new(), 1, 2).await.unwrap_err();
    assert!(
        matches!(err, RpcError::Timeout { ref method, timeout: t } if method == "add" && t == timeout),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), timeout);
}

#[tokio::test]
async fn cast_is_delivered() {
    let mut served = serve(&["host1"], ServerConfig::default()).await;
    served.client().note(&Context::new(), 42).await.unwrap();
    assert_eq!(served.notes.recv().await, Some(("host1".to_owned(), 42)));
}

#[tokio::test]
async fn fanout_reaches_every_one_of_three_servers() {
    let mut served = serve(&["host1", "host2", "host3"], ServerConfig::default()).await;
    served
        .client()
        .prepare(CallOptions::new().fanout(true))
        .note(&Context::new(), 7)
        .await
        .unwrap();
    let mut hosts = BTreeSet::new();
    for _ in 0..3 {
        let (host, value) = served.notes.recv().await.unwrap();
        assert_eq!(value, 7);
        hosts.insert(host);
    }
    assert_eq!(
        hosts,
        BTreeSet::from(["host1".into(), "host2".into(), "host3".into()])
    );
    // Exactly one each: a marker cast to one server arrives next, not a fourth fanout copy.
    served
        .client()
        .prepare(CallOptions::new().server("host1"))
        .note(&Context::new(), 8)
        .await
        .unwrap();
    assert_eq!(served.notes.recv().await, Some(("host1".to_owned(), 8)));
}

#[tokio::test]
async fn server_targeted_call_reaches_only_that_server() {
    let served = serve(&["host1", "host2", "host3"], ServerConfig::default()).await;
    let to_host2 = served.client().prepare(CallOptions::new().server("host2"));
    for _ in 0..30 {
        assert_eq!(to_host2.host(&Context::new()).await.unwrap(), "host2");
    }
    // Without a server, the topic's servers share the calls.
    let any = served.client();
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        seen.insert(any.host(&Context::new()).await.unwrap());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[tokio::test]
async fn a_call_cannot_be_fanout() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let err = served
        .client()
        .prepare(CallOptions::new().fanout(true))
        .add(&Context::new(), 1, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::InvalidTarget { .. }), "{err:?}");
}

#[tokio::test]
async fn stopped_server_no_longer_consumes() {
    let mut served = serve(&["host1"], ServerConfig::default()).await;
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_millis(100)));
    assert_eq!(client.add(&Context::new(), 1, 1).await.unwrap(), 2);
    for server in served.servers.drain(..) {
        server.stop().await;
    }
    let err = client.add(&Context::new(), 1, 1).await.unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
}
