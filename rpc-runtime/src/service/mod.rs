//! A service's lifecycle (nova's `Service.create` / `start` / `stop`, made explicit): every unset
//! field filled from configuration, then the start steps in nova's order, each logged, and `stop`
//! undoing them in reverse.
//!
//! ```no_run
//! use std::sync::Arc;
//! use rpc_runtime::config::ConfigLoader;
//! use rpc_runtime::{Context, Service, rpc_endpoint};
//! use rpc_runtime::service::Manager;
//!
//! struct Conductor { host: String }
//!
//! #[rpc_endpoint(topic = "conductor", version = "1.0")]
//! impl Conductor {
//!     #[rpc]
//!     async fn where_am_i(&self, _ctx: &Context) -> String { self.host.clone() }
//!
//!     #[periodic_task(spacing = 30)]
//!     async fn tidy_up(&self, _ctx: &Context) {}
//! }
//!
//! impl Manager for Conductor {}
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ConfigLoader::new().file("/etc/nova/nova.conf").process_env().load()?.config;
//! let mut service = Service::builder(config)
//!     .binary("nova-conductor")
//!     .create(|host| Conductor { host: host.to_owned() })?;
//! service.start().await?;
//! // … until a signal …
//! service.stop().await;
//! # Ok(()) }
//! ```

mod base_api;
mod heartbeat;
mod manager;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::heartbeat::HeartbeatStatus;
pub use self::manager::{HookError, Manager};
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::error::TransportError;
use crate::metrics::ReadinessCheck;
use crate::periodic::{self, PeriodicConfig};
use crate::registry::{NewService, Registry, RegistryError, ServiceRecord};
use crate::server::{RpcServer, ServerConfig};
use crate::target::Target;
use crate::transport::Transport;

/// How long a readiness check waits for the registry.
const REGISTRY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a service could not be created or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The configuration does not fit this service.
    #[error("configuration: {0}")]
    Config(String),
    /// A manager hook failed.
    #[error("{hook} failed")]
    Hook {
        /// `init_host`, `pre_start_hook` or `post_start_hook`.
        hook: &'static str,
        /// What it returned.
        #[source]
        source: HookError,
    },
    /// The services registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The transport could not connect or listen.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// `start` on a service that runs.
    #[error("the service is already started")]
    AlreadyStarted,
    /// A notification listener run by the launcher could not start.
    #[error(transparent)]
    Listener(#[from] crate::notify::ListenerError),
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Every request in flight finished and answered.
    Graceful,
    /// Requests were still running after `graceful_shutdown_timeout`; they were abandoned.
    TimedOut,
}

/// Fills a [`Service`] from configuration; every setter overrides what configuration says.
#[must_use]
pub struct ServiceBuilder {
    config: Config,
    host: Option<String>,
    binary: Option<String>,
    topic: Option<String>,
    availability_zone: Option<String>,
    endpoints: Vec<Arc<dyn Endpoint>>,
    transport: Option<Arc<dyn Transport>>,
    registry: Option<Arc<dyn Registry>>,
}

impl ServiceBuilder {
    /// The availability zone the service declares in the registry. Default: none.
    pub fn availability_zone(mut self, zone: impl Into<String>) -> Self {
        self.availability_zone = Some(zone.into());
        self
    }

    /// The node's name. Default: `[DEFAULT] host`, else the machine's host name.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The program's name, as registered. Default: the executable's file name.
    pub fn binary(mut self, binary: impl Into<String>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// The RPC topic. Default: the binary without its prefix (`nova-scheduler` → `scheduler`).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Another endpoint to serve beside the manager and the base API (a compatibility shim).
    pub fn endpoint(mut self, endpoint: Arc<dyn Endpoint>) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// A transport to use instead of connecting to `transport_url` at start.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// A registry to use instead of opening `[database] connection` at start.
    pub fn registry(mut self, registry: Arc<dyn Registry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Builds the service, constructing its manager with the host.
    ///
    /// # Errors
    ///
    /// [`ServiceError::Config`] when the host or binary cannot be found or is empty.
    pub fn create<M: Manager>(
        self,
        make_manager: impl FnOnce(&str) -> M,
    ) -> Result<Service<M>, ServiceError> {
        let host = match self.host.or_else(|| self.config.host.clone()) {
            Some(host) => host,
            None => machine_hostname()?,
        };
        let binary = match self.binary {
            Some(binary) => binary,
            None => executable_name()?,
        };
        let topic = self.topic.unwrap_or_else(|| topic_of(&binary).to_owned());
        for (what, value) in [("host", &host), ("binary", &binary), ("topic", &topic)] {
            if value.trim().is_empty() {
                return Err(ServiceError::Config(format!("the {what} is empty")));
            }
        }
        let manager = Arc::new(make_manager(&host));
        Ok(Service {
            host,
            binary,
            topic,
            availability_zone: self.availability_zone,
            manager,
            config: self.config,
            endpoints: self.endpoints,
            transport: self.transport,
            registry: self.registry,
            heartbeat_status: watch::channel(HeartbeatStatus::default()).0,
            running: None,
        })
    }
}

/// One service: a manager served on `(topic, server = host)`, registered and heartbeating in the
/// registry, running its periodic tasks.
pub struct Service<M> {
    host: String,
    binary: String,
    topic: String,
    availability_zone: Option<String>,
    manager: Arc<M>,
    config: Config,
    endpoints: Vec<Arc<dyn Endpoint>>,
    transport: Option<Arc<dyn Transport>>,
    registry: Option<Arc<dyn Registry>>,
    heartbeat_status: watch::Sender<HeartbeatStatus>,
    running: Option<Running>,
}

/// The names of endpoints, for `Debug`.
fn endpoint_names(endpoints: &[Arc<dyn Endpoint>]) -> Vec<&'static str> {
    endpoints.iter().map(|e| e.descriptor().name).collect()
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("host", &self.host)
            .field("binary", &self.binary)
            .field("topic", &self.topic)
            .field("endpoints", &endpoint_names(&self.endpoints))
            .finish_non_exhaustive()
    }
}

