//! The public API end to end over `memory://`, with the transport chosen from a URL string.

mod notifications;

use std::sync::Arc;

use rpc_integration_tests::unique_name;
use rpc_runtime::{Context, RpcError, RpcServer, ServerConfig, TransportError, rpc_endpoint};

struct Echo {
    host: String,
}

#[rpc_endpoint(topic = "echo", version = "1.0")]
impl Echo {
    #[rpc]
    async fn echo(&self, _ctx: &Context, value: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"host": self.host, "value": value})
    }
}

#[tokio::test]
async fn transports_from_one_memory_url_reach_each_other() {
    let url = format!("memory://{}", unique_name("echo"));
    let server_side = rpc_runtime::connect(&url).await.unwrap();
    let server = RpcServer::start(
        server_side,
        EchoClient::target().with_server("h1"),
        vec![Arc::new(Echo { host: "h1".into() })],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let client = EchoClient::new(rpc_runtime::connect(&url).await.unwrap());
    let value = serde_json::json!({"nested": [1, "two", null, {"é": "\"quoted\""}]});
    let reply = client.echo(&Context::new(), value.clone()).await.unwrap();
    assert_eq!(reply, serde_json::json!({"host": "h1", "value": value}));
    server.stop().await;
}

#[tokio::test]
async fn a_drained_server_leaves_the_shared_topic_and_keeps_its_own_queue() {
    let url = format!("memory://{}", unique_name("drain"));
    let mut servers = Vec::new();
    for host in ["h1", "h2"] {
        servers.push(
            RpcServer::start(
                rpc_runtime::connect(&url).await.unwrap(),
                EchoClient::target().with_server(host),
                vec![Arc::new(Echo { host: host.into() })],
                ServerConfig::default(),
            )
            .await
            .unwrap(),
        );
    }
    servers[0].drain().await.unwrap();
    assert!(servers[0].is_draining() && !servers[1].is_draining());
    let client = EchoClient::new(rpc_runtime::connect(&url).await.unwrap());
    for _ in 0..6 {
        let reply = client
            .echo(&Context::new(), serde_json::json!(1))
            .await
            .unwrap();
        assert_eq!(
            reply["host"], "h2",
            "the shared topic goes to the other server only"
        );
    }
    let own = client.prepare(rpc_runtime::CallOptions::new().server("h1"));
    let reply = own
        .echo(&Context::new(), serde_json::json!(1))
        .await
        .unwrap();
    assert_eq!(reply["host"], "h1", "its own queue is still served");
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn different_memory_urls_are_isolated() {
    let a = format!("memory://{}", unique_name("a"));
    let b = format!("memory://{}", unique_name("b"));
    let server = RpcServer::start(
        rpc_runtime::connect(&a).await.unwrap(),
        EchoClient::target(),
        vec![Arc::new(Echo { host: "a".into() })],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let client = EchoClient::new(rpc_runtime::connect(&b).await.unwrap())
        .prepare(rpc_runtime::CallOptions::new().timeout(std::time::Duration::from_millis(100)));
    let err = client
        .echo(&Context::new(), serde_json::Value::Null)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    server.stop().await;
}

#[tokio::test]
async fn unknown_and_unreachable_transports_are_clear_errors_without_passwords() {
    match rpc_runtime::connect("kafka://broker:9092").await {
        Err(TransportError::UnsupportedScheme { scheme }) => assert_eq!(scheme, "kafka"),
        other => panic!("unexpected {other:?}"),
    }
    // Nothing listens on port 1: the error names the URL without its password.
    let err = rpc_runtime::connect("rabbit://nova:s3cret@127.0.0.1:1/")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, TransportError::Connect { .. }), "{text}");
    assert!(text.contains("nova:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let err = rpc_runtime::connect("rabbit://nova:s3cret@host:port/")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("nova:***@host:port"), "{text}");
    // An unknown option is ignored with a warning (as in `[oslo_messaging_rabbit]`), so what
    // fails is the connection to the unreachable host, not the URL.
    let err = rpc_runtime::connect("rabbit://127.0.0.1:1/?no_such_option=1")
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
}

/// Fails in every way a method can: its own error, a panic, bad arguments.
struct Failing;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Refusal {
    reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.reason)
    }
}

impl rpc_runtime::ApplicationError for Refusal {}

#[rpc_endpoint(topic = "failing", version = "1.0")]
impl Failing {
    #[rpc]
    async fn refuse(&self, _ctx: &Context) -> Result<(), Refusal> {
        Err(Refusal {
            reason: "no".into(),
        })
    }

    #[rpc]
    async fn explode(&self, _ctx: &Context) -> u32 {
        panic!("internal state at {:p}", self)
    }

    #[rpc]
    async fn typed(&self, _ctx: &Context, n: u32) -> u32 {
        n
    }
}

/// Each failure a caller can get from `Failing`, as the remote error it receives.
async fn failures(debug: bool) -> Vec<rpc_runtime::RemoteError> {
    let broker = rpc_runtime::MemoryBroker::new();
    let server = RpcServer::start(
        Arc::new(broker.transport()),
        FailingClient::target().with_server("h1"),
        vec![Arc::new(Failing)],
        ServerConfig::default().with_debug(debug),
    )
    .await
    .expect("serve");
    let client = rpc_runtime::Client::new(Arc::new(broker.transport()), FailingClient::target());
    let ctx = Context::new();
    let mut failures = Vec::new();
    for (method, args) in [
        ("refuse", serde_json::json!({})),
        ("explode", serde_json::json!({})),
        ("typed", serde_json::json!({"n": "not a number"})),
    ] {
        match client.call::<serde_json::Value>(&ctx, method, &args).await {
            Err(RpcError::Remote(failure)) => failures.push(*failure),
            // The client turns the runtime's own failures into typed errors; keep the message.
            Err(RpcError::InvalidArguments { message, .. }) => {
                failures.push(rpc_runtime::RemoteError::new(
                    "InvalidArguments",
                    "",
                    message,
                ));
            }
            other => panic!("{method}: expected a remote failure, got {other:?}"),
        }
    }
    server.stop().await;
    failures
}

#[tokio::test]
async fn failures_carry_no_server_backtrace_unless_debug_is_on() {
    for failure in failures(false).await {
        assert!(failure.traceback.is_empty(), "{failure:?}");
        for leak in [".rs:", "src/", "stack backtrace", "rustc"] {
            assert!(!failure.message.contains(leak), "{leak} in {failure:?}");
        }
    }
    for failure in failures(true).await.into_iter().take(2) {
        assert!(
            failure
                .traceback
                .first()
                .is_some_and(|l| l.starts_with("Traceback (server side")),
            "{failure:?}"
        );
        assert!(failure.traceback.len() > 1, "{failure:?}");
    }
}
