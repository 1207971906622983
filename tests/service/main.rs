//! The service lifecycle through the public API: `Service::builder(config).create(..)`, `start`,
//! heartbeats, periodic tasks and `stop`, over `memory://` and real registries.

// Helpers outside `#[test]` fns report by panicking.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_integration_tests::{DatabaseServer, TempDatabase, unique_name};
use rpc_runtime::config::{Config, ConfigLoader};
use rpc_runtime::registry::{
    DatabaseUrl, NewService, Registry, RegistryError, ServiceRecord, SqlRegistry,
};
use rpc_runtime::service::{HookError, Manager};
use rpc_runtime::{
    BoxFuture, CallOptions, Client, Context, RpcError, Service, ServiceError, Target, TransportUrl,
    Version, rpc_endpoint,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A manager that records its hooks and its periodic task's runs.
struct Recorder {
    host: String,
    events: Arc<Mutex<Vec<String>>>,
    ticks: mpsc::UnboundedSender<()>,
}

#[rpc_endpoint(topic = "recorder", version = "1.2")]
impl Recorder {
    #[rpc]
    async fn whoami(&self, _ctx: &Context) -> String {
        self.host.clone()
    }

    #[periodic_task(spacing = 3600, run_immediately)]
    async fn tick(&self, _ctx: &Context) {
        let _ = self.ticks.send(());
    }
}

/// The 0.x API of the recorder, kept for old callers: it forwards to the current manager.
struct RecorderV0Proxy {
    manager: Arc<Recorder>,
}

#[rpc_endpoint(topic = "recorder", version = "0.5")]
impl RecorderV0Proxy {
    /// 0.x called it `hostname`.
    #[rpc]
    async fn hostname(&self, ctx: &Context) -> String {
        format!("v0:{}", self.manager.whoami(ctx).await)
    }
}

impl Manager for Recorder {
    fn compat_endpoints(self: &Arc<Self>) -> Vec<Arc<dyn rpc_runtime::Endpoint>> {
        vec![Arc::new(RecorderV0Proxy {
            manager: Arc::clone(self),
        })]
    }

    async fn init_host(&self) -> Result<(), HookError> {
        self.events.lock().unwrap().push("init_host".into());
        Ok(())
    }

    async fn pre_start_hook(&self, service: &ServiceRecord) -> Result<(), HookError> {
        self.events.lock().unwrap().push(format!(
            "pre_start_hook {}/{}",
            service.host, service.binary
        ));
        Ok(())
    }

    async fn post_start_hook(&self) -> Result<(), HookError> {
        self.events.lock().unwrap().push("post_start_hook".into());
        Ok(())
    }

    async fn cleanup_host(&self) {
        self.events.lock().unwrap().push("cleanup_host".into());
    }
}

/// A config for one test: its own in-process broker, an in-memory registry, no fuzzy delay.
fn config() -> Config {
    let mut config = ConfigLoader::new().load().unwrap().config;
    config.transport_url = Some(TransportUrl::memory(Some(&unique_name("svc"))));
    config.database_connection = Some(DatabaseUrl::new("sqlite::memory:"));
    config.periodic_fuzzy_delay = Duration::ZERO;
    config.report_interval = Duration::from_millis(50);
    config
}

struct Started {
    service: Service<Recorder>,
    events: Arc<Mutex<Vec<String>>>,
    ticks: mpsc::UnboundedReceiver<()>,
}

async fn start(config: Config) -> Started {
    let events = Arc::new(Mutex::new(Vec::new()));
    let (tx, ticks) = mpsc::unbounded_channel();
    let recorded = Arc::clone(&events);
    let mut service = Service::builder(config)
        .host("node1")
        .binary("nova-recorder")
        .create(move |host| Recorder {
            host: host.to_owned(),
            events: recorded,
            ticks: tx,
        })
        .unwrap();
    service.start().await.unwrap();
    Started {
        service,
        events,
        ticks,
    }
}

async fn client(service: &Service<Recorder>) -> Client {
    let transport = Arc::clone(service.transport().unwrap());
    Client::new(transport, Target::new("recorder").with_server("node1"))
}

#[tokio::test]
async fn start_runs_the_steps_in_order_and_stop_undoes_them() {
    let mut started = start(config()).await;
    let service = &started.service;
    assert_eq!(
        *started.events.lock().unwrap(),
        vec![
            "init_host",
            "pre_start_hook node1/nova-recorder",
            "post_start_hook"
        ]
    );
    // Registered, with the manager's API version.
    let record = service.record().unwrap().clone();
    assert_eq!(
        (
            record.host.as_str(),
            record.binary.as_str(),
            record.topic.as_str()
        ),
        ("node1", "nova-recorder", "recorder")
    );
    assert_eq!(record.version, Some(Version::new(1, 2)));
    // Serving the manager and the base API on (topic, server = host).
    let client = client(service).await;
    let who: String = client
        .call(&Context::new(), "whoami", &json!({}))
        .await
        .unwrap();
    assert_eq!(who, "node1");
    let base = Client::new(
        Arc::clone(service.transport().unwrap()),
        Target::new("recorder")
            .with_server("node1")
            .with_namespace("baseapi")
            .with_version(Version::new(1, 1)),
    );
    let pong: Value = base
        .call(&Context::new(), "ping", &json!({"arg": "hi"}))
        .await
        .unwrap();
    assert_eq!(pong, json!({"service": "nova-recorder", "arg": "hi"}));
    let port: Value = base
        .call(&Context::new(), "get_backdoor_port", &json!({}))
        .await
        .unwrap();
    assert_eq!(port, Value::Null);
    // The 0.x shim is served beside the manager, for old callers.
    let old = RecorderV0ProxyClient::from_client(Client::new(
        Arc::clone(service.transport().unwrap()),
        RecorderV0ProxyClient::target().with_server("node1"),
    ));
    assert_eq!(old.hostname(&Context::new()).await.unwrap(), "v0:node1");
    // The periodic task ran at once (run_immediately, no fuzzy delay).
    started.ticks.recv().await.unwrap();

    started.service.stop().await;
    assert_eq!(
        started.events.lock().unwrap().last().unwrap(),
        "cleanup_host"
    );
    let after = client
        .prepare(CallOptions::new().timeout(Duration::from_millis(200)))
        .call::<String>(&Context::new(), "whoami", &json!({}))
        .await;
    assert!(
        matches!(after, Err(RpcError::Timeout { .. })),
        "nobody serves after stop: {after:?}"
    );
    // A stopped service starts again and serves; a running one refuses a second start.
    started
        .service
        .start()
        .await
        .expect("a stopped service starts again");
    let who: String = crate::client(&started.service)
        .await
        .call(&Context::new(), "whoami", &json!({}))
        .await
        .expect("served again after the restart");
    assert_eq!(who, "node1");
    assert!(matches!(
        started.service.start().await,
        Err(ServiceError::AlreadyStarted)
    ));
    started.service.stop().await;
}

#[tokio::test]
async fn heartbeats_count_in_the_registry() {
    let started = start(config()).await;
    let mut status = started.service.heartbeats();
    let seen = status.wait_for(|s| s.succeeded >= 3).await.unwrap().clone();
    let record = seen.record.unwrap();
    assert!(record.report_count >= 3, "{record:?}");
    assert!(record.updated_at.is_some());
    let registry = started.service.registry().unwrap();
    let row = registry
        .get_by_host_and_binary("node1", "nova-recorder")
        .await
        .unwrap()
        .unwrap();
    assert!(row.report_count >= 3, "{row:?}");
}

/// A registry whose heartbeats fail while `failing` is set, as when the database is away.
#[derive(Debug)]
struct Flaky {
    inner: SqlRegistry,
    failing: AtomicBool,
}

impl Registry for Flaky {
    fn get_by_host_and_binary<'a>(
        &'a self,
        host: &'a str,
        binary: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServiceRecord>, RegistryError>> {
        self.inner.get_by_host_and_binary(host, binary)
    }
    fn create<'a>(
        &'a self,
        service: &'a NewService,
    ) -> BoxFuture<'a, Result<ServiceRecord, RegistryError>> {
        self.inner.create(service)
    }
    fn heartbeat(&self, id: i64) -> BoxFuture<'_, Result<ServiceRecord, RegistryError>> {
        if self.failing.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(RegistryError::NotFound { id })));
        }
        self.inner.heartbeat(id)
    }
    fn set_version(&self, id: i64, version: Version) -> BoxFuture<'_, Result<(), RegistryError>> {
        self.inner.set_version(id, version)
    }
    fn set_availability_zone<'a>(
        &'a self,
        id: i64,
        zone: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.inner.set_availability_zone(id, zone)
    }
    fn list<'a>(
        &'a self,
        binary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ServiceRecord>, RegistryError>> {
        self.inner.list(binary)
    }
    fn set_disabled<'a>(
        &'a self,
        id: i64,
        disabled: bool,
        reason: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        self.inner.set_disabled(id, disabled, reason)
    }
    fn soft_delete(&self, id: i64) -> BoxFuture<'_, Result<(), RegistryError>> {
        self.inner.soft_delete(id)
    }
}

