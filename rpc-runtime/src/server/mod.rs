//! The RPC server: takes requests from a transport's listener and runs them through the dispatcher,
//! at most a configured number at once.

mod request;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use self::request::{Consuming, Limits, Serving, consume};
use crate::dispatch::Dispatcher;
use crate::endpoint::Endpoint;
use crate::error::TransportError;
use crate::introspection::describe_endpoint;
use crate::ping::ping_endpoint;
use crate::target::Target;
use crate::transport::{ListenOptions, Transport};

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
            endpoints.push(Arc::new(ping_endpoint()));
        }
        if config.introspection {
            let describe = describe_endpoint(&target, &endpoints);
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
        self.consuming.load(Ordering::Relaxed) && self.transport.is_connected()
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
