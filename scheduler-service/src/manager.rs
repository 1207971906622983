//! The scheduler's RPC API, version 4.6 (nova's 4.x history, plus capacity reports), and the 3.x
//! compatibility shim nova kept for old callers.
//!
//! | version | change |
//! |---|---|
//! | 4.0 | `select_destinations(spec_obj)` |
//! | 4.1 | `update_aggregates`, `delete_aggregate` (fanout casts) |
//! | 4.2 | `update_instance_info`, `delete_instance_info`, `sync_instance_info` (fanout casts) |
//! | 4.3 | none: nova's move from dicts to a `RequestSpec`, which 4.0 here already takes |
//! | 4.4 | `select_destinations` takes `instance_uuids` |
//! | 4.5 | `select_destinations` takes `return_objects`, `return_alternates` |
//! | 4.6 | `report_capacity` (fanout cast from compute agents), `hosts` |

use std::sync::{Arc, Mutex};

use rpc_runtime::notify::versioned::Phase;
use rpc_runtime::registry::ServiceRecord;
use rpc_runtime::service::{HookError, Manager};
use rpc_runtime::{Context, Endpoint, rpc_endpoint};

use crate::api::{Aggregate, Destinations, HostDestination, HostReport, InstanceList, RequestSpec};
use crate::error::{NoValidHost, Unavailable};
pub use crate::legacy_api::{
    FilterProperties, LegacyFlavor, LegacyInstanceProperties, LegacyRequestSpec,
};
use crate::notifications::SchedulerNotifier;
use crate::scheduler::{HostSummary, Scheduler};

/// The scheduler service's manager: its RPC API over a [`Scheduler`].
#[derive(Debug)]
pub struct SchedulerManager {
    scheduler: Arc<Scheduler>,
    notifier: SchedulerNotifier,
    /// The service's registry row, from `pre_start_hook`: the `service.update` payload.
    record: Mutex<Option<ServiceRecord>>,
}

impl SchedulerManager {
    /// Serves `scheduler`, sending no notifications.
    pub fn new(scheduler: Arc<Scheduler>) -> Self {
        Self {
            scheduler,
            notifier: SchedulerNotifier::disabled(""),
            record: Mutex::new(None),
        }
    }

    /// Sends nova-scheduler's notifications through `notifier`.
    #[must_use]
    pub fn with_notifier(mut self, notifier: SchedulerNotifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Chooses and claims, between the `.start` and `.end` notifications nova sends.
    async fn select_notified(
        &self,
        ctx: &Context,
        spec: &RequestSpec,
        uuids: &[String],
        alternates: bool,
    ) -> Result<Vec<Vec<crate::api::Selection>>, NoValidHost> {
        self.notifier
            .select_destinations(ctx, Phase::Start, spec)
            .await;
        let selections = self
            .scheduler
            .select_destinations(ctx, spec, uuids, alternates)
            .await?;
        self.notifier
            .select_destinations(ctx, Phase::End, spec)
            .await;
        Ok(selections)
    }

    async fn service_update(&self) {
        let record = self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(record) = record {
            self.notifier.service_update(&Context::new(), &record).await;
        }
    }

    /// The scheduler it serves.
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }
}

#[rpc_endpoint(
    topic = "scheduler",
    version = "4.6",
    aliases = "kilo=4.2, liberty=4.2, mitaka=4.3, newton=4.3, ocata=4.3, pike=4.4"
)]
impl SchedulerManager {
    /// Chooses a host for each instance (one per `instance_uuids` entry, else
    /// `spec_obj.num_instances`) and claims it. With `return_objects`, answers one list per
    /// instance: the chosen host, then alternates if `return_alternates`; without, one
    /// destination per instance (the pre-4.5 form).
    #[rpc(since = "4.0")]
    async fn select_destinations(
        &self,
        ctx: &Context,
        spec_obj: RequestSpec,
        #[since("4.4")] instance_uuids: Option<Vec<String>>,
        #[since("4.5")] return_objects: Option<bool>,
        #[since("4.5")] return_alternates: Option<bool>,
    ) -> Result<Destinations, NoValidHost> {
        let uuids = instance_uuids.unwrap_or_default();
        let objects = return_objects.unwrap_or(false);
        let alternates = objects && return_alternates.unwrap_or(false);
        let selections = self
            .select_notified(ctx, &spec_obj, &uuids, alternates)
            .await?;
        Ok(if objects {
            Destinations::Selections(selections)
        } else {
            Destinations::Hosts(
                selections
                    .iter()
                    .filter_map(|list| list.first().map(HostDestination::from))
                    .collect(),
            )
        })
    }

