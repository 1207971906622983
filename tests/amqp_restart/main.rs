//! A broker restart (`rabbitmqctl stop_app` / `start_app`): calls during the outage end with a
//! clear error within their timeout, and the same transport serves again once the broker is back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc_integration_tests::{Vhost, rabbitmqctl};
use rpc_runtime::{
    AmqpTransport, CallOptions, Client, Context, RpcError, RpcServer, ServerConfig, Target,
    TransportUrl, rpc_endpoint,
};
use tokio::sync::watch;

/// Reconnect quickly (in seconds, as oslo reads them): a first retry after 0.1 s, then 0.6 s,
/// at most 1 s apart; 0.1 s before the first attempt.
const FAST_RETRIES: &str = "?rabbit_retry_interval=0.1&rabbit_retry_backoff=0.5\
                            &rabbit_interval_max=1&kombu_reconnect_delay=0.1";

/// Tests here stop the whole broker: one at a time.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Default)]
struct Echo {
    /// The ids of the casts that arrived.
    noted: Mutex<HashSet<u64>>,
    /// Told when the marker cast (`u64::MAX`), sent after all others, arrives.
    marker: tokio::sync::Notify,
}

#[rpc_endpoint(topic = "restart", version = "1.1")]
impl Echo {
    #[rpc]
    async fn echo(&self, _ctx: &Context, value: i64) -> i64 {
        value
    }

    #[rpc(since = "1.1", cast)]
    async fn note(&self, _ctx: &Context, id: u64) {
        self.noted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id);
        if id == MARKER {
            self.marker.notify_one();
        }
    }
}

