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
    let server_side = rpc_runtime::connect(&url).unwrap();
    let server = RpcServer::start(
        server_side,
        EchoClient::target().with_server("h1"),
        vec![Arc::new(Echo { host: "h1".into() })],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let client = EchoClient::new(rpc_runtime::connect(&url).unwrap());
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
        rpc_runtime::connect(&a).unwrap(),
        EchoClient::target(),
        vec![Arc::new(Echo { host: "a".into() })],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let client = EchoClient::new(rpc_runtime::connect(&b).unwrap())
        .prepare(rpc_runtime::CallOptions::new().timeout(std::time::Duration::from_millis(100)));
    let err = client
        .echo(&Context::new(), serde_json::Value::Null)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    server.stop().await;
}

#[test]
fn unknown_and_unavailable_schemes_are_clear_errors() {
    match rpc_runtime::connect("kafka://broker:9092") {
        Err(TransportError::UnsupportedScheme { scheme }) => assert_eq!(scheme, "kafka"),
        other => panic!("unexpected {other:?}"),
    }
    let err = rpc_runtime::connect("rabbit://nova:s3cret@localhost:5672/").unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("not in this release yet"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let err = rpc_runtime::connect("rabbit://nova:s3cret@host:port/").unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("nova:***@host:port"), "{text}");
}
