//! RPC over RabbitMQ, side by side on the local broker: this framework, a minimal hand-written
//! lapin request/reply loop (the practical limit), and oslo.messaging (Python, pip-installed into
//! a virtualenv under the target directory).
//!
//! Run: `cargo bench -p rpc-runtime --bench amqp` with RabbitMQ on 127.0.0.1:5672 (guest/guest).
//! `BENCH_ROUNDS` (default 3) and `BENCH_CALLS` (default 5,000) set the effort; `BENCH_OSLO=0`
//! leaves oslo.messaging out; `BENCH_ONLY_OURS=1` or `BENCH_ONLY_RAW=1` runs one side (for a
//! profiler); `BENCH_SEQ_CALLS` sets the sequential sample apart from `BENCH_CALLS`. Rounds are interleaved; the table shows medians and ratios. Both
//! Rust sides publish without confirms here (the raw loop's mode); oslo confirms every publish.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rpc_runtime::{CallOptions, Client, Context, RpcServer, ServerConfig, Target};
use tokio::sync::oneshot;

const BROKER: &str = "127.0.0.1:5672";
const IN_FLIGHT: [usize; 3] = [16, 64, 256];

mod harness;

use harness::{Caller, Echo, EchoClient, Figures, Ours, PAYLOAD, env_usize, measure, median, row};

async fn ours(topic: &str) -> (Ours, RpcServer) {
    let url = format!("rabbit://guest:guest@{BROKER}/?confirm_publish=false");
    let server_transport = rpc_runtime::connect(&url).await.expect("connect");
    let server = RpcServer::start(
        server_transport,
        Target::new(topic).with_server("bench"),
        vec![Arc::new(Echo)],
        ServerConfig::default().with_max_concurrency(256),
    )
    .await
    .expect("serve");
    let client_transport = rpc_runtime::connect(&url).await.expect("connect");
    let client = EchoClient::from_client(Client::new(client_transport, Target::new(topic)))
        .prepare(CallOptions::new().timeout(Duration::from_secs(60)));
    let ctx = Context::new().with_user("bench").with_project("bench");
    (Ours { client, ctx }, server)
}

/// The raw loop: a client with its own reply queue and a map of waiters by correlation id, a
/// server that spawns a task per delivery and acks it; no envelope, no framework.
#[derive(Clone)]
struct Raw {
    /// Sizes and properties of what goes on the wire.
    shape: Shape,
    channel: Channel,
    queue: Arc<str>,
    reply_queue: Arc<str>,
    waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>,
    next: Arc<AtomicUsize>,
}

/// What the raw loop sends: the 64-byte payload alone, or messages the size of this framework's
/// oslo envelopes (~630-byte requests with a per-message `expiration`, ~230-byte replies), which
/// separates the cost of oslo's wire format from the framework's own.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Bare,
    OsloSized,
}

const OSLO_REQUEST: [u8; 630] = [b'x'; 630];
const OSLO_REPLY_LEN: usize = 230;

impl Caller for Raw {
    async fn call(&self) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters").insert(id, tx);
        let properties = BasicProperties::default()
            .with_correlation_id(id.to_string().into())
            .with_reply_to(self.reply_queue.as_ref().into());
        let (body, properties, reply_len): (&[u8], _, _) = match self.shape {
            Shape::Bare => (PAYLOAD.as_bytes(), properties, PAYLOAD.len()),
            Shape::OsloSized => (
                &OSLO_REQUEST,
                properties
                    .with_expiration("60000".into())
                    .with_delivery_mode(2),
                OSLO_REPLY_LEN,
            ),
        };
        self.channel
            .basic_publish(
                "".into(),
                self.queue.as_ref().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish");
        assert_eq!(rx.await.expect("reply").len(), reply_len);
    }
}

