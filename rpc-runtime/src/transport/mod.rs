//! Transports move encoded messages between clients and servers.
//!
//! A transport knows exchanges, queues and reply routing; it knows nothing of clients or
//! dispatchers. Every transport sends the bytes [`envelope`] produces, so the
//! in-memory transport exercises the same encoding as RabbitMQ.

#[cfg(feature = "amqp")]
mod amqp;
mod memory;
mod pending;
pub(crate) mod url;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

#[cfg(feature = "amqp")]
pub use self::amqp::{
    AmqpOptions, AmqpTransport, FailoverStrategy, PREFETCH_PER_SLOT, UnknownOption,
};
pub use self::memory::{MemoryBroker, MemoryTransport};
pub use self::url::{TransportHost, TransportUrl};

/// The options the RabbitMQ transport reads from a URL's query, by oslo.messaging's names (the
/// `[oslo_messaging_rabbit]` options, `control_exchange`, and this runtime's `direct_publish`).
pub const AMQP_OPTION_NAMES: &[&str] = &[
    "control_exchange",
    "direct_publish",
    "amqp_durable_queues",
    "rabbit_quorum_queue",
    "rabbit_transient_quorum_queue",
    "rabbit_quorum_delivery_limit",
    "rabbit_quorum_max_memory_length",
    "rabbit_quorum_max_memory_bytes",
    "confirm_publish",
    "rabbit_qos_prefetch_count",
    "heartbeat_timeout_threshold",
    "rabbit_transient_queues_ttl",
    "rabbit_retry_interval",
    "rabbit_retry_backoff",
    "rabbit_interval_max",
    "kombu_reconnect_delay",
    "kombu_missing_consumer_retry_timeout",
    "kombu_failover_strategy",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_key_file",
];
use crate::envelope::{self, DecodedRequest, Reply, ReplyRoute, Request};
use crate::error::{RemoteError, TransportError};
use crate::target::Target;

/// A boxed, sendable future: what object-safe traits in this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The call timeout when none is set: oslo's `rpc_response_timeout`, 60 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Moves requests to servers and replies back to callers.
///
/// The scheme is chosen at run time from a URL ([`connect`]), so clients and servers hold an
/// `Arc<dyn Transport>` and never know which one it is.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Sends a request to one server of `target` and waits up to `timeout` for the final reply.
    /// With the request's `monitor_timeout` set, the call also fails when neither a heartbeat
    /// nor the reply arrives within it.
    ///
    /// A reply that arrives after the timeout is dropped; it is never delivered to another call.
    fn call<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Reply, TransportError>>;

    /// Sends a request that gets no reply: to one server of the target, to `topic.server`, or to
    /// every server when the target is fanout.
    fn cast<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
    ) -> BoxFuture<'a, Result<(), TransportError>>;

    /// Starts consuming for a server: its topic queue, its `topic.server` queue and its fanout
    /// queue. The listener is consuming when this returns.
    fn listen<'a>(
        &'a self,
        target: &'a Target,
        options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>>;

    /// Publishes an encoded notification to `target`'s exchange (the control exchange when it
    /// names none) with `target.topic` as the routing key (`<topic>.<priority>`). As oslo does, the
    /// queue named after that routing key is created when missing, so notifications sent before
    /// any listener wait for one. A publish that broke with its connection is made again on the
    /// next one, as `retry` allows.
    fn notify<'a>(
        &'a self,
        target: &'a Target,
        body: &'a [u8],
        retry: Retry,
    ) -> BoxFuture<'a, Result<(), TransportError>>;

    /// Starts consuming notifications: for each target, the queue named `pool` (shared by every
    /// listener of that pool) or, without a pool, the one named after the target's topic
    /// (`<topic>.<priority>`), bound to that routing key. The listener acknowledges each message
    /// after handling it ([`Message::acknowledge`]) or puts it back ([`Message::requeue`]).
    fn listen_notifications<'a>(
        &'a self,
        targets: &'a [Target],
        pool: Option<&'a str>,
        options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>>;

    /// How long a call made on this transport waits for its reply when the caller sets no
    /// timeout: [`DEFAULT_TIMEOUT`], or `[DEFAULT] rpc_response_timeout`
    /// for a transport made from configuration ([`Config::connect_transport`](crate::config::Config::connect_transport)).
    fn default_timeout(&self) -> Duration {
        DEFAULT_TIMEOUT
    }

    /// Whether the transport is connected now (`false` while the RabbitMQ transport reconnects):
    /// a readiness probe's answer. Transports without a connection are always connected.
    fn is_connected(&self) -> bool {
        true
    }
}

