//! The services registry: nova's `services` table, where every service registers, heartbeats and
//! can be disabled, and where `upgrade_levels = auto` finds the oldest version still running.
//!
//! [`Registry`] keeps the database out of the service lifecycle; [`SqlRegistry`] is its one
//! implementation, on SQLite (the embedded default), PostgreSQL or MySQL/MariaDB.

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use self::sql::SqlRegistry;
use crate::transport::BoxFuture;
use crate::version::Version;

/// The registry a service opens when `[database] connection` is not set: `services.sqlite` in the
/// working directory, created on first use.
pub const DEFAULT_DATABASE: &str = "sqlite:services.sqlite";

/// One row of the `services` table.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceRecord {
    /// The row's id.
    pub id: i64,
    /// The node the service runs on.
    pub host: String,
    /// The program (`nova-scheduler`).
    pub binary: String,
    /// The RPC topic it serves (`scheduler`).
    pub topic: String,
    /// Heartbeats so far.
    pub report_count: i64,
    /// Whether an operator took it out of service.
    pub disabled: bool,
    /// Why, when disabled.
    pub disabled_reason: Option<String>,
    /// The RPC API version it serves, when it said.
    pub version: Option<Version>,
    /// The availability zone it declared, if any.
    pub availability_zone: Option<String>,
    /// When it first registered.
    pub created_at: DateTime<Utc>,
    /// Its last heartbeat (or registration update); disabling does not change it.
    pub updated_at: Option<DateTime<Utc>>,
    /// When it was deleted; deleted rows are never returned.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl ServiceRecord {
    /// When the service was last heard of: its last update, or its registration.
    pub fn last_seen(&self) -> DateTime<Utc> {
        self.updated_at.unwrap_or(self.created_at)
    }

    /// Whether it has been heard of within `service_down_time` of now.
    pub fn is_up(&self, service_down_time: Duration) -> bool {
        self.is_up_at(Utc::now(), service_down_time)
    }

    /// Whether it had been heard of within `service_down_time` of `now`.
    pub fn is_up_at(&self, now: DateTime<Utc>, service_down_time: Duration) -> bool {
        let elapsed = now.signed_duration_since(self.last_seen());
        elapsed
            .to_std()
            .map_or(true, |elapsed| elapsed <= service_down_time)
    }
}

/// What a service registers as.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewService {
    /// The node.
    pub host: String,
    /// The program.
    pub binary: String,
    /// The RPC topic.
    pub topic: String,
    /// The RPC API version served.
    pub version: Option<Version>,
    /// The availability zone it declares.
    pub availability_zone: Option<String>,
}

impl NewService {
    /// A service of `binary` on `host`, serving `topic`.
    pub fn new(
        host: impl Into<String>,
        binary: impl Into<String>,
        topic: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            binary: binary.into(),
            topic: topic.into(),
            version: None,
            availability_zone: None,
        }
    }

    /// The availability zone it declares.
    #[must_use]
    pub fn with_availability_zone(mut self, zone: impl Into<String>) -> Self {
        self.availability_zone = Some(zone.into());
        self
    }

    /// The RPC API version it serves.
    #[must_use]
    pub fn with_version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }
}

