//! The scheduler proper, in the order a request goes through it: the host view is refreshed
//! (service liveness from the registry, capacity from the compute agents' reports), the hosts are
//! filtered ([`Filter`]) and weighed (free RAM), the best one is reserved here and then
//! claimed on its compute agent, which has the last word (so schedulers in several processes never
//! overcommit a host). A request is all or nothing: when one instance cannot be placed, the claims
//! made for the others are released.

mod candidate;
pub mod filters;
mod host_view;
#[cfg(test)]
mod tests;
mod weighers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rpc_runtime::registry::Registry;
use rpc_runtime::{CallError, CallOptions, Context, Transport};

use self::candidate::Liveness;
pub use self::filters::Filter;
pub use self::host_view::HostSummary;
use self::host_view::{HostRequest, HostView, Placement};
use crate::api::{Aggregate, HostReport, RequestSpec, Resources, Selection};
use crate::error::{ClaimRefused, NoValidHost, Unavailable};
use crate::rpcapi::compute::ComputeManagerClient;
use crate::settings::Settings;

/// The binary compute agents register under.
pub const COMPUTE_BINARY: &str = "nova-compute";

/// The placement microversion whose `allocation_request` format selections use.
const ALLOCATION_REQUEST_VERSION: &str = "1.36";

/// Filters, weighs and claims; shared by the RPC endpoints of one scheduler process.
#[derive(Debug)]
pub struct Scheduler {
    settings: Settings,
    view: Mutex<HostView>,
    registry: Arc<dyn Registry>,
    computes: ComputeManagerClient,
}

impl Scheduler {
    /// A scheduler reading liveness from `registry` and claiming over `transport`.
    pub fn new(
        settings: Settings,
        registry: Arc<dyn Registry>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let computes = ComputeManagerClient::new(transport)
            .prepare(CallOptions::new().timeout(settings.claim_timeout));
        Self {
            settings,
            view: Mutex::new(HostView::default()),
            registry,
            computes,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn view(&self) -> MutexGuard<'_, HostView> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Places one instance per uuid (or `spec.num_instances` when `instance_uuids` is empty),
    /// each with up to `max_attempts - 1` alternates when `alternates` is set.
    ///
    /// # Errors
    ///
    /// [`NoValidHost`] when not every instance fits; nothing stays claimed then.
    pub async fn select_destinations(
        &self,
        ctx: &Context,
        spec: &RequestSpec,
        instance_uuids: &[String],
        alternates: bool,
    ) -> Result<Vec<Vec<Selection>>, NoValidHost> {
        let minted;
        let uuids = if instance_uuids.is_empty() {
            minted = (0..spec.num_instances.max(1))
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect::<Vec<_>>();
            &minted[..]
        } else {
            instance_uuids
        };
        self.refresh()
            .await
            .map_err(|e| NoValidHost::new(e.reason))?;
        let wanted = spec.resources();
        let request = HostRequest {
            wanted,
            zone: spec.availability_zone.as_deref().filter(|z| !z.is_empty()),
            force_hosts: &spec.force_hosts,
            alternates: self.settings.max_attempts.saturating_sub(1) + uuids.len(),
        };
        let mut placed: Vec<(Placement, Vec<Placement>, &str)> = Vec::with_capacity(uuids.len());
        for uuid in uuids {
            let mut excluded: BTreeSet<String> = spec.ignore_hosts.iter().cloned().collect();
            loop {
                let pick = self.view().pick(&self.settings, &request, uuid, &excluded);
                let Some(pick) = pick else {
                    tracing::info!(instance = %uuid, "no host passes the filters");
                    self.release(ctx, &placed).await;
                    return Err(NoValidHost::new(NoValidHost::NOT_ENOUGH_HOSTS));
                };
                match self.claim(ctx, &pick.host, uuid, wanted).await {
                    Ok(report) => {
                        self.view().confirm(report, uuid);
                        placed.push((pick.host, pick.alternates, uuid));
                        break;
                    }
                    Err(why) => {
                        tracing::warn!(host = %pick.host.host, instance = %uuid, reason = %why, "claim failed; trying another host");
                        self.view().unreserve(&pick.host.host, uuid);
                        excluded.insert(pick.host.host);
                    }
                }
            }
        }
        // nova's rule: an alternate is never a host chosen for another instance of the request.
        let chosen: BTreeSet<&str> = placed.iter().map(|(p, ..)| p.host.as_str()).collect();
        let keep = if alternates {
            self.settings.max_attempts.saturating_sub(1)
        } else {
            0
        };
        Ok(placed
            .iter()
            .map(|(host, others, _)| {
                std::iter::once(self.selection(host, wanted))
                    .chain(
                        others
                            .iter()
                            .filter(|p| !chosen.contains(p.host.as_str()))
                            .take(keep)
                            .map(|p| self.selection(p, wanted)),
                    )
                    .collect()
            })
            .collect())
    }

    /// Liveness from the registry; capacity asked of compute agents that never reported.
    async fn refresh(&self) -> Result<(), Unavailable> {
        let services = self
            .registry
            .list(Some(COMPUTE_BINARY))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the services registry");
                Unavailable {
                    reason: format!("the services registry cannot be read: {e}"),
                }
            })?;
        let services: BTreeMap<String, Liveness> = services
            .into_iter()
            .map(|s| {
                let liveness = Liveness {
                    up: s.is_up(self.settings.service_down_time),
                    disabled: s.disabled,
                };
                (s.host, liveness)
            })
            .collect();
        let unreported = {
            let mut view = self.view();
            view.set_services(services);
            view.unreported()
        };
        let mut asks = tokio::task::JoinSet::new();
        for host in unreported {
            let computes = self
                .computes
                .prepare(CallOptions::new().server(host.clone()));
            asks.spawn(async move { (host, computes.describe(&Context::new()).await) });
        }
        while let Some(answer) = asks.join_next().await {
            match answer {
                Ok((_, Ok(report))) => self.view().report(report),
                Ok((host, Err(error))) => {
                    tracing::warn!(%host, %error, "a compute agent did not describe its host");
                }
                Err(error) => tracing::warn!(%error, "asking a compute agent failed"),
            }
        }
        Ok(())
    }

