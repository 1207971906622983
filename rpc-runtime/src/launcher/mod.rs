//! The launcher (oslo.service's `serve(server, workers)` and `wait()`): one per process. With one
//! worker the services run in this process; with N, this process re-executes itself N times,
//! supervises the workers (a dead one is restarted with a backoff) and never serves RPC itself.
//!
//! `wait()` handles the signals: SIGTERM and SIGINT stop taking requests, let those in flight
//! finish within `graceful_shutdown_timeout`, leave the service group and return the exit code
//! (0, or 2 when work was abandoned at the timeout); SIGHUP reloads the configuration and restarts
//! the services (the workers, in the parent) when the process is a daemon (stdin is not a
//! terminal), and stops a foreground process as SIGTERM does, as oslo.service does. SIGUSR2
//! drains: the RPC servers stop taking requests from their shared topic queues and keep serving
//! the rest (the parent passes it to its workers). Readiness is sent to `NOTIFY_SOCKET`
//! (sd_notify) when it is set, and `WATCHDOG=1` at half of `WATCHDOG_USEC`. With `[metrics]
//! listen` set, the serving process answers `/metrics`, `/healthz` and `/readyz` there.
//!
//! ```no_run
//! use rpc_runtime::launcher::{self, Services};
//! # use rpc_runtime::{Context, Service, rpc_endpoint, service::Manager};
//! # struct Echo;
//! # #[rpc_endpoint(topic = "echo", version = "1.0")]
//! # impl Echo { #[rpc] async fn ping(&self, _ctx: &Context) {} }
//! # impl Manager for Echo {}
//!
//! # async fn run() -> Result<std::process::ExitCode, launcher::LaunchError> {
//! // Builds the services from freshly loaded configuration: at start, and again on SIGHUP.
//! let build = || async {
//!     let config = rpc_runtime::config::ConfigLoader::new().process_env().load()?.config;
//!     let service = Service::builder(config).binary("demo-echo").create(|_host| Echo)?;
//!     Ok(Services::new().with(service))
//! };
//! let launcher = launcher::serve(4, build).await?;
//! Ok(launcher.wait().await.into())
//! # }
//! ```

mod notify;
mod signals;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};

use self::signals::{Event, Signals};
use self::workers::{WORKER_VAR, Workers};
use crate::error::TransportError;
use crate::metrics::{MetricsServer, ReadinessCheck};
use crate::service::{Manager, Service, ServiceError, StopOutcome};
use crate::transport::BoxFuture;

/// Set once a launcher exists in this process.
static LAUNCHED: AtomicBool = AtomicBool::new(false);

