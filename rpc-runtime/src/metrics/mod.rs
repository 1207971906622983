//! Prometheus metrics: what servers, clients, transports and the service lifecycle record, and
//! an HTTP endpoint that serves them (`[metrics] listen`, off by default).
//!
//! Nothing is recorded until [`enable`] is called (the launcher calls it when `[metrics] listen`
//! is set); until then each place that would record costs one atomic load. Once enabled, the
//! metrics are process-wide, like the log subscriber: every server, client and transport in the
//! process records into one set. [`MetricsServer`] serves them as Prometheus text at `/metrics`,
//! beside `/healthz` and `/readyz`.
//!
//! Every metric, its labels and what moves it are listed in `docs/operations.md`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! rpc_runtime::metrics::enable();
//! let server = rpc_runtime::metrics::MetricsServer::start("127.0.0.1:0".parse()?).await?;
//! println!("scrape http://{}/metrics", server.local_addr());
//! // A family shows once it has a series: nothing was served yet.
//! assert!(!rpc_runtime::metrics::render().contains("rpc_server_requests_total"));
//! # Ok(()) }
//! ```

mod families;
mod http;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

pub use self::families::Metrics;
pub(crate) use self::families::{
    Refusal, SendKind, ServedMethod, TransportEvent, Unsettled, VersionLabel,
};
pub use self::http::{Health, MetricsServer, ReadinessCheck};

/// `[metrics]`: where the metrics endpoint listens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSettings {
    /// `listen`: the address and port of `/metrics`, `/healthz` and `/readyz`
    /// (`127.0.0.1:9464`). `None` (the default): no endpoint and nothing recorded.
    pub listen: Option<SocketAddr>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();
/// Whether to record: set by [`enable`], cleared by [`disable`].
static RECORDING: AtomicBool = AtomicBool::new(false);

/// Starts recording this process's metrics (the same set every time).
pub fn enable() -> &'static Metrics {
    let metrics = METRICS.get_or_init(Metrics::new);
    RECORDING.store(true, Ordering::Release);
    metrics
}

/// Stops recording until [`enable`] is called again; what was recorded stays, and is still
/// served. (The benchmarks measure a call's cost with metrics on and off this way.)
pub fn disable() {
    RECORDING.store(false, Ordering::Release);
}

/// The metrics, while recording.
#[inline]
pub(crate) fn get() -> Option<&'static Metrics> {
    if RECORDING.load(Ordering::Acquire) {
        METRICS.get()
    } else {
        None
    }
}

/// The metrics as Prometheus text (format 0.0.4); empty until [`enable`] is first called.
pub fn render() -> String {
    let mut text = String::new();
    if let Some(metrics) = METRICS.get() {
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, metrics.registry());
    }
    text
}

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
