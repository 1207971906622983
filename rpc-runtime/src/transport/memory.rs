//! `memory://`: an in-process broker with oslo's routing (topic, `topic.server`, fanout, reply
//! queues), carrying the same encoded envelopes as RabbitMQ.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use super::pending::PendingCalls;
use super::{
    Ack, BoxFuture, Delivery, ListenOptions, Listener, ReplyKind, ReplySink, Retry, Sent,
    Transport, TransportUrl,
};
use crate::envelope::{MessageId, Reply, ReplyRoute, Request};
use crate::error::TransportError;
use crate::target::Target;

/// The control exchange used when a target names none (oslo's default).
const DEFAULT_EXCHANGE: &str = "openstack";

/// An in-process broker. Transports made from one broker reach each other and nothing else, which
/// is how tests isolate themselves.
///
/// # Examples
///
/// ```
/// use rpc_runtime::MemoryBroker;
///
/// let broker = MemoryBroker::new();
/// let server_side = broker.transport();
/// let client_side = broker.transport();
/// # drop((server_side, client_side));
/// ```
#[derive(Clone, Default)]
pub struct MemoryBroker {
    state: Arc<BrokerState>,
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

impl MemoryBroker {
    /// Creates an empty broker of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide broker registered under `name` (`memory://name`), created on first use
    /// and kept while a transport uses it.
    pub fn named(name: &str) -> Self {
        static BROKERS: OnceLock<Mutex<HashMap<String, Weak<BrokerState>>>> = OnceLock::new();
        let mut brokers = lock(BROKERS.get_or_init(Mutex::default));
        if let Some(state) = brokers.get(name).and_then(Weak::upgrade) {
            return Self { state };
        }
        brokers.retain(|_, weak| weak.strong_count() > 0);
        let state = Arc::new(BrokerState::default());
        brokers.insert(name.to_owned(), Arc::downgrade(&state));
        Self { state }
    }

    /// A transport on this broker, with its own reply queue.
    pub fn transport(&self) -> MemoryTransport {
        let replies = Arc::new(ReplyWaiters {
            name: format!("reply_{}", MessageId::new()).into(),
            calls: PendingCalls::default(),
        });
        lock(&self.state.reply_queues).insert(replies.name.to_string(), Arc::downgrade(&replies));
        MemoryTransport {
            broker: Arc::clone(&self.state),
            replies,
        }
    }
}

#[derive(Default)]
struct BrokerState {
    /// Direct queues by exchange, then routing key (`topic` or `topic.server`).
    queues: Mutex<HashMap<String, HashMap<String, Queue>>>,
    /// Fanout consumers by topic.
    fanout: Mutex<HashMap<String, Vec<Consumer>>>,
    /// Reply queues by name.
    reply_queues: Mutex<HashMap<String, Weak<ReplyWaiters>>>,
    /// Notification queues by exchange, then queue name.
    notification_queues: Mutex<HashMap<String, HashMap<String, NotificationQueue>>>,
    next_consumer: AtomicU64,
}

/// A notification queue: its bindings, its consumers, and what waits for a consumer (oslo's
/// queues keep notifications sent before any listener; so does this one, in memory).
#[derive(Default)]
struct NotificationQueue {
    bindings: Vec<String>,
    consumers: Vec<Consumer>,
    next: usize,
    backlog: VecDeque<Vec<u8>>,
}

impl NotificationQueue {
    /// Hands `body` to the next live consumer, round robin, or keeps it for one.
    fn deliver(&mut self, broker: &Arc<BrokerState>, requeue: Requeue, body: Vec<u8>) {
        let mut delivery = Delivery {
            body,
            sink: Arc::clone(broker) as Arc<dyn ReplySink>,
            ack: Some(Ack::Memory(requeue)),
        };
        while !self.consumers.is_empty() {
            let index = self.next % self.consumers.len();
            match self.consumers[index].tx.send(delivery) {
                Ok(()) => {
                    self.next = index + 1;
                    return;
                }
                Err(mpsc::error::SendError(returned)) => {
                    delivery = returned;
                    self.consumers.remove(index);
                }
            }
        }
        self.backlog.push_back(delivery.body);
    }
}

/// Puts an in-memory notification back on the queue it came from.
pub(crate) struct Requeue {
    broker: Weak<BrokerState>,
    exchange: Arc<str>,
    queue: Arc<str>,
}

impl Requeue {
    pub(crate) fn put_back(self, body: Vec<u8>) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let mut queues = lock(&broker.notification_queues);
        if let Some(queue) = queues
            .get_mut(&*self.exchange)
            .and_then(|by_name| by_name.get_mut(&*self.queue))
        {
            queue.deliver(&broker, self, body);
        }
    }
}

