//! [`NotificationListener`]: oslo's notification listener (and batch listener): consumes
//! `<topic>.<priority>` for each target and each priority its endpoints handle, runs the
//! endpoints, then acknowledges each message or puts it back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt as _;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::endpoint::{EndpointOutcome, NotificationEndpoint, NotificationResult};
use super::notifier::routed;
use crate::envelope::{Priority, RawNotification, decode_notification};
use crate::error::TransportError;
use crate::target::Target;
use crate::transport::{ListenOptions, Listener, Message, Transport};

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// No target was given.
    #[error("a notification listener needs at least one target (a topic such as `notifications`)")]
    NoTargets,
    /// No endpoint was given, or none has a method for any priority.
    #[error("a notification listener needs at least one endpoint with a method for a priority")]
    NoEndpoints,
    /// A batch endpoint on a listener without `batch`, or the other way round.
    #[error(
        "endpoint `{endpoint}` takes {takes}, but the listener {listener}: batch endpoints need \
         `batch(size, timeout)`, the others a listener without it"
    )]
    BatchMismatch {
        /// The endpoint's name.
        endpoint: String,
        /// What it takes.
        takes: &'static str,
        /// What the listener delivers.
        listener: &'static str,
    },
    /// `batch` with a size of 0.
    #[error("a batch size must be at least 1")]
    ZeroBatch,
    /// The transport could not consume.
    #[error("could not consume notifications")]
    Transport(#[source] TransportError),
}

/// Builds a [`NotificationListener`] (oslo's `get_notification_listener` and
/// `get_batch_notification_listener`).
pub struct ListenerBuilder {
    transport: Arc<dyn Transport>,
    targets: Vec<Target>,
    pool: Option<String>,
    endpoints: Vec<Arc<dyn NotificationEndpoint>>,
    max_concurrency: usize,
    batch: Option<(usize, Duration)>,
    allow_requeue: bool,
}

impl fmt::Debug for ListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerBuilder")
            .field("targets", &self.targets)
            .field("pool", &self.pool)
            .field("endpoints", &self.endpoints)
            .field("max_concurrency", &self.max_concurrency)
            .field("batch", &self.batch)
            .field("allow_requeue", &self.allow_requeue)
            .finish_non_exhaustive()
    }
}

impl ListenerBuilder {
    /// Listens on `target`'s topic (`notifications`; its exchange, or the control exchange).
    /// Call it again for several targets.
    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// Joins pool `name`: listeners of one pool share its messages (one queue named `name`);
    /// listeners of different pools, and those of none, each get all of them.
    #[must_use]
    pub fn pool(mut self, name: impl Into<String>) -> Self {
        self.pool = Some(name.into());
        self
    }

    /// Dispatches to `endpoint`; endpoints are tried in the order added.
    #[must_use]
    pub fn endpoint(mut self, endpoint: Arc<dyn NotificationEndpoint>) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// Runs at most `n` notifications (or batches) at once; the broker holds back the rest
    /// (its prefetch follows, unless `rabbit_qos_prefetch_count` is set). Default 64, oslo's
    /// `executor_thread_pool_size`.
    #[must_use]
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Delivers batches of up to `size` notifications, or what came within `timeout` of the
    /// first (oslo's `batch_size` and `batch_timeout`). Endpoints must take batches.
    #[must_use]
    pub fn batch(mut self, size: usize, timeout: Duration) -> Self {
        self.batch = Some((size, timeout));
        self
    }

    /// Whether a method's [`NotificationResult::Requeue`] puts the message back (default `true`;
    /// oslo's `allow_requeue`). Without it the message is acknowledged and the request logged.
    #[must_use]
    pub fn allow_requeue(mut self, allow: bool) -> Self {
        self.allow_requeue = allow;
        self
    }

    /// The routing keys consumed: each target's topic with each priority some endpoint handles.
    fn routed_targets(&self) -> Vec<Target> {
        let mut priorities: Vec<Priority> = self
            .endpoints
            .iter()
            .flat_map(|e| e.priorities().iter().copied())
            .collect();
        priorities.sort_unstable();
        priorities.dedup();
        self.targets
            .iter()
            .flat_map(|t| priorities.iter().map(move |p| routed(t, *p)))
            .collect()
    }

