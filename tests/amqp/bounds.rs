//! Resource bounds over RabbitMQ: memory stays flat over a 200,000-call soak, and a slow server
//! holds no more than its prefetch count and concurrency limit, leaving the rest in the broker.

use std::sync::Arc;
use std::time::Duration;

use rpc_integration_tests::{Vhost, rss_mib, unique_name};
use rpc_runtime::{CallOptions, Client, Context, RpcServer, ServerConfig, Target, rpc_endpoint};
use tokio::sync::{Semaphore, mpsc};

use crate::fixture::serve;

/// Calls in the soak, and how many run at once.
const SOAK_CALLS: usize = 200_000;
const SOAK_IN_FLIGHT: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_over_a_200k_call_soak() {
    let Some(vhost) = Vhost::create("soak") else {
        return;
    };
    let served = serve(&vhost, "?confirm_publish=false", &["h1"]).await;
    let client = served
        .client()
        .prepare(CallOptions::new().timeout(Duration::from_secs(60)));
    let run = |calls: usize| {
        let client = client.clone();
        async move {
            let workers: Vec<_> = (0..SOAK_IN_FLIGHT)
                .map(|w| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        for i in (w..calls).step_by(SOAK_IN_FLIGHT) {
                            let value = serde_json::json!(i);
                            let answer = client.echo(&Context::new(), value.clone()).await;
                            assert_eq!(answer.expect("a soak call")["value"], value);
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.await.expect("a soak worker");
            }
        }
    };
    // Warm up: connections, buffers and allocator arenas reach their working size.
    run(20_000).await;
    let before = rss_mib(std::process::id());
    let started = std::time::Instant::now();
    run(SOAK_CALLS).await;
    let after = rss_mib(std::process::id());
    eprintln!(
        "soak: {SOAK_CALLS} calls in {:.1} s; RSS {before:.1} MiB -> {after:.1} MiB",
        started.elapsed().as_secs_f64()
    );
    assert!(
        after - before < 16.0,
        "RSS grew from {before:.1} MiB to {after:.1} MiB over {SOAK_CALLS} calls"
    );
}

/// A server whose casts wait at a gate the test opens.
struct Gate {
    open: Arc<Semaphore>,
    done: mpsc::UnboundedSender<u32>,
}

#[rpc_endpoint(topic = "gate", version = "1.0")]
impl Gate {
    #[rpc(cast)]
    async fn pass(&self, _ctx: &Context, n: u32) {
        let permit = self.open.acquire().await.expect("the gate");
        permit.forget();
        let _ = self.done.send(n);
    }
}

#[tokio::test]
async fn a_slow_server_holds_no_more_than_its_prefetch_and_concurrency() {
    let Some(vhost) = Vhost::create("slow-consumer") else {
        return;
    };
    const PREFETCH: usize = 10;
    const CONCURRENCY: usize = 4;
    const CASTS: u32 = 1_000;
    let url = vhost.url(&format!("?rabbit_qos_prefetch_count={PREFETCH}"));
    let transport = rpc_runtime::connect(&url).await.expect("connect");
    let topic = unique_name("gate");
    let open = Arc::new(Semaphore::new(0));
    let (done, mut passed) = mpsc::unbounded_channel();
    let gate = Arc::new(Gate {
        open: Arc::clone(&open),
        done,
    });
    let server = RpcServer::start(
        Arc::clone(&transport),
        Target::new(topic.as_str()).with_server("h1"),
        vec![gate],
        ServerConfig::default().with_max_concurrency(CONCURRENCY),
    )
    .await
    .expect("serve");
    let client = GateClient::from_client(Client::new(
        rpc_runtime::connect(&vhost.url("")).await.expect("connect"),
        Target::new(topic.as_str()),
    ));
    for n in 0..CASTS {
        client.pass(&Context::new(), n).await.expect("cast");
    }
    // The server runs its concurrency's worth (acknowledged when they started, as oslo does) and
    // holds at most its prefetch count more, unacknowledged; everything else stays ready in the
    // broker, not in the server.
    let counts = |queue: &str| -> (usize, usize) {
        let line = vhost
            .queues(&["name", "messages_ready", "messages_unacknowledged"])
            .into_iter()
            .find(|l| l.split_whitespace().next() == Some(queue))
            .expect("the topic queue");
        let numbers: Vec<usize> = line
            .split_whitespace()
            .skip(1)
            .map(|n| n.parse().expect("a count"))
            .collect();
        (numbers[0], numbers[1])
    };
    let expected_in_broker = CASTS as usize - CONCURRENCY;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (ready, unacked) = loop {
        let (ready, unacked) = counts(&topic);
        let settled = server.in_flight() == CONCURRENCY && ready + unacked == expected_in_broker;
        if settled || tokio::time::Instant::now() > deadline {
            break (ready, unacked);
        }
        // The broker's counters are polled: it has no signal for them.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(server.in_flight(), CONCURRENCY, "running at once");
    assert_eq!(
        ready + unacked,
        expected_in_broker,
        "casts missing from the queue"
    );
    assert!(
        unacked <= PREFETCH,
        "{unacked} unacknowledged, over the prefetch of {PREFETCH}"
    );
    eprintln!(
        "slow consumer: {CONCURRENCY} running, {unacked} held unacknowledged (prefetch \
         {PREFETCH}), {ready} ready in the broker"
    );

    // Open the gate: every cast arrives, once.
    open.add_permits(CASTS as usize);
    let mut seen = Vec::new();
    while seen.len() < CASTS as usize {
        seen.push(passed.recv().await.expect("a cast"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..CASTS).collect::<Vec<_>>());
    server.stop().await;
}
