//! `scheduler-service services`: the registry as `nova service-list` shows it; disable, enable.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use rpc_runtime::cli::ConfigArgs;
use rpc_runtime::registry::{Registry, ServiceRecord, SqlRegistry};

use rpc_runtime::config::Config;

use super::Failure;

/// `services [list | disable HOST BINARY [--reason R] | enable HOST BINARY] [config flags]`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    #[command(subcommand)]
    action: Option<Action>,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum Action {
    /// Lists the services (the default).
    List,
    /// Disables a service: the scheduler stops choosing it.
    Disable {
        /// The service's host.
        host: String,
        /// The service's binary (`nova-compute`).
        binary: String,
        /// Why, shown in the list.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Enables a disabled service.
    Enable {
        /// The service's host.
        host: String,
        /// The service's binary.
        binary: String,
    },
}

pub(super) async fn run(args: Args, config: Config) -> Result<ExitCode, Failure> {
    let registry = crate::wiring::open_registry(&config).await?;
    let outcome = act(&registry, args.action.unwrap_or(Action::List), &config).await;
    registry.close().await;
    outcome
}

async fn act(
    registry: &SqlRegistry,
    action: Action,
    config: &rpc_runtime::config::Config,
) -> Result<ExitCode, Failure> {
    match action {
        Action::List => {
            let services = registry.list(None).await?;
            say!(
                "{}",
                table(&services, config.service_down_time, Utc::now()).trim_end()
            );
        }
        Action::Disable {
            host,
            binary,
            reason,
        } => {
            let service = find(registry, &host, &binary).await?;
            registry
                .set_disabled(service.id, true, reason.as_deref())
                .await?;
            say!("disabled {binary} on {host}");
        }
        Action::Enable { host, binary } => {
            let service = find(registry, &host, &binary).await?;
            registry.set_disabled(service.id, false, None).await?;
            say!("enabled {binary} on {host}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn find(registry: &SqlRegistry, host: &str, binary: &str) -> Result<ServiceRecord, Failure> {
    registry
        .get_by_host_and_binary(host, binary)
        .await?
        .ok_or_else(|| format!("no service {binary} on host {host}").into())
}

/// The registry as a table: id, binary, host, zone, status, state, updated at, disabled reason.
pub(super) fn table(
    services: &[ServiceRecord],
    service_down_time: std::time::Duration,
    now: DateTime<Utc>,
) -> String {
    let header = [
        "Id",
        "Binary",
        "Host",
        "Zone",
        "Status",
        "State",
        "Updated At",
        "Disabled Reason",
    ];
    let rows: Vec<[String; 8]> = services
        .iter()
        .map(|s| {
            [
                s.id.to_string(),
                s.binary.clone(),
                s.host.clone(),
                zone(s).to_owned(),
                if s.disabled { "disabled" } else { "enabled" }.to_owned(),
                if s.is_up_at(now, service_down_time) {
                    "up"
                } else {
                    "down"
                }
                .to_owned(),
                s.updated_at.map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                ),
                s.disabled_reason.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::from("|");
        for (cell, width) in cells.iter().zip(widths) {
            out.push_str(&format!(" {cell:<width$} |"));
        }
        out.push('\n');
        out
    };
    let rule = {
        let mut out = String::from("+");
        for width in widths {
            out.push_str(&"-".repeat(width + 2));
            out.push('+');
        }
        out.push('\n');
        out
    };
    let mut out = rule.clone();
    out.push_str(&line(&header));
    out.push_str(&rule);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out.push_str(&rule);
    out
}

/// The zone a service declared; nova shows `internal` for services that are not computes.
fn zone(service: &ServiceRecord) -> &str {
    match &service.availability_zone {
        Some(zone) => zone,
        None if service.binary == crate::scheduler::COMPUTE_BINARY => "-",
        None => "internal",
    }
}
