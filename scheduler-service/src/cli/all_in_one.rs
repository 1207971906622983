//! `scheduler-service` with no subcommand: the scheduler and a few simulated compute agents in
//! this process, on the embedded default (the `memory://` transport, SQLite in a temporary
//! file), started through the launcher. Boots a batch of instances, prints what happened at each
//! step, stops gracefully and exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use rpc_runtime::config::{Config, ConfigLoader};
use rpc_runtime::launcher::{self, LaunchError, Services};
use rpc_runtime::notify::versioned::VERSIONED_TOPIC;
use rpc_runtime::notify::{NotificationListener, Notifier, RawNotification};
use rpc_runtime::registry::Registry;
use rpc_runtime::{CallError, CallOptions, Context, Target, Transport};

use super::Failure;
use crate::api::{Destinations, Flavor, RequestSpec, Resources};
use crate::compute::HostSpec;
use crate::error::NoValidHost;
use crate::manager::{FilterProperties, LegacyFlavor, LegacyInstanceProperties, LegacyRequestSpec};
use crate::rpcapi::scheduler::{SchedulerManagerClient, SchedulerV3Client};
use crate::wiring::{SCHEDULER_BINARY, Shared, compute_service, scheduler_service};

/// `all-in-one [--database FILE]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(super) struct Args {
    /// The SQLite file for the services registry; kept afterwards (default: a temporary file,
    /// removed at the end).
    #[arg(long)]
    database: Option<PathBuf>,
}

/// The simulated hosts: name, vCPUs, MiB, GiB, zone.
const HOSTS: &[(&str, u64, u64, u64, &str)] = &[
    ("compute-1", 8, 16_384, 200, "nova"),
    ("compute-2", 16, 32_768, 400, "nova"),
    ("compute-3", 8, 16_384, 200, "east"),
];

const TRANSPORT: &str = "memory://all-in-one";