#[derive(Default)]
struct Queue {
    consumers: Vec<Consumer>,
    next: usize,
}

struct Consumer {
    id: u64,
    tx: mpsc::UnboundedSender<Delivery>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a broker lock leaves plain maps behind, still consistent.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BrokerState {
    /// Routes to one consumer of a direct queue, round robin. A message for a queue with no
    /// consumer is dropped, as RabbitMQ drops a message routed to no queue.
    fn publish_direct(self: &Arc<Self>, exchange: &str, routing_key: &str, body: Vec<u8>) -> bool {
        let mut queues = lock(&self.queues);
        let Some(queue) = queues
            .get_mut(exchange)
            .and_then(|by_key| by_key.get_mut(routing_key))
        else {
            return false;
        };
        let mut delivery = Delivery {
            body,
            sink: Arc::clone(self) as Arc<dyn ReplySink>,
            ack: None,
        };
        while !queue.consumers.is_empty() {
            let index = queue.next % queue.consumers.len();
            match queue.consumers[index].tx.send(delivery) {
                Ok(()) => {
                    queue.next = index + 1;
                    return true;
                }
                Err(mpsc::error::SendError(returned)) => {
                    delivery = returned;
                    queue.consumers.remove(index);
                }
            }
        }
        false
    }

    fn publish_fanout(self: &Arc<Self>, topic: &str, body: &[u8]) -> usize {
        let mut fanout = lock(&self.fanout);
        let Some(consumers) = fanout.get_mut(topic) else {
            return 0;
        };
        consumers.retain(|c| {
            c.tx.send(Delivery {
                body: body.to_vec(),
                sink: Arc::clone(self) as Arc<dyn ReplySink>,
                ack: None,
            })
            .is_ok()
        });
        consumers.len()
    }

    fn subscribe(
        self: &Arc<Self>,
        exchange: &str,
        target: &Target,
        tx: &mpsc::UnboundedSender<Delivery>,
    ) -> Subscription {
        let id = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        let mut keys = vec![target.topic.to_string()];
        if target.server.is_some() {
            keys.push(target.routing_key().into_owned());
        }
        {
            let mut queues = lock(&self.queues);
            let by_key = queues.entry(exchange.to_owned()).or_default();
            for key in &keys {
                by_key
                    .entry(key.clone())
                    .or_default()
                    .consumers
                    .push(Consumer { id, tx: tx.clone() });
            }
        }
        lock(&self.fanout)
            .entry(target.topic.to_string())
            .or_default()
            .push(Consumer { id, tx: tx.clone() });
        Subscription {
            broker: Arc::downgrade(self),
            id,
            exchange: exchange.to_owned(),
            keys,
            topic: target.topic.to_string(),
        }
    }
}

impl BrokerState {
    /// Routes a notification to every queue of `exchange` bound to `routing_key`, creating the
    /// queue named after the key first, as oslo's notifier does.
    fn publish_notification(self: &Arc<Self>, exchange: &str, routing_key: &str, body: &[u8]) {
        let mut queues = lock(&self.notification_queues);
        let by_name = queues.entry(exchange.to_owned()).or_default();
        by_name
            .entry(routing_key.to_owned())
            .or_default()
            .bind(routing_key);
        let exchange_name: Arc<str> = exchange.into();
        for (name, queue) in by_name.iter_mut() {
            if queue.bindings.iter().any(|b| b == routing_key) {
                let requeue = Requeue {
                    broker: Arc::downgrade(self),
                    exchange: Arc::clone(&exchange_name),
                    queue: name.as_str().into(),
                };
                queue.deliver(self, requeue, body.to_vec());
            }
        }
    }