/// The cast sent after all the others: once it arrived, everything sent before it that was not
/// lost has too (one queue, delivered in order).
const MARKER: u64 = u64::MAX;

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
    let _one_at_a_time = BROKER.lock().await;
    let Some(vhost) = Vhost::create("restart") else {
        return;
    };
    let url: TransportUrl = vhost.url(FAST_RETRIES).parse().unwrap();
    let transport = Arc::new(AmqpTransport::connect(&url).await.unwrap());
    let topic = rpc_integration_tests::unique_name("restart");
    let server = RpcServer::start(
        transport.clone(),
        Target::new(topic.as_str()).with_server("h1"),
        vec![Arc::new(Echo::default())],
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

/// Calls and casts under load, per durability mode.
const CALLS: u64 = 10_000;
const CASTS: u64 = 10_000;
const CLIENTS: u64 = 4;
const IN_FLIGHT_PER_CLIENT: u64 = 16;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long each outage lasts.
const OUTAGE: Duration = Duration::from_secs(2);

/// What one run under load saw.
#[derive(Debug, Default)]
struct Outcome {
    calls_ok: u64,
    calls_failed: u64,
    slowest_call: Duration,
    casts_sent: u64,
    casts_refused: u64,
    casts_lost: u64,
    recoveries: Vec<Duration>,
}

/// 10,000 calls and 10,000 casts from four clients while the broker is stopped and started twice.
async fn restart_under_load(query: &str) -> Option<Outcome> {
    let vhost = Vhost::create("restart-load")?;
    let url = |q: &str| -> TransportUrl {
        vhost
            .url(&format!("{FAST_RETRIES}{q}"))
            .parse()
            .expect("a URL")
    };
    let server_transport = Arc::new(AmqpTransport::connect(&url(query)).await.expect("connect"));
    let topic = rpc_integration_tests::unique_name("restart-load");
    let echo = Arc::new(Echo::default());
    let server = RpcServer::start(
        server_transport.clone(),
        Target::new(topic.as_str()).with_server("h1"),
        vec![echo.clone()],
        ServerConfig::default().with_max_concurrency(128),
    )
    .await
    .expect("serve");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let transport = Arc::new(AmqpTransport::connect(&url(query)).await.expect("connect"));
        let client =
            EchoClient::from_client(Client::new(transport.clone(), Target::new(topic.as_str())))
                .prepare(CallOptions::new().timeout(CALL_TIMEOUT));
        clients.push((transport, client));
    }
    // Calls ended.
    let (progress, mut watch_progress) = watch::channel(0_u64);
    let progress = Arc::new(progress);
    let next_call = Arc::new(AtomicU64::new(0));
    let next_cast = Arc::new(AtomicU64::new(0));
    let sent: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let outcome: Arc<Mutex<Outcome>> = Arc::default();
    let mut workers = Vec::new();
    for (_, client) in &clients {
        for _ in 0..IN_FLIGHT_PER_CLIENT {
            let (client, progress) = (client.clone(), progress.clone());
            let (next_call, next_cast) = (next_call.clone(), next_cast.clone());
            let (sent, outcome) = (sent.clone(), outcome.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let call = next_call.fetch_add(1, Ordering::Relaxed);
                    let cast = next_cast.fetch_add(1, Ordering::Relaxed);
                    if call >= CALLS && cast >= CASTS {
                        return;
                    }
                    if call < CALLS {
                        let started = Instant::now();
                        let result = client.echo(&Context::new(), call as i64).await;
                        let took = started.elapsed();
                        let ok = result.is_ok();
                        {
                            let mut o = outcome.lock().expect("outcome");
                            o.slowest_call = o.slowest_call.max(took);
                            match result {
                                Ok(v) => {
                                    assert_eq!(v, call as i64);
                                    o.calls_ok += 1;
                                }
                                Err(_) => o.calls_failed += 1,
                            }
                        }
                        progress.send_modify(|n| *n += 1);
                        if !ok {
                            // A caller that failed retries a little later, as callers do.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    if cast < CASTS {
                        let result = client.note(&Context::new(), cast).await;
                        let mut o = outcome.lock().expect("outcome");
                        match result {
                            Ok(()) => {
                                o.casts_sent += 1;
                                sent.lock().expect("sent").insert(cast);
                            }
                            Err(_) => o.casts_refused += 1,
                        }
                    }
                }
            }));
        }
    }
    let probe = EchoClient::from_client(Client::new(
        clients[0].0.clone(),
        Target::new(topic.as_str()).with_server("h1"),
    ))
    .prepare(CallOptions::new().timeout(Duration::from_millis(500)));
    // Two outages: at a fifth and at three fifths of the calls.
    for at in [CALLS / 5, CALLS * 3 / 5] {
        watch_progress
            .wait_for(|n| *n >= at)
            .await
            .expect("progress");
        let _guard = StartAppOnDrop;
        tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
            .await
            .expect("stop_app");
        // The outage's length, not a wait for readiness.
        tokio::time::sleep(OUTAGE).await;
        tokio::task::spawn_blocking(|| rabbitmqctl(&["start_app"]))
            .await
            .expect("start_app");
        // Serving again: the first probe answered after the broker is back. The probe calls the
        // server's own queue (`topic.h1`), which the load does not use, so it measures the
        // server, not the backlog of the shared queue; each try waits at most 0.5 s.
        let back = Instant::now();
        loop {
            if probe.echo(&Context::new(), -1).await.is_ok() {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(30),
                "not serving 30 s after the restart: {:?}",
                outcome.lock().expect("outcome")
            );
        }
        outcome
            .lock()
            .expect("outcome")
            .recoveries
            .push(back.elapsed());
    }
    for worker in workers {
        worker.await.expect("a load worker");
    }
    // Everything sent has arrived once a last cast has (one queue, delivered in order), and the
    // server has finished what it took once stopped.
    clients[0]
        .1
        .note(&Context::new(), MARKER)
        .await
        .expect("the marker cast");
    let arrived = tokio::time::timeout(Duration::from_secs(30), echo.marker.notified()).await;
    assert!(
        arrived.is_ok(),
        "the marker cast never arrived within 30 s: {:?}",
        outcome.lock().expect("outcome")
    );
    server.stop().await;
    let noted = echo.noted.lock().expect("noted").clone();
    let mut outcome = std::mem::take(&mut *outcome.lock().expect("outcome"));
    outcome.casts_lost = sent
        .lock()
        .expect("sent")
        .iter()
        .filter(|id| !noted.contains(id))
        .count() as u64;
    Some(outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_calls_and_casts_through_two_broker_restarts() {
    let _one_at_a_time = BROKER.lock().await;
    for (mode, query, must_keep_all) in [
        (
            "transient queues, no confirms",
            "&confirm_publish=false",
            false,
        ),
        (
            "durable queues, publisher confirms",
            "&amqp_durable_queues=true&confirm_publish=true",
            true,
        ),
    ] {
        let Some(o) = restart_under_load(query).await else {
            return;
        };
        eprintln!(
            "{mode}: calls {} ok / {} failed (slowest {:.1?}); casts {} sent / {} refused / {} lost; serving again {:?} after each restart",
            o.calls_ok,
            o.calls_failed,
            o.slowest_call,
            o.casts_sent,
            o.casts_refused,
            o.casts_lost,
            o.recoveries
        );
        assert_eq!(
            o.calls_ok + o.calls_failed,
            CALLS,
            "{mode}: a call never ended"
        );
        assert!(
            o.slowest_call < CALL_TIMEOUT + Duration::from_secs(1),
            "{mode}: a call ended past its timeout: {:?}",
            o.slowest_call
        );
        assert_eq!(o.casts_sent + o.casts_refused, CASTS, "{mode}");
        for recovery in &o.recoveries {
            assert!(
                *recovery < Duration::from_secs(5),
                "{mode}: serving again took {recovery:?}"
            );
        }
        // What an outage may cost: the calls and casts in flight when the broker stops, and
        // those its clients start while it is away. Measured (2026-12-07, this machine): 141
        // calls failed and 88 casts lost in transient mode, 113 and 0 with confirms. A transport
        // that failed every call until it reconnected, or dropped what it published meanwhile,
        // would pass a thousand.
        assert!(
            o.calls_failed <= CALLS / 20,
            "{mode}: {} calls failed, over 5%",
            o.calls_failed
        );
        if must_keep_all {
            assert_eq!(o.casts_lost, 0, "{mode}: confirmed casts were lost");
        } else {
            assert!(
                o.casts_lost <= CASTS / 20,
                "{mode}: {} casts lost, over 5%",
                o.casts_lost
            );
        }
    }
}

/// Notifications with `confirm_publish` and durable queues: every confirmed notification
/// survives a broker restart, and one sent while the broker is down goes out once it is back
/// (the notifier's default `retry`: forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_notifications_survive_a_broker_restart() {
    use rpc_integration_tests::notifications::{Infos, Seen};
    use rpc_runtime::notify::{NotificationListener, Notifier};

    const SENT: usize = 50;
    let _one_at_a_time = BROKER.lock().await;
    let Some(vhost) = Vhost::create("restart-notify") else {
        return;
    };
    let url: TransportUrl = vhost
        .url(&format!(
            "{FAST_RETRIES}&confirm_publish=true&amqp_durable_queues=true"
        ))
        .parse()
        .unwrap();
    let transport = Arc::new(AmqpTransport::connect(&url).await.unwrap());
    let topic = rpc_integration_tests::unique_name("durable");
    let notifier = Notifier::new(transport.clone(), "compute.host1").with_topics([topic.as_str()]);
    let ctx = Context::new();
    for i in 0..SENT {
        notifier
            .info(&ctx, &format!("n{i}"), &serde_json::json!({ "i": i }))
            .await
            .unwrap();
    }

    let restart_guard = StartAppOnDrop;
    tokio::task::spawn_blocking(|| rabbitmqctl(&["stop_app"]))
        .await
        .unwrap();
    // Sent while the broker is down: waits for the connection, then goes out.
    let during = tokio::spawn({
        let notifier = notifier.clone();
        async move {
            notifier
                .info(&Context::new(), "during", &serde_json::json!({}))
                .await
        }
    });
    tokio::task::spawn_blocking(|| rabbitmqctl(&["start_app"]))
        .await
        .unwrap();
    drop(restart_guard);
    during.await.unwrap().unwrap();

    let seen = Seen::new();
    let listener = NotificationListener::builder(transport.clone())
        .target(Target::new(topic.as_str()))
        .endpoint(Arc::new(Infos(Arc::clone(&seen))))
        .start()
        .await
        .unwrap();
    seen.wait_for(SENT + 1).await;
    let mut got = seen.event_types();
    got.sort();
    let mut expected: Vec<String> = (0..SENT).map(|i| format!("n{i}")).collect();
    expected.push("during".to_owned());
    expected.sort();
    assert_eq!(got, expected, "each once, none lost");
    listener.stop().await;
    drop(vhost);
}
