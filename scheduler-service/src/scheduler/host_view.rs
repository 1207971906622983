//! The host manager's state: what each compute agent last reported, the claims made here that
//! its report does not show yet, instances per host, aggregates, and service liveness from the
//! registry.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::candidate::{Candidate, Liveness};
use crate::api::{Aggregate, HostReport, Limits, Resources};
use crate::settings::Settings;

/// One host: its agent's last report plus what happened here since.
#[derive(Debug, Clone)]
struct HostState {
    report: HostReport,
    /// Instances on the host: the report's, plus `update_instance_info` since.
    instances: BTreeSet<String>,
    /// Claims this scheduler made that the report does not include yet.
    pending: HashMap<String, Resources>,
}

impl HostState {
    fn used(&self) -> Resources {
        self.pending
            .iter()
            .filter(|(uuid, _)| !self.report.instances.contains(uuid))
            .fold(self.report.used, |used, (_, r)| used.plus(*r))
    }
}

/// What the scheduler shows of one host (`hosts()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    /// The compute service's host.
    pub host: String,
    /// Its availability zone.
    pub zone: String,
    /// Its compute service is up.
    pub up: bool,
    /// Its compute service is disabled.
    pub disabled: bool,
    /// What it has.
    pub total: Resources,
    /// The most it may hand out: total times the allocation ratios.
    pub limit: Resources,
    /// What its instances and this scheduler's claims use.
    pub used: Resources,
    /// How many instances it has.
    pub instances: usize,
}

/// The chosen host and the alternates for one instance.
#[derive(Debug, Clone)]
pub(crate) struct Pick {
    pub(crate) host: Placement,
    pub(crate) alternates: Vec<Placement>,
}

/// A host with what a selection says of it.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub(crate) host: String,
    pub(crate) nodename: String,
    pub(crate) node_uuid: String,
    pub(crate) zone: String,
    pub(crate) limits: Limits,
}

/// Every host the scheduler knows.
#[derive(Debug, Default)]
pub(crate) struct HostView {
    hosts: BTreeMap<String, HostState>,
    services: BTreeMap<String, Liveness>,
    aggregates: BTreeMap<i64, Aggregate>,
}

impl HostView {
    /// Takes a report unless one at least as new was seen.
    pub(crate) fn report(&mut self, report: HostReport) {
        match self.hosts.get_mut(&report.host) {
            Some(state) if state.report.generation >= report.generation => {}
            Some(state) => {
                state
                    .pending
                    .retain(|uuid, _| !report.instances.contains(uuid));
                state.instances = report.instances.iter().cloned().collect();
                state.report = report;
            }
            None => {
                let instances = report.instances.iter().cloned().collect();
                self.hosts.insert(
                    report.host.clone(),
                    HostState {
                        report,
                        instances,
                        pending: HashMap::new(),
                    },
                );
            }
        }
    }

    /// Replaces the registry's view of the compute services.
    pub(crate) fn set_services(&mut self, services: BTreeMap<String, Liveness>) {
        self.services = services;
    }

