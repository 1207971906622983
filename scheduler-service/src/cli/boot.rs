//! `scheduler-service boot`: asks the scheduler where instances go and prints the answer.

use std::process::ExitCode;
use std::time::Duration;

use rpc_runtime::cli::ConfigArgs;
use rpc_runtime::{CallOptions, Context};

use rpc_runtime::config::Config;

use super::Failure;
use crate::api::{Destinations, Flavor, RequestSpec};
use crate::manager::{FilterProperties, LegacyFlavor, LegacyInstanceProperties, LegacyRequestSpec};
use crate::rpcapi::scheduler::{SchedulerManagerClient, SchedulerV3Client};

/// `boot [--flavor F] [--count N] [--az Z] [--legacy] [config flags]`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    /// A flavor name (m1.tiny, m1.small, m1.medium, m1.large, m1.xlarge) or `VCPUS:RAM_MB:DISK_GB`.
    #[arg(long, default_value = "m1.small", value_parser = parse_flavor)]
    flavor: Flavor,
    /// How many instances, placed all or none.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Only hosts in this availability zone.
    #[arg(long)]
    az: Option<String>,
    /// Ask through the 3.x API (`select_destinations(request_spec, filter_properties)`), as a
    /// caller from before 4.0 does.
    #[arg(long)]
    legacy: bool,
    /// Seconds to wait for the answer (default: `rpc_response_timeout`).
    #[arg(long)]
    timeout: Option<u64>,
}

/// Parses `--flavor`.
pub(super) fn parse_flavor(text: &str) -> Result<Flavor, String> {
    if let Some(flavor) = Flavor::named(text) {
        return Ok(flavor);
    }
    let numbers: Vec<Option<u64>> = text.split(':').map(|n| n.parse().ok()).collect();
    match numbers[..] {
        [Some(vcpus), Some(ram), Some(disk)] => Ok(Flavor::new(text, vcpus, ram, disk)),
        _ => Err(format!(
            "`{text}` is neither a known flavor ({}) nor VCPUS:RAM_MB:DISK_GB",
            crate::api::FLAVORS
                .iter()
                .map(|(name, ..)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub(super) async fn run(args: Args, config: Config) -> Result<ExitCode, Failure> {
    let transport = config.connect_transport().await?;
    let timeout = args
        .timeout
        .map_or(config.rpc_response_timeout, Duration::from_secs);
    let uuids: Vec<String> = (0..args.count)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let ctx = Context::new();
    let destinations = if args.legacy {
        let spec = LegacyRequestSpec {
            instance_type: LegacyFlavor::from(&args.flavor),
            instance_properties: LegacyInstanceProperties {
                availability_zone: args.az.clone(),
                ..LegacyInstanceProperties::default()
            },
            num_instances: Some(args.count),
            instance_uuids: uuids.clone(),
        };
        let hosts = SchedulerV3Client::new(transport)
            .prepare(CallOptions::new().timeout(timeout))
            .select_destinations(&ctx, spec, FilterProperties::default())
            .await?;
        Destinations::Hosts(hosts)
    } else {
        let mut spec = RequestSpec::new(args.flavor.clone(), args.count);
        spec.availability_zone = args.az.clone();
        spec.instance_uuid = uuids.first().cloned();
        SchedulerManagerClient::new(transport)
            .prepare(CallOptions::new().timeout(timeout))
            .select_destinations(&ctx, spec, Some(uuids.clone()), Some(true), Some(true))
            .await?
    };
    say!("{}", placements(&uuids, &destinations).trim_end());
    Ok(ExitCode::SUCCESS)
}

/// One line per instance: `<uuid> -> <host> (zone <z>) alternates: <a>, <b>`.
pub(super) fn placements(uuids: &[String], destinations: &Destinations) -> String {
    let mut out = String::new();
    match destinations {
        Destinations::Selections(lists) => {
            for (uuid, list) in uuids.iter().zip(lists) {
                let Some((chosen, alternates)) = list.split_first() else {
                    continue;
                };
                out.push_str(&format!(
                    "{uuid} -> {} (zone {})",
                    chosen.service_host,
                    chosen.availability_zone.as_deref().unwrap_or("-")
                ));
                if !alternates.is_empty() {
                    let names: Vec<&str> =
                        alternates.iter().map(|s| s.service_host.as_str()).collect();
                    out.push_str(&format!("  alternates: {}", names.join(", ")));
                }
                out.push('\n');
            }
        }
        Destinations::Hosts(hosts) => {
            for (uuid, host) in uuids.iter().zip(hosts) {
                out.push_str(&format!("{uuid} -> {} (3.x API)\n", host.host));
            }
        }
    }
    out
}
