//! Options of the RabbitMQ transport, with oslo.messaging's names, units and defaults.

use std::fmt;
use std::time::Duration;

use crate::error::TransportError;
use crate::suggest::{DidYouMean, closest};
use crate::transport::url::parse_bool;
use crate::transport::{AMQP_OPTION_NAMES as KNOWN, TransportUrl};

/// How the RabbitMQ transport declares, publishes, consumes and reconnects.
///
/// Every option can be set in the transport URL's query with oslo.messaging's option name (and
/// in `[oslo_messaging_rabbit]`, which [`Config`](crate::config::Config) passes on), for example
/// `rabbit://guest:guest@localhost:5672/?control_exchange=nova&rabbit_qos_prefetch_count=64`.
/// Durations are in seconds, as oslo reads them (fractions are accepted). An unknown option is
/// ignored with a warning that names the option it most resembles, as oslo.config does for files;
/// a known option with a bad value is an error.
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
    /// Declare reply and fanout queues as quorum queues too (`rabbit_transient_quorum_queue`;
    /// durable, still expiring after [`transient_queues_ttl`](Self::transient_queues_ttl) unused).
    /// Default `false`, as oslo: they belong to one process and die with it. When on, replies
    /// are also acknowledged once handed to their call, so one delivered as a connection drops
    /// is delivered again on the next connection: with it a client calls through a rolling
    /// restart of the whole cluster without losing a call (`tests/cluster`).
    pub transient_quorum_queues: bool,
    /// Deliveries of one message before a quorum queue drops it (`rabbit_quorum_delivery_limit`,
    /// `x-delivery-limit`). Default 0: no limit.
    pub quorum_delivery_limit: u32,
    /// Messages a quorum queue keeps in memory (`rabbit_quorum_max_memory_length`,
    /// `x-max-in-memory-length`). Default 0: no limit.
    pub quorum_max_memory_length: u32,
    /// Message bytes a quorum queue keeps in memory (`rabbit_quorum_max_memory_bytes`,
    /// `x-max-in-memory-bytes`). Default 0: no limit.
    pub quorum_max_memory_bytes: u64,
    /// Wait for the broker's confirm of every publish (`confirm_publish`). Default `true`, as
    /// oslo.messaging's rabbit driver; `false` trades the guarantee for speed.
    pub publisher_confirms: bool,
    /// Unacknowledged deliveries each of a server's consumers may hold
    /// (`rabbit_qos_prefetch_count`). `None` (the default) bounds it at
    /// [`PREFETCH_PER_SLOT`] times the server's concurrency limit, so a slow or stuck server holds
    /// few requests while another server of the topic is idle. An explicit value wins, `0`
    /// included: unlimited, oslo's default.
    pub prefetch: Option<u16>,
    /// AMQP heartbeat in seconds (`heartbeat_timeout_threshold`). Default 60, as oslo.
    pub heartbeat: u16,
    /// `x-expires` of reply and fanout queues (`rabbit_transient_queues_ttl`). Default 1800 s.
    pub transient_queues_ttl: Duration,
    /// The wait before the second round of connection attempts (`rabbit_retry_interval`).
    /// Default 1 s, as oslo.
    pub retry_interval: Duration,
    /// What each further round adds to the wait (`rabbit_retry_backoff`). Default 2 s, as oslo:
    /// 1 s, 3 s, 5 s, … up to [`interval_max`](Self::interval_max).
    pub retry_backoff: Duration,
    /// The longest wait between rounds of connection attempts (`rabbit_interval_max`). Default
    /// 30 s, as oslo.
    pub interval_max: Duration,
    /// The wait before reconnecting after a connection broke or the broker cancelled a consumer
    /// (`kombu_reconnect_delay`). Default 1 s, as oslo.
    pub reconnect_delay: Duration,
    /// How long a server keeps trying a reply whose reply queue is gone
    /// (`kombu_missing_consumer_retry_timeout`), in case the caller is reconnecting and declares
    /// it again; then the reply is dropped with one log line. Default 60 s, as oslo. Needs
    /// publisher confirms (the default) to see that the queue is gone.
    pub missing_consumer_retry_timeout: Duration,
    /// Which host of a multi-host URL is tried next (`kombu_failover_strategy`). Default
    /// round-robin, as oslo.
    pub failover_strategy: FailoverStrategy,
    /// Connect with TLS (`ssl`; also set by the `amqps://` scheme). Needs the `amqp-tls`
    /// feature. Default `false`.
    pub tls: bool,
    /// A PEM file of the CA that signed the broker's certificate (`ssl_ca_file`), for a private
    /// CA; the system's roots otherwise.
    pub ssl_ca_file: Option<std::path::PathBuf>,
    /// A PEM file of this client's certificate (`ssl_cert_file`), for a broker that requires one
    /// (`ssl_options.fail_if_no_peer_cert`); given with [`ssl_key_file`](Self::ssl_key_file).
    pub ssl_cert_file: Option<std::path::PathBuf>,
    /// A PEM file of the private key of [`ssl_cert_file`](Self::ssl_cert_file)
    /// (`ssl_key_file`; PKCS#8, PKCS#1 or SEC1). Its path may be logged, its contents never.
    pub ssl_key_file: Option<std::path::PathBuf>,
}

