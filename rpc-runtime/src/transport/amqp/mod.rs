//! `rabbit://` and `amqp://`: oslo.messaging's rabbit driver on the wire, over lapin.
//!
//! Topology, properties and message bodies are oslo's (the captures in `tests/fixtures/oslo-wire/`
//! show them): a topic exchange (`control_exchange`), queues `topic` and `topic.server`, a fanout
//! exchange `topic_fanout` with one `topic_fanout_<uuid>` queue per server, `reply_<uuid>` reply
//! queues on the default exchange, replies published mandatory. Servers acknowledge a request before
//! running it (at most once), as oslo does. Requests to one queue are published through the
//! default exchange straight to that queue unless `direct_publish=false` (see
//! [`AmqpOptions::direct_publish`]).

mod connection;
mod options;
mod topology;

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer, ExchangeKind};
use tokio::sync::{Notify, mpsc, watch};

use self::connection::{Backoff, Session, current_session};
pub use self::options::{AmqpOptions, FailoverStrategy, PREFETCH_PER_SLOT, UnknownOption};
use super::pending::PendingCalls;
use super::{
    Ack, BoxFuture, Delivery, ListenOptions, Listener, ReplyKind, ReplySink, Sent, Transport,
    TransportUrl,
};
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
    /// Exchanges declared on the current session (by generation), so publishes declare once.
    declared: Mutex<(u64, HashSet<String>)>,
    listeners: Mutex<Vec<Weak<ListenerSpec>>>,
}

/// What a listener consumes, kept so it can be consumed again after a reconnect.
struct ListenerSpec {
    target: Target,
    /// The server's concurrency limit, which the default prefetch follows.
    max_concurrency: usize,
    fanout_queue: String,
    tx: mpsc::UnboundedSender<Delivery>,
    /// Consumers of the current session: (channel, consumer tags).
    consuming: Mutex<Option<(Channel, Vec<String>)>>,
    /// Set when the listener is dropped, so the end of its consumers is expected.
    stopping: AtomicBool,
}

/// The queues a listener consumes, as oslo names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListenerQueue {
    /// `topic`: shared by every server of the topic.
    Topic,
    /// `topic.server`: this server's own.
    Server,
    /// `topic_fanout_<uuid>`: this server's copy of the topic's fanout casts.
    Fanout,
}

impl ListenerSpec {
    /// The queues this listener consumes: the server queue only when it has a server name.
    fn queues(&self) -> Vec<ListenerQueue> {
        let mut queues = vec![ListenerQueue::Topic];
        if self.target.server.is_some() {
            queues.push(ListenerQueue::Server);
        }
        queues.push(ListenerQueue::Fanout);
        queues
    }

    fn queue_name(&self, queue: ListenerQueue) -> Cow<'_, str> {
        match queue {
            ListenerQueue::Topic => Cow::Borrowed(&self.target.topic),
            ListenerQueue::Server => self.target.routing_key(),
            ListenerQueue::Fanout => Cow::Borrowed(&self.fanout_queue),
        }
    }
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
            declared: Mutex::new((0, HashSet::new())),
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

