//! The RPC server: takes requests from a transport's listener and runs them through the dispatcher,
//! at most a configured number at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::dispatch::Dispatcher;
use crate::endpoint::Endpoint;
use crate::envelope::Reply;
use crate::error::TransportError;
use crate::introspection::DescribeEndpoint;
use crate::metrics::{Refusal, ServedMethod, VersionLabel};
use crate::ping::PingEndpoint;
use crate::target::Target;
use crate::trace::TraceParent;
use crate::transport::{ListenOptions, Listener, Message, ReplyTo, Transport};

/// How a server runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The most requests executing at once; more wait in the transport's queue. The default is 64,
    /// oslo's `executor_thread_pool_size`.
    pub max_concurrency: usize,
    /// The largest message body the server decodes, in bytes ([`DEFAULT_MAX_MESSAGE_SIZE`] by
    /// default). A larger one is acknowledged and refused without being parsed: the caller gets
    /// a malformed-message failure when its reply route can be read, else it is logged.
    pub max_message_size: usize,
    /// Whether failures sent to callers carry the server-side backtrace (`[DEFAULT] debug`).
    /// Default `false`: callers see a failure's class, module and message only.
    pub debug: bool,
    /// Whether the server answers oslo's `oslo_rpc_server_ping` (`[DEFAULT] rpc_ping_enabled`):
    /// default namespace, version 1.0, after every other endpoint, `"pong"`. Default `false`.
    pub ping_endpoint: bool,
    /// Whether the server describes itself ([`introspection`](crate::introspection): namespace
    /// `rpc_introspection`, `describe`), for `rpcctl describe` and `rpcctl call`'s checks.
    /// Default `true`.
    pub introspection: bool,
}

/// The default [`ServerConfig::max_message_size`]: 16 MiB, far above what control-plane calls
/// carry and far below what would let one message exhaust a server's memory while decoding.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 64,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            debug: false,
            ping_endpoint: false,
            introspection: true,
        }
    }
}

impl ServerConfig {
    /// Sets the most requests executing at once (at least 1).
    #[must_use]
    pub fn with_max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = max_concurrency.max(1);
        self
    }

    /// Sets whether failures carry the server-side backtrace to callers (for debugging only:
    /// it shows the server's internals to whoever calls).
    #[must_use]
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// Sets whether the server answers `oslo_rpc_server_ping`, as oslo's `rpc_ping_enabled`.
    #[must_use]
    pub fn with_ping_endpoint(mut self, enabled: bool) -> Self {
        self.ping_endpoint = enabled;
        self
    }

    /// Sets whether the server describes itself (see [`introspection`](crate::introspection)).
    #[must_use]
    pub fn with_introspection(mut self, enabled: bool) -> Self {
        self.introspection = enabled;
        self
    }

    /// Sets the largest message body the server decodes, in bytes.
    #[must_use]
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }
}

/// A running RPC server: consuming on its target, dispatching to its endpoints.
///
/// # Examples
///
/// ```
/// # async fn demo(endpoint: std::sync::Arc<dyn rpc_runtime::Endpoint>) -> Result<(), rpc_runtime::TransportError> {
/// use rpc_runtime::{MemoryBroker, RpcServer, ServerConfig, Target};
/// use std::sync::Arc;
///
/// let transport = Arc::new(MemoryBroker::new().transport());
/// let server = RpcServer::start(transport, Target::new("demo").with_server("host1"),
///                               vec![endpoint], ServerConfig::default()).await?;
/// // … serve …
/// server.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RpcServer {
    /// Kept so the transport (and the broker or connection behind it) lives as long as the server.
    transport: Arc<dyn Transport>,
    target: Target,
    stop: watch::Sender<bool>,
    consumer: JoinHandle<()>,
    /// Cleared when the consumer ends, for whatever reason.
    consuming: Arc<AtomicBool>,
    /// Stops consuming the shared topic queue, when the transport can.
    drain: Option<crate::transport::Drain>,
    /// Set once [`drain`](Self::drain) was asked for.
    draining: Arc<AtomicBool>,
    slots: Arc<Semaphore>,
    max_concurrency: usize,
}

