//! The call's deadline travels with the request: late requests are dropped, and a handler still
//! running when the caller gives up is cancelled.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rpc_runtime::envelope::{self, Request};
use rpc_runtime::{CallOptions, Context, RpcError, ServerConfig, TransportError, Version};

use crate::fixture::{on, serve};

#[tokio::test]
async fn request_whose_deadline_has_passed_is_dropped_unexecuted() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    let transport = served.broker.transport();
    let mut request = Request::new("add", Context::new())
        .with_args(&serde_json::json!({"a": 1, "b": 2}))
        .unwrap();
    request.version = Some(Version::new(4, 0));
    request.deadline = Some(std::time::UNIX_EPOCH + Duration::from_secs(1));
    let reply = transport
        .call_raw(
            &on("host1"),
            |route| envelope::encode_request(&request, Some(route), &envelope::new_message_id()),
            Duration::from_millis(300),
        )
        .await;
    assert!(
        matches!(reply, Err(TransportError::Timeout { .. })),
        "{reply:?}"
    );
    // The same request with a live deadline is executed: the first was dropped, not lost.
    request.deadline = Some(std::time::SystemTime::now() + Duration::from_secs(30));
    let reply = transport
        .call_raw(
            &on("host1"),
            |route| envelope::encode_request(&request, Some(route), &envelope::new_message_id()),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(reply.result.unwrap().as_str(), "3");
    assert_eq!(served.probe.invocations.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn handler_is_cancelled_when_the_deadline_passes_mid_way() {
    let mut served = serve(&["host1"], ServerConfig::default()).await;
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_millis(150)));
    let err = client.hang(&Context::new()).await.unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err:?}");
    // The handler's future was dropped by the server, not left running forever.
    tokio::time::timeout(Duration::from_secs(10), served.cancelled.recv())
        .await
        .expect("the handler was not cancelled")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn call_monitor_heartbeats_keep_a_long_call_alive() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    // Monitor 2 s: the server heartbeats every second, so a 3.5 s method answers.
    let monitored = served.client().prepare(
        CallOptions::new()
            .timeout(Duration::from_secs(10))
            .call_monitor_timeout(Duration::from_secs(2)),
    );
    assert_eq!(
        monitored.sleep_ms(&Context::new(), 3_500).await.unwrap(),
        3_500
    );
}

#[tokio::test(start_paused = true)]
async fn call_monitor_fails_a_call_that_goes_quiet() {
    let served = serve(&["host1"], ServerConfig::default()).await;
    // Monitor 1 s: int(1)/2 < 1, so (as in oslo) the server sends no heartbeats and the caller
    // gives up after 1 s of silence, long before the overall timeout.
    let monitored = served.client().prepare(
        CallOptions::new()
            .timeout(Duration::from_secs(10))
            .call_monitor_timeout(Duration::from_secs(1)),
    );
    let started = tokio::time::Instant::now();
    let err = monitored
        .sleep_ms(&Context::new(), 3_500)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Timeout { timeout, .. } if timeout == Duration::from_secs(1)),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test]
async fn clients_made_from_configuration_wait_rpc_response_timeout() {
    use rpc_runtime::config::ConfigLoader;
    use rpc_runtime::{Client, Target};

    let loaded = ConfigLoader::new()
        .text(
            "nova.conf",
            "[DEFAULT]\ntransport_url = memory://rpc-response-timeout\nrpc_response_timeout = 1\n",
        )
        .load()
        .unwrap();
    let transport = loaded.config.connect_transport().await.unwrap();
    let client = Client::new(transport, Target::new("nobody-listens"));
    assert_eq!(client.timeout(), Duration::from_secs(1));
    let started = std::time::Instant::now();
    let err = client
        .call::<serde_json::Value>(&Context::new(), "anything", &serde_json::json!({}))
        .await
        .unwrap_err();
    match err {
        RpcError::Timeout { timeout, .. } => assert_eq!(timeout, Duration::from_secs(1)),
        other => panic!("expected the configured timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not the 60 s default"
    );
    // A caller's own timeout still wins.
    let client = client.prepare(CallOptions::new().timeout(Duration::from_millis(200)));
    assert_eq!(client.timeout(), Duration::from_millis(200));
}