/// The default prefetch, per slot of the server's concurrency limit: a server holds at most
/// twice as many waiting requests as it can run.
pub const PREFETCH_PER_SLOT: usize = 2;

/// How the next broker host is chosen when the current one is lost (`kombu_failover_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FailoverStrategy {
    /// The host after the one lost, in the URL's order, wrapping around (`round-robin`).
    #[default]
    RoundRobin,
    /// The hosts in a random order at every round of attempts (`shuffle`).
    Shuffle,
}

/// An option of a transport URL's query that the transport does not know: ignored, and
/// reported with the known option it most resembles.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownOption {
    /// The option as written.
    pub key: String,
    /// The known option it most resembles.
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transport URL: `{}` is not an option this transport knows; it is ignored{}",
            self.key,
            DidYouMean(self.suggestion.as_deref())
        )
    }
}

impl Default for AmqpOptions {
    fn default() -> Self {
        Self {
            control_exchange: "openstack".to_owned(),
            direct_publish: true,
            durable_queues: false,
            quorum_queues: false,
            transient_quorum_queues: false,
            quorum_delivery_limit: 0,
            quorum_max_memory_length: 0,
            quorum_max_memory_bytes: 0,
            publisher_confirms: true,
            prefetch: None,
            heartbeat: 60,
            transient_queues_ttl: Duration::from_secs(1800),
            retry_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_secs(2),
            interval_max: Duration::from_secs(30),
            reconnect_delay: Duration::from_secs(1),
            missing_consumer_retry_timeout: Duration::from_secs(60),
            failover_strategy: FailoverStrategy::RoundRobin,
            tls: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
        }
    }
}

impl AmqpOptions {
    /// Reads the options a transport URL's query sets, over the defaults. Unknown options are
    /// logged as warnings (see [`parse`](Self::parse) to get them).
    ///
    /// # Errors
    ///
    /// [`TransportError::InvalidUrl`] naming an option with a bad value.
    pub fn from_url(url: &TransportUrl) -> Result<Self, TransportError> {
        let (options, unknown) = Self::parse(url)?;
        for warning in unknown {
            tracing::warn!("{warning}");
        }
        Ok(options)
    }

