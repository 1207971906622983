//! [`SqlRegistry`]: the services table on SQLite, PostgreSQL or MySQL/MariaDB through sqlx. The
//! differences between the three stay in this file: URL spellings, placeholders, quoting of the
//! `binary` column, pool settings and migrations.

use std::str::FromStr;
use std::time::Duration;

use chrono::{NaiveDateTime, Timelike, Utc};

use super::{DatabaseUrl, NewService, Registry, RegistryError, ServiceRecord};
use crate::transport::BoxFuture;
use crate::version::Version;

/// The services registry in a SQL database.
///
/// `[database] connection` URLs in sqlx's or SQLAlchemy's spelling are accepted:
/// `sqlite::memory:`, `sqlite:services.sqlite`, `sqlite:///relative.sqlite` and
/// `sqlite:////absolute/path.sqlite` (SQLAlchemy: three slashes relative, four absolute);
/// `postgres://`, `postgresql://`, `postgresql+psycopg2://`; `mysql://`, `mariadb://`,
/// `mysql+pymysql://`. The schema is created or upgraded on connect (embedded migrations).
#[derive(Debug, Clone)]
pub struct SqlRegistry {
    pool: Pool,
    sql: Statements,
}

#[derive(Debug, Clone)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// Runs `$body` with `$pool` bound to whichever pool this is: the body is written once and
/// compiled for each back end.
macro_rules! with_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            Pool::Postgres($pool) => $body,
            #[cfg(feature = "mysql")]
            Pool::MySql($pool) => $body,
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

/// The statements, written once with `?` and `"binary"` and rewritten per dialect.
#[derive(Debug, Clone)]
struct Statements {
    get_by_host_and_binary: String,
    get_by_id: String,
    insert: String,
    heartbeat: String,
    set_version: String,
    set_availability_zone: String,
    list_all: String,
    list_binary: String,
    set_disabled: String,
    soft_delete: String,
}

const COLUMNS: &str = r#"id, host, "binary", topic, report_count, disabled, disabled_reason, version, availability_zone, created_at, updated_at, deleted_at"#;