pub(super) async fn run(args: Args) -> Result<ExitCode, Failure> {
    let (database, temporary) = match args.database {
        Some(path) => (path, false),
        None => (
            std::env::temp_dir().join(format!("scheduler-service-{}.sqlite", uuid::Uuid::new_v4())),
            true,
        ),
    };
    let outcome = demonstrate(&database).await;
    if temporary {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = database.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
    outcome
}

fn config(database: &std::path::Path) -> Result<Config, Failure> {
    Ok(ConfigLoader::new()
        .set("DEFAULT", "host", "controller")
        .set("DEFAULT", "transport_url", TRANSPORT)
        .set("DEFAULT", "periodic_fuzzy_delay", "0")
        // nova-scheduler's notifications, legacy and versioned, on the same transport.
        .set("oslo_messaging_notifications", "driver", "messagingv2")
        .set("notifications", "notification_format", "both")
        .set(
            "database",
            "connection",
            format!("sqlite:{}?mode=rwc", database.display()),
        )
        .load()?
        .config)
}

async fn demonstrate(database: &std::path::Path) -> Result<ExitCode, Failure> {
    let config = config(database)?;
    say!(
        "scheduler-service all-in-one: a scheduler and {} compute agents in one process",
        HOSTS.len()
    );
    say!(
        "  transport {TRANSPORT} (in process), services registry sqlite:{}",
        database.display()
    );
    say!();

    say!(
        "1. start: the launcher builds and starts each service; each runs init_host, registers in"
    );
    say!(
        "   the services table, runs pre_start_hook, consumes its topic, runs post_start_hook and"
    );
    say!("   heartbeats every {} s", config.report_interval.as_secs());
    let shared = Shared::open(&config).await?;
    let build = {
        let shared = shared.clone();
        let config = config.clone();
        move || {
            let shared = shared.clone();
            let config = config.clone();
            async move {
                let built = || -> Result<Services, crate::wiring::BuildError> {
                    let mut services =
                        Services::new().with(scheduler_service(config.clone(), &shared)?);
                    for &(host, vcpus, memory_mb, disk_gb, zone) in HOSTS {
                        let spec = HostSpec {
                            availability_zone: zone.to_owned(),
                            total: Resources {
                                vcpus,
                                memory_mb,
                                disk_gb,
                            },
                            claim_delay: std::time::Duration::ZERO,
                        };
                        services =
                            services.with(compute_service(config.clone(), &shared, host, spec)?);
                    }
                    Ok(services)
                };
                built().map_err(|e| LaunchError::Build(Box::new(e)))
            }
        }
    };
    let launcher = launcher::serve(1, build).await?;
    let stop = launcher.stop_handle();
    let waiting = tokio::spawn(launcher.wait());
    say!("   {SCHEDULER_BINARY} on controller: topic scheduler, RPC API 4.6 and the 3.x shim");
    for &(host, vcpus, memory_mb, disk_gb, zone) in HOSTS {
        say!(
            "   nova-compute on {host}: {vcpus} vCPUs, {memory_mb} MiB, {disk_gb} GiB, zone {zone}"
        );
    }
    say!();

    // Listening from here on: what the scheduler sent before (its `service.update` on start)
    // waits in the queue, as it would on RabbitMQ.
    let collected = Arc::new(Collected::default());
    let listener = NotificationListener::builder(Arc::clone(&shared.transport))
        .target(Target::new("notifications"))
        .target(Target::new(VERSIONED_TOPIC))
        .endpoint(Arc::clone(&collected) as Arc<_>)
        .max_concurrency(1)
        .start()
        .await?;

    let outcome = boot_batch(&shared.transport, &*shared.registry, &config).await;
    show_notifications(&shared.transport, &collected).await?;
    listener.stop().await;

    say!("6. stop: SIGTERM's path: stop consuming, finish the requests in flight, cleanup_host");
    stop.stop();
    let exit = waiting.await?;
    say!("   stopped: {exit:?}, exit code {}", exit.code());
    outcome?;
    Ok(exit.into())
}

async fn boot_batch(
    transport: &Arc<dyn Transport>,
    registry: &dyn Registry,
    config: &Config,
) -> Result<(), Failure> {
    say!("2. the services table, as `scheduler-service services` shows it:");
    let services = registry.list(None).await?;
    for line in super::services::table(&services, config.service_down_time, Utc::now()).lines() {
        say!("   {line}");
    }
    say!();

    say!("3. boots (each all or nothing; the chosen host is claimed on its compute agent):");
    let client = SchedulerManagerClient::new(Arc::clone(transport));
    let ctx = Context::new();
    let requests = [
        ("4 x m1.small", Flavor::named("m1.small"), 4, None),
        (
            "2 x m1.large in zone east",
            Flavor::named("m1.large"),
            2,
            Some("east"),
        ),
        (
            "1 x m1.xlarge in zone east",
            Flavor::named("m1.xlarge"),
            1,
            Some("east"),
        ),
        ("3 x m1.medium", Flavor::named("m1.medium"), 3, None),
    ];
    for (label, flavor, count, zone) in requests {
        let flavor = flavor.ok_or("a built-in flavor is missing")?;
        let uuids = new_uuids(count);
        let mut spec = RequestSpec::new(flavor, count);
        spec.availability_zone = zone.map(str::to_owned);
        let answer = client
            .select_destinations(&ctx, spec, Some(uuids.clone()), Some(true), Some(true))
            .await;
        report(label, &uuids, answer)?;
    }
    // An old caller: the 3.x shim turns its dictionaries into a request spec.
    let uuids = new_uuids(2);
    let legacy = LegacyRequestSpec {
        instance_type: LegacyFlavor::from(
            &Flavor::named("m1.tiny").ok_or("a built-in flavor is missing")?,
        ),
        instance_properties: LegacyInstanceProperties::default(),
        num_instances: Some(2),
        instance_uuids: uuids.clone(),
    };
    let answer = SchedulerV3Client::new(Arc::clone(transport))
        .select_destinations(&ctx, legacy, FilterProperties::default())
        .await
        .map(Destinations::Hosts);
    report("2 x m1.tiny from a 3.x caller", &uuids, answer)?;
    say!();

    say!("4. the hosts as the scheduler sees them now:");
    let hosts = client
        .prepare(CallOptions::new())
        .hosts(&ctx)
        .await
        .map_err(|e| e.to_string())?;
    for host in hosts {
        say!(
            "   {:<10} zone {:<5} {:>2} instances; used {:>2}/{} vCPUs, {:>5}/{} MiB, {:>3}/{} GiB",
            host.host,
            host.zone,
            host.instances,
            host.used.vcpus,
            host.limit.vcpus,
            host.used.memory_mb,
            host.limit.memory_mb,
            host.used.disk_gb,
            host.limit.disk_gb,
        );
    }
    say!();
    Ok(())
}

/// What the all-in-one's listener received, and the marker that ends it.
#[derive(Default)]
struct Collected {
    received: std::sync::Mutex<Vec<RawNotification>>,
    marker: tokio::sync::Notify,
}

/// The event type of the marker the all-in-one sends after the boots.
const MARKER: &str = "all_in_one.done";

#[rpc_runtime::notification_endpoint]
impl Collected {
    async fn info(&self, n: RawNotification) {
        if n.event_type == MARKER {
            self.marker.notify_one();
        } else {
            self.received
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(n);
        }
    }
}

/// Prints what the scheduler told the world: counts by event type and publisher, and a few
/// lines as `scheduler-service notifications` prints them.
async fn show_notifications(
    transport: &Arc<dyn Transport>,
    collected: &Collected,
) -> Result<(), Failure> {
    // The listener takes one at a time, in order: once the marker is in, all before it are.
    Notifier::new(Arc::clone(transport), "all-in-one")
        .info(&Context::new(), MARKER, &serde_json::json!({}))
        .await?;
    collected.marker.notified().await;
    let received = collected
        .received
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    say!(
        "5. notifications: {} sent by the scheduler (legacy and versioned, \
         [notifications] notification_format = both):",
        received.len()
    );
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for n in &received {
        *counts
            .entry((n.event_type.clone(), n.publisher_id.clone()))
            .or_default() += 1;
    }
    for ((event_type, publisher), count) in counts {
        say!("   {count:>2} x {event_type:<36} from {publisher}");
    }
    say!("   the first three, as `scheduler-service notifications` prints them:");
    for n in received.iter().take(3) {
        let mut line = super::notifications::text_line(n);
        if line.len() > 150 {
            let cut = (0..=150)
                .rev()
                .find(|i| line.is_char_boundary(*i))
                .unwrap_or(0);
            line.truncate(cut);
            line.push('…');
        }
        say!("   {line}");
    }
    say!();
    Ok(())
}

fn new_uuids(count: u32) -> Vec<String> {
    (0..count)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect()
}

fn report(
    label: &str,
    uuids: &[String],
    answer: Result<Destinations, CallError<NoValidHost>>,
) -> Result<(), Failure> {
    match answer {
        Ok(destinations) => {
            say!("   {label}:");
            for line in super::boot::placements(uuids, &destinations).lines() {
                say!("     {line}");
            }
            Ok(())
        }
        Err(CallError::Application(no_host)) => {
            say!("   {label}: NoValidHost: {no_host}");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}
