//! `[oslo_messaging_notifications]`: which drivers send notifications, to which topics, over
//! which transport, retried how often.

use std::fmt;
use std::str::FromStr;

use crate::transport::{Retry, TransportUrl};

/// The section's name.
pub const SECTION: &str = "oslo_messaging_notifications";

/// The options of `[oslo_messaging_notifications]` this runtime reads.
pub const OPTION_NAMES: &[&str] = &["driver", "topics", "transport_url", "retry"];

/// One of oslo's notification drivers, by its name in `driver =`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Driver {
    /// `messagingv2`: the 2.0 envelope, what every current OpenStack service uses.
    MessagingV2,
    /// `messaging`: the bare 1.0 message, for old consumers.
    Messaging,
    /// `log`: one log line per notification (through `tracing`), nothing on the broker.
    Log,
    /// `noop`: nothing at all.
    Noop,
    /// `test`: kept in memory for [`Notifier::sent`](super::Notifier::sent).
    Test,
}

impl Driver {
    /// Every driver name, as oslo spells them.
    pub const NAMES: &[&str] = &["messagingv2", "messaging", "log", "noop", "test"];

    /// The name oslo knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Self::MessagingV2 => "messagingv2",
            Self::Messaging => "messaging",
            Self::Log => "log",
            Self::Noop => "noop",
            Self::Test => "test",
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A driver name oslo does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown notification driver `{name}`; expected one of messagingv2, messaging, log, noop, test{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
pub struct UnknownDriver {
    /// The name given.
    pub name: String,
    /// The driver it resembles.
    pub suggestion: Option<String>,
}

impl FromStr for Driver {
    type Err = UnknownDriver;

    fn from_str(name: &str) -> Result<Self, UnknownDriver> {
        match name.trim() {
            "messagingv2" => Ok(Self::MessagingV2),
            "messaging" => Ok(Self::Messaging),
            "log" => Ok(Self::Log),
            "noop" => Ok(Self::Noop),
            "test" => Ok(Self::Test),
            other => Err(UnknownDriver {
                name: other.to_owned(),
                suggestion: crate::suggest::closest(other, Self::NAMES).map(str::to_owned),
            }),
        }
    }
}

/// `[oslo_messaging_notifications]`, typed, with oslo's defaults: no driver (notifications
/// off), topic `notifications`, the RPC transport, and retrying forever.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotificationSettings {
    /// `driver`: every driver that gets each notification. Empty: notifications are off. oslo
    /// takes the option several times; here one line may also list several, comma-separated.
    pub drivers: Vec<Driver>,
    /// `topics`: the topics each notification is sent to (`<topic>.<priority>`).
    pub topics: Vec<String>,
    /// `transport_url`: a broker of their own for notifications; `None` uses the RPC transport.
    pub transport_url: Option<TransportUrl>,
    /// `retry`: how often a send that broke with its connection is tried again (-1: forever).
    pub retry: Retry,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            drivers: Vec::new(),
            topics: vec!["notifications".to_owned()],
            transport_url: None,
            retry: Retry::Forever,
        }
    }
}

/// Why an option of the section has a bad value: the reason, for the configuration loader to
/// name the file and line.
pub(crate) fn set(
    settings: &mut NotificationSettings,
    key: &str,
    value: &str,
) -> Result<(), String> {
    match key {
        "driver" => {
            settings.drivers = value
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| d.parse::<Driver>().map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
        }
        "topics" => {
            let topics: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            if topics.is_empty() {
                return Err("must name at least one topic".to_owned());
            }
            settings.topics = topics;
        }
        "transport_url" if value.is_empty() => settings.transport_url = None,
        "transport_url" => {
            // The parse error redacts; the value itself may hold a password.
            settings.transport_url = Some(value.parse().map_err(|e| format!("{e}"))?);
        }
        "retry" => {
            let retry = value
                .parse::<i64>()
                .map_err(|_| format!("expected a whole number (-1: forever), not `{value}`"))?;
            settings.retry = Retry::from_oslo(retry);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_as_oslo_reads_them() {
        let mut s = NotificationSettings::default();
        assert!(s.drivers.is_empty());
        set(&mut s, "driver", "messagingv2, log").unwrap();
        assert_eq!(s.drivers, [Driver::MessagingV2, Driver::Log]);
        set(&mut s, "topics", "notifications,billing").unwrap();
        assert_eq!(s.topics, ["notifications", "billing"]);
        set(&mut s, "retry", "3").unwrap();
        assert_eq!(s.retry, Retry::Times(3));
        set(&mut s, "retry", "-1").unwrap();
        assert_eq!(s.retry, Retry::Forever);
        let error = set(&mut s, "driver", "messagingv3").unwrap_err();
        assert!(error.contains("did you mean `messagingv2`"), "{error}");
        assert!(set(&mut s, "retry", "often").is_err());
        assert!(set(&mut s, "topics", " , ").is_err());
        let error = set(&mut s, "transport_url", "rabbit://u:secret@[bad").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }
}
