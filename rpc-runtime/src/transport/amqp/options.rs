//! Options of the RabbitMQ transport, with oslo.messaging's names and defaults.

use std::time::Duration;

use crate::error::TransportError;
use crate::transport::url::parse_bool;
use crate::transport::{AMQP_OPTION_NAMES as KNOWN, TransportUrl};

/// How the RabbitMQ transport declares, publishes and consumes.
///
/// Every option can be set in the transport URL's query with oslo.messaging's option name, for
/// example `rabbit://guest:guest@localhost:5672/?control_exchange=nova&rabbit_qos_prefetch_count=64`.
/// An unknown option is an error that names it, never silently ignored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AmqpOptions {
    /// The exchange used when a target names none (`control_exchange`). Default `openstack`;
    /// nova uses `nova`.
    pub control_exchange: String,
    /// Publish calls and casts to one server or one topic straight to the queue oslo's binding
    /// routes them to (`topic` or `topic.server`), through the default exchange, instead of
    /// through the topic exchange (`direct_publish`). Default `true`: the message lands in the
    /// same queue, an oslo.messaging server sees no difference, and the broker skips topic
    /// routing, about a fifth of its work per call. Set `false` when a deployment binds other
    /// queues to the control exchange (a tap, a federation link) that must see requests. Fanout
    /// casts always go through their fanout exchange.
    pub direct_publish: bool,
    /// Declare the control exchange and topic queues durable (`amqp_durable_queues`). Default
    /// `false`, as oslo. Messages are always published persistent (delivery mode 2), as oslo does.
    pub durable_queues: bool,
    /// Declare topic queues as quorum queues (`rabbit_quorum_queue`; implies durable). Default
    /// `false`.
    pub quorum_queues: bool,
    /// Wait for the broker's confirm of every publish (`confirm_publish`). Default `true`, as
    /// oslo.messaging's rabbit driver; `false` trades the guarantee for speed.
    pub publisher_confirms: bool,
    /// Unacknowledged deliveries a consumer may hold (`rabbit_qos_prefetch_count`). Default 0:
    /// unlimited, as oslo. The server's concurrency limit bounds work either way.
    pub prefetch: u16,
    /// AMQP heartbeat in seconds (`heartbeat_timeout_threshold`). Default 60, as oslo.
    pub heartbeat: u16,
    /// `x-expires` of reply and fanout queues (`rabbit_transient_queues_ttl`). Default 1800 s.
    pub transient_queues_ttl: Duration,
    /// The first wait before reconnecting (`rabbit_retry_interval`). Default 100 ms.
    pub reconnect_initial: Duration,
    /// The longest wait between reconnect attempts (`rabbit_retry_backoff`). Default 5 s.
    pub reconnect_max: Duration,
    /// Connect with TLS (`ssl`; also set by the `amqps://` scheme). Needs the `amqp-tls`
    /// feature. Default `false`.
    pub tls: bool,
    /// A PEM file of the CA that signed the broker's certificate (`ssl_ca_file`), for a private
    /// CA; the system's roots otherwise.
    pub ssl_ca_file: Option<std::path::PathBuf>,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        Self {
            control_exchange: "openstack".to_owned(),
            direct_publish: true,
            durable_queues: false,
            quorum_queues: false,
            publisher_confirms: true,
            prefetch: 0,
            heartbeat: 60,
            transient_queues_ttl: Duration::from_secs(1800),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            tls: false,
            ssl_ca_file: None,
        }
    }
}

