//! Resource bounds over RabbitMQ: memory stays flat over a 200,000-call soak, a slow server holds
//! no more than its prefetch count and concurrency limit, leaving the rest in the broker, and by
//! default a slow server of a topic holds few requests while a fast one answers most.

use std::sync::Arc;
use std::time::Duration;

use rpc_integration_tests::{Vhost, rabbitmqctl, rss_mib, unique_name};
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

/// A server that takes `delay` over each call and answers with its name.
struct Paced {
    name: &'static str,
    delay: Duration,
}

#[rpc_endpoint(topic = "paced", version = "1.0")]
impl Paced {
    #[rpc(since = "1.0")]
    async fn work(&self, _ctx: &Context, n: u32) -> (String, u32) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        (self.name.to_owned(), n)
    }
}

/// The deliveries the channel consuming `queue` holds unacknowledged now, and its prefetch count,
/// as the broker reports them.
fn held_by_consumer_of(vhost: &str, queue: &str) -> Option<(usize, usize)> {
    let consumers = rabbitmqctl(&[
        "list_consumers",
        "-q",
        "--no-table-headers",
        "-p",
        vhost,
        "queue_name",
        "channel_pid",
    ]);
    let channel = consumers.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(queue)).then(|| words.next().map(str::to_owned))?
    })?;
    let channels = rabbitmqctl(&[
        "list_channels",
        "-q",
        "--no-table-headers",
        "pid",
        "messages_unacknowledged",
        "prefetch_count",
    ]);
    channels.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [pid, unacked, prefetch] if *pid == channel => {
                Some((unacked.parse().ok()?, prefetch.parse().ok()?))
            }
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn by_default_a_slow_server_holds_few_requests_while_a_fast_one_answers_most() {
    let Some(vhost) = Vhost::create("prefetch-default") else {
        return;
    };
    const CONCURRENCY: usize = 4;
    const CALLS: u32 = 2_000;
    const IN_FLIGHT: u32 = 100;
    let bound = CONCURRENCY * rpc_runtime::transport::PREFETCH_PER_SLOT;
    let topic = unique_name("paced");
    // No rabbit_qos_prefetch_count: the default is what is tested.
    let url = vhost.url("");
    let mut servers = Vec::new();
    for (name, delay) in [
        ("slow", Duration::from_millis(200)),
        ("fast", Duration::ZERO),
    ] {
        let transport = rpc_runtime::connect(&url).await.expect("connect");
        servers.push(
            RpcServer::start(
                transport,
                Target::new(topic.as_str()).with_server(name),
                vec![Arc::new(Paced { name, delay })],
                ServerConfig::default().with_max_concurrency(CONCURRENCY),
            )
            .await
            .expect("serve"),
        );
    }
    let slow_queue = format!("{topic}.slow");
    let (_, prefetch) =
        held_by_consumer_of(vhost.name(), &slow_queue).expect("the slow server's channel");
    assert_eq!(prefetch, bound, "the slow server's channel prefetch count");

    let client = PacedClient::from_client(
        Client::new(
            rpc_runtime::connect(&url).await.expect("connect"),
            Target::new(topic.as_str()),
        )
        .prepare(CallOptions::new().timeout(Duration::from_secs(120))),
    );
    let calls = tokio::spawn(async move {
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|w| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut by_slow = 0usize;
                    for n in (w..CALLS).step_by(IN_FLIGHT as usize) {
                        let (name, back) = client.work(&Context::new(), n).await.expect("a call");
                        assert_eq!(back, n);
                        by_slow += usize::from(name == "slow");
                    }
                    by_slow
                })
            })
            .collect();
        let mut by_slow = 0;
        for worker in workers {
            by_slow += worker.await.expect("a calling worker");
        }
        by_slow
    });
    // Sample what the broker says the slow server holds for as long as the calls run (the
    // broker's counters have no signal: they are polled).
    let mut samples = Vec::new();
    while !calls.is_finished() {
        let vhost_name = vhost.name().to_owned();
        let queue = slow_queue.clone();
        let sample = tokio::task::spawn_blocking(move || held_by_consumer_of(&vhost_name, &queue))
            .await
            .expect("a sample");
        if let Some((unacked, _)) = sample {
            samples.push(unacked);
        }
    }
    let by_slow = calls.await.expect("the calls");
    let by_fast = CALLS as usize - by_slow;
    let most_held = samples.iter().copied().max().unwrap_or(0);
    eprintln!(
        "default prefetch {bound}: fast answered {by_fast}, slow {by_slow} of {CALLS}; the slow \
         server held at most {most_held} unacknowledged over {} samples",
        samples.len()
    );
    assert!(
        !samples.is_empty(),
        "no sample of the slow server's channel"
    );
    assert!(
        most_held <= bound,
        "the slow server held {most_held} unacknowledged deliveries, over its bound of {bound}"
    );
    assert!(
        by_fast * 4 >= CALLS as usize * 3,
        "the fast server answered only {by_fast} of {CALLS}"
    );
    for server in servers {
        server.stop().await;
    }
}
