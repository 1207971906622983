//! `rabbit://` and `amqp://`: oslo.messaging's rabbit driver on the wire, over lapin.
//!
//! Topology, properties and message bodies are oslo's (the captures in `tests/fixtures/oslo-wire/`
//! show them): a topic exchange (`control_exchange`), queues `topic` and `topic.server`, a fanout
//! exchange `topic_fanout` with one `topic_fanout_<uuid>` queue per server, `reply_<uuid>` reply
//! queues on the default exchange, replies published mandatory. Servers acknowledge a request before
//! running it (at most once), as oslo does. Requests to one queue are published through the
//! default exchange straight to that queue unless `direct_publish=false` (see
//! [`AmqpOptions::direct_publish`]).
//!
//! Here: the transport, its supervisor (reconnects) and the publish path. `connection.rs` opens a
//! session on the first host that answers; `consumers.rs` consumes the reply queue and the
//! servers' queues; `replies.rs` publishes servers' replies; `topology.rs` names queues and
//! exchanges as oslo does; `broker.rs` wraps each AMQP operation with a typed error;
//! `options.rs` reads `[oslo_messaging_rabbit]`.

mod acks;
mod broker;
mod connection;
mod consumers;
mod options;
mod replies;
mod topology;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_core::Stream;
use lapin::ExchangeKind;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use tokio::sync::{Notify, mpsc, watch};

pub(crate) use self::acks::Settlement;

/// This transport's name in metrics labels.
pub(super) const METRICS_NAME: &str = "rabbit";
use self::broker::{broker, declare_exchange, short};
use self::connection::{Backoff, Session, current_session};
use self::consumers::{Consumes, ListenerSpec, Unsubscribe};
pub use self::options::{AmqpOptions, FailoverStrategy, PREFETCH_PER_SLOT, UnknownOption};
use super::pending::PendingCalls;
use super::{BoxFuture, ListenOptions, Listener, Retry, Transport, TransportUrl};
use crate::envelope::{MessageId, Reply, Request};
use crate::error::TransportError;
use crate::target::Target;

/// How long a cast waits for a connection while the transport reconnects.
const CAST_CONNECT_WAIT: Duration = Duration::from_secs(30);

/// The longest a (re)declaration of consumers may take on a fresh connection. A connection that
/// dies during it can leave lapin's operations unanswered; bounded, the supervisor gives up on
/// that connection and makes another instead of waiting forever (seen with the broker restarted
/// under load: transports that never came back).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(10);

/// The RabbitMQ transport.
///
/// One connection per transport, reopened by a supervisor task with backoff when it breaks: the
/// reply queue and every listener's queues are redeclared and consumed again. The reply queue
/// keeps its name across reconnects, so calls in flight when the connection breaks keep waiting
/// for their reply up to their timeout (servers publish again a reply whose queue is missing,
/// see [`AmqpOptions::missing_consumer_retry_timeout`]); a request whose publish broke with the
/// connection is published again on the next one, as oslo's default `retry=None` does. New
/// calls wait for the connection up to their timeout.
///
/// A consumer the broker cancels while the connection lives (its queue deleted, say) is
/// declared and consumed again on its own, without a reconnect.
pub struct AmqpTransport {
    inner: Arc<Inner>,
}

struct Inner {
    url: TransportUrl,
    options: AmqpOptions,
    session: watch::Sender<Option<Arc<Session>>>,
    /// The newest session generation a consumer or a publish found broken. A generation, not a
    /// wake-up: a late report about an older session can never tear down a newer one.
    broken: watch::Sender<u64>,
    shutdown: AtomicBool,
    shutdown_signal: Notify,
    /// This transport's reply queue (declared on the first call) and the calls waiting on it.
    reply_queue: Box<str>,
    reply_in_use: AtomicBool,
    /// The session generation whose reply consumer is up (0: none yet); read without the lock
    /// on every call, written under `reply_ready`.
    reply_generation: AtomicU64,
    reply_ready: tokio::sync::Mutex<u64>,
    calls: PendingCalls,
    /// What publishes declared on the current session, so they declare it once.
    declared: Mutex<Declared>,
    listeners: Mutex<Vec<Weak<ListenerSpec>>>,
}

impl fmt::Debug for AmqpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpTransport")
            .field("url", &self.inner.url)
            .field("reply_queue", &self.inner.reply_queue)
            .finish_non_exhaustive()
    }
}