impl RpcServer {
    /// Starts consuming on `target` (its topic, `topic.server` when it names a server, and the
    /// topic's fanout). The server is consuming when this returns.
    ///
    /// # Errors
    ///
    /// Fails when the transport cannot listen.
    pub async fn start(
        transport: Arc<dyn Transport>,
        target: Target,
        mut endpoints: Vec<Arc<dyn Endpoint>>,
        config: ServerConfig,
    ) -> Result<Self, TransportError> {
        if config.ping_endpoint {
            endpoints.push(Arc::new(PingEndpoint));
        }
        if config.introspection {
            let describe = DescribeEndpoint::new(&target, &endpoints);
            endpoints.push(Arc::new(describe));
        }
        let max_concurrency = config.max_concurrency.max(1);
        let listener = transport
            .listen(&target, ListenOptions::new(max_concurrency))
            .await?;
        let slots = Arc::new(Semaphore::new(max_concurrency));
        let (stop, stopped) = watch::channel(false);
        tracing::info!(topic = %target.topic, server = target.server.as_deref().unwrap_or(""), max_concurrency, "RPC server consuming");
        let serving = Arc::new(Serving {
            dispatcher: Dispatcher::new(endpoints),
            limits: Limits {
                max_message_size: config.max_message_size,
                debug: config.debug,
            },
            topic: Arc::clone(&target.topic),
        });
        let consuming = Arc::new(AtomicBool::new(true));
        let drain = listener.drain_handle();
        let consumer = tokio::spawn(consume(
            listener,
            serving,
            Arc::clone(&slots),
            stopped,
            Consuming(Arc::clone(&consuming)),
        ));
        Ok(Self {
            transport,
            target,
            stop,
            consumer,
            consuming,
            drain,
            draining: Arc::new(AtomicBool::new(false)),
            slots,
            max_concurrency,
        })
    }

    /// Drains: stops taking requests from the topic's shared queue, which the other servers of
    /// the topic then serve alone, while the requests in flight finish and the server's own
    /// queue (`topic.server`) and the fanout are still consumed. For an orchestrator emptying a
    /// node before stopping it; [`stop`](Self::stop) ends the rest. Draining twice is draining.
    ///
    /// # Errors
    ///
    /// The broker did not take the consumer's cancellation.
    pub async fn drain(&self) -> Result<(), TransportError> {
        self.draining.store(true, Ordering::Relaxed);
        if let Some(drain) = &self.drain {
            drain.run().await?;
        }
        tracing::info!(topic = %self.target.topic, "draining: no longer consuming the shared topic queue");
        Ok(())
    }

    /// Whether [`drain`](Self::drain) was asked for.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Whether the server takes requests now: its consumer runs and its transport is connected.
    pub fn is_consuming(&self) -> bool {
        self.probe().is_consuming()
    }

    /// A cheap handle that tells whether this server consumes, for readiness checks.
    pub(crate) fn probe(&self) -> ServerProbe {
        ServerProbe {
            consuming: Arc::clone(&self.consuming),
            draining: Arc::clone(&self.draining),
            transport: Arc::clone(&self.transport),
        }
    }

    /// The transport the server consumes from.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// The target the server consumes on.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// How many requests are executing now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrency - self.slots.available_permits()
    }

    /// Stops taking requests, then waits for those executing to finish and answer.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.consumer.await {
            tracing::error!(%error, "the RPC server's consumer task failed");
        }
        // Every executing request holds a slot; having them all means none is left.
        let all = u32::try_from(self.max_concurrency).unwrap_or(u32::MAX);
        if let Ok(permits) = self.slots.acquire_many(all).await {
            permits.forget();
        }
        tracing::info!(topic = %self.target.topic, "RPC server stopped");
    }
}

/// Whether a server consumes, apart from the server (which its service owns).
#[derive(Debug, Clone)]
pub(crate) struct ServerProbe {
    consuming: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    transport: Arc<dyn Transport>,
}

