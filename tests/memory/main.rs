//! The public API end to end over `memory://`, with the transport chosen from a URL string.

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
    let err = rpc_runtime::connect("rabbit://h/?no_such_option=1")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown option `no_such_option`"),
        "{err}"
    );
}
