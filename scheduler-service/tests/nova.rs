//! nova 34's own scheduler client (pip-installed into a virtualenv) against this scheduler on
//! RabbitMQ, in a vhost of the test's own, on nova's control exchange: placements with
//! alternates, `NoValidHost` raised as nova's exception, the five fanout casts visible in the
//! scheduler's host view, and a slow `select_destinations` kept alive by call-monitor heartbeats.

// Helpers report by panicking.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use rpc_integration_tests::{Vhost, python_venv};
use rpc_runtime::config::ConfigLoader;
use rpc_runtime::{Context, Service};
use scheduler_service::SchedulerManagerClient;
use scheduler_service::api::Resources;
use scheduler_service::compute::{ComputeManager, HostSpec};
use scheduler_service::scheduler::HostSummary;
use scheduler_service::wiring::{Shared, compute_service, scheduler_service};
use serde_json::Value;

/// The nova release whose scheduler client the Python side runs.
const NOVA: &str = "nova==34.0.0";

fn host(vcpus: u64, memory_mb: u64, disk_gb: u64, zone: &str, delay: Duration) -> HostSpec {
    HostSpec {
        availability_zone: zone.to_owned(),
        total: Resources {
            vcpus,
            memory_mb,
            disk_gb,
        },
        claim_delay: delay,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn novas_own_client_schedules_casts_and_survives_a_long_call() {
    let Some(vhost) = Vhost::create("nova-client") else {
        return;
    };
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nova-venv");
    let Some(python) =
        tokio::task::spawn_blocking(move || python_venv(&venv, &[NOVA], "nova.scheduler.rpcapi"))
            .await
            .unwrap()
    else {
        return;
    };
    let config = ConfigLoader::new()
        .set("DEFAULT", "host", "scheduler-0")
        .set("DEFAULT", "transport_url", vhost.url(""))
        .set("DEFAULT", "control_exchange", "nova")
        .set("DEFAULT", "periodic_enable", "false")
        .set("database", "connection", "sqlite::memory:")
        .set("scheduler", "claim_timeout", "20")
        .load()
        .unwrap()
        .config;
    let shared = Shared::open(&config).await.unwrap();
    // The inventory nova-wire's fake uses, plus a slow host in a zone of its own.
    let hosts = [
        ("compute-0", host(16, 65_536, 1_000, "nova", Duration::ZERO)),
        ("compute-1", host(16, 32_768, 1_000, "nova", Duration::ZERO)),
        ("compute-2", host(8, 16_384, 500, "nova", Duration::ZERO)),
        (
            "slow-0",
            host(8, 16_384, 500, "slow", Duration::from_secs(5)),
        ),
    ];
    let mut computes: Vec<Service<ComputeManager>> = Vec::new();
    for (name, spec) in hosts {
        let mut service = compute_service(config.clone(), &shared, name, spec).unwrap();
        service.start().await.unwrap();
        computes.push(service);
    }
    let mut scheduler = scheduler_service(config.clone(), &shared).unwrap();
    scheduler.start().await.unwrap();

    let mut child = tokio::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/nova_client.py"))
        .arg(vhost.url(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let client = SchedulerManagerClient::new(Arc::clone(&shared.transport));
    let first_step = stdout.next_line().await.unwrap();
    assert_eq!(first_step.as_deref(), Some("casts: first step sent"));
    // update_aggregates twice (zones az1, az2) and update_instance_info (two instances).
    wait_for_view(&client, |hosts| {
        zone(hosts, "compute-0") == "az1"
            && zone(hosts, "compute-1") == "az2"
            && instances(hosts, "compute-2") == 2
    })
    .await;
    stdin.write_all(b"go on\n").await.unwrap();
    stdin.flush().await.unwrap();
    // delete_aggregate (compute-1 back to the default zone), delete_instance_info (one left),
    // sync_instance_info (compute-1's list replaced by three).
    wait_for_view(&client, |hosts| {
        zone(hosts, "compute-0") == "az1"
            && zone(hosts, "compute-1") == "nova"
            && instances(hosts, "compute-2") == 1
            && instances(hosts, "compute-1") == 3
    })
    .await;
    drop(stdin);
    let last = stdout.next_line().await.unwrap().unwrap_or_default();
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let results: Value =
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {last} {stderr}"));

    // One list per instance: the chosen host, then up to two alternates, every field set.
    let lists = results["select"]["selections"]
        .as_array()
        .unwrap_or_else(|| panic!("{results}"));
    assert_eq!(lists.len(), 1);
    let first = lists[0].as_array().unwrap();
    assert!((2..=3).contains(&first.len()), "{first:?}");
    for field in [
        "compute_node_uuid",
        "service_host",
        "nodename",
        "cell_uuid",
        "allocation_request",
        "allocation_request_version",
        "availability_zone",
    ] {
        assert!(
            first[0].get(field).is_some_and(|v| !v.is_null()),
            "{field}: {first:?}"
        );
    }
    assert!(first[0].get("limits").is_some(), "{first:?}");
    let allocation: Value =
        serde_json::from_str(first[0]["allocation_request"].as_str().unwrap()).unwrap();
    assert!(allocation["allocations"].is_object(), "{allocation}");
    assert_eq!(
        results["select_noalts"]["selections"][0]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let multi = results["select_multi"]["selections"].as_array().unwrap();
    assert_eq!(multi.len(), 2);

    // NoValidHost arrives as nova's own exception, with its kwargs.
    assert_eq!(results["novalidhost"]["novalidhost"], true, "{results}");
    assert_eq!(
        results["novalidhost"]["kwargs"]["reason"],
        "There are not enough hosts available."
    );
    assert_eq!(results["novalidhost"]["kwargs"]["code"], 500);

    // Longer than the call monitor's 2 s limit: heartbeats kept it alive.
    let slow = &results["select_slow"]["selections"];
    assert_eq!(slow[0][0]["service_host"], "slow-0", "{results}");

    scheduler.stop().await;
    for compute in &mut computes {
        compute.stop().await;
    }
    drop(vhost);
}

fn zone<'a>(hosts: &'a [HostSummary], name: &str) -> &'a str {
    hosts
        .iter()
        .find(|h| h.host == name)
        .map_or("", |h| h.zone.as_str())
}

fn instances(hosts: &[HostSummary], name: &str) -> usize {
    hosts
        .iter()
        .find(|h| h.host == name)
        .map_or(usize::MAX, |h| h.instances)
}

/// Polls the scheduler's host view (casts have no reply) until `done` holds, up to 30 s.
async fn wait_for_view(client: &SchedulerManagerClient, done: impl Fn(&[HostSummary]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hosts = client.hosts(&Context::new()).await.unwrap();
        if done(&hosts) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the casts did not show: {hosts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nova virtualenv's python (installed on first use).
async fn nova_python() -> Option<std::path::PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nova-venv");
    tokio::task::spawn_blocking(move || python_venv(&venv, &[NOVA], "nova.scheduler.rpcapi"))
        .await
        .unwrap()
}

fn nova_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/nova_notifications.py")
}

/// Every notification a listener gets, undecoded.
struct Tail(tokio::sync::mpsc::UnboundedSender<rpc_runtime::notify::RawNotification>);

#[rpc_runtime::notification_endpoint]
impl Tail {
    async fn info(&self, n: rpc_runtime::notify::RawNotification) {
        let _ = self.0.send(n);
    }
}

/// nova's own `ServiceStatusNotification`, built from nova's objects and emitted through
/// `nova.rpc`, decodes here into the typed payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn novas_versioned_notification_decodes_into_typed_payloads() {
    use rpc_runtime::notify::versioned::VersionedNotification;
    use scheduler_service::notifications::ServiceStatusPayload;

    let Some(vhost) = Vhost::create("nova-notify") else {
        return;
    };
    let Some(python) = nova_python().await else {
        return;
    };
    let topic = rpc_integration_tests::unique_name("nova_versioned");
    let output = tokio::process::Command::new(&python)
        .arg(nova_script())
        .args(["send", &vhost.url(""), &topic])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let sent = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sent "))
        .unwrap_or_else(|| panic!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)))
        .to_owned();
    let (uuid, version) = sent.split_once(' ').unwrap();

    // nova's notifier created `<topic>.info`: the notification waits there for a listener.
    let transport = rpc_runtime::connect(&vhost.url("")).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let listener = rpc_runtime::notify::NotificationListener::builder(transport)
        .target(rpc_runtime::Target::new(topic.as_str()))
        .endpoint(Arc::new(Tail(tx)))
        .start()
        .await
        .unwrap();
    let raw = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let n = VersionedNotification::<ServiceStatusPayload>::decode(&raw).unwrap();
    assert_eq!(n.publisher.source, "nova-compute");
    assert_eq!(n.publisher.host, "node-1");
    assert_eq!(n.event_type.to_string(), "service.update");
    assert_eq!(n.payload.binary.as_deref(), Some("nova-compute"));
    assert_eq!(n.payload.report_count, 3);
    assert!(n.payload.disabled);
    assert_eq!(n.payload.disabled_reason.as_deref(), Some("maintenance"));
    assert_eq!(n.payload.uuid, uuid);
    assert_eq!(n.payload.version.to_string(), version);
    listener.stop().await;
}

/// The scheduler's versioned notifications, read by nova's own objects
/// (`NovaObject.obj_from_primitive`) in a Python oslo.messaging listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedulers_versioned_notifications_are_read_by_novas_objects() {
    use scheduler_service::api::{Flavor, RequestSpec};
    use scheduler_service::notifications::SchedulerNotifier;

    let Some(vhost) = Vhost::create("nova-notify-rs") else {
        return;
    };
    let Some(python) = nova_python().await else {
        return;
    };
    let topic = rpc_integration_tests::unique_name("rs_versioned");
    let mut child = tokio::process::Command::new(&python)
        .arg(nova_script())
        .args(["listen", &vhost.url(""), &topic, "2"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));

    let config = ConfigLoader::new()
        .set("oslo_messaging_notifications", "driver", "messagingv2")
        .set("notifications", "notification_format", "versioned")
        .set("notifications", "versioned_notifications_topics", &topic)
        .load()
        .unwrap()
        .config;
    let transport = rpc_runtime::connect(&vhost.url("")).await.unwrap();
    let notifier = SchedulerNotifier::from_config(&config, transport, "scheduler-0").unwrap();
    let mut spec = RequestSpec::new(Flavor::new("m1.small", 1, 2048, 20), 2);
    spec.instance_uuid = Some("7c4b8d5e-3a41-4b7e-9a0e-2f1d6c8b9a10".into());
    spec.project_id = Some("p-1".into());
    spec.ignore_hosts = vec!["bad-host".into()];
    let ctx = Context::new();
    notifier
        .select_destinations(&ctx, rpc_runtime::notify::versioned::Phase::Start, &spec)
        .await;
    let registry = rpc_runtime::registry::SqlRegistry::connect(
        &rpc_runtime::registry::DatabaseUrl::new("sqlite::memory:"),
    )
    .await
    .unwrap();
    let record = rpc_runtime::registry::Registry::create(
        &registry,
        &rpc_runtime::registry::NewService::new("scheduler-0", "nova-scheduler", "scheduler"),
    )
    .await
    .unwrap();
    notifier.service_update(&ctx, &record).await;

    let mut read = Vec::new();
    while read.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("the Python listener prints each notification");
        read.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let by_event = |e: &str| {
        read.iter()
            .find(|v| v["event_type"] == e)
            .unwrap_or_else(|| panic!("no {e} in {read:?}"))
            .clone()
    };
    let spec = by_event("scheduler.select_destinations.start");
    assert_eq!(spec["publisher_id"], "nova-scheduler:scheduler-0");
    assert_eq!(spec["name"], "RequestSpecPayload", "{spec}");
    assert_eq!(spec["fields"]["project_id"], "p-1", "{spec}");
    assert_eq!(spec["fields"]["num_instances"], 2, "{spec}");
    assert_eq!(
        spec["fields"]["ignore_hosts"],
        serde_json::json!(["bad-host"]),
        "{spec}"
    );
    let status = by_event("service.update");
    assert_eq!(status["name"], "ServiceStatusPayload", "{status}");
    assert_eq!(status["fields"]["binary"], "nova-scheduler", "{status}");
    assert_eq!(status["fields"]["report_count"], 0, "{status}");
    assert_eq!(status["fields"]["host"], "scheduler-0", "{status}");
    let _ = child.wait().await;
}
