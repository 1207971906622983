//! A broker restart (`rabbitmqctl stop_app` / `start_app`): calls during the outage end with a
//! clear error within their timeout, and the same transport serves again once the broker is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_integration_tests::{Vhost, rabbitmqctl};
use rpc_runtime::{
    AmqpTransport, CallOptions, Client, Context, RpcError, RpcServer, ServerConfig, Target,
    TransportUrl, rpc_endpoint,
};

struct Echo;

#[rpc_endpoint(topic = "restart", version = "1.0")]
impl Echo {
    #[rpc]
    async fn echo(&self, _ctx: &Context, value: i64) -> i64 {
        value
    }
}

/// Starts the broker again even when the test fails half-way.
struct StartAppOnDrop;

impl Drop for StartAppOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_servers_recover_from_a_broker_restart() {
    let Some(vhost) = Vhost::create("restart") else {
        return;
    };
    let url: TransportUrl = vhost
        .url("?rabbit_retry_interval=100&rabbit_retry_backoff=1000")
        .parse()
        .unwrap();
    let transport = Arc::new(AmqpTransport::connect(&url).await.unwrap());
    let topic = rpc_integration_tests::unique_name("restart");
    let server = RpcServer::start(
        transport.clone(),
        Target::new(topic.as_str()).with_server("h1"),
        vec![Arc::new(Echo)],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let client =
        EchoClient::from_client(Client::new(transport.clone(), Target::new(topic.as_str())))
            .prepare(CallOptions::new().timeout(Duration::from_secs(2)));
    assert_eq!(client.echo(&Context::new(), 1).await.unwrap(), 1);

    let _restart_guard = StartAppOnDrop;
    tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
        .await
        .unwrap();
    // During the outage a call ends, with a clear error, within its timeout.
    let started = Instant::now();
    let err = client.echo(&Context::new(), 2).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, RpcError::Timeout { .. } | RpcError::Transport(_)),
        "{err:?}"
    );

    tokio::task::spawn_blocking(|| rabbitmqctl(&["start_app"]))
        .await
        .unwrap();
    let back = Instant::now();
    transport
        .wait_connected(Duration::from_secs(30))
        .await
        .unwrap();
    // Queues were not durable, so they were gone: the transport redeclared them before it said
    // it was connected, and the server consumes again.
    assert_eq!(client.echo(&Context::new(), 3).await.unwrap(), 3);
    let recovered = back.elapsed();
    eprintln!("serving again {recovered:?} after the broker came back");
    assert!(recovered < Duration::from_secs(5), "{recovered:?}");
    server.stop().await;
    drop(vhost);
}