/// What a transport needs to know of the server that listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenOptions {
    /// The most requests the server runs at once. The RabbitMQ transport bounds the deliveries a
    /// server holds by it, unless `rabbit_qos_prefetch_count` is set.
    pub max_concurrency: usize,
}

impl ListenOptions {
    /// Options for a server that runs at most `max_concurrency` requests at once.
    pub fn new(max_concurrency: usize) -> Self {
        Self {
            max_concurrency: max_concurrency.max(1),
        }
    }
}

impl Default for ListenOptions {
    /// oslo's `executor_thread_pool_size`, 64.
    fn default() -> Self {
        Self::new(64)
    }
}

/// A transport whose calls wait `timeout` by default (`[DEFAULT] rpc_response_timeout`): what
/// [`with_default_timeout`] makes.
#[derive(Debug)]
struct DefaultTimeout {
    inner: Arc<dyn Transport>,
    timeout: Duration,
}

impl Transport for DefaultTimeout {
    fn call<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Reply, TransportError>> {
        self.inner.call(target, request, timeout)
    }

    fn cast<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        self.inner.cast(target, request)
    }

    fn listen<'a>(
        &'a self,
        target: &'a Target,
        options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>> {
        self.inner.listen(target, options)
    }

    fn notify<'a>(
        &'a self,
        target: &'a Target,
        body: &'a [u8],
        retry: Retry,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        self.inner.notify(target, body, retry)
    }

    fn listen_notifications<'a>(
        &'a self,
        targets: &'a [Target],
        pool: Option<&'a str>,
        options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>> {
        self.inner.listen_notifications(targets, pool, options)
    }

    fn default_timeout(&self) -> Duration {
        self.timeout
    }

    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }
}

/// How often a publish that broke with its connection is made again (oslo's `retry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// Until it goes through (oslo's `retry=-1`, the notifier's default).
    #[default]
    Forever,
    /// At most this many more times (`retry=0`: never).
    Times(u32),
}

impl Retry {
    /// oslo's integer form: negative is forever, otherwise that many retries.
    pub fn from_oslo(retry: i64) -> Self {
        u32::try_from(retry).map_or(Self::Forever, Self::Times)
    }

    /// Whether attempt number `made` (1 for the first) may be followed by another.
    pub fn allows_another(self, made: u32) -> bool {
        match self {
            Self::Forever => true,
            Self::Times(n) => made <= n,
        }
    }
}

/// `transport`, with `timeout` as the wait of calls that set none: every [`Client`](crate::Client)
/// made on it starts with that timeout.
pub fn with_default_timeout(
    transport: Arc<dyn Transport>,
    timeout: Duration,
) -> Arc<dyn Transport> {
    Arc::new(DefaultTimeout {
        inner: transport,
        timeout,
    })
}

/// Builds the transport a URL names: `memory://[name]`, or `rabbit://` / `amqp://` (RabbitMQ,
/// with several comma-separated hosts for failover) — and, for RabbitMQ, connects.
///
/// # Errors
///
/// Fails on a malformed URL, an unknown scheme or option, a scheme this build does not include,
/// or (RabbitMQ) when no host can be reached now.
pub async fn connect(url: &str) -> Result<Arc<dyn Transport>, TransportError> {
    connect_url(&url.parse()?).await
}

/// [`connect`] with a parsed URL (its password is kept: only `Display` hides it).
///
/// # Errors
///
/// As [`connect`].
pub async fn connect_url(url: &TransportUrl) -> Result<Arc<dyn Transport>, TransportError> {
    match url.scheme() {
        "memory" => Ok(Arc::new(MemoryTransport::connect(url))),
        #[cfg(feature = "amqp")]
        "rabbit" | "amqp" | "amqps" => Ok(Arc::new(AmqpTransport::connect(url).await?)),
        #[cfg(not(feature = "amqp"))]
        "rabbit" | "amqp" | "amqps" => Err(TransportError::UnsupportedScheme {
            scheme: format!("{} (needs the `amqp` feature of rpc-runtime)", url.scheme()),
        }),
        other => Err(TransportError::UnsupportedScheme {
            scheme: other.to_owned(),
        }),
    }
}

