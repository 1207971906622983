//! What nova-scheduler tells the world: `scheduler.select_destinations.start` and `.end`, legacy
//! (`scheduler.<host>`, payload `{"request_spec": …}`) and versioned (`nova-scheduler:<host>`,
//! payload `RequestSpecPayload`), as nova's `[notifications] notification_format` chooses, and
//! `service.update` (`ServiceStatusPayload`) when the scheduler starts and stops.
//!
//! Off unless `[oslo_messaging_notifications] driver` names a driver, as in nova.

use std::sync::Arc;

use rpc_runtime::config::Config;
use rpc_runtime::notify::versioned::{
    EventType, Phase, Publisher, VERSIONED_TOPIC, VersionedNotification,
};
use rpc_runtime::notify::{Notifier, Priority};
use rpc_runtime::registry::ServiceRecord;
use rpc_runtime::{Context, Transport, VersionedObject};

use crate::api::RequestSpec;
use crate::api::SCHEDULER_BINARY;
use crate::error::SettingError;
use crate::legacy_api::LegacyRequestSpec;

/// nova's `[notifications] notification_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotificationFormat {
    /// `unversioned` (nova's default): the legacy dictionaries only.
    #[default]
    Unversioned,
    /// `versioned`: the versioned objects only.
    Versioned,
    /// `both`.
    Both,
}

impl NotificationFormat {
    /// Reads `[notifications] notification_format`.
    ///
    /// # Errors
    ///
    /// A value nova does not know.
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        match config
            .option("notifications", "notification_format")
            .map(str::trim)
        {
            None | Some("unversioned") => Ok(Self::Unversioned),
            Some("versioned") => Ok(Self::Versioned),
            Some("both") => Ok(Self::Both),
            Some(other) => Err(SettingError {
                section: "notifications",
                key: "notification_format",
                reason: format!("expected unversioned, versioned or both, not `{other}`"),
            }),
        }
    }

    fn legacy(self) -> bool {
        self != Self::Versioned
    }

    fn versioned(self) -> bool {
        self != Self::Unversioned
    }
}

/// nova's `RequestSpecPayload` 1.1, the fields this scheduler has.
#[derive(Debug, Clone, PartialEq, VersionedObject)]
#[object(name = "RequestSpecPayload", namespace = "nova", version = "1.1")]
pub struct RequestSpecPayload {
    /// The first instance's uuid.
    pub instance_uuid: Option<String>,
    /// The project.
    #[object(nullable)]
    pub project_id: Option<String>,
    /// The user.
    #[object(nullable)]
    pub user_id: Option<String>,
    /// The zone asked for.
    #[object(nullable)]
    pub availability_zone: Option<String>,
    /// How many instances.
    #[object(default)]
    pub num_instances: u32,
    /// Hosts not to choose.
    #[object(nullable)]
    pub ignore_hosts: Option<Vec<String>>,
    /// The host forced (nova's payload carries one).
    #[object(nullable)]
    pub force_hosts: Option<String>,
    /// Security groups (none known to this scheduler).
    #[object(default)]
    pub security_groups: Vec<String>,
}

impl From<&RequestSpec> for RequestSpecPayload {
    fn from(spec: &RequestSpec) -> Self {
        Self {
            instance_uuid: spec.instance_uuid.clone(),
            project_id: spec.project_id.clone(),
            user_id: spec.user_id.clone(),
            availability_zone: spec.availability_zone.clone(),
            num_instances: spec.num_instances,
            ignore_hosts: (!spec.ignore_hosts.is_empty()).then(|| spec.ignore_hosts.clone()),
            force_hosts: spec.force_hosts.first().cloned(),
            security_groups: Vec::new(),
        }
    }
}

/// nova's `ServiceStatusPayload` 1.1.
#[derive(Debug, Clone, PartialEq, VersionedObject)]
#[object(name = "ServiceStatusPayload", namespace = "nova", version = "1.1")]
pub struct ServiceStatusPayload {
    /// The host.
    #[object(nullable)]
    pub host: Option<String>,
    /// The binary.
    #[object(nullable)]
    pub binary: Option<String>,
    /// The topic.
    #[object(nullable)]
    pub topic: Option<String>,
    /// Heartbeats so far.
    pub report_count: i64,
    /// Whether an operator disabled it.
    pub disabled: bool,
    /// Why.
    #[object(nullable)]
    pub disabled_reason: Option<String>,
    /// Its zone.
    #[object(nullable)]
    pub availability_zone: Option<String>,
    /// Its last heartbeat, as oslo writes a `DateTimeField` (`YYYY-MM-DDTHH:MM:SSZ`).
    #[object(nullable)]
    pub last_seen_up: Option<String>,
    /// Whether an operator forced it down (never, here).
    pub forced_down: bool,
    /// The service version (nova's integer; here the RPC API's minor version).
    pub version: i64,
    /// The row's uuid: a name-based (v5) uuid of its host, binary and id, as this registry
    /// keeps none.
    pub uuid: String,
}

