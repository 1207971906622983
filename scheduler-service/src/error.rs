//! The errors the scheduler and the compute agents answer with, and the binary's own.

use std::fmt;

use rpc_runtime::ApplicationError;
use serde::{Deserialize, Serialize};

/// The module nova's callers look exceptions up in: a nova conductor re-raises `NoValidHost`.
const NOVA_EXCEPTION_MODULE: &str = "nova.exception";

/// Not every instance of a request could be placed; nothing was claimed for it (nova's
/// `NoValidHost`, which a nova caller re-raises as its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoValidHost {
    /// Why: `There are not enough hosts available.`, or what else failed.
    pub reason: String,
    /// The HTTP-style code nova attaches (500).
    #[serde(default = "server_error")]
    pub code: u16,
}

fn server_error() -> u16 {
    500
}

impl NoValidHost {
    /// The reason nova gives when the hosts that pass the filters cannot take every instance.
    pub const NOT_ENOUGH_HOSTS: &str = "There are not enough hosts available.";

    /// A `NoValidHost` with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            code: server_error(),
        }
    }
}

impl fmt::Display for NoValidHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "No valid host was found. {}", self.reason)
    }
}

impl std::error::Error for NoValidHost {}

impl ApplicationError for NoValidHost {
    fn module(&self) -> String {
        NOVA_EXCEPTION_MODULE.to_owned()
    }
}

/// A compute agent refused a claim: the instance does not fit within the limits any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRefused {
    /// The host that refused.
    pub host: String,
    /// Which resource ran out.
    pub reason: String,
}

impl fmt::Display for ClaimRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused the claim: {}", self.host, self.reason)
    }
}

impl std::error::Error for ClaimRefused {}

impl ApplicationError for ClaimRefused {}

/// The scheduler cannot answer: what it depends on (the registry) failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// What failed.
    pub reason: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Unavailable {}

impl ApplicationError for Unavailable {}

/// A setting the scheduler reads has a value it cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{section}] {key}: {reason}")]
pub struct SettingError {
    /// The section.
    pub section: &'static str,
    /// The key.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}
