//! The scheduler's settings, read with nova's names from the configuration the runtime loaded:
//!
//! | section | key | default |
//! |---|---|---|
//! | `[filter_scheduler]` | `enabled_filters` | `ComputeFilter, AvailabilityZoneFilter, RamFilter, CoreFilter, DiskFilter` |
//! | `[filter_scheduler]` | `ram_weight_multiplier` | `1.0` (spread; negative packs) |
//! | `[DEFAULT]` | `cpu_allocation_ratio` | `4.0` |
//! | `[DEFAULT]` | `ram_allocation_ratio` | `1.0` |
//! | `[DEFAULT]` | `disk_allocation_ratio` | `1.0` |
//! | `[DEFAULT]` | `default_availability_zone` | `nova` |
//! | `[scheduler]` | `max_attempts` | `3` (the chosen host plus up to two alternates) |
//! | `[scheduler]` | `claim_timeout` | `10` seconds for a compute agent to answer a claim |
//! | `[scheduler]` | `cell_uuid` | the cell every host is in (selections carry it); default [`DEFAULT_CELL_UUID`] |

use std::time::Duration;

use rpc_runtime::config::Config;

use crate::error::SettingError;
use crate::scheduler::filters::Filter;

/// The cell uuid selections carry when `[scheduler] cell_uuid` is not set.
pub const DEFAULT_CELL_UUID: &str = "9d5a5cbd-1b0b-5e1f-9a44-7d0fdc3bd1a0";

/// How the scheduler filters, weighs and claims.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// The filters a host must pass, in order.
    pub enabled_filters: Vec<Filter>,
    /// Free RAM's weight: positive spreads instances over hosts, negative packs them.
    pub ram_weight_multiplier: f64,
    /// vCPUs a host may hand out per physical vCPU.
    pub cpu_allocation_ratio: f64,
    /// Memory a host may hand out per MiB it has.
    pub ram_allocation_ratio: f64,
    /// Disk a host may hand out per GiB it has.
    pub disk_allocation_ratio: f64,
    /// The zone of hosts no aggregate places in one.
    pub default_availability_zone: String,
    /// Selections per instance: the chosen host, then alternates.
    pub max_attempts: usize,
    /// How long a compute agent has to answer a claim.
    pub claim_timeout: Duration,
    /// A compute service whose last heartbeat is older is down (`[DEFAULT] service_down_time`).
    pub service_down_time: Duration,
    /// The cell every host is in: one cell, as nova's cell1.
    pub cell_uuid: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled_filters: Filter::DEFAULTS.to_vec(),
            ram_weight_multiplier: 1.0,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            default_availability_zone: "nova".to_owned(),
            max_attempts: 3,
            claim_timeout: Duration::from_secs(10),
            service_down_time: Duration::from_secs(60),
            cell_uuid: DEFAULT_CELL_UUID.to_owned(),
        }
    }
}

impl Settings {
    /// Reads the settings from `config`, each missing one at its default.
    ///
    /// # Errors
    ///
    /// A value that does not parse, or names an unknown filter.
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        let mut settings = Self {
            service_down_time: config.service_down_time,
            ..Self::default()
        };
        if let Some(value) = config.option("filter_scheduler", "enabled_filters") {
            settings.enabled_filters = value
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| {
                    Filter::from_name(name).ok_or_else(|| SettingError {
                        section: "filter_scheduler",
                        key: "enabled_filters",
                        reason: format!(
                            "unknown filter `{name}`; known: {}",
                            Filter::ALL
                                .iter()
                                .map(|f| f.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        let number = |section: &'static str, key: &'static str, default: f64| {
            config.option(section, key).map_or(Ok(default), |value| {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| SettingError {
                        section,
                        key,
                        reason: format!("expected a number, not `{value}`"),
                    })
            })
        };
        let ratio = |key: &'static str, default: f64| {
            let value = number("DEFAULT", key, default)?;
            if value > 0.0 {
                Ok(value)
            } else {
                Err(SettingError {
                    section: "DEFAULT",
                    key,
                    reason: format!("must be above 0, not {value}"),
                })
            }
        };
        settings.ram_weight_multiplier = number(
            "filter_scheduler",
            "ram_weight_multiplier",
            settings.ram_weight_multiplier,
        )?;
        settings.cpu_allocation_ratio =
            ratio("cpu_allocation_ratio", settings.cpu_allocation_ratio)?;
        settings.ram_allocation_ratio =
            ratio("ram_allocation_ratio", settings.ram_allocation_ratio)?;
        settings.disk_allocation_ratio =
            ratio("disk_allocation_ratio", settings.disk_allocation_ratio)?;
        if let Some(zone) = config.option("DEFAULT", "default_availability_zone") {
            settings.default_availability_zone = zone.to_owned();
        }
        let whole = |key: &'static str, default: u64| {
            config
                .option("scheduler", key)
                .map_or(Ok(default), |value| {
                    value
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| SettingError {
                            section: "scheduler",
                            key,
                            reason: format!("expected a whole number above 0, not `{value}`"),
                        })
                })
        };
        settings.max_attempts = usize::try_from(whole("max_attempts", 3)?).unwrap_or(usize::MAX);
        settings.claim_timeout = Duration::from_secs(whole("claim_timeout", 10)?);
        if let Some(cell) = config.option("scheduler", "cell_uuid") {
            settings.cell_uuid = cell.trim().to_owned();
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use rpc_runtime::config::ConfigLoader;

    use super::*;

    fn settings(ini: &str) -> Result<Settings, SettingError> {
        let config = ConfigLoader::new()
            .text("scheduler.conf", ini)
            .load()
            .expect("config")
            .config;
        Settings::from_config(&config)
    }

    #[test]
    fn nova_names_set_filters_ratios_and_weights() {
        let s = settings(
            "[DEFAULT]\ncpu_allocation_ratio = 16.0\nservice_down_time = 30\n\
             [filter_scheduler]\nenabled_filters = RamFilter, ComputeFilter\n\
             ram_weight_multiplier = -1.0\n[scheduler]\nmax_attempts = 1\n",
        )
        .expect("settings");
        assert_eq!(s.enabled_filters, vec![Filter::Ram, Filter::Compute]);
        assert!((s.cpu_allocation_ratio - 16.0).abs() < f64::EPSILON);
        assert!(s.ram_weight_multiplier < 0.0);
        assert_eq!(s.max_attempts, 1);
        assert_eq!(s.service_down_time, Duration::from_secs(30));
    }

    #[test]
    fn nothing_set_gives_the_defaults() {
        let s = settings("").expect("settings");
        assert_eq!(s.enabled_filters, Filter::DEFAULTS.to_vec());
        assert_eq!(s.default_availability_zone, "nova");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = settings("[filter_scheduler]\nenabled_filters = RamFiltr\n").unwrap_err();
        assert_eq!(e.key, "enabled_filters");
        assert!(e.reason.contains("RamFiltr"), "{e}");
        let e = settings("[DEFAULT]\nram_allocation_ratio = 0\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "[DEFAULT] ram_allocation_ratio: must be above 0, not 0"
        );
        let e = settings("[scheduler]\nmax_attempts = many\n").unwrap_err();
        assert_eq!(e.key, "max_attempts");
    }
}
