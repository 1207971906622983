//! The wire shape of oslo.messaging's notifications: `message_id`, `publisher_id`, `event_type`,
//! `priority` (upper-cased), `payload`, `timestamp` (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC),
//! `_unique_id` and the sender's context as `_context_*` (its `auth_token` blanked, as oslo's
//! `redacted_copy()` does) — in the 2.0 envelope (the `messagingv2` driver) or bare (`messaging`).
//!
//! The captures in `tests/fixtures/oslo-notifications/` are what oslo.messaging sends; the tests
//! below read every one of them.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{
    CONTEXT_PREFIX, InnerWriter, JsonText, Key, Scalar, open_envelope, write_bare, write_envelope,
};
use crate::context::Context;
use crate::error::EnvelopeError;

/// The context key oslo blanks in notifications (`RequestContext.redacted_copy()`).
const REDACTED_CONTEXT_KEYS: &[&str] = &["auth_token"];

/// A notification's priority, oslo's `PRIORITIES`. On the wire it is upper-cased (`INFO`); its
/// routing key and listener method are lower-case (`notifications.info`, `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// `audit`
    Audit,
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warn` (oslo's notifier also takes `warning` for it)
    Warn,
    /// `error`
    Error,
    /// `critical`
    Critical,
    /// `sample`
    Sample,
}

impl Priority {
    /// Every priority, in oslo's order.
    pub const ALL: [Self; 7] = [
        Self::Audit,
        Self::Debug,
        Self::Info,
        Self::Warn,
        Self::Error,
        Self::Critical,
        Self::Sample,
    ];

    /// The lower-case name: the routing key's suffix and the listener method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audit => "audit",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Critical => "critical",
            Self::Sample => "sample",
        }
    }

    /// The name as oslo writes it in the message: upper-cased.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Audit => "AUDIT",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
            Self::Critical => "CRITICAL",
            Self::Sample => "SAMPLE",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A priority name that is none of oslo's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown notification priority `{0}`; expected one of audit, debug, info, warn, error, critical, sample"
)]
pub struct UnknownPriority(pub String);

impl FromStr for Priority {
    type Err = UnknownPriority;

    /// Any case; `warning` is `warn`, as oslo's notifier has it.
    fn from_str(name: &str) -> Result<Self, UnknownPriority> {
        let lower = name.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == lower)
            .or_else(|| (lower == "warning").then_some(Self::Warn))
            .ok_or_else(|| UnknownPriority(name.to_owned()))
    }
}

impl Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.wire_name())
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(de::Error::custom)
    }
}

/// Which of oslo's two message formats a notification is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationFormat {
    /// The `messagingv2` driver: inside the 2.0 envelope.
    Enveloped,
    /// The `messaging` driver: the bare message (oslo's 1.0 format).
    Bare,
}

/// A notification to send: everything but the ids and the time, which encoding adds.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingNotification<'a> {
    /// Who sends it (`compute.host1`, `nova-scheduler:host1`).
    pub publisher_id: &'a str,
    /// What happened (`scheduler.select_destinations.end`).
    pub event_type: &'a str,
    /// How much it matters.
    pub priority: Priority,
    /// The payload, JSON text.
    pub payload: &'a str,
    /// The sender's context.
    pub context: &'a Context,
}

/// A notification as received, its payload still JSON text.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RawNotification {
    /// The sender's id for it (a dashed UUID from oslo).
    pub message_id: String,
    /// Who sent it; empty when the message names nobody.
    pub publisher_id: String,
    /// What happened.
    pub event_type: String,
    /// How much it matters.
    pub priority: Priority,
    /// The payload as sent.
    pub payload: JsonText,
    /// When it was sent, as the sender wrote it (oslo: `YYYY-MM-DD HH:MM:SS.ffffff`, UTC).
    pub timestamp: String,
    /// The sender's context.
    pub context: Context,
    /// The transport-level id oslo adds for duplicate detection.
    pub unique_id: Option<String>,
}

/// The time as oslo writes it: `str(datetime.utcnow())`, the fraction left out when it is zero.
pub fn oslo_timestamp(time: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write as _;
    // A leap second is a nanosecond count past one second (chrono's `%S` shows it as 60).
    let nanos = time.nanosecond();
    let second = time.second() + nanos / 1_000_000_000;
    let micros = nanos % 1_000_000_000 / 1_000;
    // Formatted by hand: chrono's `format` parses its pattern on every call, a fifth of
    // encoding a notification.
    let mut out = String::with_capacity(26);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{second:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute()
    );
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
    out
}

/// Encodes a notification with fresh ids and the current time.
pub fn encode_notification(
    notification: &OutgoingNotification<'_>,
    format: NotificationFormat,
) -> Vec<u8> {
    let message_id = uuid::Uuid::new_v4().hyphenated().to_string();
    let unique_id = super::new_message_id();
    let timestamp = oslo_timestamp(chrono::Utc::now());
    encode_notification_with(notification, format, &message_id, &unique_id, &timestamp)
}

/// Encodes a notification with the ids and time given (tests compare it with oslo's bytes).
pub fn encode_notification_with(
    notification: &OutgoingNotification<'_>,
    format: NotificationFormat,
    message_id: &str,
    unique_id: &str,
    timestamp: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(640 + notification.payload.len() * 5 / 4);
    let message =
        |w: &mut InnerWriter<'_>| write_message(w, notification, message_id, unique_id, timestamp);
    match format {
        NotificationFormat::Bare => write_bare(&mut out, message),
        NotificationFormat::Enveloped => write_envelope(&mut out, message),
    }
    out
}

fn write_message(
    w: &mut InnerWriter<'_>,
    n: &OutgoingNotification<'_>,
    message_id: &str,
    unique_id: &str,
    timestamp: &str,
) -> Result<(), serde_json::Error> {
    w.open("message_id");
    w.string(message_id)?;
    w.key("publisher_id");
    w.string(n.publisher_id)?;
    w.key("event_type");
    w.string(n.event_type)?;
    w.key("priority");
    w.string(n.priority.wire_name())?;
    w.key("payload");
    w.raw_json(n.payload);
    w.key("timestamp");
    w.string(timestamp)?;
    w.key("_unique_id");
    w.string(unique_id)?;
    n.context.for_each_entry(|key, value| {
        w.context_key(key)?;
        if REDACTED_CONTEXT_KEYS.contains(&key) {
            w.literal("null");
            Ok(())
        } else {
            w.context_value(&value)
        }
    })?;
    w.close();
    Ok(())
}

/// Decodes a notification: the 2.0 envelope or oslo's bare 1.0 message.
///
/// # Errors
///
/// Not JSON, no `event_type`, `priority` or `payload`, or one of them of the wrong type.
pub fn decode_notification(body: &[u8]) -> Result<RawNotification, EnvelopeError> {
    let inner = open_envelope(body)?;
    let wire: NotificationWire =
        serde_json::from_slice(inner.as_deref().unwrap_or(body)).map_err(EnvelopeError::Json)?;
    if let Some((key, expected)) = wire.wrong_type {
        return Err(EnvelopeError::WrongType { key, expected });
    }
    Ok(RawNotification {
        message_id: wire.message_id.unwrap_or_default(),
        publisher_id: wire.publisher_id.unwrap_or_default(),
        event_type: wire
            .event_type
            .ok_or(EnvelopeError::MissingKey { key: "event_type" })?,
        priority: wire
            .priority
            .ok_or(EnvelopeError::MissingKey { key: "priority" })?,
        payload: wire
            .payload
            .ok_or(EnvelopeError::MissingKey { key: "payload" })?,
        timestamp: wire.timestamp.unwrap_or_default(),
        context: wire.context,
        unique_id: wire.unique_id,
    })
}

#[derive(Default)]
struct NotificationWire {
    message_id: Option<String>,
    publisher_id: Option<String>,
    event_type: Option<String>,
    priority: Option<Priority>,
    payload: Option<JsonText>,
    timestamp: Option<String>,
    unique_id: Option<String>,
    context: Context,
    wrong_type: Option<(&'static str, &'static str)>,
}

impl<'de> Deserialize<'de> for NotificationWire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(NotificationVisitor)
    }
}

struct NotificationVisitor;

const PRIORITY_EXPECTED: &str =
    "one of AUDIT, DEBUG, INFO, WARN, ERROR, CRITICAL, SAMPLE (any case)";

impl<'de> Visitor<'de> for NotificationVisitor {
    type Value = NotificationWire;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an oslo.messaging notification object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NotificationWire, A::Error> {
        let mut wire = NotificationWire::default();
        let mut wrong = None;
        macro_rules! string_field {
            ($key:literal) => {
                match map.next_value::<Scalar<'de>>()?.into_string() {
                    Ok(value) => value.map(Cow::into_owned),
                    Err(()) => {
                        wrong.get_or_insert(($key, "a string"));
                        None
                    }
                }
            };
        }
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "message_id" => wire.message_id = string_field!("message_id"),
                "publisher_id" => wire.publisher_id = string_field!("publisher_id"),
                "event_type" => wire.event_type = string_field!("event_type"),
                "timestamp" => wire.timestamp = string_field!("timestamp"),
                "_unique_id" => wire.unique_id = string_field!("_unique_id"),
                "priority" => match map.next_value::<Scalar<'de>>()?.into_string() {
                    Ok(Some(name)) => match name.parse() {
                        Ok(priority) => wire.priority = Some(priority),
                        Err(_) => {
                            wrong.get_or_insert(("priority", PRIORITY_EXPECTED));
                        }
                    },
                    Ok(None) | Err(()) => {
                        wrong.get_or_insert(("priority", PRIORITY_EXPECTED));
                    }
                },
                "payload" => {
                    let raw: Box<RawValue> = map.next_value()?;
                    wire.payload = Some(JsonText(String::from(Box::<str>::from(raw))));
                }
                other => match other.strip_prefix(CONTEXT_PREFIX) {
                    Some(context_key) => {
                        let value: Value = map.next_value()?;
                        wire.context.absorb(context_key, value);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
            }
        }
        wire.wrong_type = wrong;
        Ok(wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification oslo.messaging put on the wire (`tests/fixtures/oslo-notifications/`).
    fn fixture(name: &str) -> (Vec<u8>, Value) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/oslo-notifications");
        let body = std::fs::read(dir.join(format!("{name}.body.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let amqp = std::fs::read_to_string(dir.join(format!("{name}.amqp.json")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        (
            body,
            serde_json::from_str(&amqp).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    const CAPTURED: [(&str, Priority, NotificationFormat); 8] = [
        (
            "01_messagingv2_audit",
            Priority::Audit,
            NotificationFormat::Enveloped,
        ),
        (
            "02_messagingv2_debug",
            Priority::Debug,
            NotificationFormat::Enveloped,
        ),
        (
            "03_messagingv2_info",
            Priority::Info,
            NotificationFormat::Enveloped,
        ),
        (
            "04_messagingv2_warn",
            Priority::Warn,
            NotificationFormat::Enveloped,
        ),
        (
            "05_messagingv2_error",
            Priority::Error,
            NotificationFormat::Enveloped,
        ),
        (
            "06_messagingv2_critical",
            Priority::Critical,
            NotificationFormat::Enveloped,
        ),
        (
            "07_messagingv2_sample",
            Priority::Sample,
            NotificationFormat::Enveloped,
        ),
        (
            "08_messaging_info",
            Priority::Info,
            NotificationFormat::Bare,
        ),
    ];

    /// The inner message as a JSON value, whichever format it is in.
    fn inner_value(body: &[u8]) -> Value {
        let outer: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}"));
        match outer.get("oslo.message").and_then(Value::as_str) {
            Some(inner) => serde_json::from_str(inner).unwrap_or_else(|e| panic!("{e}")),
            None => outer,
        }
    }

    #[test]
    fn every_captured_oslo_notification_decodes() {
        for (name, priority, _) in CAPTURED {
            let (body, amqp) = fixture(name);
            let n = decode_notification(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(n.priority, priority, "{name}");
            assert_eq!(n.publisher_id, "compute.host1", "{name}");
            assert_eq!(n.event_type, format!("capture.{priority}"), "{name}");
            assert_eq!(n.context.user_id.as_deref(), Some("u-1"), "{name}");
            assert_eq!(n.context.request_id, "req-capture", "{name}");
            assert!(n.unique_id.is_some() && n.message_id.len() == 36, "{name}");
            let payload: Value = serde_json::from_str(n.payload.as_str()).unwrap();
            assert_eq!(payload["instance_id"], "i-1", "{name}");
            // The routing key is `<topic>.<priority>`.
            let key = amqp["routing_key"].as_str().unwrap();
            assert!(key.ends_with(&format!(".{priority}")), "{name}: {key}");
        }
    }

    #[test]
    fn encoding_writes_what_oslo_writes() {
        for (name, priority, format) in CAPTURED {
            let (body, _) = fixture(name);
            let theirs = inner_value(&body);
            let decoded = decode_notification(&body).unwrap();
            let payload = serde_json::to_string(&theirs["payload"]).unwrap();
            let outgoing = OutgoingNotification {
                publisher_id: &decoded.publisher_id,
                event_type: &decoded.event_type,
                priority,
                payload: &payload,
                context: &decoded.context,
            };
            let ours = encode_notification_with(
                &outgoing,
                format,
                theirs["message_id"].as_str().unwrap(),
                theirs["_unique_id"].as_str().unwrap(),
                theirs["timestamp"].as_str().unwrap(),
            );
            let enveloped = serde_json::from_slice::<Value>(&ours).unwrap()["oslo.version"]
                .as_str()
                .map(str::to_owned);
            assert_eq!(
                enveloped.is_some(),
                format == NotificationFormat::Enveloped,
                "{name}"
            );
            let ours = inner_value(&ours);
            for key in [
                "message_id",
                "publisher_id",
                "event_type",
                "priority",
                "payload",
                "timestamp",
                "_unique_id",
                "_context_request_id",
                "_context_user",
                "_context_project_id",
                "_context_is_admin",
                "_context_auth_token",
            ] {
                assert_eq!(ours.get(key), theirs.get(key), "{name}: {key}");
            }
        }
    }

    #[test]
    fn the_auth_token_is_blanked() {
        let ctx = Context::new().with_extra("auth_token", "secret-token");
        let n = OutgoingNotification {
            publisher_id: "p",
            event_type: "e",
            priority: Priority::Info,
            payload: "{}",
            context: &ctx,
        };
        let body = encode_notification(&n, NotificationFormat::Enveloped);
        assert!(!String::from_utf8_lossy(&body).contains("secret-token"));
        let decoded = decode_notification(&body).unwrap();
        assert_eq!(decoded.context.extra.get("auth_token"), Some(&Value::Null));
    }

    #[test]
    fn bad_notifications_say_why() {
        let cases: [(&[u8], &str); 6] = [
            (b"not json", "not valid JSON"),
            (b"{\"priority\":\"INFO\",\"payload\":{}}", "no `event_type`"),
            (b"{\"event_type\":\"e\",\"payload\":{}}", "no `priority`"),
            (
                b"{\"event_type\":\"e\",\"priority\":\"INFO\"}",
                "no `payload`",
            ),
            (
                b"{\"event_type\":\"e\",\"priority\":\"LOUD\",\"payload\":{}}",
                "`priority` must be one of",
            ),
            (
                b"{\"event_type\":7,\"priority\":\"INFO\",\"payload\":{}}",
                "`event_type` must be a string",
            ),
        ];
        for (body, reason) in cases {
            let error = decode_notification(body).unwrap_err().to_string();
            assert!(error.contains(reason), "{error} (wanted {reason})");
        }
    }

    #[test]
    fn priorities_parse_as_oslo_names_them() {
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
            assert_eq!(p.wire_name().parse::<Priority>(), Ok(p));
        }
        assert_eq!("WARNING".parse::<Priority>(), Ok(Priority::Warn));
        assert!("loud".parse::<Priority>().is_err());
    }

    #[test]
    fn timestamps_are_written_as_python_prints_them() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 12, 7, 10, 43, 8)
            .unwrap();
        assert_eq!(oslo_timestamp(t), "2026-12-07 10:43:08");
        let t = t + chrono::Duration::microseconds(417_976);
        assert_eq!(oslo_timestamp(t), "2026-12-07 10:43:08.417976");
    }
}