    /// Starts consuming; the listener is consuming when this returns.
    ///
    /// # Errors
    ///
    /// No target or endpoint, endpoints that do not fit the listener's batching, or a transport
    /// that cannot consume.
    pub async fn start(self) -> Result<NotificationListener, ListenerError> {
        if self.targets.is_empty() {
            return Err(ListenerError::NoTargets);
        }
        if self.endpoints.iter().all(|e| e.priorities().is_empty()) {
            return Err(ListenerError::NoEndpoints);
        }
        if let Some((0, _)) = self.batch {
            return Err(ListenerError::ZeroBatch);
        }
        for endpoint in &self.endpoints {
            if endpoint.is_batch() != self.batch.is_some() {
                let (takes, listener) = if endpoint.is_batch() {
                    ("batches", "delivers one notification at a time")
                } else {
                    ("one notification at a time", "delivers batches")
                };
                return Err(ListenerError::BatchMismatch {
                    endpoint: endpoint.name().to_owned(),
                    takes,
                    listener,
                });
            }
        }
        let routed = self.routed_targets();
        let held = self.max_concurrency * self.batch.map_or(1, |(size, _)| size);
        let listener = self
            .transport
            .listen_notifications(&routed, self.pool.as_deref(), ListenOptions::new(held))
            .await
            .map_err(ListenerError::Transport)?;
        let slots = Arc::new(Semaphore::new(self.max_concurrency));
        let (stop, stopped) = watch::channel(false);
        let dispatch = Arc::new(Dispatch {
            endpoints: self.endpoints,
            allow_requeue: self.allow_requeue,
        });
        let topics: Vec<String> = routed.iter().map(|t| t.topic.to_string()).collect();
        tracing::info!(?topics, pool = self.pool.as_deref().unwrap_or(""), max_concurrency = self.max_concurrency, batch = ?self.batch, "notification listener consuming");
        let consumer = tokio::spawn(consume(
            listener,
            dispatch,
            Arc::clone(&slots),
            stopped,
            self.batch,
            self.max_concurrency,
        ));
        Ok(NotificationListener {
            _transport: self.transport,
            topics,
            stop,
            consumer,
            slots,
            max_concurrency: self.max_concurrency,
        })
    }
}

/// A running notification listener. [`stop`](Self::stop) it to wait for what runs; dropping it
/// stops taking notifications too, and what runs still finishes in the background.
pub struct NotificationListener {
    _transport: Arc<dyn Transport>,
    topics: Vec<String>,
    stop: watch::Sender<bool>,
    consumer: JoinHandle<()>,
    slots: Arc<Semaphore>,
    max_concurrency: usize,
}

impl fmt::Debug for NotificationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationListener")
            .field("topics", &self.topics)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl NotificationListener {
    /// A listener on `transport`, to be given targets and endpoints.
    pub fn builder(transport: Arc<dyn Transport>) -> ListenerBuilder {
        ListenerBuilder {
            transport,
            targets: Vec::new(),
            pool: None,
            endpoints: Vec::new(),
            max_concurrency: 64,
            batch: None,
            allow_requeue: true,
        }
    }

    /// The routing keys consumed (`notifications.info`, …).
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// How many notifications (or batches) run now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrency - self.slots.available_permits()
    }

    /// Stops taking notifications, puts back those received but not started, and waits for
    /// those running to finish and be acknowledged.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.consumer.await {
            tracing::error!(%error, "the notification listener's consumer task failed");
        }
        tracing::info!(topics = ?self.topics, "notification listener stopped");
    }
}

/// The endpoints and what to do with their answers.
struct Dispatch {
    endpoints: Vec<Arc<dyn NotificationEndpoint>>,
    allow_requeue: bool,
}

impl Dispatch {
    /// Whether the endpoint takes a notification of this priority that passed its filter.
    fn takes(endpoint: &dyn NotificationEndpoint, n: &RawNotification) -> bool {
        endpoint.priorities().contains(&n.priority)
            && endpoint.filter().is_none_or(|f| f.matches(n))
    }

    /// Runs every endpoint that takes the notification, in order, until one asks to requeue.
    async fn one(&self, n: &RawNotification) -> NotificationResult {
        for endpoint in &self.endpoints {
            if !Self::takes(endpoint.as_ref(), n) {
                continue;
            }
            match endpoint.handle(n).await {
                EndpointOutcome::Ran(NotificationResult::Requeue) => {
                    return NotificationResult::Requeue;
                }
                EndpointOutcome::Undecodable(reason) => undecodable(endpoint.as_ref(), n, &reason),
                _ => {}
            }
        }
        NotificationResult::Handled
    }

    /// Runs every endpoint on the notifications of each priority it takes.
    async fn batch(&self, batch: &[RawNotification]) -> NotificationResult {
        for endpoint in &self.endpoints {
            for priority in Priority::ALL {
                if !endpoint.priorities().contains(&priority) {
                    continue;
                }
                let taken: Vec<RawNotification> = batch
                    .iter()
                    .filter(|n| n.priority == priority && Self::takes(endpoint.as_ref(), n))
                    .cloned()
                    .collect();
                if taken.is_empty() {
                    continue;
                }
                match endpoint.handle_batch(priority, &taken).await {
                    EndpointOutcome::Ran(NotificationResult::Requeue) => {
                        return NotificationResult::Requeue;
                    }
                    EndpointOutcome::Undecodable(reason) => {
                        undecodable(endpoint.as_ref(), &taken[0], &reason);
                    }
                    _ => {}
                }
            }
        }
        NotificationResult::Handled
    }

