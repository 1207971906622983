//! Configuration an OpenStack operator can reuse: oslo.config's INI files (a real `nova.conf`
//! loads), then `OS_<SECTION>__<KEY>` environment variables, then explicit settings (command-line
//! flags), each overriding the one before.
//!
//! Sections this runtime owns are checked: a bad value is an error naming the file and line (or the
//! variable, or the flag) and the key; a key that looks like a misspelling of one of ours is a
//! warning naming the key it resembles. Sections and keys of other programs are ignored.
//!
//! ```
//! use std::time::Duration;
//! use rpc_runtime::config::ConfigLoader;
//!
//! let loaded = ConfigLoader::new()
//!     .text("nova.conf", "[DEFAULT]\nhost = node1\nreport_intervall = 5\n[upgrade_levels]\nscheduler = 4.5\n")
//!     .set("DEFAULT", "service_down_time", "30")
//!     .load()
//!     .unwrap();
//! assert_eq!(loaded.config.host.as_deref(), Some("node1"));
//! assert_eq!(loaded.config.service_down_time, Duration::from_secs(30));
//! assert_eq!(loaded.config.report_interval, Duration::from_secs(10)); // the misspelled key is not read…
//! assert_eq!(loaded.warnings[0].suggestion.as_deref(), Some("report_interval")); // …but reported
//! ```

mod ini;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::registry::DatabaseUrl;
use crate::suggest::{DidYouMean, closest, nearest};
use crate::transport::url::parse_bool;
use crate::transport::{AMQP_OPTION_NAMES, TransportUrl};
use crate::version::Version;

/// The `[DEFAULT]` options this runtime reads (besides `<topic>_manager`).
pub const DEFAULT_OPTIONS: &[&str] = &[
    "host",
    "transport_url",
    "control_exchange",
    "report_interval",
    "service_down_time",
    "periodic_enable",
    "periodic_fuzzy_delay",
    "periodic_interval_max",
    "rpc_response_timeout",
    "executor_thread_pool_size",
    "graceful_shutdown_timeout",
    "debug",
    "log_file",
    "log_dir",
    "use_json",
    "use_stderr",
    "log_color",
    "rpc_ping_enabled",
];

/// Topics `[upgrade_levels]` knows without being told (nova's services).
pub const KNOWN_TOPICS: &[&str] = &["baseapi", "compute", "conductor", "scheduler"];

/// The schemes `transport_url` may use.
const TRANSPORT_SCHEMES: &[&str] = &["rabbit", "amqp", "amqps", "memory"];
const RABBIT_SECTION: &str = "oslo_messaging_rabbit";
const UPGRADE_SECTION: &str = "upgrade_levels";
const DATABASE_SECTION: &str = "database";
const METRICS_SECTION: &str = "metrics";
const TRACING_SECTION: &str = "tracing";
/// The `[tracing]` options this runtime reads.
pub const TRACING_OPTIONS: &[&str] = &["otlp_endpoint"];
/// The `[metrics]` options this runtime reads.
pub const METRICS_OPTIONS: &[&str] = &["listen"];