/// Why the launcher could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// `serve` was called before in this process (oslo.service's `RuntimeError`).
    #[error("a launcher already runs in this process: serve() may be called once")]
    AlreadyLaunched,
    /// The services could not be built (configuration, …).
    #[error("could not build the services")]
    Build(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A service failed to start; the launcher stopped the others.
    #[error("service {name} failed to start")]
    Start {
        /// The service's binary.
        name: String,
        /// Why.
        #[source]
        source: ServiceError,
    },
    /// A worker process could not be started.
    #[error("could not start a worker process")]
    Spawn(#[source] std::io::Error),
    /// The signal handlers could not be installed.
    #[error("could not listen for signals")]
    Signals(#[source] std::io::Error),
    /// The metrics endpoint (`[metrics] listen`) could not listen.
    #[error("the metrics endpoint could not listen on {addr}")]
    Metrics {
        /// The address it was to listen on.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::config::ConfigError> for LaunchError {
    fn from(error: crate::config::ConfigError) -> Self {
        Self::Build(Box::new(error))
    }
}

impl From<ServiceError> for LaunchError {
    fn from(error: ServiceError) -> Self {
        Self::Build(Box::new(error))
    }
}

/// How the launcher ended; converts to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Stopped by a signal, every request answered: exit code 0.
    Graceful,
    /// Stopped by a signal, but work still running after `graceful_shutdown_timeout` was
    /// abandoned: exit code 2.
    TimedOut,
    /// A service failed (to start after a reload, or a worker did not stop cleanly): exit code 1.
    Failed,
}

impl Exit {
    /// The exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Graceful => 0,
            Self::Failed => 1,
            Self::TimedOut => 2,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

/// Several services run together (oslo.service's `Services`): started in order, stopped together.
#[derive(Default)]
pub struct Services {
    services: Vec<Box<dyn Runnable>>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.services.iter().map(|s| s.name()).collect();
        f.debug_struct("Services")
            .field("services", &names)
            .finish()
    }
}

impl Services {
    /// No services yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a service.
    #[must_use]
    pub fn with<M: Manager>(mut self, service: Service<M>) -> Self {
        self.services.push(Box::new(service));
        self
    }

    /// Adds a notification listener, started after the services added before it and stopped
    /// with them: on SIGTERM it finishes what runs (acknowledged) and leaves the rest queued.
    #[must_use]
    pub fn with_notification_listener(mut self, listener: crate::notify::ListenerBuilder) -> Self {
        self.services.push(Box::new(ListenerService {
            builder: Some(listener),
            running: None,
        }));
        self
    }

    /// Starts every service; when one fails, stops those started and returns its error.
    async fn start(&mut self) -> Result<(), LaunchError> {
        for index in 0..self.services.len() {
            if let Err(source) = self.services[index].start().await {
                let name = self.services[index].name();
                tracing::error!(service = %name, error = %crate::error::chain(&source), "a service failed to start; stopping the others");
                for started in &mut self.services[..index] {
                    let _ = started.stop().await;
                }
                return Err(LaunchError::Start { name, source });
            }
        }
        Ok(())
    }

    /// Where the first service that sets `[metrics] listen` wants the metrics endpoint.
    fn metrics_listen(&self) -> Option<SocketAddr> {
        self.services.iter().find_map(|s| s.metrics_listen())
    }

    /// Every service's readiness check, in order; the first that fails says why.
    fn readiness(&self) -> ReadinessCheck {
        let checks: std::sync::Arc<[ReadinessCheck]> =
            self.services.iter().filter_map(|s| s.readiness()).collect();
        std::sync::Arc::new(move || {
            let checks = std::sync::Arc::clone(&checks);
            Box::pin(async move {
                for check in checks.iter() {
                    check().await?;
                }
                Ok(())
            })
        })
    }

    /// Drains every service (each RPC server stops taking from its shared topic queue).
    async fn drain(&mut self) {
        for service in &mut self.services {
            if let Err(error) = service.drain().await {
                tracing::error!(service = %service.name(), error = %crate::error::chain(&error), "could not drain");
            }
        }
    }

    /// Stops every service at once; `TimedOut` if any abandoned work.
    async fn stop(&mut self) -> StopOutcome {
        let stops = self.services.iter_mut().map(|s| s.stop());
        let outcomes = futures_util::future::join_all(stops).await;
        if outcomes.contains(&StopOutcome::TimedOut) {
            StopOutcome::TimedOut
        } else {
            StopOutcome::Graceful
        }
    }
}

/// A service of any manager, as the launcher drives it.
trait Runnable: Send {
    fn name(&self) -> String;
    /// `[metrics] listen` of its configuration.
    fn metrics_listen(&self) -> Option<SocketAddr> {
        None
    }
    /// Its readiness check once started; `None`: nothing to check.
    fn readiness(&self) -> Option<ReadinessCheck> {
        None
    }
    /// Stops taking requests from shared queues (nothing to do for most).
    fn drain(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn start(&mut self) -> BoxFuture<'_, Result<(), ServiceError>>;
    fn stop(&mut self) -> BoxFuture<'_, StopOutcome>;
}

impl<M: Manager> Runnable for Service<M> {
    fn name(&self) -> String {
        format!("{}@{}", self.binary(), self.host())
    }

    fn metrics_listen(&self) -> Option<SocketAddr> {
        self.config().metrics.listen
    }

    fn readiness(&self) -> Option<ReadinessCheck> {
        self.readiness_check()
    }

    fn drain(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(Service::drain(self))
    }

    fn start(&mut self) -> BoxFuture<'_, Result<(), ServiceError>> {
        Box::pin(Service::start(self))
    }

    fn stop(&mut self) -> BoxFuture<'_, StopOutcome> {
        Box::pin(Service::stop(self))
    }
}

/// A notification listener, as the launcher drives it.
struct ListenerService {
    builder: Option<crate::notify::ListenerBuilder>,
    running: Option<crate::notify::NotificationListener>,
}

impl Runnable for ListenerService {
    fn name(&self) -> String {
        match &self.running {
            Some(listener) => format!("notification listener {:?}", listener.topics()),
            None => "notification listener".to_owned(),
        }
    }

    fn start(&mut self) -> BoxFuture<'_, Result<(), ServiceError>> {
        Box::pin(async move {
            let Some(builder) = self.builder.take() else {
                return Ok(());
            };
            let listener = builder.start().await.map_err(ServiceError::Listener)?;
            self.running = Some(listener);
            Ok(())
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, StopOutcome> {
        Box::pin(async move {
            if let Some(listener) = self.running.take() {
                listener.stop().await;
            }
            StopOutcome::Graceful
        })
    }
}

type Build = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Services, LaunchError>> + Send>> + Send + Sync,
>;

/// A running launcher; [`wait`](Self::wait) until a signal ends it.
pub struct Launcher {
    build: Build,
    mode: Mode,
    /// `/metrics`, `/healthz` and `/readyz`, in the process that serves, when configured.
    metrics: Option<MetricsServer>,
    /// Pings systemd's watchdog while the launcher lives (`WATCHDOG_USEC`).
    watchdog: Option<tokio::task::JoinHandle<()>>,
    signals: Signals,
    stop: StopHandle,
}

/// Stops a [`Launcher`] from inside the process, as SIGTERM does: for a program that serves for a
/// while and then ends by itself (a demo, a one-shot job). Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl StopHandle {
    /// Asks the launcher to stop gracefully; [`Launcher::wait`] then returns as after SIGTERM.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

enum Mode {
    /// Services run here.
    InProcess(Services),
    /// Workers run them; this process supervises.
    Parent(Workers),
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Mode::InProcess(services) => f.debug_tuple("Launcher").field(services).finish(),
            Mode::Parent(workers) => f
                .debug_struct("Launcher")
                .field("workers", &workers.pids())
                .finish(),
        }
    }
}

/// Starts serving: `build` makes the services from the configuration (called again on SIGHUP),
/// `workers` is how many processes serve (1: this one). Readiness is notified once serving.
///
/// # Errors
///
/// [`LaunchError::AlreadyLaunched`] on a second call in one process; a build, start, spawn or
/// signal-handler failure otherwise.
pub async fn serve<F, Fut>(workers: usize, build: F) -> Result<Launcher, LaunchError>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Services, LaunchError>> + Send + 'static,
{
    if LAUNCHED.swap(true, Ordering::SeqCst) {
        return Err(LaunchError::AlreadyLaunched);
    }
    let build: Build = Box::new(move || Box::pin(build()));
    let (stop, requested) = tokio::sync::watch::channel(false);
    let signals = Signals::new(requested).map_err(LaunchError::Signals)?;
    let is_worker = std::env::var_os(WORKER_VAR).is_some();
    let mut metrics = None;
    let mode = if workers <= 1 || is_worker {
        let mut services = build().await?;
        // Listening before the services start: `/healthz` answers, `/readyz` says not yet.
        if let Some(addr) = services.metrics_listen() {
            metrics = Some(start_metrics(addr).await?);
        }
        services.start().await?;
        if let Some(metrics) = &metrics {
            metrics.health().set_check(Some(services.readiness()));
        }
        if is_worker {
            tracing::info!(worker = ?std::env::var(WORKER_VAR).ok(), pid = std::process::id(), "worker serving");
        }
        Mode::InProcess(services)
    } else {
        tracing::info!(workers, "starting worker processes");
        Mode::Parent(Workers::spawn(workers)?)
    };
    notify::notify("READY=1");
    Ok(Launcher {
        build,
        mode,
        metrics,
        watchdog: notify::spawn_watchdog(),
        signals,
        stop: StopHandle(std::sync::Arc::new(stop)),
    })
}

impl Launcher {
    /// Whether this process is one of a parent launcher's workers (started by `serve(n, …)`
    /// with `n > 1`): a program that prints a readiness line or a banner does so in the parent
    /// only, since workers share its standard output.
    pub fn is_worker(&self) -> bool {
        std::env::var_os(WORKER_VAR).is_some()
    }

    /// A handle that stops this launcher as SIGTERM would.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs until SIGTERM or SIGINT (or, in a worker, until its parent goes away), handling SIGHUP
    /// on the way; returns how it ended.
    pub async fn wait(mut self) -> Exit {
        let is_worker = std::env::var_os(WORKER_VAR).is_some();
        loop {
            let event = match &mut self.mode {
                Mode::InProcess(_) => {
                    tokio::select! {
                        event = self.signals.next() => event,
                        () = parent_gone(is_worker) => {
                            tracing::warn!("the parent process is gone; stopping");
                            Event::Stop
                        }
                    }
                }
                Mode::Parent(workers) => {
                    tokio::select! {
                        event = self.signals.next() => event,
                        () = workers.supervise_one() => continue,
                    }
                }
            };
            if event == Event::Drain {
                match &mut self.mode {
                    Mode::InProcess(services) => {
                        tracing::info!("SIGUSR2: draining the services");
                        services.drain().await;
                    }
                    Mode::Parent(workers) => {
                        tracing::info!("SIGUSR2: draining the workers");
                        for pid in workers.pids() {
                            workers::send(pid, nix::sys::signal::Signal::SIGUSR2);
                        }
                    }
                }
                continue;
            }
            let reload = event == Event::Reload && signals::is_daemon();
            if event == Event::Reload && !reload {
                tracing::info!("SIGHUP in the foreground: stopping, as for SIGTERM");
            }
            notify::notify(if reload { "RELOADING=1" } else { "STOPPING=1" });
            match &mut self.mode {
                Mode::InProcess(services) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.health().set_check(None);
                    }
                    tracing::info!(reload, "stopping the services");
                    let outcome = services.stop().await;
                    if !reload {
                        return match outcome {
                            StopOutcome::Graceful => Exit::Graceful,
                            StopOutcome::TimedOut => Exit::TimedOut,
                        };
                    }
                    tracing::info!("reloading the configuration and restarting the services");
                    match (self.build)().await {
                        Ok(mut fresh) => match fresh.start().await {
                            Ok(()) => {
                                if let Some(metrics) = &self.metrics {
                                    metrics.health().set_check(Some(fresh.readiness()));
                                }
                                *services = fresh;
                            }
                            Err(error) => {
                                tracing::error!(error = %crate::error::chain(&error), "restart after SIGHUP failed");
                                return Exit::Failed;
                            }
                        },
                        Err(error) => {
                            tracing::error!(error = %crate::error::chain(&error), "reload after SIGHUP failed");
                            return Exit::Failed;
                        }
                    }
                }
                Mode::Parent(workers) => {
                    if !reload {
                        tracing::info!("stopping the workers");
                        return if workers.stop().await {
                            Exit::Graceful
                        } else {
                            Exit::Failed
                        };
                    }
                    tracing::info!("restarting the workers");
                    if let Err(error) = workers.restart().await {
                        tracing::error!(error = %crate::error::chain(&error), "could not restart the workers");
                        return Exit::Failed;
                    }
                }
            }
            notify::notify("READY=1");
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.abort();
        }
    }
}

