//! A simulated compute agent (nova-compute's part the scheduler sees): it registers and
//! heartbeats as `nova-compute`, reports its host's capacity to every scheduler (a fanout cast on
//! start, after each change and every minute), and has the last word on claims: it accepts one
//! only while the instance fits within the limits the scheduler computed, so two schedulers can
//! never overcommit it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rpc_runtime::registry::ServiceRecord;
use rpc_runtime::service::{HookError, Manager};
use rpc_runtime::{BoxFuture, Context, RpcError, rpc_endpoint};

use crate::api::{HostReport, Limits, Resources};
use crate::error::ClaimRefused;

/// The namespace compute node uuids are derived in (uuid v5 of the host name), so a host keeps
/// its node uuid across restarts.
const NODE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6ba7_b811_9dad_11d1_80b4_00c0_4fd4_30c8);

/// What a simulated host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Its availability zone.
    pub availability_zone: String,
    /// What it has.
    pub total: Resources,
    /// How long a claim takes (a slow hypervisor, for tests of long calls); usually zero.
    pub claim_delay: std::time::Duration,
}

#[derive(Debug, Default)]
struct Usage {
    instances: BTreeMap<String, Resources>,
    generation: u64,
}

impl Usage {
    fn used(&self) -> Resources {
        self.instances
            .values()
            .fold(Resources::default(), |used, r| used.plus(*r))
    }
}

/// Where an agent's capacity reports go. The agent knows only this, not the scheduler's API:
/// [`rpcapi::scheduler::capacity_reports`](crate::rpcapi::scheduler::capacity_reports) binds it to
/// the schedulers' `report_capacity` fanout cast, so the two services' modules never import each
/// other.
#[derive(Clone)]
pub struct ReportSink(
    Arc<dyn Fn(HostReport) -> BoxFuture<'static, Result<(), RpcError>> + Send + Sync>,
);

impl ReportSink {
    /// Reports go to `send`.
    pub fn new(
        send: impl Fn(HostReport) -> BoxFuture<'static, Result<(), RpcError>> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(send))
    }

    async fn send(&self, report: HostReport) -> Result<(), RpcError> {
        (self.0)(report).await
    }
}

impl std::fmt::Debug for ReportSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReportSink")
    }
}

/// The compute agent's manager.
#[derive(Debug)]
pub struct ComputeManager {
    host: String,
    spec: HostSpec,
    node_uuid: String,
    usage: Mutex<Usage>,
    reports: ReportSink,
}

impl ComputeManager {
    /// An agent for `host`, sending its capacity reports to `reports`.
    pub fn new(host: &str, spec: HostSpec, reports: ReportSink) -> Self {
        // Reports carry a generation that grows across restarts too: start from the clock.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Self {
            host: host.to_owned(),
            node_uuid: uuid::Uuid::new_v5(&NODE_NAMESPACE, host.as_bytes()).to_string(),
            spec,
            usage: Mutex::new(Usage {
                instances: BTreeMap::new(),
                generation: start,
            }),
            reports,
        }
    }

    fn usage(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn report_of(&self, usage: &Usage) -> HostReport {
        HostReport {
            host: self.host.clone(),
            nodename: self.host.clone(),
            node_uuid: self.node_uuid.clone(),
            availability_zone: self.spec.availability_zone.clone(),
            total: self.spec.total,
            used: usage.used(),
            instances: usage.instances.keys().cloned().collect(),
            generation: usage.generation,
        }
    }

    /// Sends this host's report to every scheduler.
    async fn send_report(&self, report: HostReport) {
        if let Err(error) = self.reports.send(report).await {
            tracing::warn!(host = %self.host, %error, "could not report capacity");
        }
    }
}

#[rpc_endpoint(topic = "compute", version = "1.0")]
impl ComputeManager {
    /// This host's capacity and usage now.
    #[rpc]
    async fn describe(&self, _ctx: &Context) -> HostReport {
        self.report_of(&self.usage())
    }

    /// Claims `resources` for an instance if they fit within `limits` (the host's totals where
    /// a limit is missing); claiming an instance twice is a no-op.
    #[rpc]
    async fn claim(
        &self,
        _ctx: &Context,
        instance_uuid: String,
        resources: Resources,
        limits: Limits,
    ) -> Result<HostReport, ClaimRefused> {
        if !self.spec.claim_delay.is_zero() {
            tokio::time::sleep(self.spec.claim_delay).await;
        }
        let report = {
            let mut usage = self.usage();
            if !usage.instances.contains_key(&instance_uuid) {
                let used = usage.used().plus(resources);
                let total = self.spec.total;
                let over = [
                    ("vCPUs", used.vcpus, limits.vcpu.unwrap_or(total.vcpus)),
                    (
                        "memory",
                        used.memory_mb,
                        limits.memory_mb.unwrap_or(total.memory_mb),
                    ),
                    (
                        "disk",
                        used.disk_gb,
                        limits.disk_gb.unwrap_or(total.disk_gb),
                    ),
                ]
                .into_iter()
                .find(|(_, used, limit)| used > limit);
                if let Some((what, used, limit)) = over {
                    return Err(ClaimRefused {
                        host: self.host.clone(),
                        reason: format!("not enough {what}: {used} needed, limit {limit}"),
                    });
                }
                usage.instances.insert(instance_uuid.clone(), resources);
                usage.generation += 1;
            }
            self.report_of(&usage)
        };
        tracing::info!(host = %self.host, instance = %instance_uuid, "claimed");
        self.send_report(report.clone()).await;
        Ok(report)
    }

    /// Gives back what an instance claimed.
    #[rpc]
    async fn release(&self, _ctx: &Context, instance_uuid: String) -> HostReport {
        let report = {
            let mut usage = self.usage();
            if usage.instances.remove(&instance_uuid).is_some() {
                usage.generation += 1;
            }
            self.report_of(&usage)
        };
        tracing::info!(host = %self.host, instance = %instance_uuid, "released");
        self.send_report(report.clone()).await;
        report
    }

    /// Reports this host's capacity to every scheduler, as the periodic task does.
    #[rpc(cast)]
    async fn report_capacity(&self, _ctx: &Context) {
        let report = self.report_of(&self.usage());
        self.send_report(report).await;
    }

    /// nova's `update_available_resource`: the capacity report, every minute.
    #[periodic_task(spacing = 60)]
    async fn update_available_resource(&self, _ctx: &Context) {
        let report = self.report_of(&self.usage());
        self.send_report(report).await;
    }
}

impl Manager for ComputeManager {
    async fn post_start_hook(&self) -> Result<(), HookError> {
        let report = self.report_of(&self.usage());
        tracing::info!(
            host = %self.host,
            zone = %report.availability_zone,
            vcpus = report.total.vcpus,
            memory_mb = report.total.memory_mb,
            disk_gb = report.total.disk_gb,
            "compute agent serving; reporting capacity"
        );
        self.send_report(report).await;
        Ok(())
    }

    async fn pre_start_hook(&self, service: &ServiceRecord) -> Result<(), HookError> {
        tracing::info!(host = %self.host, id = service.id, "compute agent registered");
        Ok(())
    }
}