impl ServerProbe {
    /// The consumer runs and the transport is connected.
    pub(crate) fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed) && self.transport.is_connected()
    }

    /// The server drains (no longer takes from the shared topic queue).
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Held by the consumer task: clears the flag when the task ends (a stop, a listener that
/// closed, a panic).
struct Consuming(Arc<AtomicBool>);

impl Drop for Consuming {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// What every request of one server shares.
#[derive(Debug)]
struct Serving {
    dispatcher: Dispatcher,
    limits: Limits,
    /// The target's topic, for the request's span.
    topic: Arc<str>,
}

/// What the server refuses before decoding, and what its failures show.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_message_size: usize,
    debug: bool,
}

async fn consume(
    mut listener: Listener,
    serving: Arc<Serving>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
    _consuming: Consuming,
) {
    // `stop` is sent once; `changed()` resolves then (or when the server is dropped).
    loop {
        // Take a slot before a message, so a busy server leaves messages in the queue. A free
        // slot is taken without waiting.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => tokio::select! {
                biased;
                _ = stopped.changed() => return,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            },
        };
        let message = tokio::select! {
            biased;
            _ = stopped.changed() => return,
            message = listener.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let serving = Arc::clone(&serving);
        // Decoding happens in the request's own task, so requests decode in parallel. The
        // request's future (808 bytes) is boxed: the task moves a pointer instead of copying it
        // on every state change, and its cell stays small (tokio aligns cells, which glibc
        // serves on its slow path).
        tokio::spawn(async move {
            Box::pin(handle(message, &serving)).await;
            drop(slot);
        });
    }
}

async fn handle(message: Message, serving: &Serving) {
    let Serving {
        dispatcher,
        limits,
        topic,
    } = serving;
    let metrics = crate::metrics::get();
    let refused = |reason| {
        if let Some(metrics) = metrics {
            metrics.request_refused(topic, reason);
        }
    };
    let size = message.body().len();
    if size > limits.max_message_size {
        refused(Refusal::too_large);
        let reason = format!(
            "the message is {size} bytes, over this server's maximum of {}",
            limits.max_message_size
        );
        // Rare paths are boxed, here and below: the request's future stays small enough for the
        // allocator's fast path.
        Box::pin(message.refuse(&reason)).await;
        return;
    }
    let Some(incoming) = message.open().await else {
        refused(Refusal::undecodable);
        return;
    };
    let (mut request, reply_to) = incoming.into_parts();
    let ctx = &request.context;
    let span = tracing::info_span!(
        "rpc.request",
        topic = &**topic,
        method = %request.method,
        request_id = %ctx.request_id,
        global_request_id = ctx.global_request_id.as_deref(),
        user_id = ctx.user_id.as_deref(),
        project_id = ctx.project_id.as_deref(),
        msg_id = reply_to.as_ref().map(|r| r.msg_id()),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    continue_trace(&mut request, &span);
    let remaining = match request.deadline {
        None => None,
        Some(deadline) => match deadline.duration_since(SystemTime::now()) {
            Ok(remaining) => Some(remaining),
            Err(_) => {
                refused(Refusal::deadline_passed);
                span.in_scope(|| {
                    tracing::warn!("dropping a request whose caller's deadline has passed");
                });
                return;
            }
        },
    };
    // Only a failed cast needs the method name after dispatch, for its log line.
    let cast_method = reply_to.is_none().then(|| request.method.clone());
    // oslo's call monitor: heartbeat every int(_timeout)/2 seconds, when that is at least 1.
    let heartbeat_every = reply_to
        .as_ref()
        .and(request.monitor_timeout)
        .map(|t| Duration::from_secs(t.as_secs()) / 2)
        .filter(|every| *every >= Duration::from_secs(1));
    let route = dispatcher.route(&request).map_err(|unrouted| {
        refused(unrouted.refusal);
        unrouted.failure
    });
    // Counted by the endpoint's own names, so a caller cannot invent label values.
    let counted = match (metrics, &route) {
        (Some(metrics), Ok(route)) => {
            let method = ServedMethod {
                topic: Arc::clone(topic),
                namespace: route.namespace.unwrap_or(""),
                method: route.method,
                version: VersionLabel(route.version),
            };
            let in_flight = metrics.request_started(&method);
            Some((metrics, method, in_flight, Instant::now()))
        }
        _ => None,
    };
    // Boxed apart (it holds the request): moved into the deadline's timeout below, it would
    // otherwise take its room in this future twice.
    let dispatching = Box::pin(Dispatcher::invoke(route, request));
    let dispatched = async {
        match (heartbeat_every, reply_to.as_ref()) {
            (Some(every), Some(reply_to)) => {
                Box::pin(with_heartbeats(dispatching, every, reply_to)).await
            }
            _ => dispatching.await,
        }
    };
    let outcome = match remaining {
        None => dispatched.instrument(span.clone()).await,
        Some(remaining) => {
            let limited = tokio::time::timeout(remaining, dispatched);
            match limited.instrument(span.clone()).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    refused(Refusal::deadline_exceeded);
                    span.in_scope(|| {
                        tracing::warn!(
                            "cancelled: the caller's deadline passed while the method ran"
                        );
                    });
                    return;
                }
            }
        }
    };
    if let Some((metrics, method, in_flight, started)) = counted {
        drop(in_flight);
        let failure = outcome.as_ref().err().map(|failure| &*failure.class);
        metrics.request_finished(&method, started.elapsed(), failure);
    }
    let entered = span.enter();
    let reply = match (reply_to.is_some(), outcome) {
        (true, Ok(result)) => Reply::result(result),
        (true, Err(mut failure)) => {
            tracing::debug!(class = %failure.class, reason = %failure.message, "the call failed");
            if limits.debug {
                failure.traceback = server_backtrace();
            }
            Reply::failure(failure)
        }
        (false, Ok(_)) => return,
        (false, Err(failure)) => {
            let method = cast_method.unwrap_or_default();
            tracing::warn!(%method, class = %failure.class, reason = %failure.message, "a cast failed");
            return;
        }
    };
    drop(entered);
    if let Some(reply_to) = reply_to
        && let Err(error) = reply_to.send(reply).instrument(span.clone()).await
    {
        span.in_scope(|| tracing::warn!(%error, "could not send the reply"));
    }
}