#[tokio::test]
async fn failed_heartbeats_are_retried_and_never_stop_the_server() {
    let flaky = Arc::new(Flaky {
        inner: SqlRegistry::connect(&DatabaseUrl::new("sqlite::memory:"))
            .await
            .unwrap(),
        failing: AtomicBool::new(false),
    });
    let down_time = Duration::from_millis(300);
    let mut config = config();
    config.service_down_time = down_time;
    let events = Arc::new(Mutex::new(Vec::new()));
    let (tx, _ticks) = mpsc::unbounded_channel();
    let mut service = Service::builder(config)
        .host("node1")
        .binary("nova-recorder")
        .registry(Arc::clone(&flaky) as Arc<dyn Registry>)
        .create(|host| Recorder {
            host: host.to_owned(),
            events,
            ticks: tx,
        })
        .unwrap();
    service.start().await.unwrap();
    let mut status = service.heartbeats();
    status.wait_for(|s| s.succeeded >= 1).await.unwrap();
    let is_up = || async { flaky.list(Some("nova-recorder")).await.unwrap()[0].is_up(down_time) };
    assert!(is_up().await);

    // The database goes away: heartbeats fail, every 50 ms, for longer than service_down_time.
    flaky.failing.store(true, Ordering::SeqCst);
    let failed = status.wait_for(|s| s.failed >= 8).await.unwrap().clone();
    assert!(failed.last_error.is_some());
    assert!(!is_up().await, "no heartbeat for 8 × 50 ms > 300 ms: down");
    // … and the RPC server still answers.
    let who: String = client(&service)
        .await
        .call(&Context::new(), "whoami", &json!({}))
        .await
        .unwrap();
    assert_eq!(who, "node1");

    // It comes back: the next heartbeat lands and the service is up again.
    let before = status.borrow().succeeded;
    flaky.failing.store(false, Ordering::SeqCst);
    status.wait_for(|s| s.succeeded > before).await.unwrap();
    assert!(is_up().await);
    service.stop().await;
}