    /// Hosts whose service is up and enabled but that never reported.
    pub(crate) fn unreported(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|(host, s)| s.up && !s.disabled && !self.hosts.contains_key(*host))
            .map(|(host, _)| host.clone())
            .collect()
    }

    pub(crate) fn update_aggregate(&mut self, aggregate: Aggregate) {
        self.aggregates.insert(aggregate.id, aggregate);
    }

    pub(crate) fn delete_aggregate(&mut self, id: i64) {
        self.aggregates.remove(&id);
    }

    /// Adds instances to a host (`update_instance_info`); `replace` makes them its whole list
    /// (`sync_instance_info`).
    pub(crate) fn set_instances(&mut self, host: &str, uuids: Vec<String>, replace: bool) {
        if let Some(state) = self.hosts.get_mut(host) {
            if replace {
                state.instances.clear();
            }
            state.instances.extend(uuids);
        }
    }

    pub(crate) fn delete_instance(&mut self, host: &str, uuid: &str) {
        if let Some(state) = self.hosts.get_mut(host) {
            state.instances.remove(uuid);
        }
    }

    /// The zone of `host`: an aggregate's `availability_zone` metadata, else what its agent
    /// reported, else the default.
    fn zone<'a>(&'a self, host: &str, state: &'a HostState, default: &'a str) -> &'a str {
        self.aggregates
            .values()
            .filter(|a| a.hosts.iter().any(|h| h == host))
            .find_map(|a| a.metadata.get("availability_zone"))
            .map(String::as_str)
            .or(Some(state.report.availability_zone.as_str()).filter(|z| !z.is_empty()))
            .unwrap_or(default)
    }

    fn candidates<'a>(&'a self, settings: &'a Settings) -> Vec<Candidate<'a>> {
        let scale = |n: u64, ratio: f64| (n as f64 * ratio).floor() as u64;
        self.hosts
            .iter()
            .map(|(host, state)| {
                let total = state.report.total;
                Candidate {
                    host,
                    zone: self.zone(host, state, &settings.default_availability_zone),
                    service: self.services.get(host).copied(),
                    used: state.used(),
                    limit: Resources {
                        vcpus: scale(total.vcpus, settings.cpu_allocation_ratio),
                        memory_mb: scale(total.memory_mb, settings.ram_allocation_ratio),
                        disk_gb: scale(total.disk_gb, settings.disk_allocation_ratio),
                    },
                    report: &state.report,
                }
            })
            .collect()
    }

    /// Filters and weighs the hosts for one instance needing `wanted`; reserves it on the best
    /// host (a pending claim under `uuid`) and names up to `max_attempts - 1` alternates.
    /// `excluded` hosts are skipped (they refused this instance, or the request ignores them).
    pub(crate) fn pick(
        &mut self,
        settings: &Settings,
        request: &HostRequest<'_>,
        uuid: &str,
        excluded: &BTreeSet<String>,
    ) -> Option<Pick> {
        let mut passing: Vec<Candidate<'_>> = self
            .candidates(settings)
            .into_iter()
            .filter(|c| !excluded.contains(c.host))
            .filter(|c| {
                request.force_hosts.is_empty() || request.force_hosts.iter().any(|h| h == c.host)
            })
            .filter(|c| {
                settings
                    .enabled_filters
                    .iter()
                    .all(|f| f.passes(c, request.wanted, request.zone))
            })
            .collect();
        super::weighers::sort_by_weight(&mut passing, settings.ram_weight_multiplier);
        let placement = |c: &Candidate<'_>| Placement {
            host: c.host.to_owned(),
            nodename: c.report.nodename.clone(),
            node_uuid: c.report.node_uuid.clone(),
            zone: c.zone.to_owned(),
            limits: Limits {
                numa_topology: None,
                vcpu: Some(c.limit.vcpus),
                memory_mb: Some(c.limit.memory_mb),
                disk_gb: Some(c.limit.disk_gb),
            },
        };
        let mut placements = passing.iter().map(placement);
        let chosen = placements.next()?;
        let alternates = placements.take(request.alternates).collect();
        if let Some(state) = self.hosts.get_mut(&chosen.host) {
            state.pending.insert(uuid.to_owned(), request.wanted);
        }
        Some(Pick {
            host: chosen,
            alternates,
        })
    }

    /// A claim the host's agent accepted: its answer (which counts the instance) replaces the
    /// pending claim.
    pub(crate) fn confirm(&mut self, report: HostReport, uuid: &str) {
        let host = report.host.clone();
        self.report(report);
        self.unreserve(&host, uuid);
    }

    /// Drops the pending claim of `uuid` on `host` (refused, or released).
    pub(crate) fn unreserve(&mut self, host: &str, uuid: &str) {
        if let Some(state) = self.hosts.get_mut(host) {
            state.pending.remove(uuid);
        }
    }

    /// What the scheduler shows of its hosts.
    pub(crate) fn summaries(&self, settings: &Settings) -> Vec<HostSummary> {
        self.candidates(settings)
            .into_iter()
            .map(|c| HostSummary {
                host: c.host.to_owned(),
                zone: c.zone.to_owned(),
                up: c.service.is_some_and(|s| s.up),
                disabled: c.service.is_some_and(|s| s.disabled),
                total: c.report.total,
                limit: c.limit,
                used: c.used,
                instances: self.hosts.get(c.host).map_or(0, |s| s.instances.len()),
            })
            .collect()
    }
}

/// One instance's needs, as the host view filters for it.
#[derive(Debug, Clone)]
pub(crate) struct HostRequest<'a> {
    pub(crate) wanted: Resources,
    pub(crate) zone: Option<&'a str>,
    pub(crate) force_hosts: &'a [String],
    /// How many alternates to name at most.
    pub(crate) alternates: usize,
}