    /// Consumes the notification queues of `targets` (named `pool`, or after each routing key).
    fn subscribe_notifications(
        self: &Arc<Self>,
        targets: &[Target],
        pool: Option<&str>,
        tx: &mpsc::UnboundedSender<Delivery>,
    ) -> NotificationSubscription {
        let id = self.next_consumer.fetch_add(1, Ordering::Relaxed);
        let mut consumed: Vec<(String, String)> = Vec::new();
        let mut queues = lock(&self.notification_queues);
        for target in targets {
            let exchange = target.exchange.as_deref().unwrap_or(DEFAULT_EXCHANGE);
            let name = pool.unwrap_or(&target.topic);
            let queue = queues
                .entry(exchange.to_owned())
                .or_default()
                .entry(name.to_owned())
                .or_default();
            queue.bind(&target.topic);
            let key = (exchange.to_owned(), name.to_owned());
            if consumed.contains(&key) {
                continue;
            }
            queue.consumers.push(Consumer { id, tx: tx.clone() });
            let waiting: Vec<Vec<u8>> = queue.backlog.drain(..).collect();
            for body in waiting {
                let requeue = Requeue {
                    broker: Arc::downgrade(self),
                    exchange: exchange.into(),
                    queue: name.into(),
                };
                queue.deliver(self, requeue, body);
            }
            consumed.push(key);
        }
        NotificationSubscription {
            broker: Arc::downgrade(self),
            id,
            queues: consumed,
        }
    }
}

impl NotificationQueue {
    fn bind(&mut self, routing_key: &str) {
        if !self.bindings.iter().any(|b| b == routing_key) {
            self.bindings.push(routing_key.to_owned());
        }
    }
}

/// Removes a notification listener's consumers when it is dropped; the queues and what waits in
/// them stay, as durable queues do.
struct NotificationSubscription {
    broker: Weak<BrokerState>,
    id: u64,
    queues: Vec<(String, String)>,
}

impl Drop for NotificationSubscription {
    fn drop(&mut self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let mut queues = lock(&broker.notification_queues);
        for (exchange, name) in &self.queues {
            if let Some(queue) = queues.get_mut(exchange).and_then(|q| q.get_mut(name)) {
                queue.consumers.retain(|c| c.id != self.id);
            }
        }
    }
}

impl ReplySink for BrokerState {
    fn send_reply(&self, reply_q: &str, body: Vec<u8>, _kind: ReplyKind) -> Sent {
        let waiters = lock(&self.reply_queues)
            .get(reply_q)
            .and_then(Weak::upgrade);
        match waiters {
            Some(waiters) => waiters.calls.deliver(&body),
            None => tracing::debug!(reply_q, "dropping a reply for a reply queue that is gone"),
        }
        Sent::Now(Ok(()))
    }
}

/// Removes a listener's consumers from the broker when the listener is dropped.
struct Subscription {
    broker: Weak<BrokerState>,
    id: u64,
    exchange: String,
    keys: Vec<String>,
    topic: String,
}

impl Subscription {
    /// Stops this consumer taking from the shared topic queue; its own queue and the fanout stay.
    fn drain(&self) -> crate::transport::Drain {
        let (broker, id) = (self.broker.clone(), self.id);
        let (exchange, topic) = (self.exchange.clone(), self.topic.clone());
        crate::transport::Drain::new(move || {
            if let Some(broker) = broker.upgrade()
                && let Some(queue) = lock(&broker.queues)
                    .get_mut(&exchange)
                    .and_then(|by_key| by_key.get_mut(&topic))
            {
                queue.consumers.retain(|c| c.id != id);
            }
            Box::pin(std::future::ready(Ok(())))
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let mut queues = lock(&broker.queues);
        if let Some(by_key) = queues.get_mut(&self.exchange) {
            for key in &self.keys {
                if let Some(queue) = by_key.get_mut(key) {
                    queue.consumers.retain(|c| c.id != self.id);
                    if queue.consumers.is_empty() {
                        by_key.remove(key);
                    }
                }
            }
        }
        drop(queues);
        if let Some(consumers) = lock(&broker.fanout).get_mut(&self.topic) {
            consumers.retain(|c| c.id != self.id);
        }
    }
}

/// One transport's reply queue: its name and the calls waiting on it.
struct ReplyWaiters {
    name: Arc<str>,
    calls: PendingCalls,
}

/// The `memory://` transport: one process, no broker, the real envelope.
///
/// `memory://` uses the process-wide default broker and `memory://name` a named one; for full
/// isolation make a [`MemoryBroker`] and take transports from it.
pub struct MemoryTransport {
    broker: Arc<BrokerState>,
    replies: Arc<ReplyWaiters>,
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("reply_q", &self.replies.name)
            .finish_non_exhaustive()
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        lock(&self.broker.reply_queues).remove(&*self.replies.name);
    }
}

impl MemoryTransport {
    /// A transport on the broker a `memory://[name]` URL names.
    pub fn connect(url: &TransportUrl) -> Self {
        let name = url.hosts().first().map_or("", |h| h.hostname.as_str());
        MemoryBroker::named(name).transport()
    }

