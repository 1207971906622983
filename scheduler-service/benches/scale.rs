//! Scale simulation on one machine: N simulated compute agents (`nova-compute`), each registered
//! in PostgreSQL, heartbeating every `report_interval`, consuming its queues on RabbitMQ and
//! reporting its capacity (on start, after every claim, every minute), while a client schedules
//! instances through a scheduler, for a window at each N.
//!
//! Run: `cargo bench -p scheduler-service --bench scale` with RabbitMQ and PostgreSQL on this
//! machine. Each N gets a vhost and a database of its own, deleted afterwards. Knobs
//! (environment): `SCALE_N` (`100,1000,5000`), `SCALE_WINDOW_SECS` (60: one capacity round),
//! `SCALE_AGENTS_PER_CONNECTION` (250; a connection carries one channel per agent, and RabbitMQ
//! allows 2,047), `SCALE_REQUESTS_PER_SEC` (10 `select_destinations` calls a second, one at a
//! time). Without `--bench` (as `cargo test --bench scale` runs it) it simulates 20 agents for 3
//! seconds with a 1-second `report_interval` and checks the figures: a smoke test.
//!
//! Cluster mode (`SCALE_CLUSTER=1`, with `scripts/rabbit-cluster start`): every transport URL
//! names the three nodes, each agent connection starting at the next node, so the fleet's
//! connections (and the queues they declare) spread over the cluster; the broker's CPU is the
//! three nodes' sum and its memory is reported per node. `SCALE_QUERY` appends transport options
//! to every URL (`?rabbit_quorum_queue=true`, say).
//!
//! Reported per N: time to start the fleet, the broker's queue count, database writes per second
//! (from PostgreSQL's own statistics), heartbeat age (how long ago each agent's row was
//! updated, sampled every 2 s: at most `report_interval` when nothing lags), agents seen down,
//! how long reading every agent's row from the registry takes (what the scheduler does per request),
//! `select_destinations` p50/p99, and CPU and resident memory of this process and of the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use rpc_integration_tests::{CLUSTER_NODES, Cluster, DatabaseServer, TempDatabase, Vhost, rss_mib};
use rpc_runtime::config::{Config, ConfigLoader};
use rpc_runtime::registry::Registry;
use rpc_runtime::{CallOptions, Service};
use scheduler_service::SchedulerManagerClient;
use scheduler_service::api::Resources;
use scheduler_service::compute::{ComputeManager, HostSpec};
use scheduler_service::scheduler::COMPUTE_BINARY;
use scheduler_service::wiring::{Shared, compute_service, open_registry, scheduler_service};

mod common;

/// One run's settings.
#[derive(Debug, Clone)]
struct Plan {
    sizes: Vec<usize>,
    window: Duration,
    per_connection: usize,
    requests_per_sec: u64,
    report_interval: u64,
    smoke: bool,
    /// Spread the connections over the three-node cluster.
    cluster: bool,
    /// Transport options appended to every URL.
    query: String,
}

