//! Harness for workspace-level tests: unique names so tests sharing a broker or database never
//! collide, and the rule for what a test needs from outside (RabbitMQ, PostgreSQL, MariaDB, a
//! Python able to install oslo.messaging): when it is missing the test **fails**, naming it and how
//! to start it. Skipping instead is an explicit choice, [`SKIP_MISSING`]`=1`, refused under CI; each
//! skip is written to the terminal (past the test harness's output capture) with the count so far.

pub mod fuzzing;
pub mod notifications;
pub mod scrape;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Whether this run is CI (`CI=true` or `CI=1`).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A name no other test run uses: `<prefix>-<uuid>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The environment variable that lets a run outside CI skip the tests whose services are missing
/// (`RPC_TESTS_SKIP_MISSING=1`). Unset, such a test fails.
pub const SKIP_MISSING: &str = "RPC_TESTS_SKIP_MISSING";

/// Whether a missing service skips the tests that need it ([`SKIP_MISSING`] set, not CI).
pub fn skipping_allowed() -> bool {
    policy(is_ci(), std::env::var(SKIP_MISSING).ok().as_deref()) == Missing::Skip
}

/// What a missing service means for a run.
#[derive(Debug, PartialEq, Eq)]
enum Missing {
    /// The test fails; under CI the message says `.ci/run` must provide the service.
    Fail { under_ci: bool },
    /// The test skips, and says so.
    Skip,
}

/// The rule: CI always fails; elsewhere only `SKIP_MISSING=1` (or `true`) skips.
fn policy(ci: bool, skip_missing: Option<&str>) -> Missing {
    match (ci, skip_missing) {
        (true, _) => Missing::Fail { under_ci: true },
        (false, Some("1" | "true")) => Missing::Skip,
        (false, _) => Missing::Fail { under_ci: false },
    }
}

/// Skips counted in this test binary.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// What a test does when `what` is missing: fails, naming it and `remedy` (how to get it), unless
/// skipping is allowed; then it writes the skip and the count so far straight to the terminal
/// (the harness captures `eprintln!`, not `std::io::stderr()`) and returns, and the caller skips.
///
/// # Panics
///
/// Unless [`skipping_allowed`].
pub fn skip_or_fail(what: &str, problem: &str, remedy: &str) {
    match policy(is_ci(), std::env::var(SKIP_MISSING).ok().as_deref()) {
        Missing::Fail { under_ci: true } => {
            panic!("{what} {problem} under CI=true: .ci/run must provide it ({remedy})")
        }
        Missing::Fail { under_ci: false } => panic!(
            "{what} {problem}. {remedy}. To skip the tests that need it instead, run with \
             {SKIP_MISSING}=1 (README, \"What the tests need\")."
        ),
        Missing::Skip => {}
    }
    let skipped = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED ({skipped} so far in this test binary, {SKIP_MISSING}=1): {what} {problem}"
    );
}

/// A server the tests need, with how to start it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExternalService {
    /// RabbitMQ at [`RABBITMQ`], `guest`/`guest`, with `rabbitmqctl` on the `PATH`.
    RabbitMq,
    /// PostgreSQL at [`POSTGRES`], trust auth, database `test`, with `psql`.
    Postgres,
    /// MariaDB at [`MARIADB`], `root` without a password, database `test`, with `mysql`.
    MariaDb,
}

impl ExternalService {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::RabbitMq => "RabbitMQ",
            Self::Postgres => "PostgreSQL",
            Self::MariaDb => "MariaDB",
        }
    }

    /// Where the tests reach it.
    pub fn addr(self) -> SocketAddr {
        let addr = match self {
            Self::RabbitMq => RABBITMQ,
            Self::Postgres => POSTGRES,
            Self::MariaDb => MARIADB,
        };
        addr.parse().expect("a socket address")
    }

    /// How to start it, on this project's CI machine and on a laptop with Docker.
    pub fn how_to_start(self) -> &'static str {
        match self {
            Self::RabbitMq => {
                "Start it with `rabbitmq-server -detached`; on a laptop install it first \
                 (`apt install rabbitmq-server`, `brew install rabbitmq`): the tests run \
                 `rabbitmqctl` against the local node"
            }
            Self::Postgres => {
                "Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main \
                 start`, or on a laptop `docker run -d -p 5432:5432 -e \
                 POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test postgres:16` (psql on the PATH)"
            }
            Self::MariaDb => {
                "Start it with `start-stop-daemon --start --oknodo --background --exec \
                 /usr/sbin/mariadbd`, or on a laptop `docker run -d -p 3306:3306 -e \
                 MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 -e MARIADB_DATABASE=test mariadb:11` (mysql \
                 on the PATH)"
            }
        }
    }
}

