//! [`Notifier`]: oslo's `Notifier`, sending through each configured driver.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::settings::{Driver, NotificationSettings};
use crate::context::Context;
use crate::envelope::{self, NotificationFormat, OutgoingNotification, Priority};
use crate::error::TransportError;
use crate::target::Target;
use crate::transport::{Retry, Transport};

/// Why a notification was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The payload does not serialize to JSON.
    #[error("the payload of `{event_type}` does not serialize to JSON")]
    Payload {
        /// The event type.
        event_type: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The transport could not publish it (after the retries `retry` allows).
    #[error("could not publish `{event_type}` to `{topic}`")]
    Transport {
        /// The event type.
        event_type: String,
        /// The routing key (`<topic>.<priority>`).
        topic: String,
        /// Why.
        #[source]
        source: TransportError,
    },
}

/// A notification the `test` driver kept.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SentNotification {
    /// The publisher.
    pub publisher_id: String,
    /// The event type.
    pub event_type: String,
    /// The priority.
    pub priority: Priority,
    /// The payload.
    pub payload: serde_json::Value,
    /// The context it was sent with.
    pub context: Context,
}

/// Sends notifications, as oslo's `Notifier`: to `<topic>.<priority>` on the control exchange
/// for each topic, through each driver. Cheap to clone; [`prepare`](Self::prepare) makes one for
/// another publisher.
///
/// A send waits for the broker to take the message (its confirm, with `confirm_publish`), and is
/// made again on the next connection when the connection broke under it, as `retry` allows. It
/// never waits for a listener. A failure is returned *and* logged, so code that ignores the
/// result (notifications are a side effect) still leaves a trace.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use rpc_runtime::{Context, MemoryBroker};
/// use rpc_runtime::notify::Notifier;
///
/// let notifier = Notifier::new(Arc::new(MemoryBroker::new().transport()), "scheduler.host1");
/// notifier
///     .info(&Context::new(), "scheduler.select_destinations.end", &serde_json::json!({"n": 1}))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Notifier {
    transport: Arc<dyn Transport>,
    publisher_id: Arc<str>,
    drivers: Arc<[Driver]>,
    topics: Arc<[Target]>,
    retry: Retry,
    sent: Arc<Mutex<Vec<SentNotification>>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("publisher_id", &self.publisher_id)
            .field("drivers", &self.drivers)
            .field("topics", &self.topic_names())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier with oslo's usual choice: the `messagingv2` driver, topic `notifications`,
    /// retrying forever.
    pub fn new(transport: Arc<dyn Transport>, publisher_id: impl Into<String>) -> Self {
        Self {
            transport,
            publisher_id: publisher_id.into().into(),
            drivers: Arc::new([Driver::MessagingV2]),
            topics: Arc::new([Target::new("notifications")]),
            retry: Retry::Forever,
            sent: Arc::default(),
        }
    }

    /// A notifier as `[oslo_messaging_notifications]` configures it; `transport` is the one
    /// its `transport_url` names (see [`connect`](Self::connect)) or the RPC transport.
    pub fn from_settings(
        transport: Arc<dyn Transport>,
        publisher_id: impl Into<String>,
        settings: &NotificationSettings,
    ) -> Self {
        Self::new(transport, publisher_id)
            .with_drivers(settings.drivers.iter().copied())
            .with_topics(settings.topics.iter().map(String::as_str))
            .with_retry(settings.retry)
    }

    /// [`from_settings`](Self::from_settings), connecting to the section's own `transport_url`
    /// when it sets one, else sending over `rpc_transport`.
    ///
    /// # Errors
    ///
    /// When the notification transport cannot be reached.
    pub async fn connect(
        rpc_transport: Arc<dyn Transport>,
        publisher_id: impl Into<String>,
        settings: &NotificationSettings,
    ) -> Result<Self, TransportError> {
        let transport = match &settings.transport_url {
            Some(url) => crate::transport::connect_url(url).await?,
            None => rpc_transport,
        };
        Ok(Self::from_settings(transport, publisher_id, settings))
    }

    /// The same notifier for another publisher (oslo's `prepare(publisher_id=…)`).
    #[must_use]
    pub fn prepare(&self, publisher_id: impl Into<String>) -> Self {
        Self {
            publisher_id: publisher_id.into().into(),
            ..self.clone()
        }
    }

    /// Sends through these drivers (none: notifications are off).
    #[must_use]
    pub fn with_drivers(mut self, drivers: impl IntoIterator<Item = Driver>) -> Self {
        let mut unique: Vec<Driver> = Vec::new();
        for driver in drivers {
            if !unique.contains(&driver) {
                unique.push(driver);
            }
        }
        self.drivers = unique.into();
        self
    }

    /// Sends to these topics.
    #[must_use]
    pub fn with_topics<'a>(mut self, topics: impl IntoIterator<Item = &'a str>) -> Self {
        self.topics = topics.into_iter().map(Target::new).collect();
        self
    }

    /// Sends to these targets (a topic on an exchange other than the control exchange).
    #[must_use]
    pub fn with_targets(mut self, targets: impl IntoIterator<Item = Target>) -> Self {
        self.topics = targets.into_iter().collect();
        self
    }

    /// How often a send that broke with its connection is made again.
    #[must_use]
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The publisher id.
    pub fn publisher_id(&self) -> &str {
        &self.publisher_id
    }

    /// Whether any driver sends anything (oslo's `is_enabled()`).
    pub fn is_enabled(&self) -> bool {
        self.drivers.iter().any(|d| *d != Driver::Noop)
    }

    /// The topics sent to.
    pub fn topic_names(&self) -> Vec<&str> {
        self.topics.iter().map(|t| &*t.topic).collect()
    }

    /// What the `test` driver kept, oldest first.
    pub fn sent(&self) -> Vec<SentNotification> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends at `audit` priority.
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    pub async fn audit<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        self.notify(ctx, Priority::Audit, event_type, payload).await
    }

    /// Sends at `debug` priority.
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    pub async fn debug<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        self.notify(ctx, Priority::Debug, event_type, payload).await
    }

    /// Sends at `info` priority.
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    pub async fn info<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        self.notify(ctx, Priority::Info, event_type, payload).await
    }

    /// Sends at `warn` priority.
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    pub async fn warn<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        self.notify(ctx, Priority::Warn, event_type, payload).await
    }

    /// Sends at `error` priority.
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    pub async fn error<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        self.notify(ctx, Priority::Error, event_type, payload).await
    }

    /// Sends at `critical` priority.
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    pub async fn critical<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        self.notify(ctx, Priority::Critical, event_type, payload)
            .await
    }

    /// Sends at `sample` priority (metering samples).
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify).
    pub async fn sample<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        self.notify(ctx, Priority::Sample, event_type, payload)
            .await
    }

    /// Sends one notification through every driver, to every topic.
    ///
    /// # Errors
    ///
    /// The payload does not serialize, or a broker driver could not publish to a topic (the
    /// others are still tried; the first failure is returned, every one is logged).
    pub async fn notify<P: Serialize + ?Sized>(
        &self,
        ctx: &Context,
        priority: Priority,
        event_type: &str,
        payload: &P,
    ) -> Result<(), NotifyError> {
        if self.drivers.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_string(payload).map_err(|source| NotifyError::Payload {
            event_type: event_type.to_owned(),
            source,
        })?;
        let outgoing = OutgoingNotification {
            publisher_id: &self.publisher_id,
            event_type,
            priority,
            payload: &payload,
            context: ctx,
        };
        let mut first_failure = None;
        for driver in self.drivers.iter() {
            let format = match driver {
                Driver::MessagingV2 => NotificationFormat::Enveloped,
                Driver::Messaging => NotificationFormat::Bare,
                Driver::Log => {
                    log(&outgoing);
                    continue;
                }
                Driver::Noop => continue,
                Driver::Test => {
                    self.keep(&outgoing);
                    continue;
                }
            };
            let body = envelope::encode_notification(&outgoing, format);
            for topic in self.topics.iter() {
                let routed = routed(topic, priority);
                if let Err(source) = self.transport.notify(&routed, &body, self.retry).await {
                    tracing::error!(
                        event_type,
                        topic = %routed.topic,
                        error = %crate::error::chain(&source),
                        "could not send a notification"
                    );
                    first_failure.get_or_insert(NotifyError::Transport {
                        event_type: event_type.to_owned(),
                        topic: routed.topic.to_string(),
                        source,
                    });
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    fn keep(&self, n: &OutgoingNotification<'_>) {
        let kept = SentNotification {
            publisher_id: n.publisher_id.to_owned(),
            event_type: n.event_type.to_owned(),
            priority: n.priority,
            payload: serde_json::from_str(n.payload).unwrap_or(serde_json::Value::Null),
            context: n.context.clone(),
        };
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(kept);
    }
}

/// `topic` with `.<priority>` added: where a notification of that priority goes.
pub(crate) fn routed(topic: &Target, priority: Priority) -> Target {
    let mut routed = Target::new(format!("{}.{priority}", topic.topic));
    if let Some(exchange) = &topic.exchange {
        routed = routed.with_exchange(Arc::clone(exchange));
    }
    routed
}

/// The `log` driver: one line per notification, at the level its priority maps to.
fn log(n: &OutgoingNotification<'_>) {
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                target: "rpc_runtime::notification",
                $level,
                event_type = n.event_type,
                publisher_id = n.publisher_id,
                priority = %n.priority,
                payload = n.payload,
                request_id = %n.context.request_id,
                "notification"
            )
        };
    }
    match n.priority {
        Priority::Debug => line!(tracing::Level::DEBUG),
        Priority::Audit | Priority::Info | Priority::Sample => line!(tracing::Level::INFO),
        Priority::Warn => line!(tracing::Level::WARN),
        Priority::Error | Priority::Critical => line!(tracing::Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::MemoryBroker;

    #[tokio::test]
    async fn the_test_driver_keeps_what_was_sent_and_noop_sends_nothing() {
        let transport: Arc<dyn Transport> = Arc::new(MemoryBroker::new().transport());
        let notifier = Notifier::new(Arc::clone(&transport), "svc.h1").with_drivers([
            Driver::Test,
            Driver::Noop,
            Driver::Log,
        ]);
        assert!(notifier.is_enabled());
        let ctx = Context::new().with_user("u1");
        notifier
            .warn(&ctx, "thing.happened", &serde_json::json!({"n": 1}))
            .await
            .unwrap();
        let sent = notifier.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].priority, Priority::Warn);
        assert_eq!(sent[0].payload["n"], 1);
        assert_eq!(sent[0].context.user_id.as_deref(), Some("u1"));
        let off = Notifier::new(transport, "svc").with_drivers([Driver::Noop]);
        assert!(!off.is_enabled());
    }

    #[tokio::test]
    async fn a_payload_that_does_not_serialize_is_an_error() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let notifier = Notifier::new(Arc::new(MemoryBroker::new().transport()), "svc");
        let error = notifier
            .info(&Context::new(), "e", &Fails)
            .await
            .unwrap_err();
        assert!(matches!(error, NotifyError::Payload { .. }), "{error}");
    }

    #[test]
    fn routing_keys_are_topic_dot_priority() {
        let routed = routed(
            &Target::new("notifications").with_exchange("nova"),
            Priority::Error,
        );
        assert_eq!(&*routed.topic, "notifications.error");
        assert_eq!(routed.exchange.as_deref(), Some("nova"));
    }
}
