//! oslo's version rule, end to end: a 4.1 server against requests at several versions.

use rpc_runtime::{CallOptions, Client, Context, RpcError, ServerConfig, Version};

use crate::fixture::{CalculatorClient, serve};

#[tokio::test]
async fn version_rule_against_a_4_1_server() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let raw = served.client().client().clone();
    let args = serde_json::json!({"a": 2, "b": 3});
    // (requested version, namespace, accepted)
    let cases: [(&str, Option<&str>, bool); 6] = [
        ("4.0", None, true),
        ("4.1", None, true),
        ("4.2", None, false),
        ("3.9", None, false),
        ("5.0", None, false),
        ("4.0", Some("other"), false),
    ];
    for (version, namespace, accepted) in cases {
        let mut target = raw.target().clone();
        target.namespace = namespace.map(Into::into);
        let client = Client::new(raw.transport().clone(), target)
            .prepare(CallOptions::new().version(version.parse().unwrap()));
        let result: Result<i64, RpcError> = client.call(&Context::new(), "add", &args).await;
        match (accepted, result) {
            (true, Ok(sum)) => assert_eq!(sum, 5, "{version}"),
            (
                false,
                Err(RpcError::UnsupportedVersion {
                    method,
                    requested,
                    served,
                    ..
                }),
            ) => {
                assert_eq!(method, "add");
                assert_eq!(requested, Some(version.parse().unwrap()), "{version}");
                let expected = if namespace.is_some() {
                    vec![]
                } else {
                    vec![Version::new(4, 1)]
                };
                assert_eq!(served, expected, "{version} {namespace:?}");
            }
            (accepted, other) => {
                panic!("{version} {namespace:?}: accepted={accepted}, got {other:?}")
            }
        }
    }
}

#[tokio::test]
async fn unsupported_version_message_names_both_versions() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let client = served
        .client()
        .client()
        .prepare(CallOptions::new().version(Version::new(4, 2)));
    let err = client
        .call::<i64>(&Context::new(), "add", &serde_json::json!({"a": 1, "b": 1}))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the server does not support RPC version 4.2 for `add` (serves 4.1)"
    );
}

#[tokio::test]
async fn unknown_method_is_no_such_method() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let err = served
        .client()
        .client()
        .prepare(CallOptions::new().version(Version::new(4, 0)))
        .call::<i64>(&Context::new(), "multiply", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::NoSuchMethod { ref method } if method == "multiply"),
        "{err:?}"
    );
}

#[tokio::test]
async fn private_methods_are_never_called() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let err = served
        .client()
        .client()
        .prepare(CallOptions::new().version(Version::new(4, 0)))
        .call::<i64>(
            &Context::new(),
            "_add",
            &serde_json::json!({"a": 1, "b": 2}),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::NoSuchMethod { .. }), "{err:?}");
}

/// The calculator as an older release served it: API 4.0, without `wait`.
struct OldCalculator;

#[rpc_runtime::rpc_endpoint(topic = "calc", version = "4.0")]
impl OldCalculator {
    #[rpc(since = "4.0")]
    async fn add(&self, _ctx: &Context, a: i64, b: i64) -> i64 {
        a + b
    }
}

#[tokio::test]
async fn a_new_client_calls_an_old_server_at_each_method_s_own_version() {
    let broker = rpc_runtime::MemoryBroker::new();
    let server = rpc_runtime::RpcServer::start(
        std::sync::Arc::new(broker.transport()),
        CalculatorClient::target().with_server("old"),
        vec![std::sync::Arc::new(OldCalculator)],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let client = CalculatorClient::new(std::sync::Arc::new(broker.transport()));
    assert_eq!(CalculatorClient::VERSION, Version::new(4, 1));
    // `add` exists since 4.0, so it is sent at 4.0 and the old server takes it.
    assert_eq!(client.add(&Context::new(), 1, 2).await.unwrap(), 3);
    // `wait` needs 4.1, which the old server does not serve.
    match client.wait(&Context::new(), 1).await {
        Err(RpcError::UnsupportedVersion {
            requested, served, ..
        }) => {
            assert_eq!(requested, Some(Version::new(4, 1)));
            assert_eq!(served, vec![Version::new(4, 0)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    server.stop().await;
}
