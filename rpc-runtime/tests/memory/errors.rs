//! Typed application errors, untyped remote errors, panics.

use std::sync::Arc;

use rpc_runtime::{
    CallError, CallOptions, Client, Context, MemoryBroker, RpcError, RpcServer, ServerConfig,
    Target, Version,
};

use crate::fixture::{DivideByZero, PythonLike, serve};

#[tokio::test]
async fn typed_error_comes_back_typed() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let client = served.client();
    assert_eq!(client.divide(&Context::new(), 7, 2).await.unwrap(), 3);
    match client.divide(&Context::new(), 7, 0).await {
        Err(CallError::Application(e)) => assert_eq!(e, DivideByZero { dividend: 7 }),
        other => panic!("expected the typed error, got {other:?}"),
    }
}

#[tokio::test]
async fn another_application_error_arrives_as_remote_error() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    // The generated client of `overheat` knows its error type, whose wire names are overridden.
    match served.client().overheat(&Context::new()).await {
        Err(CallError::Application(e)) => assert_eq!(e.celsius, 99),
        other => panic!("expected the typed error, got {other:?}"),
    }
    // Called by hand expecting another error type, the failure stays a remote error with the
    // class, module and message oslo would show.
    let raw = served
        .client()
        .client()
        .prepare(CallOptions::new().version(Version::new(4, 0)));
    let err = raw
        .call_fallible::<(), DivideByZero>(&Context::new(), "overheat", &serde_json::json!({}))
        .await
        .unwrap_err();
    match err {
        CallError::Rpc(RpcError::Remote(remote)) => {
            assert_eq!(remote.class, "Overheated");
            assert_eq!(remote.module, "calc.exceptions");
            assert_eq!(remote.message, "overheated at 99C");
            assert_eq!(remote.kwargs["celsius"], 99);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn untyped_remote_error_keeps_class_module_message_and_traceback() {
    let broker = MemoryBroker::new();
    let server = RpcServer::start(
        Arc::new(broker.transport()),
        Target::new("legacy").with_server("py1"),
        vec![Arc::new(PythonLike)],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let client = Client::new(
        Arc::new(broker.transport()),
        Target::new("legacy")
            .with_namespace("legacy")
            .with_version(Version::new(1, 0)),
    );
    let err = client
        .call::<()>(&Context::new(), "explode", &serde_json::json!({}))
        .await
        .unwrap_err();
    match err {
        RpcError::Remote(remote) => {
            assert_eq!(remote.class, "ValueError");
            assert_eq!(remote.module, "builtins");
            assert_eq!(remote.message, "('bad value: x', 42)");
            assert_eq!(
                remote.args,
                vec![serde_json::json!("bad value: x"), serde_json::json!(42)]
            );
            assert_eq!(remote.traceback.len(), 1);
            assert_eq!(
                remote.to_string(),
                "remote error builtins.ValueError: ('bad value: x', 42)"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_panicking_method_fails_the_call_and_the_server_keeps_serving() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let client = served.client();
    match client.panics(&Context::new()).await {
        Err(RpcError::Remote(remote)) => {
            assert_eq!(remote.class, "Panic");
            assert!(
                remote.message.contains("the calculator caught fire"),
                "{}",
                remote.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(client.add(&Context::new(), 1, 1).await.unwrap(), 2);
}