/// A database URL (`[database] connection`). SQLAlchemy spellings are accepted
/// (`mysql+pymysql://…`, `postgresql+psycopg2://…`, `sqlite:////var/lib/nova/nova.sqlite`), so a
/// `nova.conf` can be reused. `Display` and `Debug` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL as written.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as written, password included: for the database driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_password(&self.0)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
pub(crate) fn redact_password(url: &str) -> String {
    let Some(after_scheme) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    let authority = &url[after_scheme..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..after_scheme],
                &authority[..colon],
                &url[after_scheme + at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The `[database] connection` URL names no back end compiled into this program.
    #[error("unsupported database URL {url}: {reason}")]
    UnsupportedUrl {
        /// The URL, password hidden.
        url: String,
        /// Why.
        reason: String,
    },
    /// The database could not be reached or its schema brought up to date.
    #[error("cannot open the services registry at {url}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A statement failed (the database went away, a constraint, …).
    #[error("services registry: {operation} failed")]
    Query {
        /// What was being done.
        operation: &'static str,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No live service has this id.
    #[error("no service with id {id}")]
    NotFound {
        /// The id.
        id: i64,
    },
}

/// Where services register. Object safe: the lifecycle holds an `Arc<dyn Registry>`.
pub trait Registry: Send + Sync + fmt::Debug + 'static {
    /// The live service of `binary` on `host`, if registered.
    fn get_by_host_and_binary<'a>(
        &'a self,
        host: &'a str,
        binary: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServiceRecord>, RegistryError>>;

    /// Registers a service. When a sibling registered the same host and binary first (a unique-key
    /// race), returns that row instead of failing.
    fn create<'a>(
        &'a self,
        service: &'a NewService,
    ) -> BoxFuture<'a, Result<ServiceRecord, RegistryError>>;

    /// Records a heartbeat: `report_count += 1`, `updated_at = now`.
    fn heartbeat(&self, id: i64) -> BoxFuture<'_, Result<ServiceRecord, RegistryError>>;

    /// Records the RPC API version a service now serves (after an upgrade).
    fn set_version(&self, id: i64, version: Version) -> BoxFuture<'_, Result<(), RegistryError>>;

    /// Records the availability zone a service declares (`None`: none).
    fn set_availability_zone<'a>(
        &'a self,
        id: i64,
        zone: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Live services, of one binary or all, ordered by id.
    fn list<'a>(
        &'a self,
        binary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ServiceRecord>, RegistryError>>;

    /// Disables a service with a reason, or enables it (`reason` ignored).
    fn set_disabled<'a>(
        &'a self,
        id: i64,
        disabled: bool,
        reason: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// Soft-deletes a service: the row stays, marked deleted, and the host and binary may
    /// register again.
    fn soft_delete(&self, id: i64) -> BoxFuture<'_, Result<(), RegistryError>>;

    /// The oldest RPC API version among the live services of `binary` that are up (heard of within
    /// `service_down_time`): the source of `upgrade_levels = auto`. `None` when none is up or none
    /// said its version.
    fn min_version<'a>(
        &'a self,
        binary: &'a str,
        service_down_time: Duration,
    ) -> BoxFuture<'a, Result<Option<Version>, RegistryError>> {
        Box::pin(async move {
            let services = self.list(Some(binary)).await?;
            Ok(oldest_live_version(&services, service_down_time))
        })
    }
}

/// The oldest version among `services` that are up (heard of within `service_down_time`) and said
/// their version.
pub fn oldest_live_version<'a>(
    services: impl IntoIterator<Item = &'a ServiceRecord>,
    service_down_time: Duration,
) -> Option<Version> {
    let now = Utc::now();
    services
        .into_iter()
        .filter(|s| s.is_up_at(now, service_down_time))
        .filter_map(|s| s.version)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(updated_at: Option<DateTime<Utc>>) -> ServiceRecord {
        ServiceRecord {
            id: 1,
            host: "h".into(),
            binary: "b".into(),
            topic: "t".into(),
            report_count: 0,
            disabled: false,
            disabled_reason: None,
            version: None,
            availability_zone: None,
            created_at: DateTime::from_timestamp(1_000, 0).expect("valid"),
            updated_at,
            deleted_at: None,
        }
    }

    #[test]
    fn is_up_within_service_down_time_of_the_last_update() {
        let at = |secs| DateTime::from_timestamp(secs, 0).expect("valid");
        let down = Duration::from_secs(60);
        let never_updated = record(None);
        assert!(never_updated.is_up_at(at(1_060), down));
        assert!(!never_updated.is_up_at(at(1_061), down));
        let updated = record(Some(at(2_000)));
        assert!(updated.is_up_at(at(2_060), down));
        assert!(!updated.is_up_at(at(2_061), down));
        // A clock slightly behind the writer's counts as up.
        assert!(updated.is_up_at(at(1_999), down));
    }
}