/// Keeps a session up: on a break, fails the calls in flight, reconnects with backoff, then
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
                tokio::select! {
                    _ = broken.wait_for(|g| *g >= session.generation) => {}
                    () = inner.shutdown_signal.notified() => {}
                    () = connection_failed(&session) => {}
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
                Ok(session) => break Arc::new(session),
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

    /// Declares the reply queue and consumes it.
    async fn consume_replies(
        self: &Arc<Self>,
        session: &Arc<Session>,
    ) -> Result<(), TransportError> {
        let channel = create_channel(session).await?;
        declare_queue(
            &channel,
            &self.reply_queue,
            self.options.transient_durable(),
            topology::transient_queue_arguments(&self.options),
        )
        .await?;
        // Replicated reply queues are asked for so that replies survive a node: acknowledged
        // once handed to their call, a reply delivered as the connection drops is delivered
        // again on the next one instead of being lost in flight. Classic reply queues keep
        // oslo's cheaper automatic acknowledgement.
        let acked = self.options.transient_quorum_queues;
        let consumer = consume(&channel, &self.reply_queue, !acked).await?;
        let inner = Arc::clone(self);
        let generation = session.generation;
        tokio::spawn(async move {
            let ended = drain(consumer, |delivery| {
                inner.calls.deliver(&delivery.data);
                if acked {
                    acknowledge(delivery.acker);
                }
            })
            .await;
            // Nothing cancels the reply consumer on purpose: its end means the queue or the
            // connection is gone (deleted, expired, broker restart).
            if let Some(session) = inner.resumable(generation, ended, &channel, "reply queue") {
                let _ = channel.close(200, "consumer cancelled".into()).await;
                inner.resume_replies(session).await;
            }
        });
        Ok(())
    }

    /// The live session `generation` when a consumer of it that the broker cancelled can be
    /// consumed again on it (the connection and the consumer's channel are up); otherwise, unless
    /// the transport is closing, the session is reported broken and `None` returned.
    fn resumable(
        &self,
        generation: u64,
        ended: Ended,
        channel: &Channel,
        what: &str,
    ) -> Option<Arc<Session>> {
        if self.shutdown.load(Ordering::SeqCst) {
            return None;
        }
        let current = self
            .session
            .borrow()
            .as_ref()
            .filter(|s| s.generation == generation)
            .cloned();
        match current {
            Some(session)
                if ended == Ended::Cancelled
                    && session.connection.status().connected()
                    && channel.status().connected() =>
            {
                tracing::warn!(
                    what,
                    "the broker cancelled a consumer (its queue deleted or moved); declaring and \
                     consuming it again"
                );
                Some(session)
            }
            _ => {
                self.consumer_ended(generation, what);
                None
            }
        }
    }

    /// Declares and consumes the reply queue again on the same session after the broker cancelled
    /// its consumer; calls in flight keep waiting (their replies are retried by the servers).
    /// (Boxed: it consumes again, and the new consumer's task may call it in turn.)
    fn resume_replies(self: &Arc<Self>, session: Arc<Session>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ready = self.reply_ready.lock().await;
            let resumed =
                tokio::time::timeout(RESTORE_TIMEOUT, self.consume_replies(&session)).await;
            if !matches!(resumed, Ok(Ok(()))) {
                tracing::warn!("could not consume the reply queue again; reconnecting");
                self.report_broken(session.generation);
            }
        })
    }

    /// Declares and consumes a server's three queues on a channel of its own.
    async fn consume_listener(
        self: &Arc<Self>,
        session: &Arc<Session>,
        listener: &Arc<ListenerSpec>,
    ) -> Result<(), TransportError> {
        let channel = create_channel(session).await?;
        let prefetch = self.options.prefetch_for(listener.max_concurrency);
        if prefetch > 0 {
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await
                .map_err(|e| broker("basic_qos", &e))?;
        }
        let queues = listener.queues();
        for &queue in &queues {
            self.declare_listener_queue(&channel, listener, queue)
                .await?;
        }
        let mut tags = Vec::new();
        for &queue in &queues {
            tags.push(
                self.consume_listener_queue(session, &channel, listener, queue)
                    .await?,
            );
        }
        *lock(&listener.consuming) = Some((channel, tags));
        Ok(())
    }

    /// Declares one of a listener's queues, its exchange and its binding.
    async fn declare_listener_queue(
        &self,
        channel: &Channel,
        listener: &ListenerSpec,
        queue: ListenerQueue,
    ) -> Result<(), TransportError> {
        let options = &self.options;
        let target = &listener.target;
        let name = listener.queue_name(queue);
        match queue {
            ListenerQueue::Topic | ListenerQueue::Server => {
                let exchange = topology::exchange(target, options);
                declare_exchange(
                    channel,
                    exchange,
                    ExchangeKind::Topic,
                    options.durable(),
                    false,
                )
                .await?;
                declare_queue(
                    channel,
                    &name,
                    options.durable(),
                    topology::topic_queue_arguments(options),
                )
                .await?;
                bind(channel, &name, exchange, &name).await
            }
            ListenerQueue::Fanout => {
                let exchange = topology::fanout_exchange(&target.topic);
                declare_exchange(channel, &exchange, ExchangeKind::Fanout, false, true).await?;
                declare_queue(
                    channel,
                    &name,
                    options.transient_durable(),
                    topology::transient_queue_arguments(options),
                )
                .await?;
                bind(channel, &name, &exchange, &target.topic).await
            }
        }
    }

    /// Consumes one of a listener's queues on `channel`, feeding its deliveries to the server;
    /// returns the consumer tag.
    async fn consume_listener_queue(
        self: &Arc<Self>,
        session: &Arc<Session>,
        channel: &Channel,
        listener: &Arc<ListenerSpec>,
        queue: ListenerQueue,
    ) -> Result<String, TransportError> {
        let consumer = consume(channel, &listener.queue_name(queue), false).await?;
        let tag = consumer.tag().to_string();
        let inner = Arc::clone(self);
        let tx = listener.tx.clone();
        let generation = session.generation;
        let sink: Arc<dyn ReplySink> = Arc::new(AmqpReplySink {
            inner: Arc::downgrade(self),
        });
        let spec = Arc::downgrade(listener);
        let channel = channel.clone();
        let old_tag = tag.clone();
        tokio::spawn(async move {
            let ended = drain(consumer, |delivery| {
                let _ = tx.send(Delivery {
                    body: delivery.data,
                    sink: Arc::clone(&sink),
                    ack: Some(Ack::Amqp(delivery.acker)),
                });
            })
            .await;
            let Some(spec) = spec
                .upgrade()
                .filter(|s| !s.stopping.load(Ordering::SeqCst))
            else {
                return;
            };
            if let Some(session) = inner.resumable(generation, ended, &channel, "server queue") {
                inner
                    .resume_listener_queue(session, &channel, &spec, queue, &old_tag)
                    .await;
            }
        });
        Ok(tag)
    }

    /// Declares and consumes one of a listener's queues again on the same channel after the
    /// broker cancelled its consumer; reconnects when that fails. (Boxed: the new consumer's task
    /// may call it in turn.)
    fn resume_listener_queue<'a>(
        self: &'a Arc<Self>,
        session: Arc<Session>,
        channel: &'a Channel,
        listener: &'a Arc<ListenerSpec>,
        queue: ListenerQueue,
        old_tag: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let resumed = tokio::time::timeout(RESTORE_TIMEOUT, async {
                self.declare_listener_queue(channel, listener, queue)
                    .await?;
                self.consume_listener_queue(&session, channel, listener, queue)
                    .await
            })
            .await;
            match resumed {
                Ok(Ok(tag)) => {
                    if let Some((_, tags)) = lock(&listener.consuming).as_mut() {
                        tags.retain(|t| t != old_tag);
                        tags.push(tag);
                    }
                }
                _ => {
                    tracing::warn!(
                        queue = %listener.queue_name(queue),
                        "could not consume a server queue again; reconnecting"
                    );
                    self.report_broken(session.generation);
                }
            }
        })
    }

    /// A consumer of session `generation` stopped when nobody stopped it: the session is broken
    /// (a deleted queue, a closed channel, a lost connection), unless the transport is closing.
    fn consumer_ended(&self, generation: u64, what: &str) {
        if self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let current = self.session.borrow().as_ref().map(|s| s.generation);
        if current == Some(generation) {
            tracing::warn!(what, "a consumer stopped; reconnecting to restore it");
        }
        self.report_broken(generation);
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
        {
            let declared = lock(&self.declared);
            if declared.0 == session.generation && declared.1.contains(name) {
                return Ok(());
            }
        }
        if let Err(error) =
            declare_exchange(&session.publisher, name, kind, durable, auto_delete).await
        {
            // A refused declaration closes the channel it was made on: the publisher's.
            self.report_broken(session.generation);
            return Err(error);
        }
        let mut declared = lock(&self.declared);
        if declared.0 != session.generation {
            *declared = (session.generation, HashSet::new());
        }
        declared.1.insert(name.to_owned());
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
        let destination = (short(&exchange)?, short(routing_key)?);
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

    /// Declares and consumes the reply queue once per session, on the first call.
    async fn ensure_reply_queue(
        self: &Arc<Self>,
        session: &Arc<Session>,
    ) -> Result<(), TransportError> {
        if self.reply_generation.load(Ordering::Acquire) == session.generation {
            return Ok(());
        }
        self.reply_in_use.store(true, Ordering::SeqCst);
        let mut ready = self.reply_ready.lock().await;
        if *ready != session.generation {
            // Bounded: this holds the lock the supervisor's restore needs.
            tokio::time::timeout(RESTORE_TIMEOUT, self.consume_replies(session))
                .await
                .map_err(|_| TransportError::Broker {
                    operation: "consume the reply queue".to_owned(),
                    reason: format!("no answer within {RESTORE_TIMEOUT:?}"),
                })??;
            *ready = session.generation;
            self.reply_generation
                .store(session.generation, Ordering::Release);
        }
        Ok(())
    }
}

