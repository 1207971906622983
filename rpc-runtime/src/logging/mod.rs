//! Logging as oslo.log's options set it up, so a `nova.conf`'s logging lines work as they are:
//! `[DEFAULT] debug`, `log_file`, `log_dir`, `use_json`, `use_stderr` and `log_color`.
//!
//! - The level is `info`, or `debug` with `debug = true`; `RUST_LOG` (an
//!   [`EnvFilter`](tracing_subscriber::EnvFilter) directive) overrides both.
//! - `log_file` (joined to `log_dir` when that is set too) or `log_dir` alone (`<dir>/<program>.log`,
//!   as oslo names it) writes to that file, appending; `use_stderr = true` writes to standard error
//!   as well. With no file, logs go to standard error (oslo falls back to standard output, which
//!   our programs keep for what they print: `ready`, tables, JSON).
//! - Colour only where a person reads: standard error when it is a terminal, never a file, never
//!   with `NO_COLOR` set or `log_color = false`.
//! - `use_json = true`: one JSON object per line, the event's fields at the top level and the
//!   request's span (`request_id`, `topic`, `method`, ...) under `span`.
//!
//! ```no_run
//! use rpc_runtime::config::ConfigLoader;
//!
//! let loaded = ConfigLoader::new()
//!     .text("nova.conf", "[DEFAULT]\ndebug = true\nlog_dir = /var/log/nova\nuse_json = true\n")
//!     .load()?;
//! rpc_runtime::logging::init(&loaded.config.logging, "nova-scheduler", "info")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;

#[cfg(feature = "logging")]
mod subscriber;
#[cfg(feature = "logging")]
pub use subscriber::{LoggingError, init};
#[cfg(feature = "otlp")]
mod otlp;
#[cfg(feature = "otlp")]
pub use otlp::flush_traces;

/// oslo.log's options this runtime reads (`[DEFAULT]`). Every field has oslo's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogSettings {
    /// `debug`: log at `debug` instead of `info`.
    pub debug: bool,
    /// `log_file`: the file to log to (relative to `log_dir` when that is set).
    pub log_file: Option<PathBuf>,
    /// `log_dir`: the folder of `log_file`, or of `<program>.log` when no `log_file` is set.
    pub log_dir: Option<PathBuf>,
    /// `use_json`: one JSON object per line.
    pub use_json: bool,
    /// `use_stderr`: also log to standard error when logging to a file.
    pub use_stderr: bool,
    /// `log_color`: `Some(false)` never colours; otherwise standard error is coloured when it is
    /// a terminal (and `NO_COLOR` is not set). A file is never coloured.
    pub log_color: Option<bool>,
    /// `[tracing] otlp_endpoint`: where spans are exported over OTLP/HTTP (a base URL,
    /// `http://collector:4318`), with the `otlp` feature. `None`: the `OTEL_EXPORTER_OTLP_*`
    /// variables decide, and without them nothing is exported.
    pub otlp_endpoint: Option<String>,
}

impl LogSettings {
    /// The file logs go to, as oslo.log works it out: `log_dir/log_file`, `log_file`,
    /// `log_dir/<program>.log`, or none.
    pub fn log_path(&self, program: &str) -> Option<PathBuf> {
        match (&self.log_dir, &self.log_file) {
            (Some(dir), Some(file)) => Some(dir.join(file)),
            (None, Some(file)) => Some(file.clone()),
            (Some(dir), None) => Some(dir.join(format!("{program}.log"))),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_file_is_found_as_oslo_finds_it() {
        let mut settings = LogSettings::default();
        assert_eq!(settings.log_path("nova-scheduler"), None);
        settings.log_dir = Some("/var/log/nova".into());
        assert_eq!(
            settings.log_path("nova-scheduler"),
            Some(PathBuf::from("/var/log/nova/nova-scheduler.log"))
        );
        settings.log_file = Some("sched.log".into());
        assert_eq!(
            settings.log_path("nova-scheduler"),
            Some(PathBuf::from("/var/log/nova/sched.log"))
        );
        settings.log_dir = None;
        assert_eq!(
            settings.log_path("nova-scheduler"),
            Some(PathBuf::from("sched.log"))
        );
    }
}
