//! What travels between the scheduler, the compute agents and their callers: request specs,
//! flavors, selections, aggregates and instance lists are nova's versioned objects (namespace
//! `nova`, the versions nova 34 sends), so nova's own client and this one send the same
//! primitives; capacity reports are this scheduler's own.

use std::collections::BTreeMap;

use rpc_runtime::VersionedObject;
use serde::{Deserialize, Serialize};

/// The binary the scheduler registers under.
pub const SCHEDULER_BINARY: &str = "nova-scheduler";

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

/// An instance type (nova's `Flavor` 1.2): what one instance of it needs.
#[derive(Debug, Clone, PartialEq, Eq, VersionedObject)]
#[object(name = "Flavor", namespace = "nova", version = "1.2")]
pub struct Flavor {
    /// Its name (`m1.small`).
    #[object(default)]
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u64,
    /// Memory, in MiB.
    pub memory_mb: u64,
    /// Root disk, in GiB (not counted when booting from a volume).
    #[object(default)]
    pub root_gb: u64,
    /// Ephemeral disk, in GiB.
    #[object(default)]
    pub ephemeral_gb: u64,
    /// Swap, in MiB.
    #[object(default)]
    pub swap: u64,
    /// Extra specs (`hw:*`, `resources:*`); carried along, not used for placement.
    #[object(default)]
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

/// What a request asks the scheduler for (nova's `RequestSpec` 1.15, the fields scheduling
/// reads; the others a nova caller sends are ignored).
#[derive(Debug, Clone, PartialEq, Eq, VersionedObject)]
#[object(name = "RequestSpec", namespace = "nova", version = "1.15")]
pub struct RequestSpec {
    /// What each instance needs.
    pub flavor: Flavor,
    /// The availability zone the instances must land in, if any.
    #[object(nullable)]
    pub availability_zone: Option<String>,
    /// How many instances (the instance uuids, when given, win).
    #[object(default)]
    pub num_instances: u32,
    /// The first instance's uuid.
    pub instance_uuid: Option<String>,
    /// Boot from volume: the root disk is not counted.
    #[object(default)]
    pub is_bfv: bool,
    /// Only these hosts may be chosen (nova's `force_hosts`), when not empty.
    #[object(default)]
    pub force_hosts: Vec<String>,
    /// These hosts must not be chosen.
    #[object(default)]
    pub ignore_hosts: Vec<String>,
    /// The project the instances belong to.
    pub project_id: Option<String>,
    /// The user who asked.
    pub user_id: Option<String>,
    /// Hints (`group`, `same_host`, …); carried along.
    #[object(default)]
    pub scheduler_hints: BTreeMap<String, Vec<String>>,
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
            scheduler_hints: BTreeMap::new(),
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
/// allocation ratio); the compute agent checks a claim against them (nova's `SchedulerLimits`
/// 1.0).
#[derive(Debug, Clone, Default, PartialEq, Eq, VersionedObject)]
#[object(name = "SchedulerLimits", namespace = "nova", version = "1.0")]
pub struct Limits {
    /// NUMA limits (nova's `NUMATopologyLimits`); not computed here.
    #[object(nullable)]
    pub numa_topology: Option<serde_json::Value>,
    /// vCPU limit.
    #[object(nullable)]
    pub vcpu: Option<u64>,
    /// Disk limit, GiB.
    #[object(nullable)]
    pub disk_gb: Option<u64>,
    /// Memory limit, MiB.
    #[object(nullable)]
    pub memory_mb: Option<u64>,
}

/// One place an instance may go (nova's `Selection` 1.1): the chosen host first in each list,
/// then alternates. Every field nova reads is sent, nulls included.
#[derive(Debug, Clone, PartialEq, Eq, VersionedObject)]
#[object(name = "Selection", namespace = "nova", version = "1.1")]
pub struct Selection {
    /// The compute node's uuid.
    pub compute_node_uuid: String,
    /// The compute service's host.
    pub service_host: String,
    /// The hypervisor node's name.
    pub nodename: String,
    /// The cell the host is in.
    pub cell_uuid: String,
    /// The limits the claim was checked against.
    #[object(nullable)]
    pub limits: Option<Limits>,
    /// The claim, as JSON text (placement's allocation request format).
    #[object(nullable)]
    pub allocation_request: Option<String>,
    /// The format version of `allocation_request`.
    #[object(nullable)]
    pub allocation_request_version: Option<String>,
    /// The host's availability zone.
    #[since("1.1")]
    #[object(nullable)]
    pub availability_zone: Option<String>,
}

/// A destination in the old format (`return_objects` false, or a 3.x caller): a plain dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDestination {
    /// The compute service's host.
    pub host: String,
    /// The hypervisor node's name.
    pub nodename: String,
    /// The limits the claim was checked against, by resource (`vcpu`, `memory_mb`, `disk_gb`).
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
}

impl From<&Selection> for HostDestination {
    fn from(selection: &Selection) -> Self {
        Self {
            host: selection.service_host.clone(),
            nodename: selection.nodename.clone(),
            limits: selection
                .limits
                .iter()
                .flat_map(|l| {
                    [
                        ("vcpu", l.vcpu),
                        ("memory_mb", l.memory_mb),
                        ("disk_gb", l.disk_gb),
                    ]
                })
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect(),
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

/// A host aggregate (nova's `Aggregate` 1.3): hosts grouped, with metadata;
/// `availability_zone` in the metadata sets its hosts' zone.
#[derive(Debug, Clone, PartialEq, Eq, VersionedObject)]
#[object(name = "Aggregate", namespace = "nova", version = "1.3")]
pub struct Aggregate {
    /// Its id.
    pub id: i64,
    /// Its uuid.
    pub uuid: Option<String>,
    /// Its name.
    #[object(default)]
    pub name: String,
    /// Its hosts.
    #[object(default)]
    pub hosts: Vec<String>,
    /// Its metadata.
    #[object(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Instances (nova's `InstanceList` 2.6), as `update_instance_info` carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, VersionedObject)]
#[object(name = "InstanceList", namespace = "nova", version = "2.6")]
pub struct InstanceList {
    /// The instances.
    #[object(default)]
    pub objects: Vec<Instance>,
}

/// An instance (nova's `Instance` 2.8): the scheduler reads only its uuid and host.
#[derive(Debug, Clone, PartialEq, Eq, VersionedObject)]
#[object(name = "Instance", namespace = "nova", version = "2.8")]
pub struct Instance {
    /// The instance's uuid.
    pub uuid: String,
    /// Its host.
    pub host: Option<String>,
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
            "nova_object.name": "RequestSpec", "nova_object.namespace": "nova",
            "nova_object.version": "1.15",
            "nova_object.data": {
                "flavor": {"nova_object.name": "Flavor", "nova_object.namespace": "nova",
                           "nova_object.version": "1.2",
                           "nova_object.data": {"vcpus": 1, "memory_mb": 512}},
                "force_hosts": null, "availability_zone": null, "image": {"unknown": true}
            }
        }))
        .expect("spec");
        assert_eq!(spec.num_instances, 0);
        assert!(spec.force_hosts.is_empty());
        assert_eq!(spec.resources().disk_gb, 0);
    }

    #[test]
    fn destinations_decode_in_both_formats() {
        let hosts: Destinations = serde_json::from_value(serde_json::json!([
            {"host": "a", "nodename": "a", "limits": {"vcpu": 4}}
        ]))
        .expect("hosts");
        assert_eq!(hosts.hosts(), vec!["a"]);
        let selection = Selection {
            compute_node_uuid: "u".into(),
            service_host: "b".into(),
            nodename: "b".into(),
            cell_uuid: "c".into(),
            limits: None,
            allocation_request: None,
            allocation_request_version: None,
            availability_zone: None,
        };
        let selections: Destinations =
            serde_json::from_value(serde_json::json!([[selection]])).expect("selections");
        assert!(matches!(selections, Destinations::Selections(_)));
        assert_eq!(selections.hosts(), vec!["b"]);
    }
}