/// The settings of a service. Every field has oslo's (or nova's) default.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// This node's name (`host`): the server of the service's target and the registry's host.
    /// `None`: the machine's host name.
    pub host: Option<String>,
    /// Where the broker is (`transport_url`). `None`: `memory://`, in process.
    pub transport_url: Option<TransportUrl>,
    /// The exchange for targets that name none (`control_exchange`). Default `openstack`.
    pub control_exchange: String,
    /// Seconds between heartbeats (`report_interval`). Default 10 s.
    pub report_interval: Duration,
    /// A service whose last heartbeat is older is down (`service_down_time`). Default 60 s.
    pub service_down_time: Duration,
    /// Run periodic tasks (`periodic_enable`). Default `true`.
    pub periodic_enable: bool,
    /// The longest random delay before the first periodic task (`periodic_fuzzy_delay`), so
    /// services started together do not run them in step. Default 60 s.
    pub periodic_fuzzy_delay: Duration,
    /// The longest the periodic loop sleeps between checks (`periodic_interval_max`). Default 60 s.
    pub periodic_interval_max: Duration,
    /// The default timeout of a call (`rpc_response_timeout`). Default 60 s.
    pub rpc_response_timeout: Duration,
    /// Requests a server runs at once (`executor_thread_pool_size`). Default 64.
    pub executor_thread_pool_size: usize,
    /// How long a stopping service waits for requests in flight (`graceful_shutdown_timeout`).
    /// Default 60 s.
    pub graceful_shutdown_timeout: Duration,
    /// oslo.log's options (`debug`, `log_file`, `log_dir`, `use_json`, `use_stderr`,
    /// `log_color`), for [`logging::init`](crate::logging). `[DEFAULT] debug`
    /// (`logging.debug`) also makes failures sent to callers carry the server-side backtrace;
    /// by default a caller sees the failure's class, module and message, never the server's
    /// internals.
    pub logging: crate::logging::LogSettings,
    /// `[DEFAULT] rpc_ping_enabled`: services answer oslo's `oslo_rpc_server_ping` (default
    /// namespace, version 1.0) with `"pong"`, as oslo.messaging's servers do. Default `false`.
    pub rpc_ping_enabled: bool,
    /// `[metrics]`: where `/metrics`, `/healthz` and `/readyz` are served (off by default).
    pub metrics: crate::metrics::MetricsSettings,
    /// `<topic>_manager` settings, by topic.
    pub managers: BTreeMap<String, String>,
    /// `[database] connection`: where the services registry is. `None`: a SQLite file,
    /// `services.sqlite` in the working directory.
    pub database_connection: Option<DatabaseUrl>,
    /// `[upgrade_levels]`, by topic.
    pub upgrade_levels: BTreeMap<String, UpgradeLevel>,
    /// `[oslo_messaging_rabbit]` options this runtime reads, passed to the transport.
    pub rabbit: BTreeMap<String, String>,
    /// `[oslo_messaging_notifications]`: the notification drivers, topics, transport and retry.
    pub notifications: crate::notify::NotificationSettings,
    /// Every other setting, left for the application to read (a scheduler's
    /// `[filter_scheduler]`, say); [`option`](Self::option) reads one.
    pub extra: OtherOptions,
}

/// Settings this runtime does not read, by section then key. `Debug` shows their names only:
/// they may hold secrets (`[keystone_authtoken] password`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OtherOptions(BTreeMap<String, BTreeMap<String, String>>);

impl OtherOptions {
    /// One setting's raw value.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.0.get(section)?.get(key).map(String::as_str)
    }

    /// Sets one (for programs that compute a setting).
    pub fn insert(
        &mut self,
        section: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<String>,
    ) {
        self.0
            .entry(section.into())
            .or_default()
            .insert(key.into(), value.into());
    }
}

impl fmt::Debug for OtherOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .flat_map(|(s, keys)| keys.keys().map(move |k| format!("{s}.{k}"))),
            )
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: None,
            transport_url: None,
            control_exchange: "openstack".to_owned(),
            report_interval: Duration::from_secs(10),
            service_down_time: Duration::from_secs(60),
            periodic_enable: true,
            periodic_fuzzy_delay: Duration::from_secs(60),
            periodic_interval_max: Duration::from_secs(60),
            rpc_response_timeout: Duration::from_secs(60),
            executor_thread_pool_size: 64,
            graceful_shutdown_timeout: Duration::from_secs(60),
            logging: crate::logging::LogSettings::default(),
            metrics: crate::metrics::MetricsSettings::default(),
            rpc_ping_enabled: false,
            managers: BTreeMap::new(),
            database_connection: None,
            upgrade_levels: BTreeMap::new(),
            rabbit: BTreeMap::new(),
            notifications: crate::notify::NotificationSettings::default(),
            extra: OtherOptions::default(),
        }
    }
}

impl Config {
    /// A setting this runtime does not read itself (see [`extra`](Self::extra)).
    pub fn option(&self, section: &str, key: &str) -> Option<&str> {
        self.extra.get(section, key)
    }

    /// The transport URL to connect to: `transport_url` (or `memory://`) with `control_exchange`
    /// and the `[oslo_messaging_rabbit]` options added to its query where the URL does not set
    /// them itself. Only `rabbit://`, `amqp://` and `amqps://` take them.
    pub fn effective_transport_url(&self) -> TransportUrl {
        let url = self
            .transport_url
            .clone()
            .unwrap_or_else(|| TransportUrl::memory(None));
        if !matches!(url.scheme(), "rabbit" | "amqp" | "amqps") {
            return url;
        }
        let mut extra: Vec<(String, String)> = Vec::new();
        if self.control_exchange != "openstack" {
            extra.push(("control_exchange".into(), self.control_exchange.clone()));
        }
        extra.extend(self.rabbit.iter().map(|(k, v)| (k.clone(), v.clone())));
        url.with_default_options(extra)
    }