    /// Aggregates created or changed (nova-api sends one at a time).
    #[rpc(since = "4.1", cast)]
    async fn update_aggregates(&self, _ctx: &Context, aggregates: Vec<Aggregate>) {
        for aggregate in aggregates {
            tracing::info!(id = aggregate.id, name = %aggregate.name, "aggregate updated");
            self.scheduler.update_aggregate(aggregate);
        }
    }

    /// An aggregate deleted.
    #[rpc(since = "4.1", cast)]
    async fn delete_aggregate(&self, _ctx: &Context, aggregate: Aggregate) {
        tracing::info!(id = aggregate.id, name = %aggregate.name, "aggregate deleted");
        self.scheduler.delete_aggregate(aggregate.id);
    }

    /// Instances now on `host_name`.
    #[rpc(since = "4.2", cast)]
    async fn update_instance_info(
        &self,
        _ctx: &Context,
        host_name: String,
        instance_info: InstanceList,
    ) {
        let uuids = instance_info.objects.into_iter().map(|i| i.uuid).collect();
        self.scheduler.set_instances(&host_name, uuids, false);
    }

    /// An instance gone from `host_name`.
    #[rpc(since = "4.2", cast)]
    async fn delete_instance_info(&self, _ctx: &Context, host_name: String, instance_uuid: String) {
        self.scheduler.delete_instance(&host_name, &instance_uuid);
    }

    /// Every instance on `host_name`.
    #[rpc(since = "4.2", cast)]
    async fn sync_instance_info(
        &self,
        _ctx: &Context,
        host_name: String,
        instance_uuids: Vec<String>,
    ) {
        self.scheduler
            .set_instances(&host_name, instance_uuids, true);
    }

    /// A compute agent's capacity and usage.
    #[rpc(since = "4.6", cast)]
    async fn report_capacity(&self, _ctx: &Context, report: HostReport) {
        tracing::debug!(host = %report.host, generation = report.generation, "capacity report");
        self.scheduler.report(report);
    }

    /// What this scheduler knows of each host.
    #[rpc(since = "4.6")]
    async fn hosts(&self, _ctx: &Context) -> Result<Vec<HostSummary>, Unavailable> {
        self.scheduler.hosts().await
    }
}

impl Manager for SchedulerManager {
    async fn pre_start_hook(&self, service: &ServiceRecord) -> Result<(), HookError> {
        *self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(service.clone());
        Ok(())
    }

    async fn cleanup_host(&self) {
        self.service_update().await;
    }

    async fn post_start_hook(&self) -> Result<(), HookError> {
        self.service_update().await;
        let settings = self.scheduler.settings();
        tracing::info!(
            filters = %settings
                .enabled_filters
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(","),
            ram_weight_multiplier = settings.ram_weight_multiplier,
            "scheduler serving"
        );
        Ok(())
    }

    fn compat_endpoints(self: &Arc<Self>) -> Vec<Arc<dyn Endpoint>> {
        vec![Arc::new(SchedulerV3 {
            manager: Arc::clone(self),
        })]
    }
}

/// The 3.x API, for callers from before 4.0: `select_destinations(request_spec,
/// filter_properties)` with dictionaries, answering one destination per instance.
#[derive(Debug)]
pub struct SchedulerV3 {
    manager: Arc<SchedulerManager>,
}

#[rpc_endpoint(topic = "scheduler", version = "3.0")]
impl SchedulerV3 {
    /// The 3.x `select_destinations`, served by the 4.x scheduler.
    #[rpc(since = "3.0")]
    async fn select_destinations(
        &self,
        ctx: &Context,
        request_spec: LegacyRequestSpec,
        filter_properties: FilterProperties,
    ) -> Result<Vec<HostDestination>, NoValidHost> {
        let spec = request_spec.to_spec(&filter_properties);
        let selections = self
            .manager
            .select_notified(ctx, &spec, &request_spec.instance_uuids, false)
            .await?;
        Ok(selections
            .iter()
            .filter_map(|list| list.first().map(HostDestination::from))
            .collect())
    }
}