impl AmqpTransport {
    /// Connects to the first reachable host of `url` and starts the supervisor that keeps the
    /// connection up.
    ///
    /// # Errors
    ///
    /// [`TransportError::Connect`] when no host can be reached now, or [`TransportError::InvalidUrl`]
    /// for an unknown option.
    pub async fn connect(url: &TransportUrl) -> Result<Self, TransportError> {
        let options = AmqpOptions::from_url(url)?;
        Self::connect_with(url, options).await
    }

    /// Connects with explicit options (the URL's query is not read).
    ///
    /// # Errors
    ///
    /// [`TransportError::Connect`] when no host can be reached now.
    pub async fn connect_with(
        url: &TransportUrl,
        options: AmqpOptions,
    ) -> Result<Self, TransportError> {
        let session = Arc::new(Session::open(url, &options, 1, 0).await?);
        let (session_tx, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            url: url.clone(),
            options,
            session: session_tx,
            broken: watch::channel(0).0,
            shutdown: AtomicBool::new(false),
            shutdown_signal: Notify::new(),
            reply_queue: topology::reply_queue(&MessageId::new().to_string()).into(),
            reply_in_use: AtomicBool::new(false),
            reply_generation: AtomicU64::new(0),
            reply_ready: tokio::sync::Mutex::new(0),
            calls: PendingCalls::default(),
            declared: Mutex::new(Declared::default()),
            listeners: Mutex::new(Vec::new()),
        });
        inner.session.send_replace(Some(Arc::clone(&session)));
        tokio::spawn(supervise(Arc::clone(&inner), session));
        Ok(Self { inner })
    }

    /// The options in force.
    pub fn options(&self) -> &AmqpOptions {
        &self.inner.options
    }

    /// The name of this transport's reply queue (`reply_<uuid>`).
    pub fn reply_queue(&self) -> &str {
        &self.inner.reply_queue
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.session.borrow().is_some()
    }

    /// Waits until the transport is connected (after a reconnect, say), up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`TransportError::NotConnected`] when it is not connected in time.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), TransportError> {
        current_session(&self.inner.session, timeout)
            .await
            .map(drop)
    }
}

impl Drop for AmqpTransport {
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        // A stored permit: the supervisor sees it even if it is not waiting right now.
        self.inner.shutdown_signal.notify_one();
    }
}

/// Keeps a session up: on a break, reconnects with backoff (calls in flight keep waiting), then
/// redeclares and re-consumes everything.
async fn supervise(inner: Arc<Inner>, mut session: Arc<Session>) {
    let mut broken = inner.broken.subscribe();
    loop {
        // Consumers first, then the session is published: a call made as soon as the transport
        // reports itself connected finds the servers' queues there.
        let restored = tokio::time::timeout(RESTORE_TIMEOUT, inner.restore(&session))
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Broker {
                    operation: "restore consumers".to_owned(),
                    reason: format!("no answer within {RESTORE_TIMEOUT:?}"),
                })
            });
        match restored {
            Ok(()) => {
                inner.session.send_replace(Some(Arc::clone(&session)));
                let metrics = crate::metrics::get();
                if let Some(metrics) = metrics {
                    metrics.connection(METRICS_NAME, true);
                }
                tokio::select! {
                    _ = broken.wait_for(|g| *g >= session.generation) => {}
                    () = inner.shutdown_signal.notified() => {}
                    () = connection_failed(&session) => {}
                }
                if let Some(metrics) = metrics {
                    metrics.connection(METRICS_NAME, false);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not restore consumers after connecting; reconnecting");
            }
        }
        inner.session.send_replace(None);
        if inner.shutdown.load(Ordering::SeqCst) {
            session.close().await;
            inner.calls.fail_all(|| TransportError::Closed);
            return;
        }
        tracing::warn!(
            generation = session.generation,
            "connection to RabbitMQ lost; reconnecting"
        );
        // Calls in flight keep waiting: their replies come to the same queue name on the next
        // connection (servers retry a reply whose queue is missing meanwhile). The old
        // connection is closed aside: a half-dead one may take seconds to answer the close.
        let old = Arc::clone(&session);
        tokio::spawn(async move { old.close().await });
        // oslo's `kombu_reconnect_delay`, then rounds over the hosts from the one after the host
        // lost (or shuffled), each failed round followed by the next backoff wait.
        if !inner
            .pause(connection::jittered(inner.options.reconnect_delay))
            .await
        {
            return;
        }
        let mut backoff = Backoff::new(&inner.options);
        let generation = session.generation + 1;
        let first = session.host_index + 1;
        session = loop {
            if inner.shutdown.load(Ordering::SeqCst) {
                return;
            }
            match Session::open(&inner.url, &inner.options, generation, first).await {
                Ok(session) => {
                    if let Some(metrics) = crate::metrics::get() {
                        metrics.transport_event(
                            METRICS_NAME,
                            crate::metrics::TransportEvent::Reconnected,
                        );
                    }
                    break Arc::new(session);
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, retry_in = ?delay, "reconnect failed");
                    if !inner.pause(delay).await {
                        return;
                    }
                }
            }
        };
    }
}

