//! The services registry against real databases: every case runs on SQLite (a file), PostgreSQL and
//! MariaDB, each in a database of its own.

// The cases are plain async fns (run per database), where clippy does not see a test: a panic is
// how a test reports.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rpc_integration_tests::{DatabaseServer, TempDatabase, unique_name};
use rpc_runtime::Version;
use rpc_runtime::registry::{DatabaseUrl, NewService, Registry, RegistryError, SqlRegistry};

/// A registry and what keeps its database alive.
struct Db {
    registry: SqlRegistry,
    _database: Option<TempDatabase>,
    file: Option<std::path::PathBuf>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

async fn open(backend: Backend) -> Option<Db> {
    let (url, database, file) = match backend {
        Backend::Sqlite => {
            let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("{}.sqlite", unique_name("registry")));
            (format!("sqlite:{}", file.display()), None, Some(file))
        }
        Backend::Postgres => {
            let database = TempDatabase::create(DatabaseServer::Postgres)?;
            // nova.conf's SQLAlchemy spelling is accepted.
            let url = database
                .url()
                .replace("postgres://", "postgresql+psycopg2://");
            (url, Some(database), None)
        }
        Backend::MariaDb => {
            let database = TempDatabase::create(DatabaseServer::MariaDb)?;
            let url = database.url().replace("mysql://", "mysql+pymysql://");
            (url, Some(database), None)
        }
    };
    let registry = SqlRegistry::connect(&DatabaseUrl::new(url))
        .await
        .expect("connect and migrate");
    Some(Db {
        registry,
        _database: database,
        file,
    })
}

/// Runs each case on the three back ends.
macro_rules! on_every_database {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                if let Some(db) = super::open(super::Backend::Sqlite).await {
                    super::$case(&db.registry).await;
                }
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                if let Some(db) = super::open(super::Backend::Postgres).await {
                    super::$case(&db.registry).await;
                }
            })*
        }
        mod mariadb {
            $(#[tokio::test]
            async fn $case() {
                if let Some(db) = super::open(super::Backend::MariaDb).await {
                    super::$case(&db.registry).await;
                }
            })*
        }
    };
}

on_every_database!(
    create_then_find_by_host_and_binary,
    sixteen_concurrent_creates_make_one_row,
    heartbeats_count_and_keep_a_service_up,
    disable_with_a_reason_then_enable,
    soft_delete_hides_and_frees_the_name,
    min_version_is_the_oldest_live_version,
    availability_zone_is_recorded_and_changed,
    hostile_text_is_stored_as_data_never_run_as_sql,
);

/// Every value reaches the database as a bound parameter: text that would break (or abuse) SQL
/// built by concatenation is stored and read back byte for byte, and the table is intact.
async fn hostile_text_is_stored_as_data_never_run_as_sql(registry: &SqlRegistry) {
    let hosts = [
        "h1'; DROP TABLE services; --",
        "h2\\' OR '1'='1",
        "h3\"); DELETE FROM services; --",
        "h4 ünïcødé 中文 \u{1F600}",
        "h5 %_ LIKE wildcards",
    ];
    let mut ids = Vec::new();
    for host in hosts {
        let created = registry
            .create(
                &NewService::new(host, "nova-compute'--", "compute")
                    .with_availability_zone("az'; TRUNCATE services; --"),
            )
            .await
            .unwrap();
        assert_eq!(created.host, host);
        ids.push(created.id);
    }
    registry
        .set_disabled(
            ids[0],
            true,
            Some("'); UPDATE services SET disabled = 0; --"),
        )
        .await
        .unwrap();
    for host in hosts {
        let found = registry
            .get_by_host_and_binary(host, "nova-compute'--")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{host} not found"));
        assert_eq!(found.host, host);
        assert_eq!(
            found.availability_zone.as_deref(),
            Some("az'; TRUNCATE services; --")
        );
    }
    // A wildcard is a character, not a pattern.
    assert!(
        registry
            .get_by_host_and_binary("h5 %", "nova-compute'--")
            .await
            .unwrap()
            .is_none()
    );
    let listed = registry.list(Some("nova-compute'--")).await.unwrap();
    assert_eq!(listed.len(), hosts.len(), "the table lost rows");
    assert!(listed[0].disabled);
    assert_eq!(
        listed[0].disabled_reason.as_deref(),
        Some("'); UPDATE services SET disabled = 0; --")
    );
}

async fn availability_zone_is_recorded_and_changed(registry: &SqlRegistry) {
    let created = registry
        .create(&NewService::new("node1", "nova-compute", "compute").with_availability_zone("east"))
        .await
        .unwrap();
    assert_eq!(created.availability_zone.as_deref(), Some("east"));
    let plain = registry
        .create(&NewService::new("node2", "nova-compute", "compute"))
        .await
        .unwrap();
    assert_eq!(plain.availability_zone, None);
    registry
        .set_availability_zone(created.id, Some("west"))
        .await
        .unwrap();
    registry
        .set_availability_zone(plain.id, None)
        .await
        .unwrap();
    let zones: Vec<Option<String>> = registry
        .list(Some("nova-compute"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.availability_zone)
        .collect();
    assert_eq!(zones, vec![Some("west".to_owned()), None]);
    assert!(matches!(
        registry.set_availability_zone(9_999, Some("x")).await,
        Err(RegistryError::NotFound { id: 9_999 })
    ));
}

async fn create_then_find_by_host_and_binary(registry: &SqlRegistry) {
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let created = registry
        .create(
            &NewService::new("node1", "nova-scheduler", "scheduler")
                .with_version(Version::new(4, 5)),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            created.host.as_str(),
            created.binary.as_str(),
            created.topic.as_str()
        ),
        ("node1", "nova-scheduler", "scheduler")
    );
    assert_eq!(created.version, Some(Version::new(4, 5)));
    assert_eq!(created.report_count, 0);
    assert!(!created.disabled && created.disabled_reason.is_none());
    assert!(created.created_at >= before, "{created:?}");
    assert_eq!(created.updated_at, None);
    let found = registry
        .get_by_host_and_binary("node1", "nova-scheduler")
        .await
        .unwrap();
    assert_eq!(found, Some(created));
    assert_eq!(
        registry
            .get_by_host_and_binary("node2", "nova-scheduler")
            .await
            .unwrap(),
        None
    );
}