impl Plan {
    fn from_env() -> Self {
        let smoke = !std::env::args().any(|a| a == "--bench");
        let var = |name: &str| std::env::var(name).ok();
        let number =
            |name: &str, default: u64| var(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        if smoke {
            return Self {
                sizes: vec![20],
                window: Duration::from_secs(3),
                per_connection: 8,
                requests_per_sec: 10,
                report_interval: 1,
                smoke,
                cluster: false,
                query: String::new(),
            };
        }
        Self {
            sizes: var("SCALE_N")
                .unwrap_or_else(|| "100,1000,5000".into())
                .split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect(),
            window: Duration::from_secs(number("SCALE_WINDOW_SECS", 60)),
            per_connection: number("SCALE_AGENTS_PER_CONNECTION", 250).max(1) as usize,
            requests_per_sec: number("SCALE_REQUESTS_PER_SEC", 10).max(1),
            report_interval: 10,
            smoke,
            cluster: var("SCALE_CLUSTER").is_some_and(|v| v == "1" || v == "true"),
            query: var("SCALE_QUERY").unwrap_or_default(),
        }
    }
}

/// What one N measured.
#[derive(Debug, Default)]
struct Figures {
    agents: usize,
    connections: usize,
    /// Connections per node, in [`CLUSTER_NODES`] order (one entry on one node).
    connections_per_node: Vec<usize>,
    start_secs: f64,
    queues: usize,
    db_writes_per_sec: f64,
    heartbeat_age_p50: f64,
    heartbeat_age_p99: f64,
    heartbeat_age_max: f64,
    seen_down: usize,
    list_ms: f64,
    requests: usize,
    failures: usize,
    select_p50_ms: f64,
    select_p99_ms: f64,
    cpu_percent: f64,
    broker_cpu_percent: f64,
    rss_mib: f64,
    /// Per node, in [`CLUSTER_NODES`] order (one entry on one node).
    broker_rss_mib: Vec<f64>,
}

fn config(url: &str, database: &str, host: &str, report_interval: u64) -> Config {
    ConfigLoader::new()
        .set("DEFAULT", "host", host)
        .set("DEFAULT", "transport_url", url)
        .set("DEFAULT", "report_interval", report_interval.to_string())
        .set("database", "connection", database)
        .load()
        .expect("the simulation's settings")
        .config
}

/// An agent's host: big enough that the window's requests never fill it.
fn host_spec(i: usize) -> HostSpec {
    HostSpec {
        availability_zone: format!("az{}", i % 3),
        total: Resources {
            vcpus: 256,
            memory_mb: 1_048_576,
            disk_gb: 100_000,
        },
        claim_delay: Duration::ZERO,
    }
}

/// Seconds of CPU a process has used (user + system), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A broker node's OS process id (the Erlang VM it runs in), asked of the node itself.
fn broker_pid(node: &str) -> Option<String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["-q", "-n", node, "eval", "os:getpid()."])
        .output()
        .ok()?;
    let pid = String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_matches('"')
        .to_owned();
    (output.status.success() && !pid.is_empty()).then_some(pid)
}

