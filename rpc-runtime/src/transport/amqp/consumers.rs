//! Consuming: the reply queue and each server's queues, declared and consumed on a channel of
//! their own and fed to waiting calls and to servers; declared and consumed again on the live
//! connection when the broker cancels a consumer (its queue deleted, a node drained).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;

use futures_core::Stream;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicQosOptions, QueueDeleteOptions};
use lapin::{Channel, Consumer, ExchangeKind};
use tokio::sync::mpsc;

use super::acks::{ChannelAcks, Settlement};
use super::broker::{bind, broker, consume, create_channel, declare_exchange, declare_queue};
use super::connection::Session;
use super::replies::AmqpReplySink;
use super::{Inner, RESTORE_TIMEOUT, lock, topology};
use crate::error::TransportError;
use crate::target::Target;
use crate::transport::{Ack, BoxFuture, Delivery, ReplySink};

/// What a listener consumes, kept so it can be consumed again after a reconnect.
pub(super) struct ListenerSpec {
    pub(super) consumes: Consumes,
    /// The server's concurrency limit, which the default prefetch follows.
    pub(super) max_concurrency: usize,
    pub(super) tx: mpsc::UnboundedSender<Delivery>,
    /// Consumers of the current session: their channel, its acknowledgements, consumer tags.
    pub(super) consuming: Mutex<Option<Consuming>>,
    /// Set when the listener is dropped, so the end of its consumers is expected.
    pub(super) stopping: AtomicBool,
    /// Set when the server drains: the shared topic queue is no longer consumed (its consumer
    /// cancelled, and not restored on a reconnect); the server's own queue and fanout still are.
    pub(super) draining: AtomicBool,
}

/// A listener's consumers on one session.
pub(super) struct Consuming {
    channel: Channel,
    acks: Arc<ChannelAcks>,
    tags: Vec<(ListenerQueue, String)>,
}

/// What a listener is for.
pub(super) enum Consumes {
    /// An RPC server: its topic queue, its `topic.server` queue and its own fanout queue.
    Server {
        target: Target,
        fanout_queue: String,
    },
    /// A notification listener: its queues (named after the pool or the routing key), each with
    /// the (exchange, routing key) pairs it is bound to.
    Notifications {
        queues: Vec<(String, Vec<(String, String)>)>,
    },
}

impl Consumes {
    /// A notification listener's queues: `pool`, or one per target named after its topic
    /// (`<topic>.<priority>`), each bound to its targets' routing keys on their exchanges.
    pub(super) fn notifications(
        targets: &[Target],
        pool: Option<&str>,
        options: &super::AmqpOptions,
    ) -> Self {
        let mut queues: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for target in targets {
            let name = pool.unwrap_or(&target.topic);
            let binding = (
                topology::exchange(target, options).to_owned(),
                target.topic.to_string(),
            );
            match queues.iter_mut().find(|(queue, _)| queue == name) {
                Some((_, bindings)) if bindings.contains(&binding) => {}
                Some((_, bindings)) => bindings.push(binding),
                None => queues.push((name.to_owned(), vec![binding])),
            }
        }
        Self::Notifications { queues }
    }
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
    /// A notification queue, by its index among the listener's.
    Notification(usize),
}

impl ListenerSpec {
    /// Stops consuming the shared topic queue (an RPC server draining): what it delivered
    /// before the cancel is still handed to the server; its own queue and fanout stay.
    pub(super) async fn drain(&self) -> Result<(), TransportError> {
        if self.draining.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let topic = lock(&self.consuming).as_mut().and_then(|consuming| {
            let index = consuming
                .tags
                .iter()
                .position(|(queue, _)| *queue == ListenerQueue::Topic)?;
            let (_, tag) = consuming.tags.remove(index);
            Some((consuming.channel.clone(), tag))
        });
        if let Some((channel, tag)) = topic {
            channel
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await
                .map_err(|e| broker("basic_cancel", &e))?;
        }
        Ok(())
    }

    /// The queues this listener consumes: the server queue only when it has a server name.
    fn queues(&self) -> Vec<ListenerQueue> {
        match &self.consumes {
            Consumes::Server { target, .. } => {
                let mut queues = Vec::with_capacity(3);
                if !self.draining.load(Ordering::SeqCst) {
                    queues.push(ListenerQueue::Topic);
                }
                if target.server.is_some() {
                    queues.push(ListenerQueue::Server);
                }
                queues.push(ListenerQueue::Fanout);
                queues
            }
            Consumes::Notifications { queues } => {
                (0..queues.len()).map(ListenerQueue::Notification).collect()
            }
        }
    }

    fn queue_name(&self, queue: ListenerQueue) -> Cow<'_, str> {
        match (&self.consumes, queue) {
            (Consumes::Server { target, .. }, ListenerQueue::Topic) => Cow::Borrowed(&target.topic),
            (Consumes::Server { target, .. }, ListenerQueue::Server) => target.routing_key(),
            (Consumes::Server { fanout_queue, .. }, ListenerQueue::Fanout) => {
                Cow::Borrowed(fanout_queue)
            }
            (Consumes::Notifications { queues }, ListenerQueue::Notification(index)) => {
                Cow::Borrowed(queues.get(index).map_or("", |(name, _)| name.as_str()))
            }
            // Each kind of listener only names its own queues.
            _ => Cow::Borrowed(""),
        }
    }

    /// The fanout queue to delete when the listener stops (RPC servers only).
    pub(super) fn fanout_queue(&self) -> Option<&str> {
        match &self.consumes {
            Consumes::Server { fanout_queue, .. } => Some(fanout_queue),
            Consumes::Notifications { .. } => None,
        }
    }
}

