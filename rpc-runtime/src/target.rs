//! Where a message goes: oslo.messaging's `Target`.

use std::sync::Arc;

use crate::version::Version;

/// The destination of a request, or what a server listens on (oslo.messaging's `Target`).
///
/// A client target names a topic, optionally one server on it (`topic.server`) or every server
/// (`fanout`), the namespace and the version the request needs. A server target names the topic and
/// the server it is (its host). Strings are shared, so cloning a target is cheap.
///
/// # Examples
///
/// ```
/// use rpc_runtime::{Target, Version};
///
/// let target = Target::new("scheduler").with_server("host1").with_version(Version::new(4, 0));
/// assert_eq!(target.routing_key(), "scheduler.host1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Target {
    /// The exchange; `None` uses the transport's control exchange (oslo's default `openstack`).
    pub exchange: Option<Arc<str>>,
    /// The topic: the name services of one kind listen on (`scheduler`, `compute`).
    pub topic: Arc<str>,
    /// The endpoint namespace; `None` is the default namespace.
    pub namespace: Option<Arc<str>>,
    /// The version requested (client) or served (server).
    pub version: Option<Version>,
    /// One server on the topic (a host name); `None` lets any server on the topic take it.
    pub server: Option<Arc<str>>,
    /// A cast to every server on the topic.
    pub fanout: bool,
}

impl Target {
    /// Builds a target for `topic` with everything else unset.
    pub fn new(topic: impl Into<Arc<str>>) -> Self {
        Self {
            exchange: None,
            topic: topic.into(),
            namespace: None,
            version: None,
            server: None,
            fanout: false,
        }
    }

    /// Sets the exchange.
    #[must_use]
    pub fn with_exchange(mut self, exchange: impl Into<Arc<str>>) -> Self {
        self.exchange = Some(exchange.into());
        self
    }

    /// Sets the namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<Arc<str>>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the version.
    #[must_use]
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }

    /// Sets the server (a host on the topic).
    #[must_use]
    pub fn with_server(mut self, server: impl Into<Arc<str>>) -> Self {
        self.server = Some(server.into());
        self
    }

    /// Sets or clears fanout.
    #[must_use]
    pub fn with_fanout(mut self, fanout: bool) -> Self {
        self.fanout = fanout;
        self
    }

    /// The routing key oslo uses for a direct send: `topic`, or `topic.server` when a server is set.
    pub fn routing_key(&self) -> std::borrow::Cow<'_, str> {
        match &self.server {
            Some(server) => std::borrow::Cow::Owned(format!("{}.{server}", self.topic)),
            None => std::borrow::Cow::Borrowed(&self.topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_key_follows_oslo() {
        assert_eq!(Target::new("scheduler").routing_key(), "scheduler");
        assert_eq!(
            Target::new("scheduler").with_server("host1").routing_key(),
            "scheduler.host1"
        );
    }
}
