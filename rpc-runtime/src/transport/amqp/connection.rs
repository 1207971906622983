//! The connection to RabbitMQ: opening a session on the first reachable host (failover), and the
//! supervisor that reopens it with backoff when it breaks, then redeclares and re-consumes.
//!
//! lapin's own recovery is not used: it cannot redeclare broker-named queues and its backoff
//! overshoots outages. The supervisor owns the loop, so every step is ours to test.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;

use rand::Rng;
use rand::seq::SliceRandom;

use super::options::{AmqpOptions, FailoverStrategy};
use crate::error::TransportError;
use crate::transport::url::percent_encode;
use crate::transport::{TransportHost, TransportUrl};

/// One live connection and the channel used to publish on it.
pub(crate) struct Session {
    /// Increases with every reconnect, so a consumer of an old session cannot break a new one.
    pub(crate) generation: u64,
    /// Which host of the URL it is connected to, so a reconnect starts at the next one.
    pub(crate) host_index: usize,
    pub(crate) connection: Connection,
    pub(crate) publisher: Channel,
}

impl Session {
    /// Opens a session on the first host that answers, trying each host of the URL once in the
    /// order `strategy` gives, starting (round-robin) at host `first`.
    pub(crate) async fn open(
        url: &TransportUrl,
        options: &AmqpOptions,
        generation: u64,
        first: usize,
    ) -> Result<Self, TransportError> {
        let mut last_error = None;
        let hosts: Vec<TransportHost> = if url.hosts().is_empty() {
            vec![default_host()]
        } else {
            url.hosts().to_vec()
        };
        for index in host_order(hosts.len(), first, options.failover_strategy) {
            let host = &hosts[index];
            match Self::open_host(url, host, options, generation, index).await {
                Ok(session) => {
                    tracing::info!(host = %host, generation, "connected to RabbitMQ");
                    return Ok(session);
                }
                Err(error) => {
                    tracing::warn!(host = %host, %error, "could not connect to RabbitMQ");
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| TransportError::Connect {
            url: url.to_string(),
            reason: "no host to connect to".to_owned(),
        }))
    }

    async fn open_host(
        url: &TransportUrl,
        host: &TransportHost,
        options: &AmqpOptions,
        generation: u64,
        host_index: usize,
    ) -> Result<Self, TransportError> {
        let uri = lapin_uri(url, host, options);
        let connect_error = |reason: String| TransportError::Connect {
            url: url.to_string(),
            reason,
        };
        let properties =
            ConnectionProperties::default().with_connection_name(connection_name().into());
        let connecting = async {
            if options.tls {
                connect_tls(&uri, properties, options).await
            } else {
                Connection::connect(&uri, properties)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let connection = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .map_err(|_| connect_error("timed out after 10 s".to_owned()))?
            .map_err(|e| connect_error(redact(&e, host)))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        if options.publisher_confirms {
            publisher
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| connect_error(e.to_string()))?;
        }
        Ok(Self {
            generation,
            host_index,
            connection,
            publisher,
        })
    }

    /// Closes the connection, ignoring errors (it may be dead already) and giving up after a few
    /// seconds (a half-dead connection may never answer the close).
    pub(crate) async fn close(&self) {
        if self.connection.status().connected() {
            let closing = self.connection.close(200, "closing".into());
            let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
        }
    }
}

/// Connects with TLS, trusting `ssl_ca_file` when given and presenting the client certificate
/// of `ssl_cert_file` and `ssl_key_file` when given. A broker that requires a certificate and
/// got none is told apart in the error.
#[cfg(feature = "amqp-tls")]
async fn connect_tls(
    uri: &str,
    properties: ConnectionProperties,
    options: &AmqpOptions,
) -> Result<Connection, String> {
    let read = |option: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {option} {}: {e}", path.display()))
    };
    let cert_chain = match &options.ssl_ca_file {
        Some(path) => Some(
            String::from_utf8(read("ssl_ca_file", path)?)
                .map_err(|_| format!("ssl_ca_file {} is not PEM text", path.display()))?,
        ),
        None => None,
    };
    let identity = match (&options.ssl_cert_file, &options.ssl_key_file) {
        (Some(cert), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
            pem: read("ssl_cert_file", cert)?,
            key: read("ssl_key_file", key)?,
        }),
        _ => None,
    };
    let presented = identity.is_some();
    let config = lapin::tcp::OwnedTLSConfig {
        identity,
        cert_chain,
    };
    let runtime = lapin::runtime::default_runtime().map_err(|e| e.to_string())?;
    Connection::connect_with_config(uri, properties, config, runtime)
        .await
        .map_err(|e| tls_failure(&e.to_string(), presented))
}