/// Continues the caller's trace (or starts one when the span is recorded): the span records the
/// ids, and the method's context carries this request's span as the parent of its own calls.
fn continue_trace(request: &mut crate::envelope::Request<'_>, span: &tracing::Span) {
    let parent = request.context.traceparent();
    // With OpenTelemetry's layer, its span (a child of the caller's) has the ids.
    #[cfg(feature = "otlp")]
    let exported = if span.is_disabled() {
        None
    } else {
        crate::trace::otel_child(span, parent)
    };
    #[cfg(not(feature = "otlp"))]
    let exported: Option<TraceParent> = None;
    let own = match (exported, parent) {
        (Some(own), _) => own,
        (None, Some(parent)) => parent.child(),
        (None, None) if !span.is_disabled() => TraceParent::new_root(),
        (None, None) => return,
    };
    span.record("trace_id", own.trace_id());
    span.record("span_id", own.span_id());
    if let Some(parent) = parent {
        span.record("parent_span_id", parent.span_id());
    }
    request.context.to_mut().set_traceparent(own);
}

/// The server's backtrace where a failure is answered, as oslo's `tb` lines (debug only).
fn server_backtrace() -> Vec<String> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    std::iter::once("Traceback (server side, [DEFAULT] debug = true):\n".to_owned())
        .chain(trace.lines().map(|line| format!("{line}\n")))
        .collect()
}

/// Runs `work`, sending a call-monitor heartbeat every `every` until it finishes.
async fn with_heartbeats<F: Future>(work: F, every: Duration, reply_to: &ReplyTo) -> F::Output {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticker.tick() => {
                if let Err(error) = reply_to.heartbeat().await {
                    tracing::warn!(%error, "could not send a call-monitor heartbeat");
                }
            }
        }
    }
}
