//! A whole service through `Service::builder(config).create(..)`: it registers in a SQLite
//! registry, heartbeats, serves RPC over `memory://` (or RabbitMQ) and runs a periodic task.
//! Watch it with the logs:
//!
//! ```text
//! cargo run -p rpc-examples --bin service -- --set DEFAULT.report_interval=2
//! ```
//!
//! Every setting comes from oslo.config-style sources (`--config-file nova.conf`,
//! `OS_DEFAULT__REPORT_INTERVAL=2`, `--set SECTION.KEY=VALUE`); by default the registry is
//! `services.sqlite` in the working directory. Stops on SIGINT or SIGTERM, or after
//! `--heartbeats N` heartbeats.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use rpc_runtime::cli::ConfigArgs;
use rpc_runtime::registry::ServiceRecord;
use rpc_runtime::service::{HookError, Manager};
use rpc_runtime::{Context, Service, rpc_endpoint};

/// Runs the `inventory` service until a signal.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    /// Stop after this many heartbeats (for scripted runs).
    #[arg(long)]
    heartbeats: Option<u64>,
}

/// A manager with one RPC method and one periodic task.
struct Inventory {
    host: String,
    audits: AtomicU64,
}

#[rpc_endpoint(topic = "inventory", version = "1.0")]
impl Inventory {
    /// How many audits this host has run.
    #[rpc]
    async fn audits(&self, _ctx: &Context) -> u64 {
        self.audits.load(Ordering::Relaxed)
    }

    /// Runs every 5 seconds, the first time right after start.
    #[periodic_task(spacing = 5, run_immediately)]
    async fn audit(&self, _ctx: &Context) {
        let n = self.audits.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(host = %self.host, audit = n, "periodic task: audit ran");
    }
}

impl Manager for Inventory {
    async fn pre_start_hook(&self, service: &ServiceRecord) -> Result<(), HookError> {
        tracing::info!(
            id = service.id,
            "pre_start_hook: registered as service {}",
            service.id
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = std::error::Error::source(error.as_ref());
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.config.loader().topic("inventory").load()?.config;
    // Quick starts for a demo: the periodic loop's random initial delay is capped at 1 s here.
    let mut config = config;
    config.periodic_fuzzy_delay = config
        .periodic_fuzzy_delay
        .min(std::time::Duration::from_secs(1));
    let mut service = Service::builder(config)
        .binary("demo-inventory")
        .create(|host| Inventory {
            host: host.to_owned(),
            audits: AtomicU64::new(0),
        })?;
    service.start().await?;
    let mut heartbeats = service.heartbeats();
    let limit = args.heartbeats;
    let watch = async move {
        loop {
            if heartbeats.changed().await.is_err() {
                return;
            }
            let status = heartbeats.borrow_and_update().clone();
            if let Some(record) = &status.record {
                tracing::info!(
                    report_count = record.report_count,
                    updated_at = %record.updated_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    "heartbeat"
                );
            }
            if limit.is_some_and(|n| status.succeeded >= n) {
                return;
            }
        }
    };
    tokio::select! {
        () = watch => {}
        () = shutdown_signal() => {}
    }
    service.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