/// A TLS connect error, with what to do when the broker asked for a client certificate. The
/// broker's alert may be lost when it closes the connection first (seen under load): a connection
/// closed or reset during set-up, with no certificate given, names the likely reason too.
#[cfg(feature = "amqp-tls")]
fn tls_failure(error: &str, presented_certificate: bool) -> String {
    if presented_certificate {
        return error.to_owned();
    }
    let asked_for_one =
        error.contains("CertificateRequired") || error.contains("certificate required");
    let closed = [
        "Connection reset",
        "Broken pipe",
        "unexpected end of file",
        "UnexpectedEof",
    ]
    .iter()
    .any(|sign| error.contains(sign));
    if asked_for_one {
        format!(
            "the broker requires a client certificate and none was given (set ssl_cert_file and \
             ssl_key_file): {error}"
        )
    } else if closed {
        format!(
            "the broker closed the connection during set-up; it may require a client certificate, \
             and none was given (set ssl_cert_file and ssl_key_file): {error}"
        )
    } else {
        error.to_owned()
    }
}

/// Without the `amqp-tls` feature, TLS is a clear error.
#[cfg(not(feature = "amqp-tls"))]
async fn connect_tls(
    _uri: &str,
    _properties: ConnectionProperties,
    _options: &AmqpOptions,
) -> Result<Connection, String> {
    Err("TLS needs the `amqp-tls` feature of rpc-runtime".to_owned())
}

/// The connection name oslo.messaging gives its connections: `<basename(argv[0])>:<pid>:<uuid>`,
/// so `rabbitmqctl list_connections` shows who is who.
fn connection_name() -> String {
    let program = std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .and_then(|name| name.to_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "rpc".to_owned());
    format!(
        "{program}:{}:{}",
        std::process::id(),
        crate::envelope::MessageId::new()
    )
}

/// `localhost` with the default port and credentials, when a URL names no host.
fn default_host() -> TransportHost {
    TransportHost::named("localhost")
}

/// The URI lapin connects with for one host: credentials, vhost (percent-encoded; `/` is
/// `%2f`) and the heartbeat.
fn lapin_uri(url: &TransportUrl, host: &TransportHost, options: &AmqpOptions) -> String {
    let scheme = if url.scheme() == "amqps" {
        "amqps"
    } else {
        "amqp"
    };
    let user = host.username.as_deref().unwrap_or("guest");
    let password = host.password().unwrap_or("guest");
    let port = host
        .port
        .unwrap_or(if scheme == "amqps" { 5671 } else { 5672 });
    let vhost = url.virtual_host().unwrap_or("/");
    let hostname = if host.hostname.contains(':') {
        format!("[{}]", host.hostname)
    } else {
        host.hostname.clone()
    };
    format!(
        "{scheme}://{}:{}@{hostname}:{port}/{}?heartbeat={}",
        percent_encode(user),
        percent_encode(password),
        percent_encode(vhost),
        options.heartbeat
    )
}

/// Removes a host's password from an error text, in case a library echoes the URI.
fn redact(text: &str, host: &TransportHost) -> String {
    match host.password() {
        Some(password) if !password.is_empty() => text
            .replace(password, "***")
            .replace(&percent_encode(password), "***"),
        _ => text.to_owned(),
    }
}

/// The order in which to try `count` hosts: round-robin from `first`, or shuffled.
fn host_order(count: usize, first: usize, strategy: FailoverStrategy) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).map(|i| (first + i) % count.max(1)).collect();
    if strategy == FailoverStrategy::Shuffle {
        order.shuffle(&mut rand::rng());
    }
    order
}

/// The waits between rounds of connection attempts, as kombu spaces them for oslo:
/// `rabbit_retry_interval`, then `rabbit_retry_backoff` more each round, at most
/// `rabbit_interval_max`; each wait jittered (see [`jittered`]).
pub(crate) struct Backoff {
    rounds: u32,
    interval: Duration,
    step: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(options: &AmqpOptions) -> Self {
        Self {
            rounds: 0,
            interval: options.retry_interval,
            step: options.retry_backoff,
            max: options.interval_max,
        }
    }

    /// The wait before the next round, before jitter.
    fn next_base(&mut self) -> Duration {
        let base = self
            .step
            .checked_mul(self.rounds)
            .and_then(|added| self.interval.checked_add(added))
            .map_or(self.max, |wait| wait.min(self.max));
        self.rounds = self.rounds.saturating_add(1);
        base
    }

    /// The wait before the next round of attempts.
    pub(crate) fn next_delay(&mut self) -> Duration {
        jittered(self.next_base())
    }
}

/// A wait shortened by a random fraction of up to a quarter, so that thousands of agents that
/// lost the same broker at the same moment do not come back in lockstep; never longer than
/// asked.
pub(crate) fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(rand::rng().random_range(0.75..=1.0))
}

/// Waits until `session` holds a live session and returns it, or gives up after `timeout`.
pub(crate) async fn current_session(
    session: &watch::Sender<Option<Arc<Session>>>,
    timeout: Duration,
) -> Result<Arc<Session>, TransportError> {
    if let Some(live) = session.borrow().clone() {
        return Ok(live);
    }
    let mut rx = session.subscribe();
    let live = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
    match live {
        Ok(Ok(guard)) => guard.clone().ok_or(TransportError::NotConnected),
        Ok(Err(_)) => Err(TransportError::Closed),
        Err(_) => Err(TransportError::NotConnected),
    }
}