/// Resolves when lapin reports the connection failed.
async fn connection_failed(session: &Session) {
    let mut events = Box::pin(session.connection.events_listener());
    loop {
        let event = std::future::poll_fn(|cx| events.as_mut().poll_next(cx)).await;
        match event {
            None | Some(lapin::Event::Error(_)) => return,
            Some(_) => {}
        }
    }
}

impl Inner {
    /// Waits `delay`, or less when the transport is dropped: `false` then.
    async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => !self.shutdown.load(Ordering::SeqCst),
            () = self.shutdown_signal.notified() => false,
        }
    }

    /// After a (re)connect: the reply queue if calls use it, and every live listener.
    async fn restore(self: &Arc<Self>, session: &Arc<Session>) -> Result<(), TransportError> {
        if self.reply_in_use.load(Ordering::SeqCst) {
            let mut ready = self.reply_ready.lock().await;
            // A first call may have consumed on this session already (it races the supervisor's
            // first restore): one consumer per session.
            if *ready != session.generation {
                self.consume_replies(session).await?;
                *ready = session.generation;
                self.reply_generation
                    .store(session.generation, Ordering::Release);
            }
        }
        let listeners: Vec<Arc<ListenerSpec>> = {
            let mut registered = lock(&self.listeners);
            registered.retain(|w| w.strong_count() > 0);
            registered.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in listeners {
            self.consume_listener(session, &listener).await?;
        }
        Ok(())
    }

    /// Marks session `generation` broken, so the supervisor replaces it (once, however many
    /// consumers and publishes report it).
    fn report_broken(&self, generation: u64) {
        self.broken.send_if_modified(|newest| {
            let newer = generation > *newest;
            if newer {
                *newest = generation;
            }
            newer
        });
    }

    /// Declares an exchange once per session before publishing to it.
    async fn ensure_exchange(
        &self,
        session: &Session,
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
    ) -> Result<(), TransportError> {
        if lock(&self.declared)
            .of(session.generation)
            .exchanges
            .contains(name)
        {
            return Ok(());
        }
        if let Err(error) =
            declare_exchange(&session.publisher, name, kind, durable, auto_delete).await
        {
            // A refused declaration closes the channel it was made on: the publisher's.
            self.report_broken(session.generation);
            return Err(error);
        }
        lock(&self.declared)
            .of(session.generation)
            .exchanges
            .insert(name.to_owned());
        Ok(())
    }

    /// Publishes a request to a target: straight to its queue (see
    /// [`AmqpOptions::direct_publish`]), through the topic exchange, or through the topic's fanout
    /// exchange.
    async fn publish_request(
        &self,
        session: &Session,
        target: &Target,
        body: &[u8],
        expiration: Option<Duration>,
    ) -> Result<(), TransportError> {
        let options = &self.options;
        let routing_key = target.routing_key();
        let (exchange, routing_key): (Cow<'_, str>, &str) = if target.fanout {
            let exchange = topology::fanout_exchange(&target.topic);
            self.ensure_exchange(session, &exchange, ExchangeKind::Fanout, false, true)
                .await?;
            (exchange.into(), "")
        } else if options.direct_publish {
            // The default exchange routes by queue name, and oslo names each queue after the
            // routing key it binds: the same queue, without topic routing in the broker.
            ("".into(), &routing_key)
        } else {
            let exchange = topology::exchange(target, options);
            self.ensure_exchange(
                session,
                exchange,
                ExchangeKind::Topic,
                options.durable(),
                false,
            )
            .await?;
            (exchange.into(), &routing_key)
        };
        let properties = topology::message_properties(expiration.map(|d| d.as_millis()));
        self.publish_taken(session, &exchange, routing_key, body, properties)
            .await
    }

    /// Publishes a message that is not mandatory; a nack is an error.
    async fn publish_taken(
        &self,
        session: &Session,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: lapin::BasicProperties,
    ) -> Result<(), TransportError> {
        let destination = (short(exchange)?, short(routing_key)?);
        let describe = || format!("basic_publish {exchange}/{routing_key}");
        match self
            .publish(session, destination, false, body, properties, &describe)
            .await?
        {
            Routed::Nacked => Err(TransportError::Broker {
                operation: describe(),
                reason: "the broker did not take the message (nack)".to_owned(),
            }),
            Routed::Taken | Routed::Returned => Ok(()),
        }
    }

    /// Publishes a request; when the publish broke with its connection, publishes it again on
    /// the next connection, until `deadline` (oslo's default `retry=None` for calls and casts).
    /// A request the broker took just before the break may then arrive twice: the window oslo
    /// has too.
    async fn publish_request_again_if_broken(
        &self,
        mut session: Arc<Session>,
        target: &Target,
        body: &[u8],
        expiration: Option<Duration>,
        deadline: tokio::time::Instant,
    ) -> Result<(), TransportError> {
        loop {
            let error = match self
                .publish_request(&session, target, body, expiration)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) if *self.broken.borrow() >= session.generation => error,
                Err(error) => return Err(error),
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tracing::debug!(%error, "a publish broke with its connection; publishing again on the next");
            session = match connection::next_session(&self.session, session.generation, left).await
            {
                Ok(next) => next,
                Err(_) => return Err(error),
            };
        }
    }

    /// Publishes a notification to `<topic>.<priority>` on the target's topic exchange, the queue
    /// named after that routing key declared first (once per session), as oslo's notifier does:
    /// with confirms on and durable queues, a confirmed notification survives a broker restart.
    async fn publish_notification(
        &self,
        session: &Session,
        target: &Target,
        body: &[u8],
    ) -> Result<(), TransportError> {
        let options = &self.options;
        let exchange = topology::exchange(target, options);
        let routing_key: &str = &target.topic;
        self.ensure_exchange(
            session,
            exchange,
            ExchangeKind::Topic,
            options.durable(),
            false,
        )
        .await?;
        let known = lock(&self.declared)
            .of(session.generation)
            .notification_queues
            .iter()
            .any(|(e, k)| e == exchange && k == routing_key);
        if !known {
            let binding = [(exchange.to_owned(), routing_key.to_owned())];
            if let Err(error) = self
                .declare_notification_queue(&session.publisher, routing_key, &binding)
                .await
            {
                self.report_broken(session.generation);
                return Err(error);
            }
            let [binding] = binding;
            lock(&self.declared)
                .of(session.generation)
                .notification_queues
                .push(binding);
        }
        let properties = topology::message_properties(None);
        self.publish_taken(session, exchange, routing_key, body, properties)
            .await
    }

    /// Publishes a notification; when the publish broke with its connection, publishes it again
    /// on a later connection as often as `retry` allows.
    async fn publish_notification_again_if_broken(
        &self,
        mut session: Arc<Session>,
        target: &Target,
        body: &[u8],
        retry: Retry,
    ) -> Result<(), TransportError> {
        let mut made = 0;
        loop {
            made += 1;
            let error = match self.publish_notification(&session, target, body).await {
                Ok(()) => return Ok(()),
                Err(error)
                    if *self.broken.borrow() >= session.generation
                        && retry.allows_another(made) =>
                {
                    error
                }
                Err(error) => return Err(error),
            };
            tracing::debug!(%error, attempt = made, "a notification broke with its connection; publishing again on the next");
            session = loop {
                match connection::next_session(&self.session, session.generation, CAST_CONNECT_WAIT)
                    .await
                {
                    Ok(next) => break next,
                    Err(_) if retry == Retry::Forever && !self.shutdown.load(Ordering::SeqCst) => {}
                    Err(_) => return Err(error),
                }
            };
        }
    }

    /// Publishes, and waits for the broker's confirm when confirms are on.
    /// `destination` is (exchange, routing key); `describe` names the operation in errors. A
    /// `mandatory` message no queue took comes back [`Routed::Returned`] (seen with confirms on,
    /// oslo's default; without them the broker's return is not waited for).
    async fn publish(
        &self,
        session: &Session,
        (exchange, routing_key): (ShortString, ShortString),
        mandatory: bool,
        body: &[u8],
        properties: lapin::BasicProperties,
        describe: impl Fn() -> String + Send,
    ) -> Result<Routed, TransportError> {
        let outcome = async {
            let confirm = session
                .publisher
                .basic_publish(
                    exchange,
                    routing_key,
                    BasicPublishOptions {
                        mandatory,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await?;
            if self.options.publisher_confirms {
                match confirm.await? {
                    lapin::Confirmation::Nack(_) => {
                        tracing::debug!(operation = describe(), "message refused (nack)");
                        return Ok(Ok(Routed::Nacked));
                    }
                    lapin::Confirmation::Ack(Some(returned)) => {
                        tracing::debug!(
                            reply_code = returned.reply_code,
                            operation = describe(),
                            "message returned: no queue for it"
                        );
                        return Ok(Ok(Routed::Returned));
                    }
                    _ => {}
                }
            }
            Ok::<_, lapin::Error>(Ok(Routed::Taken))
        }
        .await;
        match outcome {
            Ok(result) => result,
            Err(error) => {
                // A publish error means the channel or the connection is gone.
                self.report_broken(session.generation);
                Err(broker(&describe(), &error))
            }
        }
    }
}

impl Inner {
    /// Consumes what `consumes` names and registers it to be consumed again after a reconnect:
    /// an RPC server's queues or a notification listener's.
    async fn subscribe(
        self: &Arc<Self>,
        consumes: Consumes,
        options: ListenOptions,
    ) -> Result<Listener, TransportError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let spec = Arc::new(ListenerSpec {
            consumes,
            max_concurrency: options.max_concurrency,
            tx,
            consuming: Mutex::new(None),
            stopping: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        });
        let session = current_session(&self.session, CAST_CONNECT_WAIT).await?;
        self.consume_listener(&session, &spec).await?;
        lock(&self.listeners).push(Arc::downgrade(&spec));
        let draining = Arc::downgrade(&spec);
        let drain = crate::transport::Drain::new(move || {
            let spec = draining.clone();
            Box::pin(async move {
                match spec.upgrade() {
                    Some(spec) => spec.drain().await,
                    None => Ok(()),
                }
            })
        });
        Ok(Listener::new(
            rx,
            Unsubscribe {
                spec,
                inner: Arc::downgrade(self),
            },
        )
        .with_drain(drain))
    }
}