/// Checks that `service` answers. `false` (the caller skips) only when it does not and
/// skipping is allowed.
///
/// # Panics
///
/// When the service does not answer and skipping is not allowed: see [`skip_or_fail`].
pub fn require(service: ExternalService) -> bool {
    let addr = service.addr();
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(_) => true,
        Err(error) => {
            skip_or_fail(
                service.name(),
                &format!("is unreachable at {addr} ({error})"),
                service.how_to_start(),
            );
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
    /// reachable and skipping is allowed ([`SKIP_MISSING`]).
    ///
    /// # Panics
    ///
    /// When RabbitMQ is unreachable and skipping is not allowed, and whenever `rabbitmqctl` fails.
    pub fn create(prefix: &str) -> Option<Self> {
        if !require(ExternalService::RabbitMq) {
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

    /// The names of the connections open to this vhost, sorted (a reconnect changes them: each
    /// connection's name ends in a fresh uuid).
    pub fn connections(&self) -> Vec<String> {
        let mut names: Vec<String> = rabbitmqctl(&[
            "list_connections",
            "-q",
            "--no-table-headers",
            "vhost",
            "name",
        ])
        .lines()
        .filter_map(|line| {
            let (vhost, name) = line.split_once('\t')?;
            (vhost == self.name).then(|| name.to_owned())
        })
        .collect();
        names.sort();
        names
    }

    /// Waits until `queue` exists in this vhost and has `consumers` consumers, asking the broker
    /// again after each answer, for at most `timeout`; whether it did.
    pub fn wait_for_consumers(&self, queue: &str, consumers: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let wanted = format!("{queue}\t{consumers}");
        loop {
            if self.queues(&["name", "consumers"]).contains(&wanted) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
        }
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
    rabbitmqctl_as("rabbitmqctl", args)
}

/// Runs one of RabbitMQ's command-line tools (`rabbitmqctl`, `rabbitmq-queues`, …) and returns
/// its standard output.
///
/// # Panics
///
/// When the tool cannot run or fails.
pub fn rabbitmqctl_as(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The three nodes `scripts/rabbit-cluster start` makes one cluster of: the machine's own and two
/// more, with their AMQP ports.
pub const CLUSTER_NODES: [(&str, u16); 3] = [
    ("rabbit@localhost", 5672),
    ("rabbit-2@localhost", 5673),
    ("rabbit-3@localhost", 5674),
];

/// The port on which the cluster's third node (`rabbit-3@localhost`) listens with TLS and
/// requires a client certificate.
pub const CLUSTER_TLS_PORT: u16 = 5675;

/// Where `scripts/rabbit-cluster` keeps the CA and the certificates of the mutual-TLS listener:
/// `ca.pem`, `client.pem`, `client.key` (`$RABBIT_CLUSTER_DIR/tls`).
pub fn cluster_tls_dir() -> std::path::PathBuf {
    std::env::var_os("RABBIT_CLUSTER_DIR")
        .map_or_else(
            || std::path::PathBuf::from("/var/lib/rabbitmq/rpc-cluster"),
            std::path::PathBuf::from,
        )
        .join("tls")
}

/// The project's cluster script.
pub fn cluster_script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbit-cluster")
}

/// The three-node RabbitMQ cluster of `scripts/rabbit-cluster`, for tests that lose a node.
#[derive(Debug)]
pub struct Cluster {
    _private: (),
}

impl Cluster {
    /// The cluster, when its three nodes run and are joined. `None` (the test skips) otherwise,
    /// when skipping is allowed ([`SKIP_MISSING`]).
    ///
    /// # Panics
    ///
    /// When the cluster is not running and skipping is not allowed.
    pub fn require() -> Option<Self> {
        if !require(ExternalService::RabbitMq) {
            return None;
        }
        let running = Self::running_nodes();
        let all = CLUSTER_NODES
            .iter()
            .all(|(node, _)| running.iter().any(|r| r == node));
        if all {
            return Some(Self { _private: () });
        }
        skip_or_fail(
            "A three-node RabbitMQ cluster",
            &format!("is not running (running nodes: {running:?})"),
            "Start it with `scripts/rabbit-cluster start` (as root; `scripts/rabbit-cluster stop` \
             leaves the machine's node standalone again)",
        );
        None
    }

    /// The nodes the machine's node sees running in its cluster.
    pub fn running_nodes() -> Vec<String> {
        let output = std::process::Command::new("rabbitmqctl")
            .args(["-q", "cluster_status", "--formatter", "json"])
            .output();
        let Ok(output) = output else {
            return Vec::new();
        };
        serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .ok()
            .and_then(|status| {
                status["running_nodes"].as_array().map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// A transport URL for `vhost` naming all three nodes, starting with node `first` (0-2) and
    /// going round, with `query` appended.
    pub fn url(&self, vhost: &Vhost, first: usize, query: &str) -> String {
        let hosts: Vec<String> = (0..CLUSTER_NODES.len())
            .map(|i| {
                let (_, port) = CLUSTER_NODES[(first + i) % CLUSTER_NODES.len()];
                format!("guest:guest@127.0.0.1:{port}")
            })
            .collect();
        format!("rabbit://{}/{}{query}", hosts.join(","), vhost.name())
    }

    /// Kills node `index`'s Erlang VM with SIGKILL, as a crash would.
    ///
    /// # Panics
    ///
    /// When its OS process cannot be found or signalled.
    pub fn kill(&self, index: usize) {
        let (node, _) = CLUSTER_NODES[index];
        let pid = rabbitmqctl(&["-q", "-n", node, "eval", "os:getpid()."]);
        let pid: i32 = pid
            .trim()
            .trim_matches('"')
            .parse()
            .unwrap_or_else(|_| panic!("{node}'s pid: {pid:?}"));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap_or_else(|e| panic!("SIGKILL to {node} ({pid}): {e}"));
    }

    /// Stops node `index`'s RabbitMQ application gracefully (`rabbitmqctl stop_app`).
    pub fn stop_app(&self, index: usize) {
        rabbitmqctl(&["-q", "-n", CLUSTER_NODES[index].0, "stop_app"]);
    }

    /// Starts node `index`'s application again (`rabbitmqctl start_app`).
    pub fn start_app(&self, index: usize) {
        rabbitmqctl(&["-q", "-n", CLUSTER_NODES[index].0, "start_app"]);
    }

    /// Puts node `index` under maintenance (`rabbitmq-upgrade drain`): it closes its client
    /// connections, stops accepting new ones, and hands its quorum queue leaders to other nodes.
    pub fn drain(&self, index: usize) {
        rabbitmqctl_as(
            "rabbitmq-upgrade",
            &["-q", "-n", CLUSTER_NODES[index].0, "drain"],
        );
    }

    /// Takes node `index` out of maintenance (`rabbitmq-upgrade revive`).
    pub fn revive(&self, index: usize) {
        rabbitmqctl_as(
            "rabbitmq-upgrade",
            &["-q", "-n", CLUSTER_NODES[index].0, "revive"],
        );
    }

    /// The AMQP ports (one per node) that `vhost`'s client connections are connected to, one
    /// entry per connection.
    pub fn connection_ports(&self, vhost: &Vhost) -> Vec<u16> {
        rabbitmqctl(&[
            "list_connections",
            "-q",
            "--no-table-headers",
            "vhost",
            "port",
        ])
        .lines()
        .filter_map(|line| {
            let (name, port) = line.split_once('\t')?;
            (name == vhost.name()).then(|| port.trim().parse().ok())?
        })
        .collect()
    }

    /// Brings every node back (a killed one is started and rejoins): `scripts/rabbit-cluster
    /// start`, then `start_app` on each.
    ///
    /// # Panics
    ///
    /// When the script fails.
    pub fn restore(&self) {
        let output = std::process::Command::new(cluster_script())
            .arg("start")
            .output()
            .expect("scripts/rabbit-cluster runs");
        assert!(
            output.status.success(),
            "scripts/rabbit-cluster start failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for (node, _) in CLUSTER_NODES {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["-q", "-n", node, "start_app"])
                .output();
        }
    }
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
    /// and skipping is allowed ([`SKIP_MISSING`]).
    ///
    /// # Panics
    ///
    /// When the server is unreachable and skipping is not allowed, and whenever the client tool
    /// fails.
    pub fn create(server: DatabaseServer) -> Option<Self> {
        let service = match server {
            DatabaseServer::Postgres => ExternalService::Postgres,
            DatabaseServer::MariaDb => ExternalService::MariaDb,
        };
        if !require(service) {
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
/// be made, or the import fails after the install, and skipping is allowed ([`SKIP_MISSING`]).
///
/// # Panics
///
/// When the virtualenv, the install or the import fails and skipping is not allowed.
pub fn python_venv(
    venv: &std::path::Path,
    packages: &[&str],
    import: &str,
) -> Option<std::path::PathBuf> {
    use std::process::{Command, Stdio};
    const REMEDY: &str = "Python 3 with its `venv` module and pip, and access to PyPI, are needed \
                          (Debian: `apt install python3-venv python3-pip`)";
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let python = venv.join("bin/python");
    let import_error = || -> Option<String> {
        match Command::new(&python)
            .args(["-c", &format!("import {import}")])
            .stdout(Stdio::null())
            .output()
        {
            Ok(output) if output.status.success() => None,
            Ok(output) => Some(String::from_utf8_lossy(&output.stderr).into_owned()),
            Err(error) => Some(error.to_string()),
        }
    };
    if import_error().is_none() {
        return Some(python);
    }
    let what = format!("Python with {packages:?}");
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
            skip_or_fail(&what, &format!("cannot be installed: {why}"), REMEDY);
            return None;
        }
    }
    match import_error() {
        None => Some(python),
        Some(why) => {
            skip_or_fail(
                &what,
                &format!("installed, but `import {import}` fails: {why}"),
                REMEDY,
            );
            None
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_service_fails_unless_skipping_is_asked_for_outside_ci() {
        assert_eq!(policy(false, None), Missing::Fail { under_ci: false });
        assert_eq!(policy(false, Some("0")), Missing::Fail { under_ci: false });
        assert_eq!(policy(false, Some("")), Missing::Fail { under_ci: false });
        assert_eq!(policy(false, Some("1")), Missing::Skip);
        assert_eq!(policy(false, Some("true")), Missing::Skip);
        // CI never skips, whatever the variable says.
        assert_eq!(policy(true, Some("1")), Missing::Fail { under_ci: true });
        assert_eq!(policy(true, None), Missing::Fail { under_ci: true });
    }
}
