//! oslo's `NotificationFilter`: which notifications an endpoint sees, by regular expressions on
//! the event type, the publisher, and top-level keys of the context and the payload.

use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::envelope::RawNotification;

/// Regular expressions a notification must match to reach an endpoint, as oslo's
/// `NotificationFilter`: each is matched from the start of the value (Python's `re.match`), an
/// absent value never matches a set expression, and every expression set must match.
///
/// The syntax is the `regex` crate's, which is Python's for what filters use (no look-around or
/// back-references).
///
/// ```
/// use rpc_runtime::notify::NotificationFilter;
///
/// let filter = NotificationFilter::new()
///     .event_type(r"compute\.instance\..*")?
///     .publisher_id("^compute")?
///     .payload("state", "active|error")?;
/// # Ok::<(), regex::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct NotificationFilter {
    event_type: Option<Regex>,
    publisher_id: Option<Regex>,
    context: Vec<(String, Regex)>,
    payload: Vec<(String, Regex)>,
}

impl fmt::Debug for NotificationFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyed = |rules: &[(String, Regex)]| -> Vec<String> {
            rules
                .iter()
                .map(|(k, r)| format!("{k}={}", r.as_str()))
                .collect()
        };
        f.debug_struct("NotificationFilter")
            .field("event_type", &self.event_type.as_ref().map(Regex::as_str))
            .field(
                "publisher_id",
                &self.publisher_id.as_ref().map(Regex::as_str),
            )
            .field("context", &keyed(&self.context))
            .field("payload", &keyed(&self.payload))
            .finish()
    }
}

/// `pattern`, anchored at the start as Python's `re.match` is.
fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})"))
}

impl NotificationFilter {
    /// A filter that lets everything through.
    pub fn new() -> Self {
        Self::default()
    }

    /// The event type must match `pattern`.
    ///
    /// # Errors
    ///
    /// When `pattern` is not a regular expression.
    pub fn event_type(mut self, pattern: &str) -> Result<Self, regex::Error> {
        self.event_type = Some(anchored(pattern)?);
        Ok(self)
    }

    /// The publisher id must match `pattern`.
    ///
    /// # Errors
    ///
    /// When `pattern` is not a regular expression.
    pub fn publisher_id(mut self, pattern: &str) -> Result<Self, regex::Error> {
        self.publisher_id = Some(anchored(pattern)?);
        Ok(self)
    }

    /// The context's `key` must be a string matching `pattern`.
    ///
    /// # Errors
    ///
    /// When `pattern` is not a regular expression.
    pub fn context(mut self, key: &str, pattern: &str) -> Result<Self, regex::Error> {
        self.context.push((key.to_owned(), anchored(pattern)?));
        Ok(self)
    }

    /// The payload's top-level `key` must be a string matching `pattern`.
    ///
    /// # Errors
    ///
    /// When `pattern` is not a regular expression.
    pub fn payload(mut self, key: &str, pattern: &str) -> Result<Self, regex::Error> {
        self.payload.push((key.to_owned(), anchored(pattern)?));
        Ok(self)
    }

    /// A filter no notification passes.
    pub(crate) fn nothing() -> Self {
        Self {
            event_type: Regex::new(r"[^\s\S]").ok(),
            ..Self::default()
        }
    }

    /// Whether a notification passes.
    pub fn matches(&self, notification: &RawNotification) -> bool {
        let single = |rule: &Option<Regex>, value: &str| {
            rule.as_ref()
                .is_none_or(|r| !value.is_empty() && r.is_match(value))
        };
        if !single(&self.event_type, &notification.event_type)
            || !single(&self.publisher_id, &notification.publisher_id)
        {
            return false;
        }
        if !self.context.is_empty() {
            let context = notification.context.to_dict();
            if !keyed_match(&self.context, |key| context.get(key).cloned()) {
                return false;
            }
        }
        if !self.payload.is_empty() {
            let payload: Value =
                serde_json::from_str(notification.payload.as_str()).unwrap_or(Value::Null);
            if !keyed_match(&self.payload, |key| payload.get(key).cloned()) {
                return false;
            }
        }
        true
    }

    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        self.event_type.is_none()
            && self.publisher_id.is_none()
            && self.context.is_empty()
            && self.payload.is_empty()
    }
}

fn keyed_match(rules: &[(String, Regex)], value_of: impl Fn(&str) -> Option<Value>) -> bool {
    rules.iter().all(|(key, regex)| match value_of(key) {
        Some(Value::String(s)) => regex.is_match(&s),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::envelope::{
        NotificationFormat, OutgoingNotification, Priority, decode_notification,
        encode_notification,
    };

    fn notification(event_type: &str, publisher_id: &str, payload: &str) -> RawNotification {
        let ctx = Context::new().with_user("alice");
        let body = encode_notification(
            &OutgoingNotification {
                publisher_id,
                event_type,
                priority: Priority::Info,
                payload,
                context: &ctx,
            },
            NotificationFormat::Enveloped,
        );
        decode_notification(&body).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn filters_match_from_the_start_as_python_re_match_does() -> Result<(), regex::Error> {
        let filter = NotificationFilter::new().event_type(r"compute\.")?;
        assert!(filter.matches(&notification("compute.instance.create", "c", "{}")));
        assert!(!filter.matches(&notification("x.compute.instance", "c", "{}")));
        Ok(())
    }

    #[test]
    fn every_rule_must_match() -> Result<(), regex::Error> {
        let filter = NotificationFilter::new()
            .publisher_id("^compute")?
            .context("user_id", "ali")?
            .payload("state", "active$")?;
        assert!(filter.matches(&notification("e", "compute.h1", r#"{"state":"active"}"#)));
        assert!(!filter.matches(&notification("e", "conductor", r#"{"state":"active"}"#)));
        assert!(!filter.matches(&notification("e", "compute.h1", r#"{"state":"activex"}"#)));
        // A key that is absent, or not a string, does not match.
        assert!(!filter.matches(&notification("e", "compute.h1", r#"{"other":1}"#)));
        assert!(!filter.matches(&notification("e", "compute.h1", "[1]")));
        assert!(NotificationFilter::new().matches(&notification("e", "", "null")));
        Ok(())
    }

    #[test]
    fn a_bad_expression_is_an_error() {
        assert!(NotificationFilter::new().event_type("(").is_err());
    }
}