    /// Connects to [`effective_transport_url`](Self::effective_transport_url), with
    /// `rpc_response_timeout` as the wait of every call that sets none: what a service or a
    /// command built from this configuration should use. With `[metrics] listen` set, metrics
    /// are [enabled](crate::metrics::enable) first, so the connection itself is counted.
    ///
    /// # Errors
    ///
    /// As [`connect_url`](crate::transport::connect_url).
    pub async fn connect_transport(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::transport::Transport>, crate::error::TransportError> {
        if self.metrics.listen.is_some() {
            crate::metrics::enable();
        }
        let transport = crate::transport::connect_url(&self.effective_transport_url()).await?;
        Ok(crate::transport::with_default_timeout(
            transport,
            self.rpc_response_timeout,
        ))
    }

    /// The `upgrade_levels` setting for `topic`, if any.
    pub fn upgrade_level(&self, topic: &str) -> Option<&UpgradeLevel> {
        self.upgrade_levels.get(topic)
    }

    /// The `<topic>_manager` setting, if any.
    pub fn manager(&self, topic: &str) -> Option<&str> {
        self.managers.get(topic).map(String::as_str)
    }
}

/// A `[upgrade_levels]` value: the highest version to send to a topic's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeLevel {
    /// `X.Y`: cap at that version.
    Version(Version),
    /// `auto`: cap at the oldest version among the topic's live services in the registry.
    Auto,
    /// A release name (`zed`, `2023.1`), which the API being capped maps to a version.
    Alias(String),
}

impl UpgradeLevel {
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if value.eq_ignore_ascii_case("auto") {
            return Some(Self::Auto);
        }
        if value.starts_with(|c: char| c.is_ascii_digit()) && value.matches('.').count() == 1 {
            // `2023.1` is a release name, `4.2` a version: releases are 4-digit years.
            let (major, _) = value.split_once('.')?;
            if major.len() < 4 {
                return value.parse().ok().map(Self::Version);
            }
        }
        let valid = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
        valid.then(|| Self::Alias(value.to_ascii_lowercase()))
    }
}

impl fmt::Display for UpgradeLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "{v}"),
            Self::Auto => f.write_str("auto"),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A line of a file.
    File {
        /// The file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
    },
    /// An `OS_<SECTION>__<KEY>` environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// An explicit setting ([`ConfigLoader::set`]), such as a command-line flag.
    Set,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
            Self::Env { var } => write!(f, "environment variable {var}"),
            Self::Set => f.write_str("command line"),
        }
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line of a file is not INI.
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Its 1-based line.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value of the wrong type.
    #[error("{origin}: [{section}] {key}: {reason}")]
    InvalidValue {
        /// Where it was set.
        origin: Origin,
        /// Its section.
        section: String,
        /// Its key.
        key: String,
        /// What was expected, with the value when it holds no secret.
        reason: String,
    },
}

/// A setting that was not used, and why it deserves a look.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// Where it was set.
    pub origin: Origin,
    /// Its section.
    pub section: String,
    /// Its key.
    pub key: String,
    /// The known key it most resembles.
    pub suggestion: Option<String>,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: [{}] {} is not an option this service knows; it is ignored{}",
            self.origin,
            self.section,
            self.key,
            DidYouMean(self.suggestion.as_deref())
        )
    }
}

/// A loaded configuration and the warnings loading it gave.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Settings that were ignored and look like mistakes (already logged).
    pub warnings: Vec<ConfigWarning>,
}

/// One raw setting before typing.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    origin: Origin,
}

enum Source {
    File(PathBuf),
    Text(PathBuf, String),
    Env(Vec<(String, String)>),
    Set(String, String, String),
}

/// Reads configuration from files, the environment and explicit settings, in the order added;
/// later settings override earlier ones.
#[derive(Default)]
pub struct ConfigLoader {
    sources: Vec<Source>,
    topics: Vec<String>,
}

impl fmt::Debug for ConfigLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigLoader")
            .field("sources", &self.sources.len())
            .field("topics", &self.topics)
            .finish()
    }
}

