//! Metrics over RabbitMQ: real calls, casts, failures, refusals and a timeout move the counters
//! that a scrape of the metrics endpoint over HTTP reads.

use std::net::SocketAddr;
use std::time::Duration;

use rpc_integration_tests::Vhost;
use rpc_integration_tests::scrape::{self, assert_at_least, sample};
use rpc_runtime::metrics::MetricsServer;
use rpc_runtime::{CallOptions, Context, RpcError, ServerConfig};
use serde_json::json;

use crate::fixture::serve_url_with;

async fn get(addr: SocketAddr, path: &'static str) -> (u16, String) {
    tokio::task::spawn_blocking(move || scrape::get(addr, path))
        .await
        .expect("scrape")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_calls_move_the_counters_a_scrape_reads() {
    let Some(vhost) = Vhost::create("metrics") else {
        return;
    };
    rpc_runtime::metrics::enable();
    let endpoint = MetricsServer::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the metrics endpoint listens");
    let addr = endpoint.local_addr();
    let mut served = serve_url_with(
        &vhost.url(""),
        &["h1"],
        ServerConfig::default().with_max_message_size(4096),
    )
    .await;
    let topic = served.topic.clone();
    let topic = topic.as_str();
    let (_, before) = get(addr, "/metrics").await;
    assert_eq!(
        sample(&before, "rpc_server_requests_total", &[("topic", topic)]),
        None,
        "nothing counted for a topic not yet used"
    );

    let ctx = Context::new();
    let client = served.client();
    for i in 0..5 {
        client.echo(&ctx, json!(i)).await.expect("echo");
    }
    assert!(client.refuse(&ctx, "no".into()).await.is_err());
    client.note(&ctx, 1).await.expect("cast");
    assert_eq!(served.notes.recv().await.map(|(_, v)| v), Some(1));
    let raw = rpc_runtime::Client::new(
        std::sync::Arc::clone(&served.transport),
        rpc_runtime::Target::new(topic),
    );
    let unknown = raw
        .call::<serde_json::Value>(&ctx, "nope", &json!({}))
        .await;
    assert!(
        matches!(unknown, Err(RpcError::NoSuchMethod { .. })),
        "{unknown:?}"
    );
    let large = client.echo(&ctx, json!("x".repeat(8192))).await;
    assert!(large.is_err(), "over the server's maximum");
    let hurried = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_millis(300)));
    let late = hurried.slow(&ctx, 1500, 1).await;
    assert!(matches!(late, Err(RpcError::Timeout { .. })), "{late:?}");

    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let count = |name: &str, labels: &[(&str, &str)]| {
        let mut all = vec![("topic", topic)];
        all.extend_from_slice(labels);
        sample(&text, name, &all)
    };
    assert_eq!(
        count("rpc_server_requests_total", &[("method", "echo")]),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        count(
            "rpc_server_request_duration_seconds_count",
            &[("method", "echo")]
        ),
        Some(5.0)
    );
    assert_eq!(
        count(
            "rpc_server_failures_total",
            &[("method", "refuse"), ("class", "Refused")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count("rpc_server_requests_total", &[("method", "note")]),
        Some(1.0)
    );
    assert_eq!(
        count("rpc_server_refused_total", &[("reason", "no_such_method")]),
        Some(1.0)
    );
    assert_eq!(
        count("rpc_server_refused_total", &[("reason", "too_large")]),
        Some(1.0)
    );
    assert_eq!(
        count("rpc_server_requests_in_flight", &[("method", "echo")]),
        Some(0.0)
    );
    assert_eq!(
        count(
            "rpc_client_requests_total",
            &[("method", "echo"), ("kind", "call")]
        ),
        Some(6.0),
        "five that answered and the one over the size limit"
    );
    assert_eq!(
        count(
            "rpc_client_requests_total",
            &[("method", "note"), ("kind", "cast")]
        ),
        Some(1.0)
    );
    assert_eq!(
        count("rpc_client_timeouts_total", &[("method", "slow")]),
        Some(1.0)
    );
    assert_eq!(
        count("rpc_client_timeouts_total", &[("method", "echo")]),
        None
    );
    assert_at_least(
        &text,
        "rpc_transport_connections",
        &[("transport", "rabbit")],
        1.0,
    );

    // The probes: alive; not ready, since no launcher set a readiness check.
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(get(addr, "/nothing").await.0, 404);
    for server in served.servers.drain(..) {
        server.stop().await;
    }
}