    /// Sends a request body built by `build` (given the call's reply route) as a call, and waits for
    /// the reply. For tests of wire-level behaviour: malformed or hand-made messages.
    ///
    /// # Errors
    ///
    /// [`TransportError::Timeout`] when no final reply arrives in time.
    pub async fn call_raw(
        &self,
        target: &Target,
        build: impl FnOnce(&ReplyRoute) -> Vec<u8>,
        timeout: Duration,
    ) -> Result<Reply, TransportError> {
        let msg_id = MessageId::new();
        let route = ReplyRoute {
            msg_id: msg_id.to_string(),
            reply_q: Arc::clone(&self.replies.name),
        };
        let body = build(&route);
        self.call_body(target, msg_id, body, timeout, None).await
    }

    /// Publishes a raw body to the target (a cast). For tests of wire-level behaviour.
    pub fn cast_raw(&self, target: &Target, body: Vec<u8>) {
        self.publish(target, body);
    }

    fn publish(&self, target: &Target, body: Vec<u8>) {
        if target.fanout {
            self.broker.publish_fanout(&target.topic, &body);
        } else {
            let exchange = target.exchange.as_deref().unwrap_or(DEFAULT_EXCHANGE);
            let routing_key = target.routing_key();
            if !self.broker.publish_direct(exchange, &routing_key, body) {
                tracing::debug!(%routing_key, "no queue for the message; dropped");
            }
        }
    }

    async fn call_body(
        &self,
        target: &Target,
        msg_id: MessageId,
        body: Vec<u8>,
        timeout: Duration,
        monitor: Option<Duration>,
    ) -> Result<Reply, TransportError> {
        let call = self.replies.calls.register(msg_id, monitor);
        self.publish(target, body);
        call.wait(timeout).await
    }
}

impl Transport for MemoryTransport {
    fn call<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Reply, TransportError>> {
        Box::pin(async move {
            let (msg_id, body) = super::encode_call(request, &self.replies.name);
            self.call_body(target, msg_id, body, timeout, request.monitor_timeout)
                .await
        })
    }

    fn cast<'a>(
        &'a self,
        target: &'a Target,
        request: &'a Request<'_>,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        self.publish(target, super::encode_cast(request));
        Box::pin(std::future::ready(Ok(())))
    }

    fn listen<'a>(
        &'a self,
        target: &'a Target,
        _options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let exchange = target.exchange.as_deref().unwrap_or(DEFAULT_EXCHANGE);
        let subscription = self.broker.subscribe(exchange, target, &tx);
        let drain = subscription.drain();
        Box::pin(std::future::ready(Ok(
            Listener::new(rx, subscription).with_drain(drain)
        )))
    }

    fn notify<'a>(
        &'a self,
        target: &'a Target,
        body: &'a [u8],
        _retry: Retry,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        let exchange = target.exchange.as_deref().unwrap_or(DEFAULT_EXCHANGE);
        self.broker
            .publish_notification(exchange, &target.topic, body);
        Box::pin(std::future::ready(Ok(())))
    }

    fn listen_notifications<'a>(
        &'a self,
        targets: &'a [Target],
        pool: Option<&'a str>,
        _options: ListenOptions,
    ) -> BoxFuture<'a, Result<Listener, TransportError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let subscription = self.broker.subscribe_notifications(targets, pool, &tx);
        Box::pin(std::future::ready(Ok(Listener::new(rx, subscription))))
    }
}
