//! Harness for workspace-level tests: unique names so tests sharing a broker or database never
//! collide, and the rule for external services: under `CI=true` a service a test needs must be
//! reachable (the test fails, it never skips); elsewhere a test without its service is skipped with
//! a message.

pub mod fuzzing;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether this run is CI (`CI=true`).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A name no other test run uses: `<prefix>-<uuid>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Checks that a TCP service answers at `addr`. Under CI an unreachable service panics, naming
/// it; elsewhere this returns `false` and the caller skips.
///
/// # Panics
///
/// Under `CI=true`, when the service is unreachable.
pub fn require_service(name: &str, addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(_) => true,
        Err(error) if is_ci() => {
            panic!("{name} at {addr} is unreachable under CI=true ({error}); .ci/run must start it")
        }
        Err(error) => {
            eprintln!("skipped: {name} at {addr} is unreachable ({error})");
            false
        }
    }
}

/// RabbitMQ on this machine.
pub const RABBITMQ: &str = "127.0.0.1:5672";

/// A RabbitMQ virtual host of a test's own, deleted (with everything in it) when dropped.
#[derive(Debug)]
pub struct Vhost {
    name: String,
}

impl Vhost {
    /// Creates a fresh vhost that `guest` may use. `None` (the test skips) when RabbitMQ is not
    /// reachable outside CI.
    ///
    /// # Panics
    ///
    /// Under `CI=true` when RabbitMQ is unreachable, and whenever `rabbitmqctl` fails.
    pub fn create(prefix: &str) -> Option<Self> {
        let addr = RABBITMQ.parse().expect("a socket address");
        if !require_service("RabbitMQ", addr) {
            return None;
        }
        let name = unique_name(prefix);
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Some(Self { name })
    }

    /// The vhost's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A transport URL for this vhost, with `query` appended (`""` for none).
    pub fn url(&self, query: &str) -> String {
        format!("rabbit://guest:guest@{RABBITMQ}/{}{query}", self.name)
    }

    /// `rabbitmqctl list_queues -p <vhost> <columns>`, one line per queue.
    pub fn queues(&self, columns: &[&str]) -> Vec<String> {
        let mut args = vec!["list_queues", "-q", "--no-table-headers", "-p", &self.name];
        args.extend_from_slice(columns);
        rabbitmqctl(&args).lines().map(str::to_owned).collect()
    }

    /// `rabbitmqctl list_exchanges -p <vhost> <columns>`, one line per exchange.
    pub fn exchanges(&self, columns: &[&str]) -> Vec<String> {
        let mut args = vec![
            "list_exchanges",
            "-q",
            "--no-table-headers",
            "-p",
            &self.name,
        ];
        args.extend_from_slice(columns);
        rabbitmqctl(&args).lines().map(str::to_owned).collect()
    }

    /// A plain lapin connection to this vhost, for tests that play a peer by hand.
    ///
    /// # Panics
    ///
    /// When the broker refuses the connection.
    pub async fn raw_connection(&self) -> lapin::Connection {
        lapin::Connection::connect(
            &format!("amqp://guest:guest@{RABBITMQ}/{}", self.name),
            lapin::ConnectionProperties::default(),
        )
        .await
        .expect("a raw connection to the test vhost")
    }

    /// Deletes a queue in this vhost.
    pub fn delete_queue(&self, queue: &str) {
        rabbitmqctl(&["delete_queue", "-p", &self.name, queue]);
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}

/// Runs `rabbitmqctl` and returns its standard output.
///
/// # Panics
///
/// When `rabbitmqctl` cannot run or fails.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let output = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// PostgreSQL on this machine (trust auth).
pub const POSTGRES: &str = "127.0.0.1:5432";
/// MariaDB on this machine (root, no password).
pub const MARIADB: &str = "127.0.0.1:3306";

/// A database server a test can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseServer {
    /// PostgreSQL, through `psql`.
    Postgres,
    /// MariaDB, through `mysql`.
    MariaDb,
}

/// A database of a test's own on a real server, dropped when this is.
#[derive(Debug)]
pub struct TempDatabase {
    server: DatabaseServer,
    name: String,
}

impl TempDatabase {
    /// Creates a fresh, empty database. `None` (the test skips) when the server is not reachable
    /// outside CI.
    ///
    /// # Panics
    ///
    /// Under `CI=true` when the server is unreachable, and whenever the client tool fails.
    pub fn create(server: DatabaseServer) -> Option<Self> {
        let (label, addr) = match server {
            DatabaseServer::Postgres => ("PostgreSQL", POSTGRES),
            DatabaseServer::MariaDb => ("MariaDB", MARIADB),
        };
        if !require_service(label, addr.parse().expect("a socket address")) {
            return None;
        }
        let name = unique_name("reg").replace('-', "_");
        let database = Self { server, name };
        let create = format!("CREATE DATABASE {}", database.name);
        if let Err(error) = database.admin(&create) {
            panic!("{error}");
        }
        Some(database)
    }

    /// The sqlx URL of this database.
    pub fn url(&self) -> String {
        match self.server {
            DatabaseServer::Postgres => format!("postgres://postgres@{POSTGRES}/{}", self.name),
            DatabaseServer::MariaDb => format!("mysql://root@{MARIADB}/{}", self.name),
        }
    }

    /// Runs one statement as the administrator, on the server's default database.
    fn admin(&self, statement: &str) -> Result<(), String> {
        let output = match self.server {
            DatabaseServer::Postgres => std::process::Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "test",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    statement,
                ])
                .output(),
            DatabaseServer::MariaDb => std::process::Command::new("mysql")
                .args(["-h", "127.0.0.1", "-uroot", "-e", statement])
                .output(),
        }
        .map_err(|e| format!("cannot run the database client: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{statement}` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let statement = match self.server {
            DatabaseServer::Postgres => {
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)
            }
            DatabaseServer::MariaDb => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        if let Err(error) = self.admin(&statement) {
            eprintln!("cleanup: {error}");
        }
    }
}

/// A Python virtualenv at `venv` (a folder under the build folder: pass
/// `env!("CARGO_TARGET_TMPDIR")` joined with a name) with `packages` pip-installed, made on first
/// use and reused while `import` still works; its `python`. `None` (the test skips) when it cannot
/// be made outside CI.
///
/// # Panics
///
/// Under `CI=true` when the virtualenv or the install fails.
pub fn python_venv(
    venv: &std::path::Path,
    packages: &[&str],
    import: &str,
) -> Option<std::path::PathBuf> {
    use std::process::{Command, Stdio};
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", &format!("import {import}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready() {
        return Some(python);
    }
    let mut install = vec!["-m".to_owned(), "pip".into(), "install".into(), "-q".into()];
    install.extend(packages.iter().map(|p| (*p).to_owned()));
    let steps: [(&str, Vec<String>); 2] = [
        (
            "python3",
            vec!["-m".into(), "venv".into(), venv.display().to_string()],
        ),
        (python.to_str().unwrap_or_default(), install),
    ];
    for (program, args) in steps {
        let output = Command::new(program).args(&args).output();
        let ok = output.as_ref().is_ok_and(|o| o.status.success());
        if !ok {
            let why = output.map_or_else(
                |e| e.to_string(),
                |o| String::from_utf8_lossy(&o.stderr).into_owned(),
            );
            assert!(!is_ci(), "installing {packages:?} failed under CI: {why}");
            eprintln!("skipped: cannot install {packages:?}: {why}");
            return None;
        }
    }
    ready().then_some(python)
}

/// A process's resident memory in MiB, from `/proc/<pid>/status` (NaN when it cannot be read).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