impl Statements {
    fn new(dialect: Dialect) -> Self {
        let sql = |text: String| rewrite(dialect, &text);
        Self {
            get_by_host_and_binary: sql(format!(
                r#"SELECT {COLUMNS} FROM services WHERE host = ? AND "binary" = ? AND deleted = 0"#
            )),
            get_by_id: sql(format!(
                "SELECT {COLUMNS} FROM services WHERE id = ? AND deleted = 0"
            )),
            insert: sql(r#"INSERT INTO services (host, "binary", topic, report_count, disabled, version, availability_zone, created_at, deleted) VALUES (?, ?, ?, 0, FALSE, ?, ?, ?, 0)"#.into()),
            heartbeat: sql("UPDATE services SET report_count = report_count + 1, updated_at = ? WHERE id = ? AND deleted = 0".into()),
            set_version: sql("UPDATE services SET version = ?, updated_at = ? WHERE id = ? AND deleted = 0".into()),
            set_availability_zone: sql("UPDATE services SET availability_zone = ?, updated_at = ? WHERE id = ? AND deleted = 0".into()),
            list_all: sql(format!("SELECT {COLUMNS} FROM services WHERE deleted = 0 ORDER BY id")),
            list_binary: sql(format!(
                r#"SELECT {COLUMNS} FROM services WHERE deleted = 0 AND "binary" = ? ORDER BY id"#
            )),
            // Not `updated_at`: an operator disabling a dead service must not make it look alive.
            set_disabled: sql("UPDATE services SET disabled = ?, disabled_reason = ? WHERE id = ? AND deleted = 0".into()),
            soft_delete: sql("UPDATE services SET deleted = id, deleted_at = ? WHERE id = ? AND deleted = 0".into()),
        }
    }
}

/// `?` → `$1, $2, …` for PostgreSQL; `"binary"` → `` `binary` `` for MySQL.
fn rewrite(dialect: Dialect, sql: &str) -> String {
    match dialect {
        Dialect::Sqlite => sql.to_owned(),
        Dialect::MySql => sql.replace("\"binary\"", "`binary`"),
        Dialect::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

/// Reads an SQLAlchemy or sqlx URL: the dialect and the URL sqlx takes.
fn normalize(url: &str) -> Option<(Dialect, String)> {
    let (scheme, rest) = url.split_once(':')?;
    let base = scheme.split('+').next().unwrap_or(scheme);
    match base {
        "sqlite" => {
            let path = if let Some(absolute) = rest.strip_prefix("////") {
                format!("sqlite:///{absolute}")
            } else if let Some(relative) = rest.strip_prefix("///") {
                if relative.is_empty() || relative == ":memory:" {
                    "sqlite::memory:".to_owned()
                } else {
                    format!("sqlite:{relative}")
                }
            } else if rest.is_empty() || rest == "//" {
                "sqlite::memory:".to_owned()
            } else {
                format!("sqlite:{rest}")
            };
            Some((Dialect::Sqlite, path))
        }
        "postgres" | "postgresql" => Some((Dialect::Postgres, format!("postgres:{rest}"))),
        "mysql" | "mariadb" => Some((Dialect::MySql, format!("mysql:{rest}"))),
        _ => None,
    }
}

/// Migrates a MySQL/MariaDB database under a named lock of our own, on one connection: sqlx's
/// own lock (`GET_LOCK(…, -1)`) does not hold on MariaDB, where siblings starting at once then
/// apply the migration twice.
#[cfg(feature = "mysql")]
async fn migrate_mysql(
    pool: &sqlx::MySqlPool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    const LOCK: &str = "rpc_runtime_services_migrations";
    let mut conn = pool.acquire().await?;
    let locked: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 60)")
        .bind(LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if locked != Some(1) {
        return Err("timed out waiting for another process migrating the registry".into());
    }
    let mut migrator = sqlx::migrate!("./migrations/mysql");
    migrator.set_locking(false);
    let migrated = migrator.run_direct(&mut *conn).await;
    let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
        .bind(LOCK)
        .execute(&mut *conn)
        .await;
    Ok(migrated?)
}

/// Opens and closes one connection, so a database that cannot be reached fails at once with
/// the reason.
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn probe<C: sqlx::Connection>(url: &str) -> Result<(), sqlx::Error> {
    let connection = C::connect(url).await?;
    let _ = connection.close().await;
    Ok(())
}

/// A row as the database gives it.
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    host: String,
    binary: String,
    topic: String,
    report_count: i64,
    disabled: bool,
    disabled_reason: Option<String>,
    version: Option<String>,
    availability_zone: Option<String>,
    created_at: NaiveDateTime,
    updated_at: Option<NaiveDateTime>,
    deleted_at: Option<NaiveDateTime>,
}

impl From<Row> for ServiceRecord {
    fn from(row: Row) -> Self {
        Self {
            id: row.id,
            host: row.host,
            binary: row.binary,
            topic: row.topic,
            report_count: row.report_count,
            disabled: row.disabled,
            disabled_reason: row.disabled_reason,
            // A version this runtime cannot read is treated as unknown.
            version: row.version.and_then(|v| v.parse().ok()),
            availability_zone: row.availability_zone,
            created_at: row.created_at.and_utc(),
            updated_at: row.updated_at.map(|t| t.and_utc()),
            deleted_at: row.deleted_at.map(|t| t.and_utc()),
        }
    }
}

/// Now, in UTC, to the microsecond (what every back end stores).
fn now() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

fn query_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> RegistryError {
    move |e| RegistryError::Query {
        operation,
        source: Box::new(e),
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl SqlRegistry {
    /// Connects and brings the schema up to date.
    ///
    /// # Errors
    ///
    /// [`RegistryError::UnsupportedUrl`] for a scheme this build has no driver for,
    /// [`RegistryError::Connect`] when the database cannot be reached or migrated.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, RegistryError> {
        let unsupported = |reason: &str| RegistryError::UnsupportedUrl {
            url: url.redacted(),
            reason: reason.to_owned(),
        };
        let (dialect, sqlx_url) = normalize(url.expose())
            .ok_or_else(|| unsupported("expected sqlite:, postgres:// or mysql://"))?;
        let connect_error = |e: Box<dyn std::error::Error + Send + Sync>| RegistryError::Connect {
            url: url.redacted(),
            source: e,
        };
        let pool = match dialect {
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => {
                use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
                let memory = sqlx_url.contains(":memory:");
                let options = SqliteConnectOptions::from_str(&sqlx_url)
                    .map_err(|e| connect_error(Box::new(e)))?
                    .create_if_missing(true)
                    .busy_timeout(Duration::from_secs(10));
                // An in-memory database lives as long as its one connection.
                let (options, pool) = if memory {
                    (
                        options,
                        SqlitePoolOptions::new()
                            .max_connections(1)
                            .idle_timeout(None)
                            .max_lifetime(None),
                    )
                } else {
                    (
                        options.journal_mode(SqliteJournalMode::Wal),
                        SqlitePoolOptions::new().max_connections(4),
                    )
                };
                let pool = pool
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_error(Box::new(e)))?;
                // Siblings starting at once may race to create the schema on one file; the
                // loser finds it done on its next try.
                let mut attempt = 0;
                loop {
                    match sqlx::migrate!("./migrations/sqlite").run(&pool).await {
                        Ok(()) => break,
                        Err(_) if attempt < 3 => attempt += 1,
                        Err(e) => return Err(connect_error(Box::new(e))),
                    }
                }
                Pool::Sqlite(pool)
            }
            #[cfg(feature = "postgres")]
            Dialect::Postgres => {
                // One direct attempt first: the pool would retry until its timeout and then
                // report only that it timed out, hiding "connection refused" or a bad password.
                probe::<sqlx::PgConnection>(&sqlx_url)
                    .await
                    .map_err(|e| connect_error(Box::new(e)))?;
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(5)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&sqlx_url)
                    .await
                    .map_err(|e| connect_error(Box::new(e)))?;
                sqlx::migrate!("./migrations/postgres")
                    .run(&pool)
                    .await
                    .map_err(|e| connect_error(Box::new(e)))?;
                Pool::Postgres(pool)
            }
            #[cfg(feature = "mysql")]
            Dialect::MySql => {
                probe::<sqlx::MySqlConnection>(&sqlx_url)
                    .await
                    .map_err(|e| connect_error(Box::new(e)))?;
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(5)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&sqlx_url)
                    .await
                    .map_err(|e| connect_error(Box::new(e)))?;
                migrate_mysql(&pool).await.map_err(connect_error)?;
                Pool::MySql(pool)
            }
            #[allow(unreachable_patterns)]
            _ => {
                return Err(unsupported(
                    "this build has no driver for it (features sqlite, postgres, mysql)",
                ));
            }
        };
        Ok(Self {
            pool,
            sql: Statements::new(dialect),
        })
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }

    async fn get_by_id(&self, id: i64) -> Result<ServiceRecord, RegistryError> {
        let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(&self.sql.get_by_id)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(query_error("get by id"))?);
        row.map(ServiceRecord::from)
            .ok_or(RegistryError::NotFound { id })
    }
}

/// An `UPDATE … WHERE id = ?` that changed no row found no live service.
fn changed(id: i64, affected: u64) -> Result<(), RegistryError> {
    if affected == 0 {
        Err(RegistryError::NotFound { id })
    } else {
        Ok(())
    }
}

impl Registry for SqlRegistry {
    fn get_by_host_and_binary<'a>(
        &'a self,
        host: &'a str,
        binary: &'a str,
    ) -> BoxFuture<'a, Result<Option<ServiceRecord>, RegistryError>> {
        Box::pin(timed("get_by_host_and_binary", async move {
            let row: Option<Row> = with_pool!(self, pool => sqlx::query_as(&self.sql.get_by_host_and_binary)
                    .bind(host)
                    .bind(binary)
                    .fetch_optional(pool)
                    .await
                    .map_err(query_error("get by host and binary"))?);
            Ok(row.map(ServiceRecord::from))
        }))
    }

    fn create<'a>(
        &'a self,
        service: &'a NewService,
    ) -> BoxFuture<'a, Result<ServiceRecord, RegistryError>> {
        Box::pin(timed("create", async move {
            let version = service.version.map(|v| v.to_string());
            let inserted = with_pool!(self, pool => sqlx::query(&self.sql.insert)
                .bind(&service.host)
                .bind(&service.binary)
                .bind(&service.topic)
                .bind(&version)
                .bind(&service.availability_zone)
                .bind(now())
                .execute(pool)
                .await
                .map(drop));
            match inserted {
                Ok(()) => {}
                Err(e) if is_unique_violation(&e) => {
                    tracing::debug!(
                        host = %service.host,
                        binary = %service.binary,
                        "a sibling registered first; using its row"
                    );
                }
                Err(e) => return Err(query_error("create")(e)),
            }
            self.get_by_host_and_binary(&service.host, &service.binary)
                .await?
                .ok_or_else(|| RegistryError::Query {
                    operation: "create",
                    source: "the new row was deleted before it could be read".into(),
                })
        }))
    }

    fn heartbeat(&self, id: i64) -> BoxFuture<'_, Result<ServiceRecord, RegistryError>> {
        Box::pin(timed("heartbeat", async move {
            let affected = with_pool!(self, pool => sqlx::query(&self.sql.heartbeat)
                .bind(now())
                .bind(id)
                .execute(pool)
                .await
                .map_err(query_error("heartbeat"))?
                .rows_affected());
            changed(id, affected)?;
            self.get_by_id(id).await
        }))
    }

    fn set_version(&self, id: i64, version: Version) -> BoxFuture<'_, Result<(), RegistryError>> {
        Box::pin(timed("set_version", async move {
            let affected = with_pool!(self, pool => sqlx::query(&self.sql.set_version)
                .bind(version.to_string())
                .bind(now())
                .bind(id)
                .execute(pool)
                .await
                .map_err(query_error("set version"))?
                .rows_affected());
            changed(id, affected)
        }))
    }

    fn set_availability_zone<'a>(
        &'a self,
        id: i64,
        zone: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(timed("set_availability_zone", async move {
            let affected = with_pool!(self, pool => sqlx::query(&self.sql.set_availability_zone)
                .bind(zone)
                .bind(now())
                .bind(id)
                .execute(pool)
                .await
                .map_err(query_error("set availability zone"))?
                .rows_affected());
            changed(id, affected)
        }))
    }

    fn list<'a>(
        &'a self,
        binary: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ServiceRecord>, RegistryError>> {
        Box::pin(timed("list", async move {
            let rows: Vec<Row> = match binary {
                Some(binary) => with_pool!(self, pool => sqlx::query_as(&self.sql.list_binary)
                    .bind(binary)
                    .fetch_all(pool)
                    .await
                    .map_err(query_error("list"))?),
                None => with_pool!(self, pool => sqlx::query_as(&self.sql.list_all)
                    .fetch_all(pool)
                    .await
                    .map_err(query_error("list"))?),
            };
            Ok(rows.into_iter().map(ServiceRecord::from).collect())
        }))
    }

    fn set_disabled<'a>(
        &'a self,
        id: i64,
        disabled: bool,
        reason: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(timed("set_disabled", async move {
            // Enabling clears the reason, as nova does.
            let reason = reason.filter(|_| disabled);
            let affected = with_pool!(self, pool => sqlx::query(&self.sql.set_disabled)
                .bind(disabled)
                .bind(reason)
                .bind(id)
                .execute(pool)
                .await
                .map_err(query_error("set disabled"))?
                .rows_affected());
            changed(id, affected)
        }))
    }

    fn soft_delete(&self, id: i64) -> BoxFuture<'_, Result<(), RegistryError>> {
        Box::pin(timed("soft_delete", async move {
            let affected = with_pool!(self, pool => sqlx::query(&self.sql.soft_delete)
                .bind(now())
                .bind(id)
                .execute(pool)
                .await
                .map_err(query_error("soft delete"))?
                .rows_affected());
            changed(id, affected)
        }))
    }
}