    /// Reads the options a transport URL's query sets, over the defaults, and returns the
    /// options it does not know apart (they are ignored).
    ///
    /// # Errors
    ///
    /// [`TransportError::InvalidUrl`] naming an option with a bad value.
    pub fn parse(url: &TransportUrl) -> Result<(Self, Vec<UnknownOption>), TransportError> {
        let mut options = Self {
            tls: url.scheme() == "amqps",
            ..Self::default()
        };
        let mut unknown = Vec::new();
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
            let whole = || {
                u32::try_from(number()?)
                    .map_err(|_| invalid(format!("`{key}` must be at most {}", u32::MAX)))
            };
            let small = || {
                u16::try_from(number()?)
                    .map_err(|_| invalid(format!("`{key}` must be at most 65535")))
            };
            let seconds = || {
                parse_seconds(value).ok_or_else(|| {
                    invalid(format!(
                        "`{key}` must be seconds (0 or more), not `{value}`"
                    ))
                })
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
                "rabbit_transient_quorum_queue" => options.transient_quorum_queues = flag()?,
                "rabbit_quorum_delivery_limit" => options.quorum_delivery_limit = whole()?,
                "rabbit_quorum_max_memory_length" => {
                    options.quorum_max_memory_length = whole()?;
                }
                "rabbit_quorum_max_memory_bytes" => options.quorum_max_memory_bytes = number()?,
                "confirm_publish" => options.publisher_confirms = flag()?,
                "rabbit_qos_prefetch_count" => options.prefetch = Some(small()?),
                "heartbeat_timeout_threshold" => options.heartbeat = small()?,
                "rabbit_transient_queues_ttl" => {
                    options.transient_queues_ttl = Duration::from_secs(number()?);
                }
                "rabbit_retry_interval" => options.retry_interval = seconds()?,
                "rabbit_retry_backoff" => options.retry_backoff = seconds()?,
                "rabbit_interval_max" => options.interval_max = seconds()?,
                "kombu_reconnect_delay" => options.reconnect_delay = seconds()?,
                "kombu_missing_consumer_retry_timeout" => {
                    options.missing_consumer_retry_timeout = seconds()?;
                }
                "kombu_failover_strategy" => {
                    options.failover_strategy = match value.as_str() {
                        "round-robin" => FailoverStrategy::RoundRobin,
                        "shuffle" => FailoverStrategy::Shuffle,
                        _ => {
                            return Err(invalid(format!(
                                "`{key}` must be `round-robin` or `shuffle`, not `{value}`"
                            )));
                        }
                    }
                }
                "ssl" => options.tls = flag()?,
                "ssl_ca_file" if !value.is_empty() => {
                    options.ssl_ca_file = Some(value.into());
                    options.tls = true;
                }
                "ssl_cert_file" if !value.is_empty() => {
                    options.ssl_cert_file = Some(value.into());
                    options.tls = true;
                }
                "ssl_key_file" if !value.is_empty() => {
                    options.ssl_key_file = Some(value.into());
                    options.tls = true;
                }
                "ssl_ca_file" | "ssl_cert_file" | "ssl_key_file" => {
                    return Err(invalid(format!("`{key}` must not be empty")));
                }
                other => unknown.push(UnknownOption {
                    key: other.to_owned(),
                    suggestion: closest(other, KNOWN).map(str::to_owned),
                }),
            }
        }
        let invalid = |reason: String| TransportError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        match (&options.ssl_cert_file, &options.ssl_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "`ssl_cert_file` needs `ssl_key_file`, the certificate's private key".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "`ssl_key_file` needs `ssl_cert_file`, the certificate it is the key of".into(),
                ));
            }
            _ => {}
        }
        Ok((options, unknown))
    }

    /// Whether topic queues and the control exchange are durable.
    pub(crate) fn durable(&self) -> bool {
        self.durable_queues || self.quorum_queues
    }

    /// Whether reply and fanout queues are declared durable: only as quorum queues, which must be.
    pub(crate) fn transient_durable(&self) -> bool {
        self.transient_quorum_queues
    }

    /// The prefetch count for a server that runs at most `max_concurrency` requests at once
    /// (0: unlimited).
    pub(crate) fn prefetch_for(&self, max_concurrency: usize) -> u16 {
        self.prefetch.unwrap_or_else(|| {
            u16::try_from(max_concurrency.max(1).saturating_mul(PREFETCH_PER_SLOT))
                .unwrap_or(u16::MAX)
        })
    }
}

