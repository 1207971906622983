//! The `tracing` subscriber [`LogSettings`] describes.

use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::LogSettings;

/// The filter: `RUST_LOG` when set, else `debug` or `default_level`.
fn filter(settings: &LogSettings, default_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(if settings.debug {
            "debug"
        } else {
            default_level
        })
    })
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// The log file (or its folder) cannot be opened for appending.
    #[error("cannot open the log file {}", path.display())]
    OpenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process already has a global `tracing` subscriber.
    #[error("logging is already set up in this process")]
    AlreadySet,
    /// The OpenTelemetry exporter could not be built (a malformed endpoint).
    #[error("cannot export traces over OTLP: {reason}")]
    Otlp {
        /// Why.
        reason: String,
    },
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Sets up the process's logging from `settings`: `program` names the file under `log_dir`
/// alone, and `default_level` is the level without `debug` or `RUST_LOG` (`info` for a daemon,
/// `warn` or `error` for a command that prints its own account).
///
/// # Errors
///
/// [`LoggingError::OpenFile`] when the log file cannot be opened, [`LoggingError::AlreadySet`]
/// when logging was set up before.
pub fn init(
    settings: &LogSettings,
    program: &str,
    default_level: &str,
) -> Result<(), LoggingError> {
    let stderr_colour = settings.log_color != Some(false)
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal();
    let mut layers: Vec<BoxedLayer> = Vec::with_capacity(2);
    match settings.log_path(program) {
        Some(path) => {
            let file = open_append(&path)?;
            layers.push(layer(settings.use_json, false, Mutex::new(file)));
            if settings.use_stderr {
                layers.push(layer(settings.use_json, stderr_colour, std::io::stderr));
            }
        }
        None => layers.push(layer(settings.use_json, stderr_colour, std::io::stderr)),
    }
    #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
    let mut all: Vec<BoxedLayer> = vec![Box::new(
        layers.with_filter(filter(settings, default_level)),
    )];
    #[cfg(feature = "otlp")]
    if let Some(traces) = super::otlp::layer(settings.otlp_endpoint.as_deref(), program)? {
        all.push(Box::new(
            traces.with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        ));
    }
    #[cfg(not(feature = "otlp"))]
    if settings.otlp_endpoint.is_some() {
        eprintln!(
            "warning: [tracing] otlp_endpoint is set, but this program was built without \
             rpc-runtime's `otlp` feature: no traces are exported"
        );
    }
    tracing_subscriber::registry()
        .with(all)
        .try_init()
        .map_err(|_| LoggingError::AlreadySet)
}

/// One output: text (coloured or not) or JSON lines, to `writer`.
fn layer<W>(json: bool, colour: bool, writer: W) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    if json {
        Box::new(
            fmt.json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        )
    } else {
        Box::new(fmt.with_ansi(colour))
    }
}

fn open_append(path: &Path) -> Result<File, LoggingError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LoggingError::OpenFile {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_file_that_cannot_be_opened_is_named() {
        let settings = LogSettings {
            log_file: Some("/nonexistent-folder/x.log".into()),
            ..LogSettings::default()
        };
        let error = init(&settings, "p", "info").unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent-folder/x.log"),
            "{error}"
        );
    }
}
