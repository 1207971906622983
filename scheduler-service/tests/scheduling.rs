//! The scheduler in one process over `memory://` with an in-memory SQLite registry, through the
//! public API only: claims under concurrency, all or nothing, filters, weighers, the 3.x shim,
//! capped clients, aggregates.

// Test helpers report by panicking.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc_runtime::config::{Config, ConfigLoader};
use rpc_runtime::{CallError, CallOptions, Context, RpcError, Service};
use scheduler_service::api::{Aggregate, Destinations, Flavor, RequestSpec, Resources};
use scheduler_service::compute::{ComputeManager, ComputeManagerClient, HostSpec};
use scheduler_service::error::NoValidHost;
use scheduler_service::manager::{FilterProperties, LegacyRequestSpec};
use scheduler_service::scheduler::COMPUTE_BINARY;
use scheduler_service::wiring::{Shared, compute_service, scheduler_service};
use scheduler_service::{SchedulerManager, SchedulerManagerClient, SchedulerV3Client};

/// The flavor the capacity tests place: one slot of a host each.
fn slot() -> Flavor {
    Flavor::new("slot", 1, 1024, 10)
}

/// A host with room for `slots` instances of [`slot`] (memory is what runs out).
fn host(name: &'static str, slots: u64, zone: &'static str) -> (&'static str, HostSpec) {
    let spec = HostSpec {
        availability_zone: zone.to_owned(),
        total: Resources {
            vcpus: 1_000,
            memory_mb: slots * 1024,
            disk_gb: 100_000,
        },
        claim_delay: Duration::ZERO,
    };
    (name, spec)
}

struct Cloud {
    shared: Shared,
    schedulers: Vec<Service<SchedulerManager>>,
    computes: Vec<Service<ComputeManager>>,
    client: SchedulerManagerClient,
}

fn config(settings: &[(&str, &str, &str)]) -> Config {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut loader = ConfigLoader::new()
        .set("DEFAULT", "host", "controller")
        .set(
            "DEFAULT",
            "transport_url",
            format!("memory://scheduling-{}-{n}", std::process::id()),
        )
        .set("DEFAULT", "periodic_enable", "false")
        .set("database", "connection", "sqlite::memory:");
    for (section, key, value) in settings {
        loader = loader.set(*section, *key, *value);
    }
    loader.load().unwrap().config
}