/// Acknowledges one delivery in a task of its own, so the request it carries runs at once. (Acks
/// coalesced into `multiple` acks were tried and lost acknowledgements at shutdown, so requests
/// ran twice; see docs/performance.md.)
pub(crate) fn acknowledge(acker: lapin::Acker) {
    tokio::spawn(async move {
        if let Err(error) = acker.ack(BasicAckOptions::default()).await {
            tracing::warn!(%error, "could not acknowledge a message");
        }
    });
}

/// How a consumer's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Cancelled without an error: by the broker (its queue deleted, a node drained) or by us.
    Cancelled,
    /// Its channel or connection failed.
    Failed,
}

/// Reads deliveries until the consumer stops (cancelled, or its channel closed).
async fn drain(mut consumer: Consumer, mut each: impl FnMut(lapin::message::Delivery)) -> Ended {
    loop {
        let next = std::future::poll_fn(|cx| match Pin::new(&mut consumer).poll_next(cx) {
            Poll::Ready(item) => Poll::Ready(item),
            Poll::Pending => Poll::Pending,
        })
        .await;
        match next {
            Some(Ok(delivery)) => each(delivery),
            Some(Err(error)) => {
                tracing::debug!(%error, "consumer error");
                return Ended::Failed;
            }
            None => return Ended::Cancelled,
        }
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

/// Publishes replies for servers, on the transport's current session.
struct AmqpReplySink {
    inner: Weak<Inner>,
}

impl AmqpReplySink {
    /// Publishes a reply on the current session; when the publish broke with its connection,
    /// publishes it again on the next one, for up to [`CAST_CONNECT_WAIT`] (the caller keeps
    /// waiting across the reconnect).
    async fn publish_reply(
        inner: &Inner,
        routing_key: &ShortString,
        body: &[u8],
    ) -> Result<Routed, TransportError> {
        let deadline = tokio::time::Instant::now() + CAST_CONNECT_WAIT;
        let mut session = current_session(&inner.session, CAST_CONNECT_WAIT).await?;
        loop {
            let error = match inner
                .publish(
                    &session,
                    (ShortString::default(), routing_key.clone()),
                    true,
                    body,
                    topology::message_properties(None),
                    || "basic_publish of a reply".to_owned(),
                )
                .await
            {
                Err(error) if *inner.broken.borrow() >= session.generation => error,
                routed => return routed,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tracing::debug!(%error, "a reply's publish broke with its connection; publishing again on the next");
            session = match connection::next_session(&inner.session, session.generation, left).await
            {
                Ok(next) => next,
                Err(_) => return Err(error),
            };
        }
    }

    /// Publishes a final reply whose queue was missing (or that the broker refused) again, in a task of its own, until a queue
    /// takes it or `kombu_missing_consumer_retry_timeout` has passed since the first try (the
    /// caller may be reconnecting and declaring its queue again, as oslo allows for). Other
    /// replies never wait for it.
    fn retry_missing(inner: Weak<Inner>, routing_key: ShortString, body: Vec<u8>) {
        let Some(timeout) = inner
            .upgrade()
            .map(|i| i.options.missing_consumer_retry_timeout)
        else {
            return;
        };
        tokio::spawn(async move {
            let first = tokio::time::Instant::now();
            let mut wait = MISSING_REPLY_QUEUE_FIRST_WAIT;
            loop {
                if first.elapsed() + wait > timeout {
                    tracing::warn!(
                        reply_q = routing_key.as_str(),
                        waited = ?first.elapsed(),
                        "dropping a reply: its reply queue is gone and did not come back within \
                         kombu_missing_consumer_retry_timeout"
                    );
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MISSING_REPLY_QUEUE_MAX_WAIT);
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                match Self::publish_reply(&inner, &routing_key, &body).await {
                    Ok(Routed::Taken) => {
                        tracing::debug!(
                            reply_q = routing_key.as_str(),
                            after = ?first.elapsed(),
                            "a reply found its queue again"
                        );
                        return;
                    }
                    Ok(Routed::Returned | Routed::Nacked) => {}
                    Err(error) => {
                        tracing::debug!(%error, "retrying a reply whose queue was gone");
                    }
                }
            }
        });
    }
}

/// The first wait before a reply whose queue is gone is published again; it doubles up to
/// [`MISSING_REPLY_QUEUE_MAX_WAIT`].
const MISSING_REPLY_QUEUE_FIRST_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two tries of a reply whose queue is gone.
const MISSING_REPLY_QUEUE_MAX_WAIT: Duration = Duration::from_secs(2);

impl ReplySink for AmqpReplySink {
    fn send_reply(&self, reply_q: &str, body: Vec<u8>, kind: ReplyKind) -> Sent {
        let Some(inner) = self.inner.upgrade() else {
            return Sent::Now(Err(TransportError::Closed));
        };
        // Checked here, once: the name came from the network.
        let routing_key = match short(reply_q) {
            Ok(routing_key) => routing_key,
            Err(error) => return Sent::Now(Err(error)),
        };
        let weak = self.inner.clone();
        Sent::Later(Box::pin(async move {
            let routed = Self::publish_reply(&inner, &routing_key, &body).await?;
            // A reply refused or unroutable now may be taken in a moment: its caller may be
            // reconnecting, or the node that refused it shutting down.
            if matches!(routed, Routed::Returned | Routed::Nacked) {
                match kind {
                    ReplyKind::Final => Self::retry_missing(weak, routing_key, body),
                    ReplyKind::Heartbeat => tracing::debug!(
                        reply_q = routing_key.as_str(),
                        "a call-monitor heartbeat found no reply queue"
                    ),
                }
            }
            Ok(())
        }))
    }
}

/// Stops a listener's consumers and deletes its fanout queue (as oslo does on shutdown).
struct Unsubscribe {
    spec: Arc<ListenerSpec>,
    inner: Weak<Inner>,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.spec.stopping.store(true, Ordering::SeqCst);
        let Some((channel, tags)) = lock(&self.spec.consuming).take() else {
            return;
        };
        let fanout_queue = self.spec.fanout_queue.clone();
        let inner = self.inner.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for tag in tags {
                    let _ = channel
                        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                        .await;
                }
                let _ = channel
                    .queue_delete(fanout_queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
                let _ = channel.close(200, "listener stopped".into()).await;
                drop(inner);
            });
        }
    }
}

