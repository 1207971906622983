//! In-process RPC, side by side: this framework over `memory://` (the full oslo envelope encoded
//! and decoded both ways) against tarpc's in-process channel (which encodes nothing) and tarpc over
//! TCP with JSON on loopback.
//!
//! Run: `cargo bench -p rpc-runtime --bench memory` (set `BENCH_ROUNDS` / `BENCH_CALLS` to change
//! the effort). Each round runs every implementation once, interleaved, so machine drift touches
//! all of them alike; the table shows medians over rounds and ratios against tarpc.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, future};
use rpc_runtime::{Context, MemoryBroker, RpcServer, ServerConfig};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Json;

mod harness;

use harness::{Caller, Echo, EchoClient, Figures, Ours, PAYLOAD, env_usize, measure, median, row};

#[tarpc::service]
trait TarpcEcho {
    async fn echo(value: String) -> String;
}

#[derive(Clone)]
struct TarpcEchoServer;

impl TarpcEcho for TarpcEchoServer {
    async fn echo(self, _: tarpc::context::Context, value: String) -> String {
        value
    }
}

#[derive(Clone)]
struct Tarpc(TarpcEchoClient);

impl Caller for Tarpc {
    async fn call(&self) {
        let mut ctx = tarpc::context::current();
        ctx.deadline = Instant::now() + Duration::from_secs(60);
        let reply = self.0.echo(ctx, PAYLOAD.to_owned()).await;
        assert_eq!(reply.expect("echo over tarpc").len(), PAYLOAD.len());
    }
}

async fn ours() -> (Ours, RpcServer) {
    let broker = MemoryBroker::new();
    let server = RpcServer::start(
        Arc::new(broker.transport()),
        EchoClient::target().with_server("bench"),
        vec![Arc::new(Echo)],
        ServerConfig::default().with_max_concurrency(256),
    )
    .await
    .expect("serve on memory://");
    let client = EchoClient::new(Arc::new(broker.transport()));
    let ctx = Context::new().with_user("bench").with_project("bench");
    (Ours { client, ctx }, server)
}

fn tarpc_in_process() -> Tarpc {
    let (client_transport, server_transport) = tarpc::transport::channel::unbounded();
    let server = BaseChannel::with_defaults(server_transport);
    tokio::spawn(
        server
            .execute(TarpcEchoServer.serve())
            .for_each(|response| async move {
                tokio::spawn(response);
            }),
    );
    let mut config = tarpc::client::Config::default();
    config.max_in_flight_requests = 4096;
    Tarpc(TarpcEchoClient::new(config, client_transport).spawn())
}

async fn tarpc_tcp_json() -> Tarpc {
    let mut listener =
        tarpc::serde_transport::tcp::listen((IpAddr::V4(Ipv4Addr::LOCALHOST), 0), Json::default)
            .await
            .expect("listen on loopback");
    listener.config_mut().max_frame_length(usize::MAX);
    let addr = listener.local_addr();
    tokio::spawn(
        listener
            .filter_map(|r| future::ready(r.ok()))
            .map(BaseChannel::with_defaults)
            .for_each(|channel| async move {
                tokio::spawn(channel.execute(TarpcEchoServer.serve()).for_each(
                    |response| async move {
                        tokio::spawn(response);
                    },
                ));
            }),
    );
    let transport = tarpc::serde_transport::tcp::connect(addr, Json::default)
        .await
        .expect("connect on loopback");
    let mut config = tarpc::client::Config::default();
    config.max_in_flight_requests = 4096;
    Tarpc(TarpcEchoClient::new(config, transport).spawn())
}

const IN_FLIGHT: [usize; 4] = [1, 16, 64, 256];

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent; do a quick smoke run then.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rounds = if smoke {
        1
    } else {
        env_usize("BENCH_ROUNDS", 5)
    };
    let calls = if smoke {
        200
    } else {
        env_usize("BENCH_CALLS", 20_000)
    };
    let threads = env_usize("BENCH_THREADS", 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let (ours, _server) = ours().await;
        let in_process = tarpc_in_process();
        let tcp_json = tarpc_tcp_json().await;
        let mut results: [(&str, Figures); 3] = [
            ("rpc-runtime memory:// (oslo envelope)", Figures::default()),
            ("tarpc in-process channel (no encoding)", Figures::default()),
            ("tarpc TCP + JSON (loopback)", Figures::default()),
        ];
        let only_ours = std::env::var_os("BENCH_ONLY_OURS").is_some();
        for round in 0..rounds {
            measure(&ours, calls, &IN_FLIGHT, &mut results[0].1).await;
            if only_ours {
                continue;
            }
            measure(&in_process, calls, &IN_FLIGHT, &mut results[1].1).await;
            measure(&tcp_json, calls, &IN_FLIGHT, &mut results[2].1).await;
            eprintln!("round {}/{rounds} done", round + 1);
        }
        println!(
            "\nmedians of {rounds} interleaved rounds, {calls} sequential calls and {} calls per concurrency level, 64-byte payload, {threads} worker threads\n",
            calls * 4
        );
        println!(
            "| implementation | seq calls/s | p50 | p99 | 1 in flight | 16 in flight | 64 in flight | 256 in flight |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (name, f) in results.iter().filter(|(_, f)| !f.p50.is_empty()) {
            println!("{}", row(name, f));
        }
        if only_ours {
            return;
        }
        let ratio = |a: &Figures, b: &Figures, i: usize| median(&a.concurrent[i]) / median(&b.concurrent[i]);
        let [(_, ours), (_, in_process), (_, tcp_json)] = &results;
        println!("\nratios (ours / peer), throughput at 1, 16, 64, 256 in flight:");
        for (peer, figures) in [("tarpc in-process", in_process), ("tarpc TCP+JSON", tcp_json)] {
            let r: Vec<String> = (0..IN_FLIGHT.len()).map(|i| format!("{:.2}x", ratio(ours, figures, i))).collect();
            println!("  vs {peer}: {}", r.join(", "));
        }
    });
}