/// A connection, a channel on it, and a consumer of a fresh auto-delete queue.
async fn connect_and_consume(queue: &str, no_ack: bool) -> (Connection, Channel, lapin::Consumer) {
    let uri = format!("amqp://guest:guest@{BROKER}/%2f");
    let connection = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let declare = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), declare, FieldTable::default())
        .await
        .expect("declare");
    let consume = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    let consumer = channel
        .basic_consume(queue.into(), "".into(), consume, FieldTable::default())
        .await
        .expect("consume");
    (connection, channel, consumer)
}

async fn raw(topic: &str, shape: Shape) -> Raw {
    let queue = format!("raw_{topic}");
    let (server, server_channel, mut requests) = connect_and_consume(&queue, false).await;
    let reply_len = match shape {
        Shape::Bare => usize::MAX,
        Shape::OsloSized => OSLO_REPLY_LEN,
    };
    let reply_channel = server_channel.clone();
    tokio::spawn(async move {
        let _server = server;
        while let Some(Ok(delivery)) = requests.next().await {
            let channel = reply_channel.clone();
            tokio::spawn(async move {
                let props = &delivery.properties;
                let (Some(reply_to), Some(id)) =
                    (props.reply_to().clone(), props.correlation_id().clone())
                else {
                    return;
                };
                let _ = channel
                    .basic_publish(
                        "".into(),
                        reply_to,
                        BasicPublishOptions::default(),
                        &delivery.data[..delivery.data.len().min(reply_len)],
                        BasicProperties::default().with_correlation_id(id),
                    )
                    .await;
                let _ = delivery.ack(BasicAckOptions::default()).await;
            });
        }
    });
    let reply_queue = format!("raw_reply_{topic}");
    let (client, channel, mut replies) = connect_and_consume(&reply_queue, true).await;
    let waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>> = Arc::default();
    let routing = Arc::clone(&waiters);
    tokio::spawn(async move {
        let _client = client;
        while let Some(Ok(delivery)) = replies.next().await {
            let id = delivery
                .properties
                .correlation_id()
                .as_ref()
                .and_then(|c| c.as_str().parse::<u64>().ok());
            if let Some(tx) = id.and_then(|id| routing.lock().expect("waiters").remove(&id)) {
                let _ = tx.send(delivery.data);
            }
        }
    });
    Raw {
        shape,
        channel,
        queue: queue.into(),
        reply_queue: reply_queue.into(),
        waiters,
        next: Arc::default(),
    }
}

/// oslo.messaging's figures for one round: (p50 µs, p99 µs, sequential/s, 64 in flight/s).
fn oslo_round(python: &Path, topic: &str, calls: usize) -> Option<(f64, f64, f64, f64)> {
    let url = format!("rabbit://guest:guest@{BROKER}/");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/py");
    let mut server = Command::new(python)
        .arg(dir.join("oslo_server.py"))
        .args([&url, topic])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take()?),
        &mut line,
    )
    .ok()?;
    let output = Command::new(python)
        .arg(dir.join("oslo_client.py"))
        .args([&url, topic, &calls.to_string(), "64"])
        .stderr(Stdio::null())
        .output()
        .ok();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let figures: serde_json::Value = serde_json::from_slice(&output?.stdout).ok()?;
    Some((
        figures["p50_us"].as_f64()?,
        figures["p99_us"].as_f64()?,
        figures["seq_rate"].as_f64()?,
        figures["rate"].as_f64()?,
    ))
}