#[tokio::test]
async fn periodic_tasks_are_off_when_disabled() {
    let mut config = config();
    config.periodic_enable = false;
    let mut started = start(config).await;
    // By the third heartbeat a run_immediately task with no fuzzy delay would have run.
    started
        .service
        .heartbeats()
        .wait_for(|s| s.succeeded >= 3)
        .await
        .unwrap();
    assert!(started.ticks.try_recv().is_err());
    started.service.stop().await;
}

#[tokio::test]
async fn a_restart_reuses_the_row_and_records_the_new_version() {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.sqlite", unique_name("restart")));
    let url = DatabaseUrl::new(format!("sqlite:{}", file.display()));
    let registry = SqlRegistry::connect(&url).await.unwrap();
    let old = registry
        .create(
            &NewService::new("node1", "nova-recorder", "recorder").with_version(Version::new(1, 0)),
        )
        .await
        .unwrap();
    let mut config = config();
    config.database_connection = Some(url);
    let mut started = start(config).await;
    let record = started.service.record().unwrap().clone();
    assert_eq!(record.id, old.id);
    assert_eq!(record.version, Some(Version::new(1, 2)));
    started.service.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

#[tokio::test]
async fn a_manager_that_config_does_not_name_is_refused() {
    let mut config = ConfigLoader::new()
        .text(
            "nova.conf",
            "[DEFAULT]\nrecorder_manager = nova.recorder.manager.OtherManager\n",
        )
        .topic("recorder")
        .load()
        .unwrap()
        .config;
    config.transport_url = Some(TransportUrl::memory(Some(&unique_name("svc"))));
    config.database_connection = Some(DatabaseUrl::new("sqlite::memory:"));
    let (tx, _ticks) = mpsc::unbounded_channel();
    let mut service = Service::builder(config)
        .host("node1")
        .binary("nova-recorder")
        .create(|host| Recorder {
            host: host.to_owned(),
            events: Arc::default(),
            ticks: tx,
        })
        .unwrap();
    let error = service.start().await.unwrap_err();
    assert!(matches!(error, ServiceError::Config(_)), "{error:?}");
    assert!(error.to_string().contains("OtherManager"), "{error}");
    assert!(error.to_string().contains("Recorder"), "{error}");
}

#[tokio::test]
async fn create_fills_unset_fields_from_config_and_the_executable() {
    let mut config = config();
    config.host = Some("from-config".into());
    let (tx, _ticks) = mpsc::unbounded_channel();
    let service = Service::builder(config)
        .create(|host| Recorder {
            host: host.to_owned(),
            events: Arc::default(),
            ticks: tx,
        })
        .unwrap();
    assert_eq!(service.host(), "from-config");
    assert_eq!(service.manager().host, "from-config");
    // This test binary is `service-<hash>`: the topic is what follows the first dash.
    let binary = service.binary().to_owned();
    assert!(binary.starts_with("service"), "{binary}");
    assert_eq!(
        service.topic(),
        binary.split_once('-').map_or(binary.as_str(), |(_, t)| t)
    );
}

/// Sixteen services of one host and binary start at once, each opening the registry itself.
async fn sixteen_starts(url: String) {
    let mut config = config();
    config.database_connection = Some(DatabaseUrl::new(url.clone()));
    let starts = (0..16).map(|_| {
        let config = config.clone();
        tokio::spawn(async move { start(config).await })
    });
    let mut services = Vec::new();
    for started in futures::future::join_all(starts).await {
        services.push(started.unwrap());
    }
    let ids: Vec<i64> = services
        .iter()
        .map(|s| s.service.record().unwrap().id)
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let registry = SqlRegistry::connect(&DatabaseUrl::new(url)).await.unwrap();
    assert_eq!(registry.list(Some("nova-recorder")).await.unwrap().len(), 1);
    for mut started in services {
        started.service.stop().await;
    }
}

#[tokio::test]
async fn sixteen_concurrent_starts_on_postgres() {
    if let Some(database) = TempDatabase::create(DatabaseServer::Postgres) {
        sixteen_starts(database.url()).await;
    }
}

#[tokio::test]
async fn sixteen_concurrent_starts_on_mariadb() {
    if let Some(database) = TempDatabase::create(DatabaseServer::MariaDb) {
        sixteen_starts(database.url()).await;
    }
}

#[tokio::test]
async fn sixteen_concurrent_starts_on_a_sqlite_file() {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.sqlite", unique_name("sixteen")));
    sixteen_starts(format!("sqlite:{}", file.display())).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
