//! What travels between the scheduler, the compute agents and their callers: request specs,
//! flavors, selections, capacity reports, aggregates. Field names are nova's, so the JSON a nova
//! caller sends reads as the same thing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An amount of each resource the scheduler places: what an instance asks for, what a host has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Virtual CPUs.
    pub vcpus: u64,
    /// Memory, in MiB.
    pub memory_mb: u64,
    /// Disk, in GiB.
    pub disk_gb: u64,
}

impl Resources {
    /// `self + other`, each resource.
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            vcpus: self.vcpus.saturating_add(other.vcpus),
            memory_mb: self.memory_mb.saturating_add(other.memory_mb),
            disk_gb: self.disk_gb.saturating_add(other.disk_gb),
        }
    }

    /// `self - other`, each resource, never below zero.
    #[must_use]
    pub fn minus(self, other: Self) -> Self {
        Self {
            vcpus: self.vcpus.saturating_sub(other.vcpus),
            memory_mb: self.memory_mb.saturating_sub(other.memory_mb),
            disk_gb: self.disk_gb.saturating_sub(other.disk_gb),
        }
    }
}

/// An instance type (nova's `Flavor`): what one instance of it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    /// Its name (`m1.small`).
    #[serde(default)]
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u64,
    /// Memory, in MiB.
    pub memory_mb: u64,
    /// Root disk, in GiB (not counted when booting from a volume).
    #[serde(default)]
    pub root_gb: u64,
    /// Ephemeral disk, in GiB.
    #[serde(default)]
    pub ephemeral_gb: u64,
    /// Swap, in MiB.
    #[serde(default)]
    pub swap: u64,
    /// Extra specs (`hw:*`, `resources:*`); carried along, not used for placement.
    #[serde(default)]
    pub extra_specs: BTreeMap<String, String>,
}

/// The flavors `boot --flavor NAME` knows (nova's classic defaults).
pub const FLAVORS: &[(&str, u64, u64, u64)] = &[
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
    ("m1.xlarge", 8, 16384, 160),
];

impl Flavor {
    /// A flavor with these resources and no ephemeral disk or swap.
    pub fn new(name: impl Into<String>, vcpus: u64, memory_mb: u64, root_gb: u64) -> Self {
        Self {
            name: name.into(),
            vcpus,
            memory_mb,
            root_gb,
            ephemeral_gb: 0,
            swap: 0,
            extra_specs: BTreeMap::new(),
        }
    }

    /// One of [`FLAVORS`] by name.
    pub fn named(name: &str) -> Option<Self> {
        FLAVORS
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|&(n, vcpus, ram, disk)| Self::new(n, vcpus, ram, disk))
    }

    /// What one instance needs, as nova counts it: disk is ephemeral + swap rounded up to GiB,
    /// plus root unless the instance boots from a volume.
    pub fn resources(&self, boot_from_volume: bool) -> Resources {
        let root = if boot_from_volume { 0 } else { self.root_gb };
        Resources {
            vcpus: self.vcpus,
            memory_mb: self.memory_mb,
            disk_gb: root
                .saturating_add(self.ephemeral_gb)
                .saturating_add(self.swap.div_ceil(1024)),
        }
    }
}

/// What a request asks the scheduler for (nova's `RequestSpec`, the fields scheduling reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// What each instance needs.
    pub flavor: Flavor,
    /// The availability zone the instances must land in, if any.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// How many instances (the instance uuids, when given, win).
    #[serde(default = "one")]
    pub num_instances: u32,
    /// The first instance's uuid.
    #[serde(default)]
    pub instance_uuid: Option<String>,
    /// Boot from volume: the root disk is not counted.
    #[serde(default)]
    pub is_bfv: bool,
    /// Only these hosts may be chosen (nova's `force_hosts`), when not empty.
    #[serde(default)]
    pub force_hosts: Vec<String>,
    /// These hosts must not be chosen.
    #[serde(default)]
    pub ignore_hosts: Vec<String>,
    /// The project the instances belong to.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The user who asked.
    #[serde(default)]
    pub user_id: Option<String>,
}

fn one() -> u32 {
    1
}

impl RequestSpec {
    /// A request for `num_instances` instances of `flavor`, anywhere.
    pub fn new(flavor: Flavor, num_instances: u32) -> Self {
        Self {
            flavor,
            availability_zone: None,
            num_instances,
            instance_uuid: None,
            is_bfv: false,
            force_hosts: Vec::new(),
            ignore_hosts: Vec::new(),
            project_id: None,
            user_id: None,
        }
    }

    /// In this availability zone only.
    #[must_use]
    pub fn in_zone(mut self, zone: impl Into<String>) -> Self {
        self.availability_zone = Some(zone.into());
        self
    }

