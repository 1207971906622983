//! The 3.x API's wire types: the dictionaries callers from before 4.0 send (nova's legacy request
//! spec and filter properties), and the legacy notification payload.

use crate::api::{Flavor, RequestSpec};

/// The 3.x request spec dictionary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegacyRequestSpec {
    /// The flavor, as a dictionary.
    pub instance_type: LegacyFlavor,
    /// The instance's properties (its zone, project, user).
    #[serde(default)]
    pub instance_properties: LegacyInstanceProperties,
    /// How many instances.
    #[serde(default)]
    pub num_instances: Option<u32>,
    /// Their uuids.
    #[serde(default)]
    pub instance_uuids: Vec<String>,
}

/// A flavor as 3.x callers send it: a plain dictionary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegacyFlavor {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u64,
    /// Memory, in MiB.
    pub memory_mb: u64,
    /// Root disk, in GiB.
    #[serde(default)]
    pub root_gb: u64,
    /// Ephemeral disk, in GiB.
    #[serde(default)]
    pub ephemeral_gb: u64,
    /// Swap, in MiB.
    #[serde(default)]
    pub swap: u64,
}

impl From<&Flavor> for LegacyFlavor {
    fn from(flavor: &Flavor) -> Self {
        Self {
            name: flavor.name.clone(),
            vcpus: flavor.vcpus,
            memory_mb: flavor.memory_mb,
            root_gb: flavor.root_gb,
            ephemeral_gb: flavor.ephemeral_gb,
            swap: flavor.swap,
        }
    }
}

impl From<&LegacyFlavor> for Flavor {
    fn from(flavor: &LegacyFlavor) -> Self {
        let mut converted = Flavor::new(
            flavor.name.clone(),
            flavor.vcpus,
            flavor.memory_mb,
            flavor.root_gb,
        );
        converted.ephemeral_gb = flavor.ephemeral_gb;
        converted.swap = flavor.swap;
        converted
    }
}

/// The instance properties of a 3.x request spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LegacyInstanceProperties {
    /// The zone asked for.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// The project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The user.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The 3.x filter properties dictionary (the keys the scheduler reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilterProperties {
    /// Only these hosts.
    #[serde(default)]
    pub force_hosts: Vec<String>,
    /// Not these hosts.
    #[serde(default)]
    pub ignore_hosts: Vec<String>,
}

impl LegacyRequestSpec {
    /// The 3.x dictionary of a request spec (nova's `to_legacy_request_spec_dict()`, the fields
    /// this scheduler has).
    pub fn from_spec(spec: &RequestSpec) -> Self {
        Self {
            instance_type: LegacyFlavor::from(&spec.flavor),
            instance_properties: LegacyInstanceProperties {
                availability_zone: spec.availability_zone.clone(),
                project_id: spec.project_id.clone(),
                user_id: spec.user_id.clone(),
            },
            num_instances: Some(spec.num_instances),
            instance_uuids: spec.instance_uuid.iter().cloned().collect(),
        }
    }

    /// The request spec the 4.x API takes.
    pub fn to_spec(&self, filter_properties: &FilterProperties) -> RequestSpec {
        let count = self
            .num_instances
            .unwrap_or_else(|| u32::try_from(self.instance_uuids.len().max(1)).unwrap_or(u32::MAX));
        let mut spec = RequestSpec::new(Flavor::from(&self.instance_type), count);
        spec.availability_zone = self.instance_properties.availability_zone.clone();
        spec.project_id = self.instance_properties.project_id.clone();
        spec.user_id = self.instance_properties.user_id.clone();
        spec.instance_uuid = self.instance_uuids.first().cloned();
        spec.force_hosts = filter_properties.force_hosts.clone();
        spec.ignore_hosts = filter_properties.ignore_hosts.clone();
        spec
    }
}
