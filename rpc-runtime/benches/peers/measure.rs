//! What every implementation under test shares: the caller abstractions, the endpoint this
//! framework serves, one round of measurements, and medians.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use rpc_runtime::{Context, RpcServer, ServerConfig, Target, Transport, rpc_endpoint};
use tokio::sync::Notify;

/// The payload every call and cast carries (and every call gets back): 64 bytes.
pub(crate) const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Calls in flight at each throughput level.
pub(crate) const IN_FLIGHT: [usize; 4] = [1, 16, 64, 256];

/// Casts in flight while measuring cast throughput.
pub(crate) const CASTS_IN_FLIGHT: usize = 64;

/// One implementation under test: a cheap-to-clone handle that makes one echo call.
pub(crate) trait Caller: Clone + Send + Sync + 'static {
    fn call(&self) -> impl Future<Output = ()> + Send;
}

/// One implementation's one-way messages: send one, and wait for arrivals at the server.
pub(crate) trait Caster: Clone + Send + Sync + 'static {
    fn cast(&self) -> impl Future<Output = ()> + Send;
    fn arrivals(&self) -> &Arrivals;
}

/// Counts casts arriving at a server and wakes whoever waits for a number of them.
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    count: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Arrivals {
    /// One more cast arrived.
    pub(crate) fn add(&self) {
        let count = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if count == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    /// Casts that arrived so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until `total` casts in all have arrived.
    pub(crate) async fn wait_for(&self, total: u64) {
        self.target.store(total, Ordering::Release);
        while self.count() < total {
            self.reached.notified().await;
        }
    }
}

/// The endpoint this framework serves in every transport's benchmark.
#[derive(Debug, Default)]
pub(crate) struct Echo {
    pub(crate) arrivals: Arc<Arrivals>,
}

#[rpc_endpoint(topic = "bench", version = "1.0")]
impl Echo {
    #[rpc]
    async fn echo(&self, _ctx: &Context, value: String) -> String {
        value
    }

    #[rpc(cast)]
    async fn note(&self, _ctx: &Context, value: String) {
        debug_assert_eq!(value.len(), PAYLOAD.len());
        self.arrivals.add();
    }
}

/// This framework as a caller: the generated client, a context reused across calls, and the
/// server's arrival counter.
#[derive(Clone)]
pub(crate) struct Ours {
    pub(crate) client: EchoClient,
    pub(crate) ctx: Context,
    pub(crate) arrivals: Arc<Arrivals>,
}

impl Ours {
    /// Serves [`Echo`] on `server_transport` at `target` (up to 256 requests at a time) and
    /// calls it through `client`; the server runs as long as the returned handle lives.
    pub(crate) async fn serve(
        server_transport: Arc<dyn Transport>,
        target: Target,
        client: EchoClient,
    ) -> (Self, RpcServer) {
        let arrivals = Arc::new(Arrivals::default());
        let server = RpcServer::start(
            server_transport,
            target,
            vec![Arc::new(Echo {
                arrivals: Arc::clone(&arrivals),
            })],
            ServerConfig::default().with_max_concurrency(256),
        )
        .await
        .expect("serve");
        let ctx = Context::new().with_user("bench").with_project("bench");
        let ours = Self {
            client,
            ctx,
            arrivals,
        };
        (ours, server)
    }
}

impl Caller for Ours {
    async fn call(&self) {
        let reply = self.client.echo(&self.ctx, PAYLOAD.to_owned()).await;
        assert_eq!(reply.expect("echo").len(), PAYLOAD.len());
    }
}

impl Caster for Ours {
    async fn cast(&self) {
        self.client
            .note(&self.ctx, PAYLOAD.to_owned())
            .await
            .expect("cast");
    }

    fn arrivals(&self) -> &Arrivals {
        &self.arrivals
    }
}

/// Figures of one implementation over rounds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Figures {
    /// Sequential latency percentiles, in microseconds.
    pub(crate) p50: Vec<f64>,
    pub(crate) p99: Vec<f64>,
    /// Calls per second, per level of [`IN_FLIGHT`].
    pub(crate) concurrent: Vec<Vec<f64>>,
    /// Casts per second, sent to arrived.
    pub(crate) casts: Vec<f64>,
}

impl Figures {
    pub(crate) fn p50(&self) -> f64 {
        median(&self.p50)
    }

