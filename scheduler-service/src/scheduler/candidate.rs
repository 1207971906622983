//! A host as the filters and the weigher see it: what the host view hands them, and nothing of
//! how the view keeps it.

use crate::api::{HostReport, Resources};

/// A compute service as the registry shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Liveness {
    /// Its last heartbeat is within `service_down_time`.
    pub(crate) up: bool,
    /// An operator disabled it.
    pub(crate) disabled: bool,
}

/// A host as the filters and the weigher see it.
#[derive(Debug, Clone)]
pub(crate) struct Candidate<'a> {
    pub(crate) host: &'a str,
    pub(crate) zone: &'a str,
    pub(crate) service: Option<Liveness>,
    pub(crate) used: Resources,
    /// Total times the allocation ratio.
    pub(crate) limit: Resources,
    /// The report it stands on (for the placement made from it).
    pub(crate) report: &'a HostReport,
}