/// Waits for a live session newer than generation `after` (the one that broke), up to
/// `timeout`.
pub(crate) async fn next_session(
    session: &watch::Sender<Option<Arc<Session>>>,
    after: u64,
    timeout: Duration,
) -> Result<Arc<Session>, TransportError> {
    let mut rx = session.subscribe();
    let newer = rx.wait_for(|s| s.as_ref().is_some_and(|s| s.generation > after));
    match tokio::time::timeout(timeout, newer).await {
        Ok(Ok(guard)) => guard.clone().ok_or(TransportError::NotConnected),
        Ok(Err(_)) => Err(TransportError::Closed),
        Err(_) => Err(TransportError::NotConnected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lapin_uri_encodes_credentials_and_vhost() {
        let url: TransportUrl = "rabbit://nova:p%40ss%2Fw@rmq:5673/%2f".parse().unwrap();
        let uri = lapin_uri(&url, &url.hosts()[0], &AmqpOptions::default());
        assert_eq!(uri, "amqp://nova:p%40ss%2Fw@rmq:5673/%2F?heartbeat=60");
        let url: TransportUrl = "rabbit://[::1]/".parse().unwrap();
        let uri = lapin_uri(&url, &url.hosts()[0], &AmqpOptions::default());
        assert_eq!(uri, "amqp://guest:guest@[::1]:5672/%2F?heartbeat=60");
    }

    #[test]
    fn backoff_adds_the_step_each_round_up_to_the_max_as_kombu_does() {
        let options = AmqpOptions::default();
        let mut backoff = Backoff::new(&options);
        let bases: Vec<u64> = (0..18).map(|_| backoff.next_base().as_secs()).collect();
        assert_eq!(
            bases,
            [
                1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 30, 30, 30
            ]
        );
        let options = AmqpOptions {
            retry_interval: Duration::from_secs(5),
            retry_backoff: Duration::ZERO,
            interval_max: Duration::from_secs(2),
            ..AmqpOptions::default()
        };
        let mut backoff = Backoff::new(&options);
        assert_eq!(
            backoff.next_base(),
            Duration::from_secs(2),
            "the max caps the interval too"
        );
    }

    #[test]
    fn waits_are_jittered_within_a_quarter_below_the_base() {
        let mut backoff = Backoff::new(&AmqpOptions::default());
        let waits: Vec<Duration> = (0..200).map(|_| backoff.next_delay()).collect();
        for wait in &waits[20..] {
            assert!(
                (Duration::from_millis(22_500)..=Duration::from_secs(30)).contains(wait),
                "{wait:?}"
            );
        }
        let distinct: std::collections::HashSet<Duration> = waits[20..].iter().copied().collect();
        assert!(
            distinct.len() > 100,
            "agents must not retry in lockstep: {distinct:?}"
        );
    }

    #[test]
    fn hosts_are_tried_round_robin_from_the_next_one_or_shuffled() {
        assert_eq!(host_order(3, 0, FailoverStrategy::RoundRobin), [0, 1, 2]);
        assert_eq!(host_order(3, 2, FailoverStrategy::RoundRobin), [2, 0, 1]);
        assert_eq!(host_order(3, 3, FailoverStrategy::RoundRobin), [0, 1, 2]);
        assert_eq!(host_order(1, 1, FailoverStrategy::RoundRobin), [0]);
        let orders: std::collections::HashSet<Vec<usize>> = (0..200)
            .map(|_| {
                let mut order = host_order(4, 0, FailoverStrategy::Shuffle);
                let seen = order.clone();
                order.sort_unstable();
                assert_eq!(order, [0, 1, 2, 3]);
                seen
            })
            .collect();
        assert!(orders.len() > 1, "shuffle shuffles");
    }

    #[cfg(feature = "amqp-tls")]
    #[test]
    fn a_refused_tls_set_up_without_a_certificate_names_the_likely_reason() {
        let alert = tls_failure("IO error: received fatal alert: CertificateRequired", false);
        assert!(
            alert.starts_with("the broker requires a client certificate"),
            "{alert}"
        );
        let reset = tls_failure("IO error: Connection reset by peer (os error 104)", false);
        assert!(
            reset.contains("may require a client certificate"),
            "{reset}"
        );
        let other = "IO error: invalid peer certificate: UnknownIssuer";
        assert_eq!(tls_failure(other, false), other);
        let with_one = "IO error: Connection reset by peer (os error 104)";
        assert_eq!(tls_failure(with_one, true), with_one);
    }

    #[test]
    fn redaction_hides_plain_and_encoded_passwords() {
        let url: TransportUrl = "rabbit://u:s3cr%2Fet@h/".parse().unwrap();
        let host = &url.hosts()[0];
        assert_eq!(redact("bad s3cr/et and s3cr%2Fet", host), "bad *** and ***");
    }
}
