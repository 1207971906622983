//! A database outage while serving: PostgreSQL stopped for longer than `service_down_time`. RPC
//! keeps answering, heartbeats fail (and say why) and resume, and the registry shows the service
//! up again. A binary of its own: it stops the machine's PostgreSQL, which no other test may see.

use std::process::Command;
use std::time::{Duration, Instant};

use rpc_integration_tests::{DatabaseServer, TempDatabase, skip_or_fail, unique_name};
use rpc_runtime::config::ConfigLoader;
use rpc_runtime::service::{HeartbeatStatus, Manager};
use rpc_runtime::{Context, Service, rpc_endpoint};
use tokio::sync::watch;

const SERVICE_DOWN_TIME: Duration = Duration::from_secs(3);

struct Probe;

#[rpc_endpoint(topic = "outage", version = "1.0")]
impl Probe {
    #[rpc]
    async fn ping(&self, _ctx: &Context, n: u64) -> u64 {
        n
    }
}

impl Manager for Probe {}

/// `pg_ctlcluster` for the machine's cluster.
fn pg_ctl(action: &str) -> bool {
    let Some(version) = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
    else {
        return false;
    };
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .is_ok_and(|s| s.success())
}

/// The outage: PostgreSQL stopped, started again when dropped (even if the test fails).
struct Outage;

impl Outage {
    fn begin() -> Self {
        assert!(pg_ctl("stop"), "could not stop PostgreSQL");
        Self
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !pg_ctl("start") {
            eprintln!("could not start PostgreSQL again");
        }
    }
}

/// Waits until the heartbeat status satisfies `done`, for at most `limit`.
async fn until(
    beats: &mut watch::Receiver<HeartbeatStatus>,
    limit: Duration,
    done: impl Fn(&HeartbeatStatus) -> bool,
) -> HeartbeatStatus {
    tokio::time::timeout(limit, async {
        loop {
            let status = beats.borrow_and_update().clone();
            if done(&status) {
                return status;
            }
            beats.changed().await.expect("the heartbeat loop runs");
        }
    })
    .await
    .expect("the heartbeats reached the expected state in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_survives_a_database_outage_and_heartbeats_resume() {
    if Command::new("pg_ctlcluster")
        .arg("--help")
        .output()
        .is_err()
    {
        skip_or_fail(
            "pg_ctlcluster",
            "is not on the PATH",
            "This test stops and starts the machine's PostgreSQL with it (Debian's \
             postgresql-common)",
        );
        return;
    }
    let Some(database) = TempDatabase::create(DatabaseServer::Postgres) else {
        return;
    };
    let config = ConfigLoader::new()
        .set("DEFAULT", "host", "h1")
        .set(
            "DEFAULT",
            "transport_url",
            format!("memory://{}", unique_name("outage")),
        )
        .set("DEFAULT", "report_interval", "1")
        .set(
            "DEFAULT",
            "service_down_time",
            SERVICE_DOWN_TIME.as_secs().to_string(),
        )
        .set("database", "connection", database.url())
        .load()
        .expect("settings")
        .config;
    let mut service = Service::builder(config)
        .binary("outage-probe")
        .topic("outage")
        .create(|_host| Probe)
        .expect("a service");
    service.start().await.expect("it starts");
    let client = ProbeClient::new(std::sync::Arc::clone(
        service.transport().expect("transport"),
    ));
    let registry = std::sync::Arc::clone(service.registry().expect("registry"));
    let mut beats = service.heartbeats();
    until(&mut beats, Duration::from_secs(10), |s| s.succeeded >= 1).await;

    let outage = Outage::begin();
    let stopped = Instant::now();
    // Heartbeats fail, with the reason; RPC answers meanwhile, for longer than service_down_time.
    let failing = until(&mut beats, Duration::from_secs(30), |s| s.failed >= 1).await;
    assert!(failing.last_error.is_some(), "a failed heartbeat says why");
    let mut answered = 0;
    while stopped.elapsed() < SERVICE_DOWN_TIME + Duration::from_secs(1) {
        let n = client
            .ping(&Context::new(), answered)
            .await
            .expect("RPC during the outage");
        assert_eq!(n, answered);
        answered += 1;
        // Pace the probes on the heartbeat loop's own ticks: a new status each report_interval.
        let _ = tokio::time::timeout(Duration::from_secs(2), beats.changed()).await;
    }
    let failed = beats.borrow().failed;
    assert!(
        failed >= 2,
        "only {failed} heartbeats failed during the outage"
    );
    drop(outage);
    let down_for = stopped.elapsed();

    // Heartbeats resume on their own, and the registry shows the service up.
    let succeeded_before = beats.borrow().succeeded;
    let resumed = until(&mut beats, Duration::from_secs(30), |s| {
        s.succeeded > succeeded_before && s.last_error.is_none()
    })
    .await;
    let record = resumed.record.expect("the row after the heartbeat");
    assert!(record.is_up(SERVICE_DOWN_TIME), "{record:?}");
    let listed = registry
        .list(Some("outage-probe"))
        .await
        .expect("the registry reads again");
    let listed_record = listed
        .iter()
        .find(|r| r.id == record.id)
        .unwrap_or_else(|| panic!("the service is not listed: {listed:?}"));
    assert!(listed_record.is_up(SERVICE_DOWN_TIME), "{listed_record:?}");
    eprintln!(
        "database down {down_for:.1?}: {answered} calls answered meanwhile, {failed} heartbeats \
         failed, resumed {:.1?} after the database came back",
        stopped.elapsed() - down_for
    );
    service.stop().await;
}