/// `schedulers` scheduler services and one compute agent per host, started.
async fn start_cloud(
    hosts: &[(&'static str, HostSpec)],
    schedulers: usize,
    settings: &[(&str, &str, &str)],
) -> Cloud {
    let config = config(settings);
    let shared = Shared::open(&config).await.unwrap();
    let mut computes = Vec::new();
    for (name, spec) in hosts {
        let mut service = compute_service(config.clone(), &shared, name, spec.clone()).unwrap();
        service.start().await.unwrap();
        computes.push(service);
    }
    let mut started = Vec::new();
    for n in 0..schedulers {
        let mut service = scheduler_service(config.clone(), &shared).unwrap();
        // Several schedulers in one process: each its own host (service row).
        if n > 0 {
            let mut other = config.clone();
            other.host = Some(format!("controller-{n}"));
            service = scheduler_service(other, &shared).unwrap();
        }
        service.start().await.unwrap();
        started.push(service);
    }
    let client = SchedulerManagerClient::new(Arc::clone(&shared.transport));
    Cloud {
        shared,
        schedulers: started,
        computes,
        client,
    }
}

impl Cloud {
    async fn boot(
        &self,
        spec: RequestSpec,
    ) -> Result<Vec<Vec<scheduler_service::api::Selection>>, CallError<NoValidHost>> {
        let uuids = uuids(spec.num_instances);
        match self
            .client
            .select_destinations(&Context::new(), spec, Some(uuids), Some(true), Some(true))
            .await?
        {
            Destinations::Selections(lists) => Ok(lists),
            Destinations::Hosts(hosts) => panic!("asked for objects, got {hosts:?}"),
        }
    }

    /// Instances per host, as each compute agent counts them.
    async fn instances(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for service in &self.computes {
            let report = self.describe(service.host()).await;
            assert!(
                report.used.memory_mb <= report.total.memory_mb,
                "{report:?} is overcommitted"
            );
            counts.insert(report.host.clone(), report.instances.len());
        }
        counts
    }

    async fn describe(&self, host: &str) -> scheduler_service::api::HostReport {
        ComputeManagerClient::new(Arc::clone(&self.shared.transport))
            .prepare(CallOptions::new().server(host.to_owned()))
            .describe(&Context::new())
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        for service in &mut self.schedulers {
            service.stop().await;
        }
        for service in &mut self.computes {
            service.stop().await;
        }
    }
}

fn uuids(n: u32) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect()
}

fn chosen(lists: &[Vec<scheduler_service::api::Selection>]) -> Vec<String> {
    lists
        .iter()
        .map(|list| list[0].service_host.clone())
        .collect()
}

/// Asserts `result` is the scheduler's `NoValidHost` (not a transport failure or a timeout).
#[track_caller]
fn assert_no_valid_host<T: std::fmt::Debug>(result: Result<T, CallError<NoValidHost>>) {
    match result {
        Err(CallError::Application(NoValidHost { reason, .. })) => {
            assert_eq!(reason, NoValidHost::NOT_ENOUGH_HOSTS)
        }
        other => panic!("expected NoValidHost, got {other:?}"),
    }
}

/// Runs `requests` single-instance boots at once; (placed, NoValidHost).
async fn boot_concurrently(cloud: &Cloud, requests: usize) -> (usize, usize) {
    let mut boots = tokio::task::JoinSet::new();
    for _ in 0..requests {
        let client = cloud.client.clone();
        boots.spawn(async move {
            client
                .select_destinations(
                    &Context::new(),
                    RequestSpec::new(slot(), 1),
                    Some(uuids(1)),
                    Some(true),
                    Some(false),
                )
                .await
        });
    }
    let (mut placed, mut refused) = (0, 0);
    while let Some(outcome) = boots.join_next().await {
        match outcome.unwrap() {
            Ok(_) => placed += 1,
            Err(CallError::Application(NoValidHost { reason, code })) => {
                assert_eq!(
                    (reason.as_str(), code),
                    (NoValidHost::NOT_ENOUGH_HOSTS, 500)
                );
                refused += 1;
            }
            Err(other) => panic!("unexpected failure: {other}"),
        }
    }
    (placed, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_fill_150_slots_exactly() {
    let hosts = [
        host("a", 50, "nova"),
        host("b", 60, "nova"),
        host("c", 40, "nova"),
    ];
    let cloud = start_cloud(&hosts, 1, &[]).await;
    assert_eq!(boot_concurrently(&cloud, 200).await, (150, 50));
    let expected: BTreeMap<String, usize> =
        [("a".into(), 50), ("b".into(), 60), ("c".into(), 40)].into();
    assert_eq!(cloud.instances().await, expected);
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_with_their_own_views_never_overcommit_a_host() {
    // Each scheduler reserves in its own view; the compute agents' claims decide.
    let hosts = [host("a", 30, "nova"), host("b", 20, "nova")];
    let cloud = start_cloud(&hosts, 2, &[]).await;
    assert_eq!(boot_concurrently(&cloud, 80).await, (50, 30));
    let expected: BTreeMap<String, usize> = [("a".into(), 30), ("b".into(), 20)].into();
    assert_eq!(cloud.instances().await, expected);
    cloud.stop().await;
}

#[tokio::test]
async fn a_request_is_all_or_nothing() {
    let cloud = start_cloud(&[host("a", 2, "nova"), host("b", 1, "nova")], 1, &[]).await;
    let refused = cloud.boot(RequestSpec::new(slot(), 4)).await.unwrap_err();
    assert!(
        matches!(refused, CallError::Application(ref e) if e.reason == NoValidHost::NOT_ENOUGH_HOSTS),
        "{refused}"
    );
    // The three instances that fitted were released.
    let expected: BTreeMap<String, usize> = [("a".into(), 0), ("b".into(), 0)].into();
    assert_eq!(cloud.instances().await, expected);
    let placed = cloud.boot(RequestSpec::new(slot(), 3)).await.unwrap();
    let mut hosts = chosen(&placed);
    hosts.sort();
    assert_eq!(hosts, ["a", "a", "b"]);
    cloud.stop().await;
}

#[tokio::test]
async fn selections_carry_what_a_caller_needs_and_alternates_exclude_chosen_hosts() {
    let hosts = [
        host("a", 4, "nova"),
        host("b", 4, "nova"),
        host("c", 4, "nova"),
        host("d", 4, "nova"),
    ];
    let cloud = start_cloud(&hosts, 1, &[]).await;
    let lists = cloud.boot(RequestSpec::new(slot(), 2)).await.unwrap();
    assert_eq!(lists.len(), 2);
    let picked = chosen(&lists);
    for list in &lists {
        assert!(list.len() <= 3, "{list:?}");
        for alternate in &list[1..] {
            assert!(!picked.contains(&alternate.service_host), "{list:?}");
        }
        let first = &list[0];
        let report = cloud.describe(&first.service_host).await;
        assert_eq!(first.compute_node_uuid, report.node_uuid);
        assert_eq!(first.nodename, report.nodename);
        assert_eq!(first.availability_zone.as_deref(), Some("nova"));
        let allocation: serde_json::Value =
            serde_json::from_str(first.allocation_request.as_deref().unwrap()).unwrap();
        assert_eq!(
            allocation["allocations"][&report.node_uuid]["resources"]["MEMORY_MB"],
            1024
        );
        assert_eq!(first.limits.as_ref().unwrap().memory_mb, Some(4 * 1024));
        assert_eq!(
            first.cell_uuid,
            scheduler_service::settings::DEFAULT_CELL_UUID
        );
    }
    cloud.stop().await;
}

#[tokio::test]
async fn filters_honour_zones_forced_and_ignored_hosts_and_disabled_services() {
    let hosts = [
        host("a", 4, "nova"),
        host("b", 4, "nova"),
        host("e", 4, "east"),
    ];
    let cloud = start_cloud(&hosts, 1, &[]).await;
    let east = cloud
        .boot(RequestSpec::new(slot(), 2).in_zone("east"))
        .await
        .unwrap();
    assert_eq!(chosen(&east), ["e", "e"]);
    assert_no_valid_host(
        cloud
            .boot(RequestSpec::new(slot(), 1).in_zone("west"))
            .await,
    );

    let mut forced = RequestSpec::new(slot(), 1);
    forced.force_hosts = vec!["b".into()];
    assert_eq!(chosen(&cloud.boot(forced).await.unwrap()), ["b"]);
    let mut ignoring = RequestSpec::new(slot(), 3);
    ignoring.ignore_hosts = vec!["a".into(), "e".into()];
    assert_eq!(
        chosen(&cloud.boot(ignoring).await.unwrap()),
        ["b", "b", "b"]
    );

    // b is full now; disable a: only e is left for a zone-less request.
    let registry = &cloud.shared.registry;
    let a = registry
        .get_by_host_and_binary("a", COMPUTE_BINARY)
        .await
        .unwrap()
        .unwrap();
    registry
        .set_disabled(a.id, true, Some("maintenance"))
        .await
        .unwrap();
    assert_eq!(
        chosen(&cloud.boot(RequestSpec::new(slot(), 1)).await.unwrap()),
        ["e"]
    );
    cloud.stop().await;
}

#[tokio::test]
async fn vcpus_are_overcommitted_by_the_allocation_ratio_and_disk_is_not() {
    let spec = HostSpec {
        availability_zone: "nova".into(),
        total: Resources {
            vcpus: 2,
            memory_mb: 1_000_000,
            disk_gb: 30,
        },
        claim_delay: Duration::ZERO,
    };
    let cloud = start_cloud(
        &[("a", spec)],
        1,
        &[("DEFAULT", "cpu_allocation_ratio", "3.0")],
    )
    .await;
    // 6 vCPUs at ratio 3: the sixth fits, the seventh does not.
    let cpu = Flavor::new("cpu", 1, 1, 0);
    assert!(cloud.boot(RequestSpec::new(cpu.clone(), 6)).await.is_ok());
    assert_no_valid_host(cloud.boot(RequestSpec::new(cpu, 1)).await);
    cloud.stop().await;

    let spec = HostSpec {
        availability_zone: "nova".into(),
        total: Resources {
            vcpus: 100,
            memory_mb: 1_000_000,
            disk_gb: 30,
        },
        claim_delay: Duration::ZERO,
    };
    let cloud = start_cloud(&[("a", spec)], 1, &[]).await;
    let disk = Flavor::new("disk", 1, 1, 20);
    assert!(cloud.boot(RequestSpec::new(disk.clone(), 1)).await.is_ok());
    assert_no_valid_host(cloud.boot(RequestSpec::new(disk.clone(), 1)).await);
    // Booting from a volume does not count the root disk.
    let mut from_volume = RequestSpec::new(disk, 1);
    from_volume.is_bfv = true;
    assert!(cloud.boot(from_volume).await.is_ok());
    cloud.stop().await;
}

#[tokio::test]
async fn the_ram_weigher_spreads_by_default_and_packs_when_negative() {
    let hosts = [host("a", 4, "nova"), host("b", 4, "nova")];
    let spread = start_cloud(&hosts, 1, &[]).await;
    let mut placed = chosen(&spread.boot(RequestSpec::new(slot(), 4)).await.unwrap());
    placed.sort();
    assert_eq!(placed, ["a", "a", "b", "b"]);
    spread.stop().await;

    let pack = start_cloud(
        &hosts,
        1,
        &[("filter_scheduler", "ram_weight_multiplier", "-1.0")],
    )
    .await;
    assert_eq!(
        chosen(&pack.boot(RequestSpec::new(slot(), 4)).await.unwrap()),
        ["a", "a", "a", "a"]
    );
    pack.stop().await;
}

#[tokio::test]
async fn a_3x_caller_is_served_through_the_shim() {
    let cloud = start_cloud(&[host("a", 4, "nova"), host("b", 4, "east")], 1, &[]).await;
    let request: LegacyRequestSpec = serde_json::from_value(serde_json::json!({
        "instance_type": {"vcpus": 1, "memory_mb": 1024, "root_gb": 10},
        "instance_properties": {"availability_zone": "east"},
        "num_instances": 2,
        "instance_uuids": uuids(2),
    }))
    .unwrap();
    let hosts = SchedulerV3Client::new(Arc::clone(&cloud.shared.transport))
        .select_destinations(&Context::new(), request, FilterProperties::default())
        .await
        .unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(names, ["b", "b"]);
    cloud.stop().await;
}

#[tokio::test]
async fn a_client_capped_at_4_4_gets_the_old_answer_and_cannot_send_4_5_arguments() {
    use scheduler_service::manager::scheduler_manager_versions::V4_4;
    let cloud = start_cloud(&[host("a", 4, "nova")], 1, &[]).await;
    let old = cloud.client.capped::<V4_4>();
    let answer = old
        .select_destinations(
            &Context::new(),
            RequestSpec::new(slot(), 1),
            Some(uuids(1)),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(matches!(answer, Destinations::Hosts(ref h) if h.len() == 1 && h[0].host == "a"));
    let refused = old
        .select_destinations(
            &Context::new(),
            RequestSpec::new(slot(), 1),
            None,
            Some(true),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CallError::Rpc(RpcError::CannotSendVersion { .. })),
        "{refused}"
    );
    cloud.stop().await;
}

#[tokio::test]
async fn an_aggregate_moves_hosts_into_its_zone_until_deleted() {
    let cloud = start_cloud(&[host("a", 4, "nova"), host("b", 4, "nova")], 1, &[]).await;
    let west = Aggregate {
        id: 7,
        uuid: None,
        name: "west-rack".into(),
        hosts: vec!["b".into()],
        metadata: [("availability_zone".to_owned(), "west".to_owned())].into(),
    };
    let fanout = cloud.client.prepare(CallOptions::new().fanout(true));
    fanout
        .update_aggregates(&Context::new(), vec![west.clone()])
        .await
        .unwrap();
    let zone_of_b = || async {
        let hosts = cloud.client.hosts(&Context::new()).await.unwrap();
        hosts.into_iter().find(|h| h.host == "b").unwrap().zone
    };
    wait_until(|| async { zone_of_b().await == "west" }).await;
    assert_eq!(
        chosen(
            &cloud
                .boot(RequestSpec::new(slot(), 1).in_zone("west"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    fanout
        .delete_aggregate(&Context::new(), west)
        .await
        .unwrap();
    wait_until(|| async { zone_of_b().await == "nova" }).await;
    cloud.stop().await;
}

#[tokio::test]
async fn a_stopped_compute_agent_goes_down_and_is_not_chosen() {
    let mut cloud = start_cloud(
        &[host("a", 4, "nova"), host("b", 4, "nova")],
        1,
        &[
            ("DEFAULT", "report_interval", "1"),
            ("DEFAULT", "service_down_time", "2"),
        ],
    )
    .await;
    let mut both = chosen(&cloud.boot(RequestSpec::new(slot(), 2)).await.unwrap());
    both.sort();
    assert_eq!(both, ["a", "b"]);
    cloud.computes[1].stop().await;
    // Down once its last heartbeat is older than service_down_time.
    wait_until(|| async {
        let hosts = cloud.client.hosts(&Context::new()).await.unwrap();
        hosts.iter().any(|h| h.host == "b" && !h.up)
    })
    .await;
    let placed = cloud.boot(RequestSpec::new(slot(), 3)).await.unwrap();
    assert_eq!(chosen(&placed), ["a", "a", "a"]);
    cloud.stop().await;
}

#[tokio::test]
async fn bad_scheduler_settings_fail_the_build_naming_the_setting() {
    let config = config(&[(
        "filter_scheduler",
        "enabled_filters",
        "RamFilter,NoSuchFilter",
    )]);
    let shared = Shared::open(&config).await.unwrap();
    let error = scheduler_service(config, &shared).unwrap_err();
    assert!(error.to_string().contains("NoSuchFilter"), "{error}");
}

/// Polls `condition` until it holds (a cast's effect, a heartbeat going stale), for up to 30 s.
async fn wait_until<F, Fut>(condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the condition did not hold within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every notification a listener gets, undecoded.
struct Tail(tokio::sync::mpsc::UnboundedSender<rpc_runtime::notify::RawNotification>);

#[rpc_runtime::notification_endpoint]
impl Tail {
    async fn info(&self, n: rpc_runtime::notify::RawNotification) {
        let _ = self.0.send(n);
    }
}

#[tokio::test]
async fn select_destinations_and_service_status_are_notified_as_nova_does() {
    use rpc_runtime::notify::versioned::{Phase, VersionedNotification};
    use rpc_runtime::notify::{NotificationListener, RawNotification};
    use scheduler_service::notifications::{RequestSpecPayload, ServiceStatusPayload};

    let settings = [
        ("oslo_messaging_notifications", "driver", "messagingv2"),
        ("notifications", "notification_format", "both"),
    ];
    let cloud = start_cloud(&[host("c1", 4, "nova")], 1, &settings).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Started after the scheduler: its `service.update` waits in `versioned_notifications.info`.
    let listener = NotificationListener::builder(Arc::clone(&cloud.shared.transport))
        .target(rpc_runtime::Target::new("notifications"))
        .target(rpc_runtime::Target::new("versioned_notifications"))
        .endpoint(Arc::new(Tail(tx)))
        .max_concurrency(1)
        .start()
        .await
        .unwrap();
    let mut next = async || -> RawNotification {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a notification in time")
            .expect("the listener runs")
    };
    let started = next().await;
    assert_eq!(started.event_type, "service.update");
    assert_eq!(started.publisher_id, "nova-scheduler:controller");
    let status = VersionedNotification::<ServiceStatusPayload>::decode(&started).unwrap();
    assert_eq!(status.payload.binary.as_deref(), Some("nova-scheduler"));
    assert_eq!(status.payload.topic.as_deref(), Some("scheduler"));

    let mut spec = RequestSpec::new(slot(), 1);
    spec.project_id = Some("p-1".into());
    cloud.boot(spec).await.unwrap();
    let mut got: Vec<RawNotification> = Vec::new();
    for _ in 0..4 {
        got.push(next().await);
    }
    let legacy: Vec<&RawNotification> = got
        .iter()
        .filter(|n| n.publisher_id == "scheduler.controller")
        .collect();
    let versioned: Vec<&RawNotification> = got
        .iter()
        .filter(|n| n.publisher_id == "nova-scheduler:controller")
        .collect();
    for (phase, event_type) in [
        (Phase::Start, "scheduler.select_destinations.start"),
        (Phase::End, "scheduler.select_destinations.end"),
    ] {
        let old = legacy
            .iter()
            .find(|n| n.event_type == event_type)
            .unwrap_or_else(|| panic!("no legacy {event_type} in {got:?}"));
        let payload: serde_json::Value = serde_json::from_str(old.payload.as_str()).unwrap();
        assert_eq!(
            payload["request_spec"]["instance_properties"]["project_id"],
            "p-1"
        );
        assert_eq!(payload["request_spec"]["instance_type"]["memory_mb"], 1024);
        let new = versioned
            .iter()
            .find(|n| n.event_type == event_type)
            .unwrap_or_else(|| panic!("no versioned {event_type} in {got:?}"));
        let typed = VersionedNotification::<RequestSpecPayload>::decode(new).unwrap();
        assert_eq!(typed.event_type.phase, Some(phase));
        assert_eq!(typed.payload.project_id.as_deref(), Some("p-1"));
        assert_eq!(typed.payload.num_instances, 1);
    }
    cloud.stop().await;
    assert_eq!(next().await.event_type, "service.update", "on stop too");
    listener.stop().await;
}

#[tokio::test]
async fn notifications_are_off_without_a_driver_and_a_bad_format_is_an_error() {
    let cloud = start_cloud(&[host("c1", 4, "nova")], 1, &[]).await;
    let notifier = scheduler_service::notifications::SchedulerNotifier::from_config(
        &config(&[]),
        Arc::clone(&cloud.shared.transport),
        "controller",
    )
    .unwrap();
    assert!(!notifier.is_enabled());
    let bad = config(&[("notifications", "notification_format", "json")]);
    let error = scheduler_service_error(&bad, &cloud.shared);
    assert!(error.contains("notification_format"), "{error}");
    cloud.stop().await;
}

fn scheduler_service_error(config: &Config, shared: &Shared) -> String {
    match scheduler_service(config.clone(), shared) {
        Ok(_) => panic!("a bad [notifications] value must fail"),
        Err(error) => error.to_string(),
    }
}