/// Encodes a call whose reply goes to `reply_q`: its fresh `_msg_id`, and the body.
pub(crate) fn encode_call(request: &Request<'_>, reply_q: &str) -> (envelope::MessageId, Vec<u8>) {
    let msg_id = envelope::MessageId::new();
    let mut id = [0; 32];
    let mut unique = [0; 32];
    let unique_id = envelope::MessageId::new().encode(&mut unique);
    let route = (msg_id.encode(&mut id), reply_q);
    (
        msg_id,
        envelope::encode_request_to(request, Some(route), unique_id),
    )
}

/// Encodes a cast (no reply route), with a fresh `_unique_id`.
pub(crate) fn encode_cast(request: &Request<'_>) -> Vec<u8> {
    let mut unique = [0; 32];
    let unique_id = envelope::MessageId::new().encode(&mut unique);
    envelope::encode_request(request, None, unique_id)
}

/// Where a transport delivers replies for a server: implemented by each transport, hidden
/// behind [`ReplyTo`].
pub(crate) trait ReplySink: Send + Sync + 'static {
    /// Publishes an encoded reply to the caller's reply queue. What is still under way owns what
    /// it needs, so the caller's future holds no more than the returned value.
    fn send_reply(&self, reply_q: &str, body: Vec<u8>, kind: ReplyKind) -> Sent;
}

/// Which reply a [`ReplySink`] sends: the final one is worth retrying for a caller that is
/// reconnecting; a call-monitor heartbeat is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    /// The result or failure that ends the call.
    Final,
    /// "Still working" (`ending: false`).
    Heartbeat,
}

/// The outcome of [`ReplySink::send_reply`]: already known (an in-process sink, no allocation), or
/// still under way (a broker publish).
pub(crate) enum Sent {
    Now(Result<(), TransportError>),
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    Later(BoxFuture<'static, Result<(), TransportError>>),
}

impl Sent {
    async fn outcome(self) -> Result<(), TransportError> {
        match self {
            Self::Now(result) => result,
            Self::Later(publishing) => publishing.await,
        }
    }
}

/// One message as a transport hands it to a listener: the body, how to answer it, and how to
/// acknowledge it to the broker.
pub(crate) struct Delivery {
    pub(crate) body: Vec<u8>,
    pub(crate) sink: Arc<dyn ReplySink>,
    pub(crate) ack: Option<Ack>,
}

/// How to acknowledge a delivery to the broker that made it.
pub(crate) enum Ack {
    /// A delivery of an AMQP channel.
    #[cfg(feature = "amqp")]
    Amqp(amqp::Settlement),
    /// A notification of the in-memory broker, which can be put back on its queue.
    Memory(memory::Requeue),
}

impl Ack {
    /// Sends the acknowledgement without waiting for it to be written: a request runs at once,
    /// and an ack that cannot be sent means the channel is gone, which the broker answers by
    /// redelivering (and the transport by reconnecting).
    fn send(self) {
        match self {
            #[cfg(feature = "amqp")]
            Self::Amqp(settlement) => settlement.acknowledge(),
            Self::Memory(_) => {}
        }
    }

    /// Acknowledges and waits until the acknowledgement is written: a notification listener
    /// that stops (or a process that exits) right after must not leave it unsent.
    async fn confirm(self) {
        match self {
            #[cfg(feature = "amqp")]
            Self::Amqp(settlement) => settlement.acknowledge_now().await,
            Self::Memory(_) => {}
        }
    }

    /// Puts the message (whose body is `body`) back on its queue for another delivery, and waits
    /// until that is written.
    async fn requeue(self, body: Vec<u8>) {
        match self {
            #[cfg(feature = "amqp")]
            Self::Amqp(settlement) => {
                drop(body);
                settlement.requeue().await;
            }
            Self::Memory(requeue) => requeue.put_back(body),
        }
    }
}

/// How many recent `_unique_id`s a listener remembers to drop duplicates (oslo's
/// `DUP_MSG_CHECK_SIZE`).
const DUPLICATE_WINDOW: usize = 16;

/// The last few `_unique_id`s a listener saw, as hashes (no allocation per message).
#[derive(Default)]
struct RecentIds(Mutex<VecDeque<u64>>);

impl RecentIds {
    /// Records `id`; tells whether it was seen among the last [`DUPLICATE_WINDOW`].
    fn is_duplicate(&self, id: &str) -> bool {
        // Ids from this framework and oslo are hex UUIDs: fold them; hash anything else.
        let hash = envelope::MessageId::parse(id).map_or_else(
            || {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                id.hash(&mut hasher);
                hasher.finish()
            },
            envelope::MessageId::fold,
        );
        let mut recent = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.contains(&hash) {
            return true;
        }
        if recent.len() == DUPLICATE_WINDOW {
            recent.pop_front();
        }
        recent.push_back(hash);
        false
    }
}

/// Stops a server's listener consuming the shared topic queue (see [`Listener::drain_handle`]).
#[derive(Clone)]
pub(crate) struct Drain(
    Arc<dyn Fn() -> BoxFuture<'static, Result<(), TransportError>> + Send + Sync>,
);

impl Drain {
    pub(crate) fn new(
        drain: impl Fn() -> BoxFuture<'static, Result<(), TransportError>> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(drain))
    }

