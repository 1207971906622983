//! Building the services from configuration: the transport and the registry are opened once and
//! shared by every service of a process.

use std::sync::Arc;

use rpc_runtime::config::Config;
use rpc_runtime::registry::{DEFAULT_DATABASE, DatabaseUrl, Registry, RegistryError, SqlRegistry};
use rpc_runtime::{Service, ServiceError, Transport, TransportError};

use crate::compute::{ComputeManager, HostSpec};
use crate::error::SettingError;
use crate::manager::SchedulerManager;
use crate::notifications::{NotificationFormat, SchedulerNotifier};
use crate::rpcapi::scheduler::capacity_reports;
use crate::scheduler::{COMPUTE_BINARY, Scheduler};
use crate::settings::Settings;

pub use crate::api::SCHEDULER_BINARY;

/// Why the services could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A scheduler setting is wrong.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The broker cannot be reached.
    #[error("cannot connect to the broker")]
    Transport(#[from] TransportError),
    /// The database cannot be opened.
    #[error("cannot open the services registry")]
    Registry(#[from] RegistryError),
    /// A service cannot be described (an empty host, say).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The transport and registry a process's services share.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The connection to the broker (or `memory://`).
    pub transport: Arc<dyn Transport>,
    /// The services registry.
    pub registry: Arc<dyn Registry>,
    /// Where notifications go: `[oslo_messaging_notifications] transport_url`, or the RPC
    /// transport.
    pub notifications: Arc<dyn Transport>,
}

impl Shared {
    /// Connects to `transport_url` and opens `[database] connection` (default: the SQLite file
    /// `services.sqlite`).
    ///
    /// # Errors
    ///
    /// The broker or the database cannot be reached.
    pub async fn open(config: &Config) -> Result<Self, BuildError> {
        let transport = config.connect_transport().await?;
        let registry: Arc<dyn Registry> = Arc::new(open_registry(config).await?);
        let notifications = match &config.notifications.transport_url {
            Some(url) => rpc_runtime::connect_url(url).await?,
            None => Arc::clone(&transport),
        };
        Ok(Self {
            transport,
            registry,
            notifications,
        })
    }
}

/// Opens `[database] connection` (default: the SQLite file `services.sqlite`).
///
/// # Errors
///
/// The database cannot be reached, or its URL is not one this build reads.
pub async fn open_registry(config: &Config) -> Result<SqlRegistry, RegistryError> {
    let url = config
        .database_connection
        .clone()
        .unwrap_or_else(|| DatabaseUrl::new(DEFAULT_DATABASE));
    SqlRegistry::connect(&url).await
}

/// The scheduler service (binary `nova-scheduler`, topic `scheduler`).
///
/// # Errors
///
/// A scheduler setting is wrong, or the host cannot be found.
pub fn scheduler_service(
    config: Config,
    shared: &Shared,
) -> Result<Service<SchedulerManager>, BuildError> {
    let settings = Settings::from_config(&config)?;
    // Checked here, so a bad `[notifications]` value fails the start with its name.
    NotificationFormat::from_config(&config)?;
    let scheduler = Arc::new(Scheduler::new(
        settings,
        Arc::clone(&shared.registry),
        Arc::clone(&shared.transport),
    ));
    let notifications_config = config.clone();
    let notifications = Arc::clone(&shared.notifications);
    Ok(Service::builder(config)
        .binary(SCHEDULER_BINARY)
        .transport(Arc::clone(&shared.transport))
        .registry(Arc::clone(&shared.registry))
        .create(|host| {
            let notifier =
                SchedulerNotifier::from_config(&notifications_config, notifications, host)
                    .unwrap_or_else(|_| SchedulerNotifier::disabled(host));
            SchedulerManager::new(scheduler).with_notifier(notifier)
        })?)
}

/// A simulated compute agent for `host` (binary `nova-compute`, topic `compute`).
///
/// # Errors
///
/// The host is empty.
pub fn compute_service(
    config: Config,
    shared: &Shared,
    host: &str,
    spec: HostSpec,
) -> Result<Service<ComputeManager>, BuildError> {
    let transport = Arc::clone(&shared.transport);
    Ok(Service::builder(config)
        .host(host)
        .binary(COMPUTE_BINARY)
        .availability_zone(spec.availability_zone.clone())
        .transport(Arc::clone(&shared.transport))
        .registry(Arc::clone(&shared.registry))
        .create(|host| ComputeManager::new(host, spec, capacity_reports(transport)))?)
}