/// Runs a registry operation, timed in `rpc_registry_operation_duration_seconds` when metrics are
/// on.
async fn timed<T>(
    operation: &'static str,
    work: impl Future<Output = Result<T, RegistryError>>,
) -> Result<T, RegistryError> {
    let Some(metrics) = crate::metrics::get() else {
        return work.await;
    };
    let started = std::time::Instant::now();
    let outcome = work.await;
    metrics.registry_operation(operation, started.elapsed(), outcome.is_ok());
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_sqlx_and_sqlalchemy_spellings() {
        let n = normalize;
        assert_eq!(
            n("sqlite::memory:"),
            Some((Dialect::Sqlite, "sqlite::memory:".into()))
        );
        assert_eq!(
            n("sqlite://"),
            Some((Dialect::Sqlite, "sqlite::memory:".into()))
        );
        assert_eq!(
            n("sqlite:data.db"),
            Some((Dialect::Sqlite, "sqlite:data.db".into()))
        );
        assert_eq!(
            n("sqlite:///nova.sqlite"),
            Some((Dialect::Sqlite, "sqlite:nova.sqlite".into()))
        );
        assert_eq!(
            n("sqlite:////var/lib/nova/nova.sqlite"),
            Some((Dialect::Sqlite, "sqlite:///var/lib/nova/nova.sqlite".into()))
        );
        assert_eq!(
            n("postgresql+psycopg2://nova:pw@db/nova"),
            Some((Dialect::Postgres, "postgres://nova:pw@db/nova".into()))
        );
        assert_eq!(
            n("mysql+pymysql://nova:pw@db/nova?charset=utf8"),
            Some((
                Dialect::MySql,
                "mysql://nova:pw@db/nova?charset=utf8".into()
            ))
        );
        assert_eq!(
            n("mariadb://root@h/test"),
            Some((Dialect::MySql, "mysql://root@h/test".into()))
        );
        assert_eq!(n("oracle://x"), None);
        assert_eq!(n("no scheme"), None);
    }

    #[test]
    fn statements_are_rewritten_per_dialect() {
        let sql = r#"SELECT a FROM services WHERE host = ? AND "binary" = ?"#;
        assert_eq!(rewrite(Dialect::Sqlite, sql), sql);
        assert_eq!(
            rewrite(Dialect::Postgres, sql),
            r#"SELECT a FROM services WHERE host = $1 AND "binary" = $2"#
        );
        assert_eq!(
            rewrite(Dialect::MySql, sql),
            "SELECT a FROM services WHERE host = ? AND `binary` = ?"
        );
    }
}