/// Rows written to the services table so far, from PostgreSQL's statistics.
fn services_writes(db: &TempDatabase) -> Option<f64> {
    let name = db.url().rsplit('/').next()?.to_owned();
    let output = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", &name, "-Atc"])
        .arg(
            "SELECT pg_stat_force_next_flush(); \
             SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'services'",
        )
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn simulate(n: usize, plan: &Plan) -> Option<Figures> {
    let vhost = Vhost::create("scale")?;
    let db = TempDatabase::create(DatabaseServer::Postgres)?;
    let cluster = if plan.cluster {
        Some(Cluster::require()?)
    } else {
        None
    };
    // The URL of connection `index`: on a cluster, every node named, starting at the next one.
    let url_for = |index: usize| match &cluster {
        Some(cluster) => cluster.url(&vhost, index % CLUSTER_NODES.len(), &plan.query),
        None => vhost.url(&plan.query),
    };
    let url = url_for(0);
    let nodes: Vec<&str> = if plan.cluster {
        CLUSTER_NODES.iter().map(|(node, _)| *node).collect()
    } else {
        vec![CLUSTER_NODES[0].0]
    };
    let controller = config(&url, &db.url(), "controller", plan.report_interval);
    let registry: Arc<dyn Registry> = Arc::new(open_registry(&controller).await.expect("registry"));
    let scheduler_shared = Shared::open(&controller)
        .await
        .expect("scheduler transport");
    let mut scheduler =
        scheduler_service(controller.clone(), &scheduler_shared).expect("scheduler service");
    scheduler.start().await.expect("scheduler starts");

    let started = Instant::now();
    let connections = n.div_ceil(plan.per_connection);
    let mut groups = Vec::with_capacity(connections);
    for index in 0..connections {
        let transport = rpc_runtime::connect(&url_for(index + 1))
            .await
            .expect("agent transport");
        groups.push(Shared {
            notifications: Arc::clone(&transport),
            transport,
            registry: Arc::clone(&registry),
        });
    }
    let agents: Vec<Service<ComputeManager>> = stream::iter(0..n)
        .map(|i| {
            let shared = groups[i / plan.per_connection].clone();
            let host = format!("sim-{i:05}");
            let config = config(&url, &db.url(), &host, plan.report_interval);
            async move {
                let mut agent =
                    compute_service(config, &shared, &host, host_spec(i)).expect("agent");
                agent.start().await.expect("agent starts");
                agent
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let start_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "N={n}: {} agents started in {start_secs:.1} s",
        agents.len()
    );

    let brokers: Vec<Option<String>> = nodes.iter().map(|node| broker_pid(node)).collect();
    let broker_cpu_seconds = || -> Option<f64> {
        brokers
            .iter()
            .map(|pid| pid.as_deref().and_then(cpu_seconds))
            .sum()
    };
    let cpu0 = cpu_seconds("self");
    let broker0 = broker_cpu_seconds();
    let writes0 = services_writes(&db);
    let window_start = Instant::now();

    // The scheduling client: one request at a time, paced.
    let client = SchedulerManagerClient::new(scheduler_shared.transport.clone())
        .prepare(CallOptions::new().timeout(Duration::from_secs(60)));
    let requests = {
        let window = plan.window;
        let every = Duration::from_millis(1000 / plan.requests_per_sec);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            let mut ticker = tokio::time::interval(every);
            while window_start.elapsed() < window {
                ticker.tick().await;
                let t = Instant::now();
                let placed = common::place_one(&client).await;
                match placed {
                    Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1e3),
                    Err(error) => {
                        failures += 1;
                        eprintln!("select_destinations failed: {error}");
                    }
                }
            }
            (latencies, failures)
        })
    };
    // Heartbeat ages, sampled every 2 s from the registry.
    let mut ages = Vec::new();
    let mut seen_down = 0;
    let mut list_ms = Vec::new();
    let mut sampler = tokio::time::interval(Duration::from_secs(2));
    let down_after = Duration::from_secs(plan.report_interval * 6);
    while window_start.elapsed() < plan.window {
        sampler.tick().await;
        let listing = Instant::now();
        let rows = registry.list(Some(COMPUTE_BINARY)).await.expect("list");
        list_ms.push(listing.elapsed().as_secs_f64() * 1e3);
        let now = chrono::Utc::now();
        for row in &rows {
            let age = (now - row.last_seen()).num_milliseconds() as f64 / 1e3;
            ages.push(age);
        }
        seen_down = seen_down.max(rows.iter().filter(|r| !r.is_up_at(now, down_after)).count());
    }
    let (mut latencies, failures) = requests.await.expect("client task");
    let elapsed = window_start.elapsed().as_secs_f64();
    let writes = match (writes0, services_writes(&db)) {
        (Some(a), Some(b)) => (b - a) / elapsed,
        _ => f64::NAN,
    };
    let cpu = cpu_seconds("self")
        .zip(cpu0)
        .map_or(f64::NAN, |(b, a)| (b - a) / elapsed * 100.0);
    let broker_cpu = broker_cpu_seconds()
        .zip(broker0)
        .map_or(f64::NAN, |(b, a)| (b - a) / elapsed * 100.0);
    let queues = vhost.queues(&["name"]).len();
    let rss = rss_mib(std::process::id());
    let broker_rss: Vec<f64> = brokers
        .iter()
        .map(|pid| {
            pid.as_deref()
                .and_then(|pid| pid.parse().ok())
                .map_or(f64::NAN, rss_mib)
        })
        .collect();
    let connections_per_node = match &cluster {
        Some(cluster) => {
            let ports = cluster.connection_ports(&vhost);
            CLUSTER_NODES
                .iter()
                .map(|(_, port)| ports.iter().filter(|p| *p == port).count())
                .collect()
        }
        None => vec![vhost.connections().len()],
    };

    stream::iter(agents)
        .for_each_concurrent(64, |mut agent| async move {
            agent.stop().await;
        })
        .await;
    scheduler.stop().await;
    drop(groups);

    latencies.sort_by(f64::total_cmp);
    ages.sort_by(f64::total_cmp);
    Some(Figures {
        agents: n,
        connections,
        connections_per_node,
        start_secs,
        queues,
        db_writes_per_sec: writes,
        heartbeat_age_p50: percentile(&ages, 0.5),
        heartbeat_age_p99: percentile(&ages, 0.99),
        heartbeat_age_max: ages.last().copied().unwrap_or(f64::NAN),
        seen_down,
        list_ms: {
            list_ms.sort_by(f64::total_cmp);
            percentile(&list_ms, 0.5)
        },
        requests: latencies.len(),
        failures,
        select_p50_ms: percentile(&latencies, 0.5),
        select_p99_ms: percentile(&latencies, 0.99),
        cpu_percent: cpu,
        broker_cpu_percent: broker_cpu,
        rss_mib: rss,
        broker_rss_mib: broker_rss,
    })
}