/// A virtualenv with oslo.messaging under the target directory.
fn oslo_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/oslo-bench-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import oslo_messaging"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        eprintln!("installing oslo.messaging==18.3.1 into {}", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", "oslo.messaging==18.3.1"])
                .status()
                .is_ok_and(|s| s.success());
        if !ok || !ready(&python) {
            eprintln!("oslo.messaging unavailable; leaving it out");
            return None;
        }
    }
    Some(python)
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rounds = if smoke {
        1
    } else {
        env_usize("BENCH_ROUNDS", 3)
    };
    let calls = if smoke {
        100
    } else {
        env_usize("BENCH_CALLS", 5_000)
    };
    let with_oslo = !smoke && std::env::var("BENCH_OSLO").map_or(true, |v| v != "0");
    let python = with_oslo.then(oslo_python).flatten();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let topic = format!("bench_{}", std::process::id());
        let (ours, server) = ours(&topic).await;
        let raw_bare = raw(&format!("{topic}_bare"), Shape::Bare).await;
        let raw_sized = raw(&format!("{topic}_sized"), Shape::OsloSized).await;
        let mut mine = Figures::default();
        let mut theirs = Figures::default();
        let mut sized = Figures::default();
        let mut oslo: Vec<(f64, f64, f64, f64)> = Vec::new();
        for round in 0..rounds {
            if std::env::var_os("BENCH_ONLY_RAW").is_none() {
                measure(&ours, calls, &IN_FLIGHT, &mut mine).await;
            }
            if std::env::var_os("BENCH_ONLY_OURS").is_some() {
                continue;
            }
            measure(&raw_bare, calls, &IN_FLIGHT, &mut theirs).await;
            measure(&raw_sized, calls, &IN_FLIGHT, &mut sized).await;
            if let Some(python) = &python {
                let oslo_topic = format!("{topic}_oslo");
                let python = python.clone();
                let n = (calls / 5).max(200);
                if let Ok(Some(f)) = tokio::task::spawn_blocking(move || oslo_round(&python, &oslo_topic, n)).await {
                    oslo.push(f);
                }
            }
            eprintln!("round {}/{rounds} done", round + 1);
        }
        println!("\nmedians of {rounds} interleaved rounds, RabbitMQ on loopback, 64-byte payload, 2 worker threads\n");
        println!("| implementation | seq calls/s | p50 | p99 | 16 in flight | 64 in flight | 256 in flight |");
        println!("|---|---|---|---|---|---|---|");
        for (name, f) in [
            ("rpc-runtime rabbit:// (oslo wire)", &mine),
            ("raw lapin loop", &theirs),
            ("raw lapin loop, oslo-sized messages", &sized),
        ]
            .into_iter()
            .filter(|(_, f)| !f.p50.is_empty())
        {
            println!("{}", row(name, f));
        }
        if !oslo.is_empty() {
            let col = |i: usize| median(&oslo.iter().map(|f| [f.0, f.1, f.2, f.3][i]).collect::<Vec<_>>());
            println!("| oslo.messaging 18.3.1 (Python) | {:.0} | {:.0} µs | {:.0} µs | — | {:.0} | — |", col(2), col(0), col(1), col(3));
        }
        if theirs.p50.is_empty() {
            return;
        }
        let ratios: Vec<String> = (0..IN_FLIGHT.len())
            .map(|i| format!("{}: {:.2}x", IN_FLIGHT[i], median(&mine.concurrent[i]) / median(&theirs.concurrent[i])))
            .collect();
        println!("\nours / raw lapin at {}; sequential p50 {:.2}x", ratios.join(", "), median(&mine.p50) / median(&theirs.p50));
        let sized_ratios: Vec<String> = (0..IN_FLIGHT.len())
            .map(|i| format!("{}: {:.2}x", IN_FLIGHT[i], median(&mine.concurrent[i]) / median(&sized.concurrent[i])))
            .collect();
        println!("ours / raw lapin with oslo-sized messages at {}", sized_ratios.join(", "));
        if !oslo.is_empty() {
            let oslo64 = median(&oslo.iter().map(|f| f.3).collect::<Vec<_>>());
            println!("ours / oslo.messaging at 64 in flight: {:.1}x", median(&mine.concurrent[1]) / oslo64);
        }
        server.stop().await;
        // Our topic queues are not auto-delete (oslo's flags); remove them.
        let uri = format!("amqp://guest:guest@{BROKER}/%2f");
        if let Ok(conn) = Connection::connect(&uri, ConnectionProperties::default()).await
            && let Ok(channel) = conn.create_channel().await
        {
            for queue in [topic.clone(), format!("{topic}.bench"), format!("{topic}_oslo"), format!("{topic}_oslo.oslo")] {
                let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
            }
        }
    });
}