    /// Acknowledges, or puts back when asked to and allowed; returns once that is written.
    async fn settle(&self, messages: Vec<Message>, result: NotificationResult) {
        let requeue = result == NotificationResult::Requeue;
        if requeue && !self.allow_requeue {
            tracing::warn!(
                "an endpoint asked to requeue notifications, but this listener does not allow \
                 requeue; acknowledged"
            );
        }
        for message in messages {
            if requeue && self.allow_requeue {
                message.requeue().await;
            } else {
                message.acknowledge().await;
            }
        }
    }
}

fn undecodable(endpoint: &dyn NotificationEndpoint, n: &RawNotification, reason: &str) {
    tracing::warn!(
        endpoint = endpoint.name(),
        event_type = %n.event_type,
        priority = %n.priority,
        message_id = %n.message_id,
        %reason,
        "a notification's payload does not fit the method's type: the method did not run; the \
         message still goes to the other endpoints, and is acknowledged"
    );
}

/// Reads a notification, or says why it cannot be read and acknowledges it (it would fail the
/// same way every time).
async fn read(message: Message) -> Option<(Message, RawNotification)> {
    match decode_notification(message.body()) {
        Ok(n) => Some((message, n)),
        Err(error) => {
            tracing::warn!(
                reason = %crate::error::chain(&error),
                bytes = message.body().len(),
                "a notification that cannot be read: acknowledged and dropped"
            );
            message.acknowledge().await;
            None
        }
    }
}

async fn consume(
    mut listener: Listener,
    dispatch: Arc<Dispatch>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
    batch: Option<(usize, Duration)>,
    max_concurrency: usize,
) {
    let settling = Arc::new(Settling::default());
    loop {
        let slot = tokio::select! {
            biased;
            _ = stopped.changed() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let first = tokio::select! {
            biased;
            _ = stopped.changed() => break,
            message = listener.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let mut messages = vec![first];
        if let Some((size, timeout)) = batch {
            let deadline = tokio::time::Instant::now() + timeout;
            while messages.len() < size {
                tokio::select! {
                    biased;
                    _ = stopped.changed() => break,
                    () = tokio::time::sleep_until(deadline) => break,
                    message = listener.recv() => match message {
                        Some(message) => messages.push(message),
                        None => break,
                    },
                }
            }
        }
        let dispatch = Arc::clone(&dispatch);
        let is_batch = batch.is_some();
        let settling = Arc::clone(&settling);
        tokio::spawn(async move {
            run(&dispatch, messages, is_batch, slot, &settling).await;
        });
        if *stopped.borrow() {
            break;
        }
    }
    // What runs finishes and is acknowledged while the channel is still open (closed first,
    // the broker would deliver those again); then what was received but not started goes back
    // to the queue for the next listener.
    let all = u32::try_from(max_concurrency).unwrap_or(u32::MAX);
    if let Ok(permits) = slots.acquire_many(all).await {
        permits.forget();
    }
    settling.wait_idle().await;
    for message in listener.close() {
        message.requeue().await;
    }
}

/// Acknowledgements being written: a stopping listener waits for them before its channel closes.
#[derive(Default)]
struct Settling {
    count: AtomicUsize,
    idle: Notify,
}

impl Settling {
    fn begin(self: &Arc<Self>) -> SettlingGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        SettlingGuard(Arc::clone(self))
    }

    async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

struct SettlingGuard(Arc<Settling>);

impl Drop for SettlingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Decodes and dispatches one notification or a batch, then settles them. The slot is given
/// back once the endpoints ran, before the acknowledgements are written (the next notification
/// need not wait for the write; a stopping listener waits for it). An endpoint that panics is
/// logged, and its messages acknowledged, instead of holding them unacknowledged.
async fn run(
    dispatch: &Arc<Dispatch>,
    messages: Vec<Message>,
    is_batch: bool,
    slot: OwnedSemaphorePermit,
    settling: &Arc<Settling>,
) {
    let mut read_messages = Vec::with_capacity(messages.len());
    let mut notifications = Vec::with_capacity(messages.len());
    for message in messages {
        if let Some((message, n)) = read(message).await {
            read_messages.push(message);
            notifications.push(n);
        }
    }
    let messages = read_messages;
    if notifications.is_empty() {
        return;
    }
    let running = async {
        if is_batch {
            dispatch.batch(&notifications).await
        } else {
            match notifications.first() {
                Some(n) => dispatch.one(n).await,
                None => NotificationResult::Handled,
            }
        }
    };
    let result = AssertUnwindSafe(running)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!("a notification endpoint panicked; its messages are acknowledged");
            NotificationResult::Handled
        });
    let _settling = settling.begin();
    drop(slot);
    dispatch.settle(messages, result).await;
}