/// Seconds as oslo writes them (`1`, `2`), fractions accepted (`0.5`); never negative.
fn parse_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> Result<AmqpOptions, TransportError> {
        AmqpOptions::from_url(&url.parse().unwrap())
    }

    #[test]
    fn quorum_options_use_oslo_names() {
        let o = options(
            "rabbit://h/?rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true\
             &rabbit_quorum_delivery_limit=3&rabbit_quorum_max_memory_length=100\
             &rabbit_quorum_max_memory_bytes=1048576",
        )
        .unwrap();
        assert!(o.quorum_queues && o.transient_quorum_queues && o.transient_durable());
        assert_eq!(o.quorum_delivery_limit, 3);
        assert_eq!(o.quorum_max_memory_length, 100);
        assert_eq!(o.quorum_max_memory_bytes, 1_048_576);
        let defaults = AmqpOptions::default();
        assert_eq!(
            defaults.missing_consumer_retry_timeout,
            Duration::from_secs(60)
        );
        assert_eq!(
            options("rabbit://h/?kombu_missing_consumer_retry_timeout=1.5")
                .unwrap()
                .missing_consumer_retry_timeout,
            Duration::from_millis(1500)
        );
        assert!(!defaults.transient_quorum_queues && !defaults.transient_durable());
        assert_eq!(defaults.quorum_delivery_limit, 0);
        assert!(matches!(
            options("rabbit://h/?rabbit_quorum_delivery_limit=-1"),
            Err(TransportError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn defaults_are_oslo_defaults() {
        let o = options("rabbit://guest:guest@localhost:5672/").unwrap();
        assert_eq!(o, AmqpOptions::default());
        assert_eq!(o.control_exchange, "openstack");
        assert!(o.publisher_confirms);
        assert!(o.direct_publish);
        assert!(!o.durable());
        assert_eq!(o.retry_interval, Duration::from_secs(1));
        assert_eq!(o.retry_backoff, Duration::from_secs(2));
        assert_eq!(o.interval_max, Duration::from_secs(30));
        assert_eq!(o.reconnect_delay, Duration::from_secs(1));
        assert_eq!(o.failover_strategy, FailoverStrategy::RoundRobin);
    }

    #[test]
    fn query_sets_options_by_oslo_name() {
        let o = options("rabbit://h/?control_exchange=nova&rabbit_quorum_queue=true&confirm_publish=false&rabbit_qos_prefetch_count=64&heartbeat_timeout_threshold=10&direct_publish=false").unwrap();
        assert_eq!(o.control_exchange, "nova");
        assert!(o.quorum_queues && o.durable());
        assert!(!o.publisher_confirms);
        assert_eq!(o.prefetch, Some(64));
        assert_eq!(o.heartbeat, 10);
        assert!(!o.direct_publish);
    }

    #[test]
    fn retry_options_are_seconds_as_oslo_reads_them() {
        let o = options(
            "rabbit://h/?rabbit_retry_interval=1&rabbit_retry_backoff=3&rabbit_interval_max=20\
             &kombu_reconnect_delay=0.5&kombu_failover_strategy=shuffle",
        )
        .unwrap();
        assert_eq!(o.retry_interval, Duration::from_secs(1));
        assert_eq!(o.retry_backoff, Duration::from_secs(3));
        assert_eq!(o.interval_max, Duration::from_secs(20));
        assert_eq!(o.reconnect_delay, Duration::from_millis(500));
        assert_eq!(o.failover_strategy, FailoverStrategy::Shuffle);
        for bad in [
            "rabbit_retry_interval=-1",
            "rabbit_interval_max=soon",
            "kombu_failover_strategy=random",
        ] {
            let err = options(&format!("rabbit://h/?{bad}"))
                .unwrap_err()
                .to_string();
            let key = bad.split('=').next().unwrap();
            assert!(err.contains(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn the_default_prefetch_follows_the_servers_concurrency() {
        let o = AmqpOptions::default();
        assert_eq!(o.prefetch_for(64), 128);
        assert_eq!(o.prefetch_for(1), 2);
        assert_eq!(o.prefetch_for(usize::MAX), u16::MAX);
        assert_eq!(
            options("rabbit://h/?rabbit_qos_prefetch_count=0")
                .unwrap()
                .prefetch_for(64),
            0
        );
        assert_eq!(
            options("rabbit://h/?rabbit_qos_prefetch_count=5")
                .unwrap()
                .prefetch_for(64),
            5
        );
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
        let o = options("rabbit://h/?ssl_cert_file=/etc/c.pem&ssl_key_file=/etc/k.pem").unwrap();
        assert!(o.tls);
        assert_eq!(
            (o.ssl_cert_file.as_deref(), o.ssl_key_file.as_deref()),
            (
                Some(std::path::Path::new("/etc/c.pem")),
                Some(std::path::Path::new("/etc/k.pem"))
            )
        );
    }

    #[test]
    fn a_client_certificate_comes_with_its_key() {
        let error = options("rabbit://h/?ssl_cert_file=/etc/c.pem").unwrap_err();
        assert!(
            error.to_string().contains("needs `ssl_key_file`"),
            "{error}"
        );
        let error = options("rabbit://h/?ssl_key_file=/etc/k.pem").unwrap_err();
        assert!(
            error.to_string().contains("needs `ssl_cert_file`"),
            "{error}"
        );
        let error = options("rabbit://h/?ssl_key_file=").unwrap_err();
        assert!(error.to_string().contains("must not be empty"), "{error}");
    }

    #[test]
    fn unknown_options_are_ignored_and_named_with_the_closest_known_one() {
        let url = "rabbit://u:secret@h/?rabit_qos_prefetch_count=1&confirm_publish=false"
            .parse()
            .unwrap();
        let (o, unknown) = AmqpOptions::parse(&url).unwrap();
        assert!(!o.publisher_confirms, "the known option is still read");
        assert_eq!(o.prefetch, None);
        assert_eq!(
            unknown,
            vec![UnknownOption {
                key: "rabit_qos_prefetch_count".into(),
                suggestion: Some("rabbit_qos_prefetch_count".into()),
            }]
        );
        let text = unknown[0].to_string();
        assert!(
            text.contains("did you mean `rabbit_qos_prefetch_count`"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn bad_values_are_errors_naming_the_option() {
        let err = options("rabbit://u:secret@h/?confirm_publish=maybe")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`confirm_publish` must be true or false"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let err = options("rabbit://h/?rabbit_qos_prefetch_count=70000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 65535"), "{err}");
    }
}