impl AmqpOptions {
    /// Reads the options a transport URL's query sets, over the defaults.
    ///
    /// # Errors
    ///
    /// [`TransportError::InvalidUrl`] naming an unknown option or a bad value.
    pub fn from_url(url: &TransportUrl) -> Result<Self, TransportError> {
        let mut options = Self {
            tls: url.scheme() == "amqps",
            ..Self::default()
        };
        for (key, value) in url.query() {
            let invalid = |reason: String| TransportError::InvalidUrl {
                url: url.to_string(),
                reason,
            };
            let flag = || {
                parse_bool(value)
                    .ok_or_else(|| invalid(format!("`{key}` must be true or false, not `{value}`")))
            };
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| invalid(format!("`{key}` must be a whole number, not `{value}`")))
            };
            match key.as_str() {
                "control_exchange" if !value.is_empty() => {
                    options.control_exchange.clone_from(value)
                }
                "control_exchange" => {
                    return Err(invalid("`control_exchange` must not be empty".into()));
                }
                "direct_publish" => options.direct_publish = flag()?,
                "amqp_durable_queues" => options.durable_queues = flag()?,
                "rabbit_quorum_queue" => options.quorum_queues = flag()?,
                "confirm_publish" => options.publisher_confirms = flag()?,
                "rabbit_qos_prefetch_count" => {
                    options.prefetch = u16::try_from(number()?)
                        .map_err(|_| invalid(format!("`{key}` must be at most 65535")))?;
                }
                "heartbeat_timeout_threshold" => {
                    options.heartbeat = u16::try_from(number()?)
                        .map_err(|_| invalid(format!("`{key}` must be at most 65535")))?;
                }
                "rabbit_transient_queues_ttl" => {
                    options.transient_queues_ttl = Duration::from_secs(number()?);
                }
                "rabbit_retry_interval" => {
                    options.reconnect_initial = Duration::from_millis(number()?);
                }
                "rabbit_retry_backoff" => options.reconnect_max = Duration::from_millis(number()?),
                "ssl" => options.tls = flag()?,
                "ssl_ca_file" if !value.is_empty() => {
                    options.ssl_ca_file = Some(value.into());
                    options.tls = true;
                }
                "ssl_ca_file" => return Err(invalid("`ssl_ca_file` must not be empty".into())),
                other => {
                    return Err(invalid(format!(
                        "unknown option `{other}`; known: {}",
                        KNOWN.join(", ")
                    )));
                }
            }
        }
        Ok(options)
    }

    /// Whether topic queues and the control exchange are durable.
    pub(crate) fn durable(&self) -> bool {
        self.durable_queues || self.quorum_queues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> Result<AmqpOptions, TransportError> {
        AmqpOptions::from_url(&url.parse().unwrap())
    }

    #[test]
    fn defaults_are_oslo_defaults() {
        let o = options("rabbit://guest:guest@localhost:5672/").unwrap();
        assert_eq!(o, AmqpOptions::default());
        assert_eq!(o.control_exchange, "openstack");
        assert!(o.publisher_confirms);
        assert!(o.direct_publish);
        assert!(!o.durable());
    }

    #[test]
    fn query_sets_options_by_oslo_name() {
        let o = options("rabbit://h/?control_exchange=nova&rabbit_quorum_queue=true&confirm_publish=false&rabbit_qos_prefetch_count=64&heartbeat_timeout_threshold=10&direct_publish=false").unwrap();
        assert_eq!(o.control_exchange, "nova");
        assert!(o.quorum_queues && o.durable());
        assert!(!o.publisher_confirms);
        assert_eq!(o.prefetch, 64);
        assert_eq!(o.heartbeat, 10);
        assert!(!o.direct_publish);
    }

    #[test]
    fn tls_comes_from_the_scheme_or_the_query() {
        assert!(options("amqps://h/").unwrap().tls);
        assert!(options("rabbit://h/?ssl=true").unwrap().tls);
        let o = options("rabbit://h/?ssl_ca_file=/etc/ca.pem").unwrap();
        assert!(o.tls);
        assert_eq!(
            o.ssl_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert!(!options("rabbit://h/").unwrap().tls);
    }

    #[test]
    fn unknown_or_bad_options_are_named() {
        let err = options("rabbit://u:secret@h/?rabit_qos_prefetch_count=1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown option `rabit_qos_prefetch_count`"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let err = options("rabbit://h/?confirm_publish=maybe")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`confirm_publish` must be true or false"),
            "{err}"
        );
        let err = options("rabbit://h/?rabbit_qos_prefetch_count=70000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 65535"), "{err}");
    }
}