async fn sixteen_concurrent_creates_make_one_row(registry: &SqlRegistry) {
    let service = NewService::new("node1", "nova-conductor", "conductor");
    let created = futures::future::join_all((0..16).map(|_| registry.create(&service))).await;
    let ids: Vec<i64> = created
        .into_iter()
        .map(|r| r.expect("every create returns the row").id)
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let listed = registry.list(Some("nova-conductor")).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}

async fn heartbeats_count_and_keep_a_service_up(registry: &SqlRegistry) {
    let down = Duration::from_secs(60);
    let created = registry
        .create(&NewService::new("node1", "nova-compute", "compute"))
        .await
        .unwrap();
    let first = registry.heartbeat(created.id).await.unwrap();
    let second = registry.heartbeat(created.id).await.unwrap();
    assert_eq!((first.report_count, second.report_count), (1, 2));
    let updated = second.updated_at.expect("a heartbeat sets updated_at");
    assert!(updated >= first.updated_at.unwrap() && updated >= created.created_at);
    assert!(second.is_up(down));
    // No heartbeat for longer than service_down_time: down; one more heartbeat: up again.
    let later = updated + chrono::Duration::seconds(61);
    assert!(!second.is_up_at(later, down));
    let third = registry.heartbeat(created.id).await.unwrap();
    assert!(third.is_up_at(
        third.updated_at.unwrap() + chrono::Duration::seconds(59),
        down
    ));
    assert!(matches!(
        registry.heartbeat(created.id + 1000).await,
        Err(RegistryError::NotFound { .. })
    ));
}

async fn disable_with_a_reason_then_enable(registry: &SqlRegistry) {
    let created = registry
        .create(&NewService::new("node1", "nova-compute", "compute"))
        .await
        .unwrap();
    registry
        .set_disabled(created.id, true, Some("maintenance window"))
        .await
        .unwrap();
    let listed = registry.list(None).await.unwrap();
    assert!(listed[0].disabled);
    // Disabling is no sign of life: a dead service must stay down.
    assert_eq!(listed[0].updated_at, None);
    assert_eq!(
        listed[0].disabled_reason.as_deref(),
        Some("maintenance window")
    );
    registry
        .set_disabled(created.id, false, Some("ignored"))
        .await
        .unwrap();
    let listed = registry.list(None).await.unwrap();
    assert!(!listed[0].disabled);
    assert_eq!(listed[0].disabled_reason, None);
}

async fn soft_delete_hides_and_frees_the_name(registry: &SqlRegistry) {
    let service = NewService::new("node1", "nova-compute", "compute");
    let first = registry.create(&service).await.unwrap();
    registry.soft_delete(first.id).await.unwrap();
    assert_eq!(
        registry
            .get_by_host_and_binary("node1", "nova-compute")
            .await
            .unwrap(),
        None
    );
    assert!(registry.list(None).await.unwrap().is_empty());
    assert!(matches!(
        registry.soft_delete(first.id).await,
        Err(RegistryError::NotFound { id }) if id == first.id
    ));
    let again = registry.create(&service).await.unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(registry.list(None).await.unwrap(), vec![again]);
}

async fn min_version_is_the_oldest_live_version(registry: &SqlRegistry) {
    let down = Duration::from_secs(60);
    assert_eq!(
        registry.min_version("nova-compute", down).await.unwrap(),
        None
    );
    let mut ids = Vec::new();
    for (host, version) in [("a", (4, 10)), ("b", (4, 2)), ("c", (4, 5))] {
        let service = NewService::new(host, "nova-compute", "compute")
            .with_version(Version::new(version.0, version.1));
        ids.push(registry.create(&service).await.unwrap().id);
    }
    registry
        .create(
            &NewService::new("a", "nova-conductor", "conductor").with_version(Version::new(3, 0)),
        )
        .await
        .unwrap();
    assert_eq!(
        registry.min_version("nova-compute", down).await.unwrap(),
        Some(Version::new(4, 2))
    );
    registry.soft_delete(ids[1]).await.unwrap();
    assert_eq!(
        registry.min_version("nova-compute", down).await.unwrap(),
        Some(Version::new(4, 5))
    );
    registry
        .set_version(ids[2], Version::new(4, 11))
        .await
        .unwrap();
    assert_eq!(
        registry.min_version("nova-compute", down).await.unwrap(),
        Some(Version::new(4, 10))
    );
}

#[tokio::test]
async fn connect_errors_hide_the_password() {
    let url = DatabaseUrl::new("postgres://nova:hunter2@127.0.0.1:1/nova");
    let error = SqlRegistry::connect(&url).await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(matches!(error, RegistryError::Connect { .. }), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let error = SqlRegistry::connect(&DatabaseUrl::new("oracle://u:hunter2@h/x"))
        .await
        .unwrap_err();
    assert!(matches!(error, RegistryError::UnsupportedUrl { .. }));
    assert!(!error.to_string().contains("hunter2"), "{error}");
}
