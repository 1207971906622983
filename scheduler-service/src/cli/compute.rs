//! `scheduler-service compute`: one simulated compute agent.

use std::process::ExitCode;

use rpc_runtime::cli::ConfigArgs;
use rpc_runtime::launcher::{self, LaunchError, Services};

use super::{Failure, load_config};
use crate::api::Resources;
use crate::compute::HostSpec;
use crate::wiring::{Shared, compute_service};

/// `compute --host H --vcpus N --ram-mb N --disk-gb N [--az Z] [config flags]`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    /// Virtual CPUs the host has.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    vcpus: u64,
    /// Memory the host has, in MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    ram_mb: u64,
    /// Disk the host has, in GiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    disk_gb: u64,
    /// The host's availability zone.
    #[arg(long, default_value = "nova")]
    az: String,
    /// Milliseconds each claim takes (simulates a slow host; for trying long calls).
    #[arg(long, default_value_t = 0)]
    claim_delay_ms: u64,
}

pub(super) async fn run(args: Args) -> Result<ExitCode, Failure> {
    let spec = HostSpec {
        availability_zone: args.az.clone(),
        total: Resources {
            vcpus: args.vcpus,
            memory_mb: args.ram_mb,
            disk_gb: args.disk_gb,
        },
        claim_delay: std::time::Duration::from_millis(args.claim_delay_ms),
    };
    let config_args = args.config.clone();
    let build = move || {
        let config_args = config_args.clone();
        let spec = spec.clone();
        async move {
            let config = load_config(&config_args)?;
            let shared = Shared::open(&config)
                .await
                .map_err(|e| LaunchError::Build(Box::new(e)))?;
            let host = match config.host.clone() {
                Some(host) => host,
                None => return Err(LaunchError::Build("--host is required".into())),
            };
            let service = compute_service(config, &shared, &host, spec)
                .map_err(|e| LaunchError::Build(Box::new(e)))?;
            Ok(Services::new().with(service))
        }
    };
    let launcher = launcher::serve(1, build).await?;
    if !launcher.is_worker() {
        super::say_ready();
    }
    Ok(launcher.wait().await.into())
}