impl<M: Endpoint> std::fmt::Debug for Service<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("host", &self.host)
            .field("binary", &self.binary)
            .field("topic", &self.topic)
            .field("manager", &self.manager.descriptor().name)
            .field("endpoints", &endpoint_names(&self.endpoints))
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

/// What `start` started, for `stop` to undo.
#[derive(Debug)]
struct Running {
    record: ServiceRecord,
    server: RpcServer,
    stop: watch::Sender<bool>,
    heartbeat: JoinHandle<()>,
    periodic: Option<JoinHandle<()>>,
}

impl Service<()> {
    /// Starts describing a service from `config`.
    pub fn builder(config: Config) -> ServiceBuilder {
        ServiceBuilder {
            config,
            host: None,
            binary: None,
            topic: None,
            availability_zone: None,
            endpoints: Vec::new(),
            transport: None,
            registry: None,
        }
    }
}

impl<M: Manager> Service<M> {
    /// The node's name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The program's name.
    pub fn binary(&self) -> &str {
        &self.binary
    }

    /// The RPC topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The manager.
    pub fn manager(&self) -> &Arc<M> {
        &self.manager
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Its registry row, once started.
    pub fn record(&self) -> Option<&ServiceRecord> {
        self.running.as_ref().map(|r| &r.record)
    }

    /// The transport it serves on, once started (or when one was given).
    pub fn transport(&self) -> Option<&Arc<dyn Transport>> {
        self.transport.as_ref()
    }

    /// The registry, once started (or when one was given).
    pub fn registry(&self) -> Option<&Arc<dyn Registry>> {
        self.registry.as_ref()
    }

    /// The service's readiness, for `/readyz`: ready while its RPC server consumes (and its
    /// transport is connected) and its registry answers a read of the service's own row within
    /// a second. `None` until it started.
    pub fn readiness_check(&self) -> Option<ReadinessCheck> {
        let running = self.running.as_ref()?;
        let registry = Arc::clone(self.registry.as_ref()?);
        let probe = running.server.probe();
        let name: Arc<str> = format!("{}@{}", self.binary, self.host).into();
        let (host, binary): (Arc<str>, Arc<str>) =
            (self.host.as_str().into(), self.binary.as_str().into());
        Some(Arc::new(move || {
            let (probe, registry, name) = (probe.clone(), Arc::clone(&registry), Arc::clone(&name));
            let (host, binary) = (Arc::clone(&host), Arc::clone(&binary));
            Box::pin(async move {
                if probe.is_draining() {
                    return Err(format!(
                        "{name}: draining (no longer taking requests from the shared topic queue)"
                    ));
                }
                if !probe.is_consuming() {
                    return Err(format!(
                        "{name}: the RPC server is not consuming (the broker connection is down, or it stopped)"
                    ));
                }
                match tokio::time::timeout(
                    REGISTRY_PROBE_TIMEOUT,
                    registry.get_by_host_and_binary(&host, &binary),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(error)) => Err(format!(
                        "{name}: the registry failed: {}",
                        crate::error::chain(&error)
                    )),
                    Err(_) => Err(format!(
                        "{name}: the registry did not answer within {REGISTRY_PROBE_TIMEOUT:?}"
                    )),
                }
            })
        }))
    }

    /// Drains its RPC server ([`RpcServer::drain`]): no new requests from the shared topic
    /// queue, the rest goes on until [`stop`](Self::stop). Nothing to do before it started.
    ///
    /// # Errors
    ///
    /// The broker did not take the consumer's cancellation.
    pub async fn drain(&self) -> Result<(), TransportError> {
        match &self.running {
            Some(running) => running.server.drain().await,
            None => Ok(()),
        }
    }

