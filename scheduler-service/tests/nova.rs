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
