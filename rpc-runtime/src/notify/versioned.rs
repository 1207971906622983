//! nova's versioned notifications (`nova.notifications.objects.base.NotificationBase`): a
//! priority, a publisher object, an event type object and a payload that is a versioned object.
//!
//! On the wire nova sends them as ordinary notifications: `publisher_id` is `<source>:<host>`
//! (`nova-scheduler:host1`), `event_type` is `<object>.<action>[.<phase>]`, and `payload` is the
//! payload object's primitive (`nova_object.name`, `.version`, `.data`, …) — on topic
//! `versioned_notifications` (`[notifications] versioned_notifications_topics`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Notifier, NotifyError};
use crate::context::Context;
use crate::envelope::{Priority, RawNotification};

/// nova's default topic for versioned notifications.
pub const VERSIONED_TOPIC: &str = "versioned_notifications";

/// nova's `NotificationPublisher`: the service (`source`, such as `nova-scheduler`) and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The host.
    pub host: String,
    /// The service binary (`nova-scheduler`, `nova-compute`).
    pub source: String,
}

impl Publisher {
    /// A publisher.
    pub fn new(source: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            source: source.into(),
        }
    }

    /// The `publisher_id` nova sends: `<source>:<host>`.
    pub fn publisher_id(&self) -> String {
        format!("{}:{}", self.source, self.host)
    }

    /// Reads a `publisher_id` of that form.
    pub fn parse(publisher_id: &str) -> Option<Self> {
        let (source, host) = publisher_id.split_once(':')?;
        Some(Self::new(source, host))
    }
}

/// nova's `NotificationPhase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `start`
    Start,
    /// `end`
    End,
    /// `error`
    Error,
    /// `progress`
    Progress,
}

impl Phase {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
            Self::Error => "error",
            Self::Progress => "progress",
        }
    }
}

/// nova's `EventType`: `<object>.<action>[.<phase>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType {
    /// The object (`scheduler`, `instance`, `service`).
    pub object: String,
    /// The action (`select_destinations`, `update`).
    pub action: String,
    /// The phase, for actions that have several.
    pub phase: Option<Phase>,
}

impl EventType {
    /// An event type.
    pub fn new(object: impl Into<String>, action: impl Into<String>, phase: Option<Phase>) -> Self {
        Self {
            object: object.into(),
            action: action.into(),
            phase,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.object, self.action)?;
        match self.phase {
            Some(phase) => write!(f, ".{}", phase.as_str()),
            None => Ok(()),
        }
    }
}

impl FromStr for EventType {
    type Err = VersionedError;

    fn from_str(text: &str) -> Result<Self, VersionedError> {
        let bad = || VersionedError::EventType(text.to_owned());
        let (object, rest) = text.split_once('.').ok_or_else(bad)?;
        let (action, phase) = match rest.rsplit_once('.') {
            Some((action, "start")) => (action, Some(Phase::Start)),
            Some((action, "end")) => (action, Some(Phase::End)),
            Some((action, "error")) => (action, Some(Phase::Error)),
            Some((action, "progress")) => (action, Some(Phase::Progress)),
            _ => (rest, None),
        };
        if object.is_empty() || action.is_empty() {
            return Err(bad());
        }
        Ok(Self::new(object, action, phase))
    }
}

/// Why a notification is not a versioned notification of the expected payload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersionedError {
    /// The publisher id is not `<source>:<host>`.
    #[error("publisher id `{0}` is not `<source>:<host>`")]
    Publisher(String),
    /// The event type is not `<object>.<action>[.<phase>]`.
    #[error("event type `{0}` is not `<object>.<action>[.<phase>]`")]
    EventType(String),
    /// The payload is not the expected object.
    #[error("the payload is not the expected versioned object")]
    Payload(#[source] serde_json::Error),
}

/// A versioned notification, its payload a `#[derive(VersionedObject)]` type.
///
/// ```
/// use rpc_runtime::VersionedObject;
/// use rpc_runtime::notify::Priority;
/// use rpc_runtime::notify::versioned::{EventType, Phase, Publisher, VersionedNotification};
///
/// #[derive(Debug, Clone, PartialEq, VersionedObject)]
/// #[object(name = "ServiceStatusPayload", namespace = "nova", version = "1.0")]
/// struct ServiceStatus { host: String, binary: String }
///
/// let n = VersionedNotification {
///     priority: Priority::Info,
///     publisher: Publisher::new("nova-scheduler", "host1"),
///     event_type: EventType::new("service", "update", None),
///     payload: ServiceStatus { host: "host1".into(), binary: "nova-scheduler".into() },
/// };
/// assert_eq!(n.publisher.publisher_id(), "nova-scheduler:host1");
/// assert_eq!(n.event_type.to_string(), "service.update");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VersionedNotification<P> {
    /// The priority.
    pub priority: Priority,
    /// Who sends it.
    pub publisher: Publisher,
    /// What happened.
    pub event_type: EventType,
    /// The payload object.
    pub payload: P,
}

impl<P: Serialize> VersionedNotification<P> {
    /// Sends it as nova does: as `publisher`, with the payload's primitive.
    ///
    /// # Errors
    ///
    /// As [`Notifier::notify`].
    pub async fn emit(&self, notifier: &Notifier, ctx: &Context) -> Result<(), NotifyError> {
        notifier
            .prepare(self.publisher.publisher_id())
            .notify(
                ctx,
                self.priority,
                &self.event_type.to_string(),
                &self.payload,
            )
            .await
    }
}

impl<P: DeserializeOwned> VersionedNotification<P> {
    /// Reads a received notification as a versioned one.
    ///
    /// # Errors
    ///
    /// When its publisher, event type or payload are not of that shape.
    pub fn decode(raw: &RawNotification) -> Result<Self, VersionedError> {
        Ok(Self {
            priority: raw.priority,
            publisher: Publisher::parse(&raw.publisher_id)
                .ok_or_else(|| VersionedError::Publisher(raw.publisher_id.clone()))?,
            event_type: raw.event_type.parse()?,
            payload: serde_json::from_str(raw.payload.as_str()).map_err(VersionedError::Payload)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_read_and_write_as_nova_writes_them() {
        for text in [
            "scheduler.select_destinations.start",
            "scheduler.select_destinations.end",
            "service.update",
            "instance.power_on.error",
        ] {
            assert_eq!(text.parse::<EventType>().unwrap().to_string(), text);
        }
        let t: EventType = "scheduler.select_destinations.end".parse().unwrap();
        assert_eq!(t.action, "select_destinations");
        assert_eq!(t.phase, Some(Phase::End));
        assert!("service".parse::<EventType>().is_err());
        assert!(".x".parse::<EventType>().is_err());
    }

    #[test]
    fn publishers_are_source_colon_host() {
        let p = Publisher::parse("nova-compute:node-1").unwrap();
        assert_eq!(p, Publisher::new("nova-compute", "node-1"));
        assert_eq!(p.publisher_id(), "nova-compute:node-1");
        assert!(Publisher::parse("compute.node-1").is_none());
    }
}