/// Enables the metrics and listens on `addr`; worker `k` of a parent launcher listens on the
/// port after `k` others (`9464` → `9464 + k`), since each worker is a process of its own.
async fn start_metrics(mut addr: SocketAddr) -> Result<MetricsServer, LaunchError> {
    let worker = std::env::var(WORKER_VAR)
        .ok()
        .and_then(|index| index.parse::<u16>().ok());
    if let Some(index) = worker
        && addr.port() != 0
    {
        addr.set_port(addr.port().saturating_add(index));
    }
    crate::metrics::enable();
    MetricsServer::start(addr)
        .await
        .map_err(|source| LaunchError::Metrics { addr, source })
}

/// Resolves when a worker's parent is gone (its stdin pipe closes); never for a non-worker.
///
/// The pipe is read by a plain thread, started once: a tokio blocking read would keep the runtime
/// from shutting down at exit while the parent, waiting for this worker, holds the pipe open.
async fn parent_gone(is_worker: bool) {
    static GONE: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>> =
        std::sync::OnceLock::new();
    if !is_worker {
        return std::future::pending().await;
    }
    let mut gone = GONE
        .get_or_init(|| {
            let (tx, rx) = tokio::sync::watch::channel(false);
            std::thread::spawn(move || {
                use std::io::Read;
                let mut stdin = std::io::stdin();
                let mut buf = [0u8; 64];
                while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
                let _ = tx.send(true);
            });
            rx
        })
        .clone();
    let _ = gone.wait_for(|gone| *gone).await;
}