    /// Watches the heartbeat loop (counts, last row, last failure).
    pub fn heartbeats(&self) -> watch::Receiver<HeartbeatStatus> {
        self.heartbeat_status.subscribe()
    }

    /// Starts the service, in nova's order, each step logged: version banner, config check,
    /// `init_host`, registry get-or-create, `pre_start_hook`, RPC server (manager, base API, other
    /// endpoints: the manager's compatibility shims, then the builder's), `post_start_hook`, service
    /// group join, periodic tasks.
    ///
    /// # Errors
    ///
    /// The first step that fails; what was started before it is stopped again.
    pub async fn start(&mut self) -> Result<(), ServiceError> {
        if self.running.is_some() {
            return Err(ServiceError::AlreadyStarted);
        }
        let (name, api_version, periodic_tasks) = {
            let d = self.manager.descriptor();
            (d.name, d.version, d.periodic_tasks.len())
        };
        tracing::info!(
            binary = %self.binary,
            host = %self.host,
            topic = %self.topic,
            runtime = env!("CARGO_PKG_VERSION"),
            api = %api_version,
            "starting {} node (rpc-runtime {}, {name} API {api_version})",
            self.binary,
            env!("CARGO_PKG_VERSION"),
        );
        self.check_config()?;
        tracing::info!("configuration checked");

        self.manager
            .init_host()
            .await
            .map_err(|source| ServiceError::Hook {
                hook: "init_host",
                source,
            })?;
        tracing::info!("init_host done");

        let registry = match &self.registry {
            Some(registry) => Arc::clone(registry),
            None => {
                let registry = open_registry(&self.config).await?;
                self.registry = Some(Arc::clone(&registry));
                registry
            }
        };
        let record = self.register(registry.as_ref()).await?;
        tracing::info!(
            service_id = record.id,
            "registered in the services registry"
        );

        self.manager
            .pre_start_hook(&record)
            .await
            .map_err(|source| ServiceError::Hook {
                hook: "pre_start_hook",
                source,
            })?;
        tracing::info!("pre_start_hook done");

        let transport = match &self.transport {
            Some(transport) => Arc::clone(transport),
            None => {
                let url = self.config.effective_transport_url();
                tracing::info!(transport_url = %url, "connecting the transport");
                let transport = self.config.connect_transport().await?;
                self.transport = Some(Arc::clone(&transport));
                transport
            }
        };
        let mut endpoints: Vec<Arc<dyn Endpoint>> = vec![
            Arc::clone(&self.manager) as Arc<dyn Endpoint>,
            Arc::new(base_api::BaseApi::new(&self.binary)),
        ];
        endpoints.extend(self.manager.compat_endpoints());
        endpoints.extend(self.endpoints.iter().cloned());
        let server = RpcServer::start(
            transport,
            Target::new(self.topic.as_str()).with_server(self.host.as_str()),
            endpoints,
            ServerConfig::default()
                .with_max_concurrency(self.config.executor_thread_pool_size)
                .with_debug(self.config.logging.debug)
                .with_ping_endpoint(self.config.rpc_ping_enabled),
        )
        .await?;
        tracing::info!("RPC server consuming");

        if let Err(source) = self.manager.post_start_hook().await {
            server.stop().await;
            return Err(ServiceError::Hook {
                hook: "post_start_hook",
                source,
            });
        }
        tracing::info!("post_start_hook done");

        let (stop, stopped) = watch::channel(false);
        let heartbeat = heartbeat::join(
            Arc::clone(&registry),
            record.id,
            &record.topic,
            self.config.report_interval,
            self.heartbeat_status.clone(),
            stopped.clone(),
        );
        tracing::info!(report_interval = ?self.config.report_interval, "joined the service group");

        let periodic = if self.config.periodic_enable {
            let started = periodic::spawn(
                vec![Arc::clone(&self.manager) as Arc<dyn Endpoint>],
                PeriodicConfig::new(
                    self.config.periodic_fuzzy_delay,
                    self.config.periodic_interval_max,
                ),
                stopped,
            );
            tracing::info!(tasks = periodic_tasks, "periodic tasks started");
            started
        } else {
            tracing::info!("periodic tasks disabled (periodic_enable = false)");
            None
        };
        self.running = Some(Running {
            record,
            server,
            stop,
            heartbeat,
            periodic,
        });
        tracing::info!(binary = %self.binary, host = %self.host, "service started");
        Ok(())
    }