    async fn claim(
        &self,
        ctx: &Context,
        host: &Placement,
        uuid: &str,
        wanted: Resources,
    ) -> Result<HostReport, CallError<ClaimRefused>> {
        self.computes
            .prepare(CallOptions::new().server(host.host.clone()))
            .claim(ctx, uuid.to_owned(), wanted, host.limits.clone())
            .await
    }

    async fn release(&self, ctx: &Context, placed: &[(Placement, Vec<Placement>, &str)]) {
        for (host, _, uuid) in placed {
            let computes = self
                .computes
                .prepare(CallOptions::new().server(host.host.clone()));
            match computes.release(ctx, (*uuid).to_owned()).await {
                Ok(report) => self.view().report(report),
                Err(error) => {
                    tracing::warn!(host = %host.host, instance = %uuid, %error, "could not release a claim");
                }
            }
            self.view().unreserve(&host.host, uuid);
        }
    }

    fn selection(&self, host: &Placement, wanted: Resources) -> Selection {
        let allocation = serde_json::json!({
            "allocations": {
                &host.node_uuid: {"resources": {
                    "VCPU": wanted.vcpus,
                    "MEMORY_MB": wanted.memory_mb,
                    "DISK_GB": wanted.disk_gb,
                }}
            },
            "mappings": {"": [&host.node_uuid]},
        });
        Selection {
            service_host: host.host.clone(),
            nodename: host.nodename.clone(),
            compute_node_uuid: host.node_uuid.clone(),
            cell_uuid: self.settings.cell_uuid.clone(),
            limits: Some(host.limits.clone()),
            allocation_request: Some(allocation.to_string()),
            allocation_request_version: Some(ALLOCATION_REQUEST_VERSION.to_owned()),
            availability_zone: Some(host.zone.clone()),
        }
    }

    /// A compute agent's report.
    pub fn report(&self, report: HostReport) {
        self.view().report(report);
    }

    /// An aggregate created or changed.
    pub fn update_aggregate(&self, aggregate: Aggregate) {
        self.view().update_aggregate(aggregate);
    }

    /// An aggregate deleted.
    pub fn delete_aggregate(&self, id: i64) {
        self.view().delete_aggregate(id);
    }

    /// Instances added to a host; `replace`: they are all of its instances.
    pub fn set_instances(&self, host: &str, uuids: Vec<String>, replace: bool) {
        self.view().set_instances(host, uuids, replace);
    }

    /// An instance gone from a host.
    pub fn delete_instance(&self, host: &str, uuid: &str) {
        self.view().delete_instance(host, uuid);
    }

    /// What the scheduler knows of each host, liveness refreshed from the registry.
    ///
    /// # Errors
    ///
    /// The registry cannot be read.
    pub async fn hosts(&self) -> Result<Vec<HostSummary>, Unavailable> {
        self.refresh().await?;
        Ok(self.view().summaries(&self.settings))
    }
}
