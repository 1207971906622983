//! Malformed messages and bad arguments get a clear error, and the server keeps serving.

use std::time::Duration;

use rpc_runtime::{CallOptions, Context, RpcError, ServerConfig, TransportError, Version};
use serde_json::{Value, json};

use crate::fixture::{on, serve};

/// The inner message of an envelope, written by hand.
fn envelope(inner: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}))
        .expect("json")
}

#[tokio::test]
async fn malformed_messages_are_answered_or_dropped_and_serving_goes_on() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let transport = served.broker.transport();
    let good = served.client();
    let short = Duration::from_millis(200);

    // Not JSON at all: nobody can be told; it is dropped.
    let reply = transport
        .call_raw(&on("host1"), |_| b"\x00not json".to_vec(), short)
        .await;
    assert!(
        matches!(reply, Err(TransportError::Timeout { .. })),
        "{reply:?}"
    );
    assert_eq!(good.add(&Context::new(), 1, 2).await.unwrap(), 3);

    // Readable reply route, unusable message: the caller is told why.
    let cases: [(Value, &str); 4] = [
        (json!({"args": {}}), "the message has no `method`"),
        (
            json!({"method": "add", "args": [1, 2]}),
            "`args` must be an object",
        ),
        (
            json!({"method": "add", "args": {}, "version": "four"}),
            "`version` must be a version string",
        ),
        (
            json!({"method": 17, "args": {}}),
            "`method` must be a string",
        ),
    ];
    for (mut inner, expected) in cases {
        let reply = transport
            .call_raw(
                &on("host1"),
                |route| {
                    inner["_msg_id"] = json!(route.msg_id);
                    inner["_reply_q"] = json!(route.reply_q);
                    envelope(&inner)
                },
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        let failure = reply.failure.expect("a failure reply");
        assert_eq!(failure.class, "MalformedMessage");
        assert!(
            failure.message.contains(expected),
            "{expected}: {}",
            failure.message
        );
        assert_eq!(good.add(&Context::new(), 2, 2).await.unwrap(), 4);
    }

    // A wrong envelope version, with a route: refused like oslo refuses it, so no reply.
    let reply = transport
        .call_raw(
            &on("host1"),
            |_| serde_json::to_vec(&json!({"oslo.version": "3.0", "oslo.message": "{}"})).unwrap(),
            short,
        )
        .await;
    assert!(
        matches!(reply, Err(TransportError::Timeout { .. })),
        "{reply:?}"
    );
    assert_eq!(good.add(&Context::new(), 3, 3).await.unwrap(), 6);
}

#[tokio::test]
async fn bad_arguments_get_a_clear_error_naming_the_argument() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let raw = served
        .client()
        .client()
        .prepare(CallOptions::new().version(Version::new(4, 0)));
    let cases: [(Value, &str); 4] = [
        (
            json!({"a": "one", "b": 2}),
            "argument `a`: invalid type: string \"one\", expected i64",
        ),
        (json!({"a": 1}), "missing argument `b`"),
        (json!({"a": 1, "b": 2, "c": 3}), "unexpected argument `c`"),
        (
            json!({"a": 1.5, "b": 2}),
            "argument `a`: invalid type: floating point",
        ),
    ];
    for (args, expected) in cases {
        let err = raw
            .call::<i64>(&Context::new(), "add", &args)
            .await
            .unwrap_err();
        match err {
            RpcError::InvalidArguments { method, message } => {
                assert_eq!(method, "add");
                assert!(message.contains(expected), "{expected}: {message}");
            }
            other => panic!("{args}: unexpected {other:?}"),
        }
        assert_eq!(served.client().add(&Context::new(), 1, 1).await.unwrap(), 2);
    }
}

#[tokio::test]
async fn a_result_of_the_wrong_type_is_a_decode_error() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let raw = served
        .client()
        .client()
        .prepare(CallOptions::new().version(Version::new(4, 0)));
    let err = raw
        .call::<String>(&Context::new(), "add", &json!({"a": 1, "b": 2}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Decode { ref method, .. } if method == "add"),
        "{err:?}"
    );
}