impl Inner {
    /// Declares the reply queue and consumes it.
    pub(super) async fn consume_replies(
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
                if let Some(metrics) = crate::metrics::get() {
                    metrics.transport_event(
                        super::METRICS_NAME,
                        crate::metrics::TransportEvent::ConsumerCancelled,
                    );
                }
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
    pub(super) async fn consume_listener(
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
        let acks = Arc::new(ChannelAcks::default());
        let mut tags = Vec::new();
        for &queue in &queues {
            tags.push((
                queue,
                self.consume_listener_queue(session, &channel, &acks, listener, queue)
                    .await?,
            ));
        }
        *lock(&listener.consuming) = Some(Consuming {
            channel,
            acks,
            tags,
        });
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
        let name = listener.queue_name(queue);
        let target = match &listener.consumes {
            Consumes::Server { target, .. } => target,
            Consumes::Notifications { queues } => {
                let ListenerQueue::Notification(index) = queue else {
                    return Ok(());
                };
                let bindings = queues.get(index).map_or(&[][..], |(_, b)| b.as_slice());
                return self
                    .declare_notification_queue(channel, &name, bindings)
                    .await;
            }
        };
        match queue {
            ListenerQueue::Notification(_) => Ok(()),
            ListenerQueue::Topic | ListenerQueue::Server => {
                let exchange = topology::exchange(target, options);
                self.declare_topic_exchange(channel, exchange).await?;
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

    /// Declares a notification queue as oslo does (durable with `amqp_durable_queues`, quorum with
    /// `rabbit_quorum_queue`), its topic exchanges and its bindings. The notifier declares the
    /// same queue for a routing key, so either side may come first.
    pub(super) async fn declare_notification_queue(
        &self,
        channel: &Channel,
        name: &str,
        bindings: &[(String, String)],
    ) -> Result<(), TransportError> {
        let options = &self.options;
        declare_queue(
            channel,
            name,
            options.durable(),
            topology::topic_queue_arguments(options),
        )
        .await?;
        for (exchange, routing_key) in bindings {
            self.declare_topic_exchange(channel, exchange).await?;
            bind(channel, name, exchange, routing_key).await?;
        }
        Ok(())
    }

    /// Declares a topic exchange as oslo does (durable with `amqp_durable_queues`).
    async fn declare_topic_exchange(
        &self,
        channel: &Channel,
        exchange: &str,
    ) -> Result<(), TransportError> {
        let durable = self.options.durable();
        declare_exchange(channel, exchange, ExchangeKind::Topic, durable, false).await
    }

    /// Consumes one of a listener's queues on `channel`, feeding its deliveries to the server;
    /// returns the consumer tag.
    async fn consume_listener_queue(
        self: &Arc<Self>,
        session: &Arc<Session>,
        channel: &Channel,
        acks: &Arc<ChannelAcks>,
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
        let acks = Arc::clone(acks);
        let old_tag = tag.clone();
        tokio::spawn(async move {
            let ended = drain(consumer, |delivery| {
                let settlement = Settlement::new(&acks, delivery.delivery_tag, delivery.acker);
                let _ = tx.send(Delivery {
                    body: delivery.data,
                    sink: Arc::clone(&sink),
                    ack: Some(Ack::Amqp(settlement)),
                });
            })
            .await;
            // Its end is expected when the listener stops, or drains its shared queue.
            let expected = |s: &ListenerSpec| {
                s.stopping.load(Ordering::SeqCst)
                    || (queue == ListenerQueue::Topic && s.draining.load(Ordering::SeqCst))
            };
            let Some(spec) = spec.upgrade().filter(|s| !expected(s)) else {
                return;
            };
            if let Some(session) = inner.resumable(generation, ended, &channel, "server queue") {
                inner
                    .resume_listener_queue(session, &channel, &acks, &spec, queue, &old_tag)
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
        acks: &'a Arc<ChannelAcks>,
        listener: &'a Arc<ListenerSpec>,
        queue: ListenerQueue,
        old_tag: &'a str,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let resumed = tokio::time::timeout(RESTORE_TIMEOUT, async {
                self.declare_listener_queue(channel, listener, queue)
                    .await?;
                self.consume_listener_queue(&session, channel, acks, listener, queue)
                    .await
            })
            .await;
            match resumed {
                Ok(Ok(tag)) => {
                    if let Some(consuming) = lock(&listener.consuming).as_mut() {
                        consuming.tags.retain(|(_, t)| t != old_tag);
                        consuming.tags.push((queue, tag));
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

    /// Declares and consumes the reply queue once per session, on the first call.
    pub(super) async fn ensure_reply_queue(
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

/// Acknowledges one reply delivery in a task of its own.
fn acknowledge(acker: lapin::Acker) {
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

/// Stops a listener's consumers and deletes its fanout queue (as oslo does on shutdown).
pub(super) struct Unsubscribe {
    pub(super) spec: Arc<ListenerSpec>,
    pub(super) inner: Weak<Inner>,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        self.spec.stopping.store(true, Ordering::SeqCst);
        let Some(Consuming {
            channel,
            acks,
            tags,
        }) = lock(&self.spec.consuming).take()
        else {
            return;
        };
        let fanout_queue = self.spec.fanout_queue().map(str::to_owned);
        let inner = self.inner.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for (_, tag) in tags {
                    let _ = channel
                        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                        .await;
                }
                // What was settled is written before the channel closes (closed first, the
                // broker would deliver it again).
                acks.idle().await;
                if let Some(fanout_queue) = fanout_queue {
                    let _ = channel
                        .queue_delete(fanout_queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let _ = channel.close(200, "listener stopped".into()).await;
                drop(inner);
            });
        }
    }
}