impl ConfigLoader {
    /// A loader with nothing to read: [`load`](Self::load) gives the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads an INI file (oslo.config's `--config-file`).
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.push(Source::File(path.into()));
        self
    }

    /// Reads INI text as if it were the file `name`.
    pub fn text(mut self, name: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.sources.push(Source::Text(name.into(), text.into()));
        self
    }

    /// Reads `OS_<SECTION>__<KEY>` variables (`OS_DEFAULT__HOST`, `OS_DATABASE__CONNECTION`,
    /// `OS_UPGRADE_LEVELS__SCHEDULER`) from `vars`; others are ignored.
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("OS_") && k.contains("__"))
            .collect();
        self.sources.push(Source::Env(vars));
        self
    }

    /// Reads `OS_<SECTION>__<KEY>` variables from this process's environment.
    pub fn process_env(self) -> Self {
        self.env(std::env::vars())
    }

    /// Sets one option, as a command-line flag does.
    pub fn set(
        mut self,
        section: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.sources
            .push(Source::Set(section.into(), key.into(), value.into()));
        self
    }

    /// Adds a topic that `[upgrade_levels]` and `<topic>_manager` may name, besides
    /// [`KNOWN_TOPICS`].
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Reads every source and types the result. Warnings are logged and returned.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or parsed, or a value of the wrong type, naming where it was.
    pub fn load(self) -> Result<Loaded, ConfigError> {
        let mut raw: BTreeMap<(String, String), Raw> = BTreeMap::new();
        for source in self.sources {
            match source {
                Source::File(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                            path: path.clone(),
                            source,
                        })?;
                    read_ini(&path, &text, &mut raw)?;
                }
                Source::Text(path, text) => read_ini(&path, &text, &mut raw)?,
                Source::Env(vars) => {
                    for (var, value) in vars {
                        let Some((section, key)) = var["OS_".len()..].split_once("__") else {
                            continue;
                        };
                        let section = if section == "DEFAULT" {
                            section.to_owned()
                        } else {
                            section.to_ascii_lowercase()
                        };
                        let origin = Origin::Env { var: var.clone() };
                        raw.insert((section, key.to_ascii_lowercase()), Raw { value, origin });
                    }
                }
                Source::Set(section, key, value) => {
                    let origin = Origin::Set;
                    raw.insert((section, key), Raw { value, origin });
                }
            }
        }
        let mut topics: Vec<&str> = KNOWN_TOPICS.to_vec();
        topics.extend(self.topics.iter().map(String::as_str));
        let (config, warnings) = type_settings(raw, &topics)?;
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        Ok(Loaded { config, warnings })
    }
}

fn read_ini(
    path: &Path,
    text: &str,
    raw: &mut BTreeMap<(String, String), Raw>,
) -> Result<(), ConfigError> {
    let entries = ini::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.line,
        reason: e.reason,
    })?;
    for entry in entries {
        let origin = Origin::File {
            path: path.to_owned(),
            line: entry.line,
        };
        raw.insert(
            (entry.section, entry.key),
            Raw {
                value: entry.value,
                origin,
            },
        );
    }
    Ok(())
}