    /// Stops the service, undoing `start` in reverse: periodic tasks, the service group, the RPC
    /// server (requests in flight finish, up to `graceful_shutdown_timeout`), then `cleanup_host`.
    /// The registry row stays, as in nova. Does nothing when the service is not running.
    pub async fn stop(&mut self) -> StopOutcome {
        let Some(running) = self.running.take() else {
            return StopOutcome::Graceful;
        };
        let _ = running.stop.send(true);
        if let Some(periodic) = running.periodic {
            let _ = periodic.await;
            tracing::info!("periodic tasks stopped");
        }
        let _ = running.heartbeat.await;
        tracing::info!("left the service group");
        let grace = self.config.graceful_shutdown_timeout;
        let outcome = if tokio::time::timeout(grace, running.server.stop())
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?grace, "requests still running after graceful_shutdown_timeout; they are abandoned");
            StopOutcome::TimedOut
        } else {
            tracing::info!("RPC server stopped");
            StopOutcome::Graceful
        };
        self.manager.cleanup_host().await;
        tracing::info!(binary = %self.binary, host = %self.host, "service stopped");
        outcome
    }

    /// nova's checks before anything starts.
    fn check_config(&self) -> Result<(), ServiceError> {
        let name = self.manager.descriptor().name;
        if let Some(configured) = self.config.manager(&self.topic) {
            // `nova.scheduler.manager.SchedulerManager` names the class by its last segment.
            let class = configured.rsplit('.').next().unwrap_or(configured);
            if class != name {
                return Err(ServiceError::Config(format!(
                    "{}_manager = {configured}, but this binary serves {name}",
                    self.topic
                )));
            }
        }
        if self.config.report_interval >= self.config.service_down_time {
            tracing::warn!(
                report_interval = ?self.config.report_interval,
                service_down_time = ?self.config.service_down_time,
                "report_interval is not shorter than service_down_time: the service will look down between heartbeats"
            );
        }
        Ok(())
    }

    /// Finds this service's row, or creates it; records the API version it now serves.
    async fn register(&self, registry: &dyn Registry) -> Result<ServiceRecord, ServiceError> {
        let version = self.manager.descriptor().version;
        let record = match registry
            .get_by_host_and_binary(&self.host, &self.binary)
            .await?
        {
            Some(record) => record,
            None => {
                let mut new =
                    NewService::new(&self.host, &self.binary, &self.topic).with_version(version);
                new.availability_zone.clone_from(&self.availability_zone);
                registry.create(&new).await?
            }
        };
        if record.availability_zone != self.availability_zone {
            registry
                .set_availability_zone(record.id, self.availability_zone.as_deref())
                .await?;
        }
        if record.version != Some(version) || record.availability_zone != self.availability_zone {
            if record.version != Some(version) {
                registry.set_version(record.id, version).await?;
            }
            return Ok(registry
                .get_by_host_and_binary(&self.host, &self.binary)
                .await?
                .unwrap_or(record));
        }
        Ok(record)
    }
}

impl<M> Drop for Service<M> {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            // Dropped while running: stop the background loops (the server stops with its handle).
            let _ = running.stop.send(true);
        }
    }
}

/// Opens the registry `[database] connection` names (a SQLite file by default).
async fn open_registry(config: &Config) -> Result<Arc<dyn Registry>, ServiceError> {
    let url = config
        .database_connection
        .clone()
        .unwrap_or_else(|| crate::registry::DatabaseUrl::new(crate::registry::DEFAULT_DATABASE));
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    {
        let registry = crate::registry::SqlRegistry::connect(&url).await?;
        Ok(Arc::new(registry))
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
    {
        Err(ServiceError::Registry(RegistryError::UnsupportedUrl {
            url: url.redacted(),
            reason: "this build has no database driver (features sqlite, postgres, mysql)".into(),
        }))
    }
}

/// `nova-scheduler` → `scheduler`; a name without a prefix is its own topic.
fn topic_of(binary: &str) -> &str {
    binary.split_once('-').map_or(binary, |(_, rest)| rest)
}

fn executable_name() -> Result<String, ServiceError> {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .ok_or_else(|| ServiceError::Config("cannot tell the binary's name; set it".into()))
}

/// This machine's host name, as `socket.gethostname()` gives it to nova.
fn machine_hostname() -> Result<String, ServiceError> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            ServiceError::Config("cannot tell this machine's host name; set `host`".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_is_the_binary_without_its_prefix() {
        assert_eq!(topic_of("nova-scheduler"), "scheduler");
        assert_eq!(topic_of("nova-compute-ironic"), "compute-ironic");
        assert_eq!(topic_of("conductor"), "conductor");
    }

    #[test]
    fn the_machine_has_a_name() {
        let name = machine_hostname().expect("a host name");
        assert!(!name.is_empty());
        // The kernel's name, which `hostname` and Python's socket.gethostname() show too.
        if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            assert_eq!(name, kernel.trim());
        }
    }
}
