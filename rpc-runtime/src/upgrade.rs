//! `[upgrade_levels]`: the version cap under which a client of a topic sends during a rolling
//! upgrade, so old servers still understand every call.
//!
//! A level is an explicit version (`scheduler = 4.1`), a release name the API declares with
//! `#[rpc_endpoint(aliases = "zed=4.1")]`, or `auto`: the oldest API version among the topic's
//! live services in the registry (each service records the version it serves when it starts).
//! Resolve again after a restart or SIGHUP, as nova does, to pick up upgraded services.

use crate::config::{Config, UpgradeLevel};
use crate::endpoint::EndpointDescriptor;
use crate::registry::{Registry, RegistryError, oldest_live_version};
use crate::version::Version;

/// Why a cap could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    /// The release name is not one the API declares.
    #[error("[upgrade_levels] {topic} = {alias}: not a release this API knows (known: {})", known.join(", "))]
    UnknownAlias {
        /// The topic.
        topic: String,
        /// The name configured.
        alias: String,
        /// The names the API declares.
        known: Vec<String>,
    },
    /// `auto` needs the registry, and none was given.
    #[error("[upgrade_levels] {topic} = auto needs the services registry")]
    NoRegistry {
        /// The topic.
        topic: String,
    },
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The cap for calls to the API `descriptor` describes, from `config`'s `[upgrade_levels]` entry
/// for its topic. `None`: no cap (no entry, or `auto` with no live service to be compatible with).
///
/// # Errors
///
/// [`CapError`]: an unknown release name, `auto` without a registry, or a registry failure.
pub async fn version_cap(
    config: &Config,
    descriptor: &EndpointDescriptor,
    registry: Option<&dyn Registry>,
) -> Result<Option<Version>, CapError> {
    let Some(topic) = descriptor.topic else {
        return Ok(None);
    };
    let Some(level) = config.upgrade_level(topic) else {
        return Ok(None);
    };
    let cap = match level {
        UpgradeLevel::Version(version) => Some(*version),
        UpgradeLevel::Alias(alias) => Some(descriptor.alias(alias).ok_or_else(|| {
            CapError::UnknownAlias {
                topic: topic.to_owned(),
                alias: alias.clone(),
                known: descriptor
                    .aliases
                    .iter()
                    .map(|(name, _)| (*name).to_owned())
                    .collect(),
            }
        })?),
        UpgradeLevel::Auto => {
            let registry = registry.ok_or_else(|| CapError::NoRegistry {
                topic: topic.to_owned(),
            })?;
            let services = registry.list(None).await?;
            let of_topic = services.iter().filter(|s| s.topic == topic);
            let oldest = oldest_live_version(of_topic, config.service_down_time);
            match oldest {
                Some(version) => tracing::info!(
                    topic,
                    cap = %version,
                    "upgrade_levels = auto: capped at the oldest live service's version"
                ),
                None => tracing::info!(
                    topic,
                    "upgrade_levels = auto: no live service says its version; not capped"
                ),
            }
            oldest
        }
    };
    Ok(cap)
}
