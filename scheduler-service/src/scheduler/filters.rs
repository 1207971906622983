//! The filters: each says whether a host can take one more instance of a request.

use crate::api::Resources;

use super::candidate::Candidate;

/// A filter, named as nova names it in `[filter_scheduler] enabled_filters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// The host's compute service is up (heartbeat within `service_down_time`) and enabled.
    Compute,
    /// The host is in the requested availability zone, when the request names one.
    AvailabilityZone,
    /// Free memory, with `ram_allocation_ratio`, covers the instance.
    Ram,
    /// Free vCPUs, with `cpu_allocation_ratio`, cover the instance.
    Core,
    /// Free disk, with `disk_allocation_ratio`, covers the instance.
    Disk,
}

impl Filter {
    /// Every filter.
    pub const ALL: &[Filter] = &[
        Filter::Compute,
        Filter::AvailabilityZone,
        Filter::Ram,
        Filter::Core,
        Filter::Disk,
    ];

    /// The filters enabled when `enabled_filters` is not set.
    pub const DEFAULTS: &[Filter] = Self::ALL;

    /// nova's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Compute => "ComputeFilter",
            Self::AvailabilityZone => "AvailabilityZoneFilter",
            Self::Ram => "RamFilter",
            Self::Core => "CoreFilter",
            Self::Disk => "DiskFilter",
        }
    }

    /// The filter nova calls `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.name() == name)
    }

    /// Whether `host` can take one instance needing `wanted`, in `zone` if given.
    pub(crate) fn passes(
        self,
        host: &Candidate<'_>,
        wanted: Resources,
        zone: Option<&str>,
    ) -> bool {
        let fits = |used: u64, limit: u64, want: u64| used.saturating_add(want) <= limit;
        match self {
            Self::Compute => host.service.is_some_and(|s| s.up && !s.disabled),
            Self::AvailabilityZone => zone.is_none_or(|zone| zone == host.zone),
            Self::Ram => fits(host.used.memory_mb, host.limit.memory_mb, wanted.memory_mb),
            Self::Core => fits(host.used.vcpus, host.limit.vcpus, wanted.vcpus),
            Self::Disk => fits(host.used.disk_gb, host.limit.disk_gb, wanted.disk_gb),
        }
    }
}
