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

use super::options::AmqpOptions;
use crate::error::TransportError;
use crate::transport::url::percent_encode;
use crate::transport::{TransportHost, TransportUrl};

/// One live connection and the channel used to publish on it.
pub(crate) struct Session {
    /// Increases with every reconnect, so a consumer of an old session cannot break a new one.
    pub(crate) generation: u64,
    pub(crate) connection: Connection,
    pub(crate) publisher: Channel,
}

impl Session {
    /// Opens a session on the first host that answers, in the URL's order.
    pub(crate) async fn open(
        url: &TransportUrl,
        options: &AmqpOptions,
        generation: u64,
    ) -> Result<Self, TransportError> {
        let mut last_error = None;
        let hosts: Vec<TransportHost> = if url.hosts().is_empty() {
            vec![default_host()]
        } else {
            url.hosts().to_vec()
        };
        for host in &hosts {
            match Self::open_host(url, host, options, generation).await {
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

/// Connects with TLS, trusting `ssl_ca_file` when given.
#[cfg(feature = "amqp-tls")]
async fn connect_tls(
    uri: &str,
    properties: ConnectionProperties,
    options: &AmqpOptions,
) -> Result<Connection, String> {
    let cert_chain = match &options.ssl_ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read ssl_ca_file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let config = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain,
    };
    let runtime = lapin::runtime::default_runtime().map_err(|e| e.to_string())?;
    Connection::connect_with_config(uri, properties, config, runtime)
        .await
        .map_err(|e| e.to_string())
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

/// Exponential backoff between reconnect attempts, capped.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(options: &AmqpOptions) -> Self {
        Self {
            next: options.reconnect_initial,
            max: options.reconnect_max.max(options.reconnect_initial),
        }
    }

    /// The wait before the next attempt; each call doubles it up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
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
    fn backoff_doubles_up_to_the_cap() {
        let options = AmqpOptions {
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(500),
            ..AmqpOptions::default()
        };
        let mut backoff = Backoff::new(&options);
        let delays: Vec<u128> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn redaction_hides_plain_and_encoded_passwords() {
        let url: TransportUrl = "rabbit://u:s3cr%2Fet@h/".parse().unwrap();
        let host = &url.hosts()[0];
        assert_eq!(redact("bad s3cr/et and s3cr%2Fet", host), "bad *** and ***");
    }
}