fn main() {
    let plan = Plan::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut results = Vec::new();
    for &n in &plan.sizes {
        match runtime.block_on(simulate(n, &plan)) {
            Some(figures) => results.push(figures),
            None => {
                eprintln!("RabbitMQ or PostgreSQL unreachable: simulation skipped");
                return;
            }
        }
    }
    println!(
        "\n{}; window {} s per N, report_interval {} s, {} select_destinations a second{}\n",
        if plan.cluster {
            "three-node cluster (connections and broker memory per node: rabbit, rabbit-2, rabbit-3)"
        } else {
            "one node"
        },
        plan.window.as_secs(),
        plan.report_interval,
        plan.requests_per_sec,
        if plan.query.is_empty() {
            String::new()
        } else {
            format!(", transport options {}", plan.query)
        }
    );
    let per_node = |values: &[String]| values.join(" / ");
    println!(
        "| agents | connections | start | queues | DB writes/s | heartbeat age p50 / p99 / max | down | reading the registry | select_destinations p50 / p99 | failed | CPU (this process) | CPU (broker) | RSS (this process) | RSS (broker) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in &results {
        println!(
            "| {} | {} ({}) | {:.1} s | {} | {:.0} | {:.1} / {:.1} / {:.1} s | {} | {:.1} ms | {:.1} / {:.1} ms ({} calls) | {} | {:.0}% | {:.0}% | {:.0} MiB | {} MiB |",
            f.agents,
            f.connections,
            per_node(
                &f.connections_per_node
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            ),
            f.start_secs,
            f.queues,
            f.db_writes_per_sec,
            f.heartbeat_age_p50,
            f.heartbeat_age_p99,
            f.heartbeat_age_max,
            f.seen_down,
            f.list_ms,
            f.select_p50_ms,
            f.select_p99_ms,
            f.requests,
            f.failures,
            f.cpu_percent,
            f.broker_cpu_percent,
            f.rss_mib,
            per_node(
                &f.broker_rss_mib
                    .iter()
                    .map(|m| format!("{m:.0}"))
                    .collect::<Vec<_>>()
            ),
        );
    }
    if plan.smoke {
        for f in &results {
            // Every agent's queue and the shared ones exist, every request was placed, and no
            // agent's heartbeat lagged past twice its interval.
            assert!(f.queues > 2 * f.agents, "queues: {f:?}");
            assert!(f.requests > 0 && f.failures == 0, "requests: {f:?}");
            assert_eq!(f.seen_down, 0, "{f:?}");
            assert!(
                f.heartbeat_age_max <= 2.0 * plan.report_interval as f64 + 1.0,
                "{f:?}"
            );
        }
    }
}