/// What became of a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routed {
    /// A queue took it (or confirms are off and nothing said otherwise).
    Taken,
    /// Mandatory, and no queue took it: the broker returned it.
    Returned,
    /// The broker refused it (a nack: a node shutting down, a queue over its limit).
    Nacked,
}

impl Transport for AmqpTransport {
    fn is_connected(&self) -> bool {
        self.inner.session.borrow().is_some()
    }

    fn call<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Reply, TransportError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let started = tokio::time::Instant::now();
            let session = current_session(&inner.session, timeout).await?;
            inner.ensure_reply_queue(&session).await?;
            let (msg_id, body) = super::encode_call(request, &inner.reply_queue);
            let call = inner.calls.register(msg_id, request.monitor_timeout);
            inner
                .publish_request_again_if_broken(
                    session,
                    target,
                    &body,
                    Some(timeout),
                    started + timeout,
                )
                .await?;
            call.wait(timeout.saturating_sub(started.elapsed())).await
        })
    }

    fn cast<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let deadline = tokio::time::Instant::now() + CAST_CONNECT_WAIT;
            let session = current_session(&inner.session, CAST_CONNECT_WAIT).await?;
            let body = super::encode_cast(request);
            inner
                .publish_request_again_if_broken(session, target, &body, None, deadline)
                .await
        })
    }

    fn listen<'a>(
        &'a self,
        target: &'a Target,
        options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>> {
        let consumes = Consumes::Server {
            target: target.clone(),
            fanout_queue: topology::fanout_queue(&target.topic, &MessageId::new().to_string()),
        };
        Box::pin(self.inner.subscribe(consumes, options))
    }

    fn notify<'a>(
        &'a self,
        target: &'a Target,
        body: &'a [u8],
        retry: Retry,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let session = current_session(&inner.session, CAST_CONNECT_WAIT).await?;
            inner
                .publish_notification_again_if_broken(session, target, body, retry)
                .await
        })
    }

    fn listen_notifications<'a>(
        &'a self,
        targets: &'a [Target],
        pool: Option<&'a str>,
        options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>> {
        let consumes = Consumes::notifications(targets, pool, &self.inner.options);
        Box::pin(self.inner.subscribe(consumes, options))
    }
}

/// What publishes declared on one session: exchanges, and the notification queues (by exchange
/// and routing key; a notifier publishes to a few).
#[derive(Default)]
struct Declared {
    generation: u64,
    exchanges: HashSet<String>,
    notification_queues: Vec<(String, String)>,
}

impl Declared {
    /// What session `generation` declared (nothing yet, when it is a new one).
    fn of(&mut self, generation: u64) -> &mut Self {
        if self.generation != generation {
            *self = Self {
                generation,
                ..Self::default()
            };
        }
        self
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
