//! What a notification listener dispatches to: [`NotificationEndpoint`], which
//! `#[notification_endpoint]` implements, and the typed notification its methods receive.

use std::fmt;

use serde::de::DeserializeOwned;

use super::NotificationFilter;
use crate::context::Context;
use crate::envelope::{Priority, RawNotification};
use crate::transport::BoxFuture;

/// A notification as a listener method receives it, its payload decoded into `P`
/// (`serde_json::Value` for any payload).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Notification<P> {
    /// The sender's context.
    pub context: Context,
    /// Who sent it (`compute.host1`); empty when the message names nobody.
    pub publisher_id: String,
    /// What happened (`compute.instance.create.end`).
    pub event_type: String,
    /// Its priority.
    pub priority: Priority,
    /// The payload.
    pub payload: P,
    /// oslo's metadata: the sender's id for the message.
    pub message_id: String,
    /// oslo's metadata: when it was sent, as the sender wrote it.
    pub timestamp: String,
}

impl<P: DeserializeOwned> Notification<P> {
    /// Decodes the payload of a received notification.
    ///
    /// # Errors
    ///
    /// When the payload is not a `P`.
    pub fn decode(raw: &RawNotification) -> Result<Self, serde_json::Error> {
        Ok(Self {
            payload: serde_json::from_str(raw.payload.as_str())?,
            context: raw.context.clone(),
            publisher_id: raw.publisher_id.clone(),
            event_type: raw.event_type.clone(),
            priority: raw.priority,
            message_id: raw.message_id.clone(),
            timestamp: raw.timestamp.clone(),
        })
    }
}

/// What a listener method returns: oslo's `NotificationResult`. A method may also return `()`,
/// which is `Handled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotificationResult {
    /// Done with: the message is acknowledged.
    #[default]
    Handled,
    /// Put the message back on its queue, to be delivered again (to this listener or another of
    /// its pool).
    Requeue,
}

impl From<()> for NotificationResult {
    fn from((): ()) -> Self {
        Self::Handled
    }
}

/// What became of a notification at one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointOutcome {
    /// The endpoint does not take it (no method for its priority, or its filter said no).
    Skipped,
    /// A method ran and returned this.
    Ran(NotificationResult),
    /// The payload does not decode into the method's type: the method did not run. The listener
    /// logs the reason; other endpoints still get the message.
    Undecodable(String),
}

/// An endpoint of a notification listener: methods by priority, a filter, one message at a time
/// or in batches. `#[notification_endpoint]` implements it; implement it by hand for a listener
/// decided at run time.
pub trait NotificationEndpoint: Send + Sync + 'static {
    /// The endpoint's name in logs.
    fn name(&self) -> &str;

    /// The priorities it has methods for: the listener consumes only those.
    fn priorities(&self) -> &[Priority];

    /// Which notifications it takes; `None` takes all.
    fn filter(&self) -> Option<&NotificationFilter> {
        None
    }

    /// Whether its methods take batches ([`handle_batch`](Self::handle_batch)) rather than one
    /// notification at a time ([`handle`](Self::handle)).
    fn is_batch(&self) -> bool {
        false
    }

    /// Runs the method for one notification's priority.
    fn handle<'a>(&'a self, notification: &'a RawNotification) -> BoxFuture<'a, EndpointOutcome>;

    /// Runs the method for a batch of notifications of one priority (all passed the filter).
    fn handle_batch<'a>(
        &'a self,
        priority: Priority,
        notifications: &'a [RawNotification],
    ) -> BoxFuture<'a, EndpointOutcome> {
        let _ = (priority, notifications);
        Box::pin(std::future::ready(EndpointOutcome::Skipped))
    }
}

impl fmt::Debug for dyn NotificationEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationEndpoint")
            .field("name", &self.name())
            .field("priorities", &self.priorities())
            .finish_non_exhaustive()
    }
}

/// What a listener method takes: one notification (`Notification<P>`, or the undecoded
/// [`RawNotification`]) or, in a batch endpoint, a `Vec` of them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not what a notification method takes",
    label = "take `Notification<P>` (P: Deserialize), `RawNotification`, or a `Vec` of either for a batch",
    note = "for example `async fn info(&self, n: Notification<serde_json::Value>)`"
)]
pub trait FromNotifications: Sized {
    /// Whether this takes a batch.
    const BATCH: bool;

    /// Builds it from one notification, or all of a batch.
    ///
    /// # Errors
    ///
    /// The reason a payload does not decode.
    fn from_notifications(notifications: &[RawNotification]) -> Result<Self, String>;
}

impl<P: DeserializeOwned> FromNotifications for Notification<P> {
    const BATCH: bool = false;

    fn from_notifications(notifications: &[RawNotification]) -> Result<Self, String> {
        let raw = notifications
            .first()
            .ok_or_else(|| "no notification".to_owned())?;
        Self::decode(raw).map_err(|e| format!("payload of `{}`: {e}", raw.event_type))
    }
}

impl FromNotifications for RawNotification {
    const BATCH: bool = false;

    fn from_notifications(notifications: &[RawNotification]) -> Result<Self, String> {
        notifications
            .first()
            .cloned()
            .ok_or_else(|| "no notification".to_owned())
    }
}

impl<T: FromNotifications> FromNotifications for Vec<T> {
    const BATCH: bool = true;

    /// Each notification that decodes; one that does not is logged and left out (it is
    /// acknowledged with the batch), so one bad payload does not cost the others.
    fn from_notifications(notifications: &[RawNotification]) -> Result<Self, String> {
        let mut batch = Vec::with_capacity(notifications.len());
        for n in notifications {
            match T::from_notifications(std::slice::from_ref(n)) {
                Ok(item) => batch.push(item),
                Err(reason) => tracing::warn!(
                    %reason,
                    message_id = %n.message_id,
                    "a notification does not decode into the batch method's type; left out of \
                     the batch and acknowledged"
                ),
            }
        }
        if batch.is_empty() && !notifications.is_empty() {
            return Err("no notification of the batch decodes into the method's type".to_owned());
        }
        Ok(batch)
    }
}
