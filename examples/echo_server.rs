//! An echo service for interop tests by anyone: `echo(value)` returns any JSON value unchanged,
//! `add(a, b)` adds integers, `fail(message)` returns the typed error `EchoError`.
//!
//! ```text
//! cargo run -p rpc-examples --bin echo_server -- \
//!     --transport-url rabbit://guest:guest@127.0.0.1:5672/ --topic echo --server host1
//! ```
//!
//! Prints `ready` on stdout once it consumes; exits 0 on SIGTERM or SIGINT after finishing the
//! requests in flight.

use std::fmt;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rpc_runtime::{ApplicationError, Context, RpcServer, ServerConfig, Target, rpc_endpoint};
use serde::{Deserialize, Serialize};

/// Serves the echo endpoint (RPC API 1.1) on a topic.
#[derive(Debug, Parser)]
struct Args {
    /// Where to connect: `rabbit://user:pass@host:port/vhost` or `memory://`.
    #[arg(long)]
    transport_url: String,
    /// The topic to serve.
    #[arg(long, default_value = "echo")]
    topic: String,
    /// This server's name on the topic (`topic.server`).
    #[arg(long, default_value = "echo-server")]
    server: String,
    /// The exchange; the transport's control exchange when absent.
    #[arg(long)]
    exchange: Option<String>,
}

/// The error `fail` returns; Python callers see class `EchoError` with the message.
#[derive(Debug, Serialize, Deserialize)]
struct EchoError {
    message: String,
}

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApplicationError for EchoError {}

struct Echo;

#[rpc_endpoint(topic = "echo", version = "1.1")]
impl Echo {
    /// Returns `value` unchanged.
    #[rpc(since = "1.0")]
    async fn echo(&self, _ctx: &Context, value: serde_json::Value) -> serde_json::Value {
        value
    }

    /// Adds two integers.
    #[rpc(since = "1.0")]
    async fn add(&self, _ctx: &Context, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// Fails with `EchoError(message)`.
    #[rpc(since = "1.1")]
    async fn fail(&self, _ctx: &Context, message: String) -> Result<(), EchoError> {
        Err(EchoError { message })
    }

    /// Returns the caller's context as the server sees it.
    #[rpc(since = "1.1")]
    async fn whoami(&self, ctx: &Context) -> serde_json::Map<String, serde_json::Value> {
        ctx.to_dict()
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("echo_server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let transport = rpc_runtime::connect(&args.transport_url).await?;
    let mut target = Target::new(args.topic.as_str()).with_server(args.server.as_str());
    if let Some(exchange) = &args.exchange {
        target = target.with_exchange(exchange.as_str());
    }
    let server = RpcServer::start(
        transport,
        target,
        vec![Arc::new(Echo)],
        ServerConfig::default(),
    )
    .await?;
    println!("ready");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    server.stop().await;
    Ok(())
}
