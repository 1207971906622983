//! What both benchmarks share: a caller abstraction, the measurements, medians.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rpc_runtime::{Context, rpc_endpoint};

/// The payload every call carries and gets back: 64 bytes.
pub(crate) const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// One implementation under test: a cheap-to-clone handle that makes one echo call.
pub(crate) trait Caller: Clone + Send + Sync + 'static {
    fn call(&self) -> impl Future<Output = ()> + Send;
}

/// The endpoint both benchmarks serve.
pub(crate) struct Echo;

#[rpc_endpoint(topic = "bench", version = "1.0")]
impl Echo {
    #[rpc]
    async fn echo(&self, _ctx: &Context, value: String) -> String {
        value
    }
}

/// This framework as a caller: the generated client and a context reused across calls.
#[derive(Clone)]
pub(crate) struct Ours {
    pub(crate) client: EchoClient,
    pub(crate) ctx: Context,
}

impl Caller for Ours {
    async fn call(&self) {
        let reply = self.client.echo(&self.ctx, PAYLOAD.to_owned()).await;
        assert_eq!(reply.expect("echo").len(), PAYLOAD.len());
    }
}

/// Figures of one implementation over rounds.
#[derive(Default)]
pub(crate) struct Figures {
    /// Sequential latency percentiles, in microseconds.
    pub(crate) p50: Vec<f64>,
    pub(crate) p99: Vec<f64>,
    /// Sequential calls per second.
    pub(crate) sequential: Vec<f64>,
    /// Calls per second, per concurrency level.
    pub(crate) concurrent: Vec<Vec<f64>>,
}

/// One round: sequential latency on a runtime worker, then throughput at each level of calls in
/// flight (`calls * 4` calls each).
pub(crate) async fn measure<C: Caller>(
    caller: &C,
    calls: usize,
    in_flight: &[usize],
    figures: &mut Figures,
) {
    let seq = caller.clone();
    let sequential_calls = env_usize("BENCH_SEQ_CALLS", calls).max(1);
    let (p50, p99, rate) = tokio::spawn(async move {
        let calls = sequential_calls;
        for _ in 0..calls / 10 {
            seq.call().await;
        }
        let mut samples = Vec::with_capacity(calls);
        let started = Instant::now();
        for _ in 0..calls {
            let t = Instant::now();
            seq.call().await;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let rate = calls as f64 / started.elapsed().as_secs_f64();
        samples.sort_by(f64::total_cmp);
        (
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100],
            rate,
        )
    })
    .await
    .expect("sequential bench task");
    figures.p50.push(p50);
    figures.p99.push(p99);
    figures.sequential.push(rate);
    figures.concurrent.resize(in_flight.len(), Vec::new());
    for (i, n) in in_flight.iter().enumerate() {
        let total = calls * 4;
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..*n)
            .map(|_| {
                let caller = caller.clone();
                let next = Arc::clone(&next);
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        caller.call().await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("bench worker");
        }
        figures.concurrent[i].push(total as f64 / started.elapsed().as_secs_f64());
    }
}

/// The median (NaN for none).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A whole number from the environment, or the default.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One table row: sequential rate, p50, p99, then the concurrency columns.
pub(crate) fn row(name: &str, f: &Figures) -> String {
    let conc: Vec<String> = f
        .concurrent
        .iter()
        .map(|v| format!("{:.0}", median(v)))
        .collect();
    format!(
        "| {name} | {:.0} | {:.1} µs | {:.1} µs | {} |",
        median(&f.sequential),
        median(&f.p50),
        median(&f.p99),
        conc.join(" | ")
    )
}