impl Transport for AmqpTransport {
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
        Box::pin(async move {
            let inner = &self.inner;
            let (tx, rx) = mpsc::unbounded_channel();
            let spec = Arc::new(ListenerSpec {
                target: target.clone(),
                max_concurrency: options.max_concurrency,
                fanout_queue: topology::fanout_queue(&target.topic, &MessageId::new().to_string()),
                tx,
                consuming: Mutex::new(None),
                stopping: AtomicBool::new(false),
            });
            let session = current_session(&inner.session, CAST_CONNECT_WAIT).await?;
            inner.consume_listener(&session, &spec).await?;
            lock(&inner.listeners).push(Arc::downgrade(&spec));
            Ok(Listener::new(
                rx,
                Unsubscribe {
                    spec,
                    inner: Arc::downgrade(inner),
                },
            ))
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A queue, exchange or routing-key name as AMQP carries it. lapin panics on a name over 255
/// bytes; every name from a user or the network goes through here instead.
fn short(name: &str) -> Result<ShortString, TransportError> {
    if name.len() > usize::from(u8::MAX) {
        return Err(TransportError::NameTooLong {
            prefix: name.chars().take(32).collect(),
            length: name.len(),
        });
    }
    // Within the limit: lapin's conversion cannot fail.
    Ok(ShortString::from(name))
}

fn broker(operation: &str, error: &lapin::Error) -> TransportError {
    TransportError::Broker {
        operation: operation.to_owned(),
        reason: error.to_string(),
    }
}

async fn create_channel(session: &Session) -> Result<Channel, TransportError> {
    session
        .connection
        .create_channel()
        .await
        .map_err(|e| broker("channel_open", &e))
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    durable: bool,
    auto_delete: bool,
) -> Result<(), TransportError> {
    channel
        .exchange_declare(
            short(name)?,
            kind,
            ExchangeDeclareOptions {
                durable,
                auto_delete,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker(&format!("exchange_declare {name}"), &e))
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    durable: bool,
    arguments: FieldTable,
) -> Result<(), TransportError> {
    channel
        .queue_declare(
            short(name)?,
            QueueDeclareOptions {
                durable,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .map(drop)
        .map_err(|e| broker(&format!("queue_declare {name}"), &e))
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), TransportError> {
    channel
        .queue_bind(
            short(queue)?,
            short(exchange)?,
            short(routing_key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker(&format!("queue_bind {queue} to {exchange}"), &e))
}

async fn consume(channel: &Channel, queue: &str, no_ack: bool) -> Result<Consumer, TransportError> {
    channel
        .basic_consume(
            short(queue)?,
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker(&format!("basic_consume {queue}"), &e))
}