    /// What each instance needs.
    pub fn resources(&self) -> Resources {
        self.flavor.resources(self.is_bfv)
    }
}

/// The most of each resource a host may hand out, as the filters computed it (total times the
/// allocation ratio); the compute agent checks a claim against them (nova's `SchedulerLimits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// vCPU limit.
    pub vcpu: Option<u64>,
    /// Memory limit, MiB.
    pub memory_mb: Option<u64>,
    /// Disk limit, GiB.
    pub disk_gb: Option<u64>,
}

/// One place an instance may go (nova's `Selection`): the chosen host first in each list, then
/// alternates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// The compute service's host.
    pub service_host: String,
    /// The hypervisor node's name.
    pub nodename: String,
    /// The compute node's uuid.
    pub compute_node_uuid: String,
    /// The cell the host is in.
    #[serde(default)]
    pub cell_uuid: Option<String>,
    /// The limits the claim was checked against.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The claim, as JSON text (placement's allocation request format).
    #[serde(default)]
    pub allocation_request: Option<String>,
    /// The format version of `allocation_request`.
    #[serde(default)]
    pub allocation_request_version: Option<String>,
    /// The host's availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
}

/// A destination in the old format (`return_objects` false, or a 3.x caller).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDestination {
    /// The compute service's host.
    pub host: String,
    /// The hypervisor node's name.
    pub nodename: String,
    /// The limits the claim was checked against.
    #[serde(default)]
    pub limits: Limits,
}

impl From<&Selection> for HostDestination {
    fn from(selection: &Selection) -> Self {
        Self {
            host: selection.service_host.clone(),
            nodename: selection.nodename.clone(),
            limits: selection.limits.unwrap_or_default(),
        }
    }
}

/// What `select_destinations` answers: one list of selections per instance (chosen host first,
/// then alternates) when the caller asked for objects, else one destination per instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Destinations {
    /// `return_objects`: per instance, the chosen host then alternates.
    Selections(Vec<Vec<Selection>>),
    /// The old format: per instance, the chosen host.
    Hosts(Vec<HostDestination>),
}

impl Destinations {
    /// The chosen host of each instance, in order.
    pub fn hosts(&self) -> Vec<String> {
        match self {
            Self::Selections(lists) => lists
                .iter()
                .filter_map(|list| list.first().map(|s| s.service_host.clone()))
                .collect(),
            Self::Hosts(hosts) => hosts.iter().map(|h| h.host.clone()).collect(),
        }
    }
}

/// A compute agent's report of what its host has and uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// The compute service's host.
    pub host: String,
    /// The hypervisor node's name.
    pub nodename: String,
    /// The compute node's uuid.
    pub node_uuid: String,
    /// The host's availability zone, as the agent is configured.
    pub availability_zone: String,
    /// What the host has.
    pub total: Resources,
    /// What its instances use.
    pub used: Resources,
    /// Its instances.
    pub instances: Vec<String>,
    /// Counts the agent's changes: a report older than one already seen is ignored.
    pub generation: u64,
}

/// A host aggregate (nova's `Aggregate`): hosts grouped, with metadata; `availability_zone` in
/// the metadata sets its hosts' zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Its id.
    pub id: i64,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Its metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// An instance as `update_instance_info` carries it: the scheduler needs only its uuid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// The instance's uuid.
    pub uuid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_counts_ephemeral_and_swap_and_root_unless_boot_from_volume() {
        let mut flavor = Flavor::new("f", 2, 4096, 20);
        flavor.ephemeral_gb = 5;
        flavor.swap = 1536;
        assert_eq!(flavor.resources(false).disk_gb, 27);
        assert_eq!(flavor.resources(true).disk_gb, 7);
    }

    #[test]
    fn a_spec_from_a_caller_may_leave_out_everything_but_the_flavor() {
        let spec: RequestSpec = serde_json::from_value(serde_json::json!({
            "flavor": {"vcpus": 1, "memory_mb": 512},
            "unknown": true
        }))
        .expect("spec");
        assert_eq!(spec.num_instances, 1);
        assert_eq!(spec.resources().disk_gb, 0);
    }

    #[test]
    fn destinations_decode_in_both_formats() {
        let hosts: Destinations = serde_json::from_value(serde_json::json!([
            {"host": "a", "nodename": "a", "limits": {}}
        ]))
        .expect("hosts");
        assert_eq!(hosts.hosts(), vec!["a"]);
        let selections: Destinations = serde_json::from_value(serde_json::json!([[
            {"service_host": "b", "nodename": "b", "compute_node_uuid": "u"}
        ]]))
        .expect("selections");
        assert!(matches!(selections, Destinations::Selections(_)));
        assert_eq!(selections.hosts(), vec!["b"]);
    }
}