    /// Drains; once done, the shared queue's consumer is cancelled.
    pub(crate) async fn run(&self) -> Result<(), TransportError> {
        (self.0)().await
    }
}

impl fmt::Debug for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Drain")
    }
}

/// The stream of messages for one server. Dropping the listener stops consuming.
pub struct Listener {
    rx: mpsc::UnboundedReceiver<Delivery>,
    recent: Arc<RecentIds>,
    drain: Option<Drain>,
    _subscription: Box<dyn Send + Sync>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// Wraps a transport's delivery channel; `subscription` is dropped with the listener and
    /// unsubscribes.
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<Delivery>,
        subscription: impl Send + Sync + 'static,
    ) -> Self {
        Self {
            rx,
            recent: Arc::default(),
            drain: None,
            _subscription: Box::new(subscription),
        }
    }

    /// With a way to stop consuming the shared topic queue while the rest goes on.
    pub(crate) fn with_drain(mut self, drain: Drain) -> Self {
        self.drain = Some(drain);
        self
    }

    /// What drains this listener, kept apart from it (the server moves the listener into its
    /// consumer task); `None` for a listener that cannot drain (notifications).
    pub(crate) fn drain_handle(&self) -> Option<Drain> {
        self.drain.clone()
    }

    /// Stops taking deliveries and gives back what was received but not yet taken, for the
    /// caller to put back on its queue; the subscription (the broker's consumer and channel)
    /// ends when those are dropped.
    pub(crate) fn close(self) -> impl Iterator<Item = Message> {
        let Self {
            mut rx,
            recent,
            drain: _,
            _subscription,
        } = self;
        rx.close();
        let mut left = Vec::new();
        while let Ok(delivery) = rx.try_recv() {
            left.push(Message {
                delivery,
                recent: Arc::clone(&recent),
            });
        }
        // Put back first, then unsubscribe: a delivery is rejected on its open channel.
        left.into_iter().chain(
            std::iter::once_with(move || {
                drop(_subscription);
                None
            })
            .flatten(),
        )
    }

    /// Waits for the next message, still encoded; `None` once the transport has stopped
    /// delivering. [`Message::open`] decodes it, so a server can decode in the task that runs it.
    pub async fn recv(&mut self) -> Option<Message> {
        let delivery = self.rx.recv().await?;
        Some(Message {
            delivery,
            recent: Arc::clone(&self.recent),
        })
    }
}

/// A message as received, not yet decoded.
pub struct Message {
    delivery: Delivery,
    recent: Arc<RecentIds>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("bytes", &self.delivery.body.len())
            .finish_non_exhaustive()
    }
}