impl From<&ServiceRecord> for ServiceStatusPayload {
    fn from(record: &ServiceRecord) -> Self {
        Self {
            host: Some(record.host.clone()),
            binary: Some(record.binary.clone()),
            topic: Some(record.topic.clone()),
            report_count: record.report_count,
            disabled: record.disabled,
            disabled_reason: record.disabled_reason.clone(),
            availability_zone: record.availability_zone.clone(),
            last_seen_up: record
                .updated_at
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            forced_down: false,
            version: record
                .version
                .map_or(0, |v| i64::try_from(v.minor()).unwrap_or(i64::MAX)),
            uuid: uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{}/{}/{}", record.host, record.binary, record.id).as_bytes(),
            )
            .to_string(),
        }
    }
}

/// The scheduler's notifiers: legacy and versioned, each off when the format or the driver says.
#[derive(Debug, Clone)]
pub struct SchedulerNotifier {
    legacy: Option<Notifier>,
    versioned: Option<Notifier>,
    host: Arc<str>,
}

impl SchedulerNotifier {
    /// Nothing is sent.
    pub fn disabled(host: &str) -> Self {
        Self {
            legacy: None,
            versioned: None,
            host: host.into(),
        }
    }

    /// As `config` says: `[oslo_messaging_notifications]` (drivers, topics, retry) and nova's
    /// `[notifications]` (`notification_format`, `versioned_notifications_topics`), sending over
    /// `transport`.
    ///
    /// # Errors
    ///
    /// A `[notifications]` value nova does not know.
    pub fn from_config(
        config: &Config,
        transport: Arc<dyn Transport>,
        host: &str,
    ) -> Result<Self, SettingError> {
        let format = NotificationFormat::from_config(config)?;
        let settings = &config.notifications;
        let base = Notifier::from_settings(transport, format!("scheduler.{host}"), settings);
        if !base.is_enabled() {
            return Ok(Self::disabled(host));
        }
        let versioned_topics: Vec<String> = config
            .option("notifications", "versioned_notifications_topics")
            .map_or_else(
                || vec![VERSIONED_TOPIC.to_owned()],
                |v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                },
            );
        let versioned = base
            .clone()
            .with_topics(versioned_topics.iter().map(String::as_str));
        Ok(Self {
            legacy: format.legacy().then_some(base),
            versioned: format.versioned().then_some(versioned),
            host: host.into(),
        })
    }

    /// Whether anything is sent.
    pub fn is_enabled(&self) -> bool {
        self.legacy.is_some() || self.versioned.is_some()
    }

    /// `scheduler.select_destinations.<phase>`, legacy and versioned. A failure is logged (by
    /// the notifier) and does not fail the scheduling.
    pub async fn select_destinations(&self, ctx: &Context, phase: Phase, spec: &RequestSpec) {
        let event_type = EventType::new("scheduler", "select_destinations", Some(phase));
        if let Some(legacy) = &self.legacy {
            let payload = serde_json::json!({
                "request_spec": LegacyRequestSpec::from_spec(spec),
            });
            let _ = legacy.info(ctx, &event_type.to_string(), &payload).await;
        }
        if let Some(versioned) = &self.versioned {
            let notification = VersionedNotification {
                priority: Priority::Info,
                publisher: Publisher::new(SCHEDULER_BINARY, &*self.host),
                event_type,
                payload: RequestSpecPayload::from(spec),
            };
            let _ = notification.emit(versioned, ctx).await;
        }
    }

    /// `service.update` with the service's row (versioned only, as in nova).
    pub async fn service_update(&self, ctx: &Context, record: &ServiceRecord) {
        if let Some(versioned) = &self.versioned {
            let notification = VersionedNotification {
                priority: Priority::Info,
                publisher: Publisher::new(SCHEDULER_BINARY, &*self.host),
                event_type: EventType::new("service", "update", None),
                payload: ServiceStatusPayload::from(record),
            };
            let _ = notification.emit(versioned, ctx).await;
        }
    }
}