/// A path option: empty is unset, as oslo.config reads it.
fn path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// Turns raw settings into a typed [`Config`], with warnings for keys that look mistaken.
fn type_settings(
    raw: BTreeMap<(String, String), Raw>,
    topics: &[&str],
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let mut config = Config::default();
    let mut warnings = Vec::new();
    for ((section, key), Raw { value, origin }) in raw {
        let invalid = |reason: String| ConfigError::InvalidValue {
            origin: origin.clone(),
            section: section.clone(),
            key: key.clone(),
            reason,
        };
        let seconds = || {
            value
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| invalid(format!("expected whole seconds, not `{value}`")))
        };
        let boolean = || {
            parse_bool(&value)
                .ok_or_else(|| invalid(format!("expected true or false, not `{value}`")))
        };
        let mut warn = |known: &[&str], only_if_close: bool| {
            if only_if_close && nearest(&key, known).is_none() {
                return;
            }
            warnings.push(ConfigWarning {
                origin: origin.clone(),
                section: section.clone(),
                key: key.clone(),
                suggestion: closest(&key, known).map(str::to_owned),
            });
        };
        match (section.as_str(), key.as_str()) {
            ("DEFAULT", "host") if !value.is_empty() => config.host = Some(value),
            ("DEFAULT", "host") => {}
            ("DEFAULT", "transport_url") if value.is_empty() => {}
            ("DEFAULT", "transport_url") => {
                // The parse error redacts; the value itself may hold a password.
                let url = value
                    .parse::<TransportUrl>()
                    .map_err(|e| invalid(e.to_string()))?;
                if !TRANSPORT_SCHEMES.contains(&url.scheme()) {
                    return Err(invalid(format!(
                        "unknown transport `{}://`; expected one of rabbit://, amqp://, amqps://, memory://",
                        url.scheme()
                    )));
                }
                config.transport_url = Some(url);
            }
            ("DEFAULT", "control_exchange") if !value.is_empty() => config.control_exchange = value,
            ("DEFAULT", "control_exchange") => {
                return Err(invalid("must not be empty".into()));
            }
            ("DEFAULT", "report_interval") => {
                config.report_interval = positive(seconds()?, &invalid)?
            }
            ("DEFAULT", "service_down_time") => {
                config.service_down_time = positive(seconds()?, &invalid)?;
            }
            ("DEFAULT", "rpc_ping_enabled") => config.rpc_ping_enabled = boolean()?,
            ("DEFAULT", "periodic_enable") => {
                config.periodic_enable = boolean()?;
            }
            ("DEFAULT", "debug") => {
                config.logging.debug = boolean()?;
            }
            ("DEFAULT", "log_file") => config.logging.log_file = path(&value),
            ("DEFAULT", "log_dir") => config.logging.log_dir = path(&value),
            ("DEFAULT", "use_json") => {
                config.logging.use_json = boolean()?;
            }
            ("DEFAULT", "use_stderr") => {
                config.logging.use_stderr = boolean()?;
            }
            ("DEFAULT", "log_color") => {
                config.logging.log_color = Some(boolean()?);
            }
            ("DEFAULT", "periodic_fuzzy_delay") => config.periodic_fuzzy_delay = seconds()?,
            ("DEFAULT", "periodic_interval_max") => {
                config.periodic_interval_max = positive(seconds()?, &invalid)?;
            }
            ("DEFAULT", "rpc_response_timeout") => {
                config.rpc_response_timeout = positive(seconds()?, &invalid)?;
            }
            ("DEFAULT", "graceful_shutdown_timeout") => {
                config.graceful_shutdown_timeout = seconds()?
            }
            ("DEFAULT", "executor_thread_pool_size") => {
                config.executor_thread_pool_size = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                    invalid(format!("expected a positive whole number, not `{value}`"))
                })?;
            }
            ("DEFAULT", k) if k.ends_with("_manager") => {
                let topic = &k[..k.len() - "_manager".len()];
                if !topics.contains(&topic) {
                    let known: Vec<String> =
                        topics.iter().map(|t| format!("{t}_manager")).collect();
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    warn(&known, true);
                }
                config.managers.insert(topic.to_owned(), value);
            }
            ("DEFAULT", _) => {
                warn(DEFAULT_OPTIONS, true);
                config.extra.insert(section, key, value);
            }
            (METRICS_SECTION, "listen") if value.is_empty() => config.metrics.listen = None,
            (METRICS_SECTION, "listen") => {
                let addr = value.parse().map_err(|_| {
                    invalid(format!(
                        "expected an address and port like 127.0.0.1:9464 or [::1]:9464, not `{value}`"
                    ))
                })?;
                config.metrics.listen = Some(addr);
            }
            (METRICS_SECTION, _) => warn(METRICS_OPTIONS, false),
            (TRACING_SECTION, "otlp_endpoint") => {
                config.logging.otlp_endpoint = Some(value).filter(|v| !v.is_empty());
            }
            (TRACING_SECTION, _) => warn(TRACING_OPTIONS, false),
            (DATABASE_SECTION, "connection") if value.is_empty() => {}
            (DATABASE_SECTION, "connection") => {
                config.database_connection = Some(DatabaseUrl::new(value));
            }
            (UPGRADE_SECTION, topic) => {
                if !topics.contains(&topic) {
                    warn(topics, false);
                }
                if value.is_empty() {
                    continue;
                }
                let level = UpgradeLevel::parse(&value).ok_or_else(|| {
                    invalid(format!(
                        "expected `major.minor`, `auto` or a release name, not `{value}`"
                    ))
                })?;
                config.upgrade_levels.insert(topic.to_owned(), level);
            }
            (RABBIT_SECTION, k) if AMQP_OPTION_NAMES.contains(&k) && k != "control_exchange" => {
                config.rabbit.insert(key.clone(), value);
            }
            (RABBIT_SECTION, _) => warn(AMQP_OPTION_NAMES, false),
            (crate::notify::SECTION, k) if crate::notify::OPTION_NAMES.contains(&k) => {
                crate::notify::set_option(&mut config.notifications, k, &value).map_err(invalid)?;
            }
            (crate::notify::SECTION, _) => warn(crate::notify::OPTION_NAMES, false),
            _ => {
                config.extra.insert(section, key, value);
            }
        }
    }
    Ok((config, warnings))
}

fn positive(
    value: Duration,
    invalid: &impl Fn(String) -> ConfigError,
) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        Err(invalid("must be at least 1 second".into()))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests;