    pub(crate) fn p99(&self) -> f64 {
        median(&self.p99)
    }

    /// Median calls per second with `IN_FLIGHT[level]` calls in flight.
    pub(crate) fn rate(&self, level: usize) -> f64 {
        self.concurrent.get(level).map_or(f64::NAN, |v| median(v))
    }

    pub(crate) fn cast_rate(&self) -> f64 {
        median(&self.casts)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.p50.is_empty() && self.casts.is_empty()
    }
}

/// How much work one round does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effort {
    /// Sequential calls timed one by one.
    pub(crate) sequential: usize,
    /// Calls at each level of calls in flight above one (a quarter of it at one in flight).
    pub(crate) per_level: usize,
    /// Casts timed from the first sent to the last arrived.
    pub(crate) casts: usize,
}

/// One measurement of a round. Rounds run step by step, every implementation of a group taking
/// the same step in turn (in alternating order from round to round), so that what drifts on a
/// noisy machine touches all of them alike.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Sequential calls, timed one by one.
    Sequential,
    /// Calls with `IN_FLIGHT[level]` in flight.
    InFlight(usize),
    /// Casts, sent until all arrived.
    Casts,
}

impl Step {
    /// Every step of a round, in order.
    pub(crate) fn all() -> impl Iterator<Item = Self> {
        std::iter::once(Self::Sequential)
            .chain((0..IN_FLIGHT.len()).map(Self::InFlight))
            .chain(std::iter::once(Self::Casts))
    }
}

/// One step of calls: sequential latency on a runtime worker, or throughput at one level of calls
/// in flight. (Casts are [`measure_casts`].)
pub(crate) async fn measure_calls<C: Caller>(
    caller: &C,
    step: Step,
    effort: Effort,
    figures: &mut Figures,
) {
    match step {
        Step::Sequential => {
            let (p50, p99) = sequential(caller.clone(), effort.sequential.max(1)).await;
            figures.p50.push(p50);
            figures.p99.push(p99);
        }
        Step::InFlight(level) => {
            let n = IN_FLIGHT[level];
            let total = if n == 1 {
                effort.per_level / 4
            } else {
                effort.per_level
            };
            let rate = run_in_flight(n, total, &Calls(caller.clone())).await;
            figures.concurrent.resize(IN_FLIGHT.len(), Vec::new());
            figures.concurrent[level].push(rate);
        }
        Step::Casts => {}
    }
}

/// Sequential latency percentiles (p50, p99) in microseconds, measured on a runtime worker.
async fn sequential<C: Caller>(caller: C, calls: usize) -> (f64, f64) {
    tokio::spawn(async move {
        for _ in 0..calls / 10 {
            caller.call().await;
        }
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            caller.call().await;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        samples.sort_by(f64::total_cmp);
        (
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100],
        )
    })
    .await
    .expect("sequential bench task")
}

/// One round of casts: [`CASTS_IN_FLIGHT`] senders, timed until the server has them all.
pub(crate) async fn measure_casts<C: Caster>(caster: &C, effort: Effort, figures: &mut Figures) {
    let before = caster.arrivals().count();
    let total = effort.casts;
    let started = Instant::now();
    run_in_flight(CASTS_IN_FLIGHT, total, &Casts(caster.clone())).await;
    caster.arrivals().wait_for(before + total as u64).await;
    figures
        .casts
        .push(total as f64 / started.elapsed().as_secs_f64());
}

/// One operation of a throughput run.
pub(crate) trait Operation: Clone + Send + Sync + 'static {
    fn run(&self) -> impl Future<Output = ()> + Send;
}

#[derive(Clone)]
struct Calls<C>(C);

impl<C: Caller> Operation for Calls<C> {
    fn run(&self) -> impl Future<Output = ()> + Send {
        self.0.call()
    }
}

#[derive(Clone)]
struct Casts<C>(C);

impl<C: Caster> Operation for Casts<C> {
    fn run(&self) -> impl Future<Output = ()> + Send {
        self.0.cast()
    }
}

/// Runs `total` operations with `n` in flight; the rate per second.
pub(crate) async fn run_in_flight<O: Operation>(n: usize, total: usize, op: &O) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let op = op.clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    op.run().await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("bench worker");
    }
    total as f64 / started.elapsed().as_secs_f64()
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
