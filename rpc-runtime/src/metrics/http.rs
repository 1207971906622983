//! The metrics endpoint: a small HTTP/1.1 server for `GET /metrics`, `/healthz` and `/readyz`.
//!
//! It answers one request per connection and closes it, which is all a Prometheus scrape, a
//! Kubernetes probe or `curl` needs; a request line or headers over 8 KiB, or not sent within
//! ten seconds, close the connection.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A readiness check: `Err` carries why the process is not ready, for the probe's body.
pub type ReadinessCheck = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// What `/healthz` and `/readyz` answer.
///
/// `/healthz` (liveness) answers 200 whenever the process answers at all. `/readyz` answers 200
/// when the readiness check passes and 503 with the reason otherwise, and 503 until a check is
/// set: the launcher sets one once its services started (each RPC server consumes, each
/// registry answers) and removes it when they stop.
#[derive(Clone, Default)]
pub struct Health {
    check: Arc<RwLock<Option<ReadinessCheck>>>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Health {
    /// Not ready until [`set_check`](Self::set_check).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the readiness check (`None`: not ready, for a process that is starting or stopping).
    pub fn set_check(&self, check: Option<ReadinessCheck>) {
        if let Ok(mut slot) = self.check.write() {
            *slot = check;
        }
    }

    /// Whether the process is ready, or why not.
    ///
    /// # Errors
    ///
    /// Why the process is not ready.
    pub async fn readiness(&self) -> Result<(), String> {
        let check = self.check.read().ok().and_then(|slot| slot.clone());
        match check {
            Some(check) => check().await,
            None => Err("not started (or stopping)".to_owned()),
        }
    }
}

/// The running metrics endpoint; dropping it stops listening.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    health: Health,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Listens on `addr` (port 0: any free port, see [`local_addr`](Self::local_addr)).
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let health = Health::new();
        let task = tokio::spawn(accept(listener, health.clone()));
        tracing::info!(%local_addr, "metrics endpoint listening (/metrics, /healthz, /readyz)");
        Ok(Self {
            local_addr,
            health,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What `/healthz` and `/readyz` answer.
    pub fn health(&self) -> &Health {
        &self.health
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, health: Health) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let health = health.clone();
                tokio::spawn(async move {
                    if let Err(error) = answer(stream, &health).await {
                        tracing::debug!(%error, "a metrics request failed");
                    }
                });
            }
            Err(error) => {
                // Out of file descriptors, typically: wait a little instead of spinning.
                tracing::warn!(%error, "the metrics endpoint could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A response: status line, content type, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

async fn answer(mut stream: TcpStream, health: &Health) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (response, head_only) = match parse_request_line(&head) {
        Some((method @ ("GET" | "HEAD"), path)) => (route(path, health).await, method == "HEAD"),
        Some(_) => (
            Response::text("405 Method Not Allowed", "only GET and HEAD\n"),
            false,
        ),
        None => (
            Response::text("400 Bad Request", "not an HTTP request\n"),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    if !head_only {
        out.push_str(&response.body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

async fn route(path: &str, health: &Health) -> Response {
    // The query string, if any, is not used.
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    match path {
        "/metrics" => Response {
            status: "200 OK",
            content_type: super::CONTENT_TYPE,
            body: super::render(),
        },
        "/healthz" | "/livez" => Response::text("200 OK", "ok\n"),
        "/readyz" => match health.readiness().await {
            Ok(()) => Response::text("200 OK", "ready\n"),
            Err(reason) => {
                Response::text("503 Service Unavailable", format!("not ready: {reason}\n"))
            }
        },
        _ => Response::text("404 Not Found", "try /metrics, /healthz or /readyz\n"),
    }
}

/// Reads up to the end of the headers (or `MAX_HEAD` bytes).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() >= MAX_HEAD {
            break;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// `GET /path HTTP/1.1` → `("GET", "/path")`.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let path = parts.next()?;
    let version = parts.next()?;
    (version.starts_with("HTTP/1.") && path.starts_with('/') && parts.next().is_none())
        .then_some((method, path))
}

#[cfg(test)]
mod tests {
    use super::parse_request_line;

    #[test]
    fn request_lines_are_read_strictly() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line(b"HEAD /readyz HTTP/1.0\n\n"),
            Some(("HEAD", "/readyz"))
        );
        assert_eq!(parse_request_line(b"GET metrics HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line(b"GET /a b HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line(b"\xff\xfe\r\n"), None);
        assert_eq!(parse_request_line(b""), None);
    }
}