impl Message {
    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.delivery.body
    }

    /// Acknowledges the message to the broker (a notification, once handled), and waits until
    /// the acknowledgement is written.
    pub async fn acknowledge(self) {
        if let Some(ack) = self.delivery.ack {
            ack.confirm().await;
        }
    }

    /// Puts the message back on its queue, to be delivered again (to this listener or another of
    /// its pool), as oslo's `requeue()` does. On a transport that cannot, it is acknowledged.
    pub async fn requeue(self) {
        let Delivery { body, ack, .. } = self.delivery;
        if let Some(ack) = ack {
            ack.requeue(body).await;
        }
    }

    /// Acknowledges the message and refuses it undecoded (too large, say): the caller gets a
    /// malformed-message failure with `reason` when the reply route can be read, else it is
    /// logged.
    pub async fn refuse(self, reason: &str) {
        let Delivery { body, sink, ack } = self.delivery;
        if let Some(ack) = ack {
            ack.send();
        }
        let route = envelope::peek_reply_route(&body);
        drop(body);
        answer_malformed(route, sink, reason).await;
    }

    /// Decodes the request. A message that cannot be decoded is answered with a clear failure
    /// when it says where to reply, and otherwise logged and dropped; a duplicate (a `_unique_id`
    /// seen among the last 16) is dropped, as oslo does. Both give `None`.
    pub async fn open(self) -> Option<Incoming> {
        // The refusal is rare, and boxed: held inline it would make every request's future larger.
        let refusal = match self.decode() {
            Ok(incoming) => return incoming,
            Err(refusal) => Box::pin(refusal),
        };
        refusal.await;
        None
    }

    /// Acknowledges and decodes; a message that cannot be decoded gives the answer to send.
    fn decode(self) -> Result<Option<Incoming>, impl Future<Output = ()> + Send> {
        let Delivery { body, sink, ack } = self.delivery;
        // Acknowledge before running, as oslo does: at most once.
        if let Some(ack) = ack {
            ack.send();
        }
        match envelope::decode_request(&body) {
            Ok(decoded) => {
                if let Some(id) = decoded.unique_id.as_deref()
                    && self.recent.is_duplicate(id)
                {
                    tracing::warn!(unique_id = id, "ignoring duplicate message");
                    return Ok(None);
                }
                Ok(Some(Incoming::new(decoded, sink)))
            }
            Err(failure) => {
                let reason = crate::error::chain(&failure.error);
                Err(async move { answer_malformed(failure.reply_route, sink, &reason).await })
            }
        }
    }
}

/// Tells the caller why its message was refused, when it said where to reply; logs it either way.
async fn answer_malformed(route: Option<ReplyRoute>, sink: Arc<dyn ReplySink>, reason: &str) {
    match route {
        Some(route) => {
            tracing::warn!(%reason, msg_id = %route.msg_id, "refusing a malformed request");
            let reply_to = ReplyTo { route, sink };
            let reply = Reply::failure(RemoteError::malformed_message(reason));
            if let Err(error) = reply_to.send(reply).await {
                tracing::warn!(%error, "could not answer a malformed request");
            }
        }
        None => {
            tracing::warn!(%reason, "dropping a malformed message that names no reply queue");
        }
    }
}

/// A request received by a server, with the handle to answer it when it is a call.
#[derive(Debug)]
#[non_exhaustive]
pub struct Incoming {
    /// The request.
    pub request: Request<'static>,
    reply_to: Option<ReplyTo>,
}

impl Incoming {
    fn new(decoded: DecodedRequest, sink: Arc<dyn ReplySink>) -> Self {
        Self {
            request: decoded.request,
            reply_to: decoded.reply_route.map(|route| ReplyTo { route, sink }),
        }
    }

    /// Splits into the request and, for a call, the handle to answer it.
    pub fn into_parts(self) -> (Request<'static>, Option<ReplyTo>) {
        (self.request, self.reply_to)
    }
}

/// The handle to answer one call, made by the transport the call came through.
pub struct ReplyTo {
    route: ReplyRoute,
    sink: Arc<dyn ReplySink>,
}

impl fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo")
            .field("msg_id", &self.route.msg_id)
            .field("reply_q", &self.route.reply_q)
            .finish()
    }
}

impl ReplyTo {
    /// The call's correlation id.
    pub fn msg_id(&self) -> &str {
        &self.route.msg_id
    }

    /// Sends the final reply. The reply is encoded and handed to the transport before this
    /// returns; the future only waits for the transport's verdict.
    ///
    /// # Errors
    ///
    /// Fails when the transport cannot publish it.
    pub fn send(self, reply: Reply) -> impl Future<Output = Result<(), TransportError>> + Send {
        self.publish(&reply, ReplyKind::Final).outcome()
    }

    /// Sends a call-monitor heartbeat ("still working").
    ///
    /// # Errors
    ///
    /// Fails when the transport cannot publish it.
    pub fn heartbeat(&self) -> impl Future<Output = Result<(), TransportError>> + Send {
        self.publish(&Reply::heartbeat(), ReplyKind::Heartbeat)
            .outcome()
    }

    fn publish(&self, reply: &Reply, kind: ReplyKind) -> Sent {
        let mut unique = [0; 32];
        let unique_id = envelope::MessageId::new().encode(&mut unique);
        let body = envelope::encode_reply(reply, &self.route.msg_id, unique_id);
        self.sink.send_reply(&self.route.reply_q, body, kind)
    }
}
