//! The binary as a deployment runs it, as separate processes on RabbitMQ (a vhost of the test's
//! own) and PostgreSQL (a database of its own): `serve --workers 2`, three `compute` agents and
//! `boot` / `services` clients. A killed compute agent goes down and is no longer chosen; a
//! disabled one is skipped; a 3.x caller is served through the shim.

// Helpers report by panicking.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use rpc_integration_tests::{DatabaseServer, TempDatabase, Vhost, unique_name};

const BIN: &str = env!("CARGO_BIN_EXE_scheduler-service");

/// A long-running subcommand; killed if the test ends early.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `args` and waits for its `ready` line.
    fn start(args: &[String], dir: &std::path::Path) -> Self {
        let log = dir.join(format!("{}.log", unique_name("daemon")));
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        // Keep reading, so the process never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let daemon = Self { child, log };
        assert_eq!(first.trim(), "ready", "{}", daemon.log());
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// SIGTERM; asserts exit code 0.
    fn stop(mut self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `words` then the configuration `flags`, as one command line.
fn command(words: &[&str], flags: &[String]) -> Vec<String> {
    let mut args: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    args.extend_from_slice(flags);
    args
}

fn run(args: &[String]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Boots and returns the chosen host of each instance.
fn boot(flags: &[String], extra: &[&str]) -> Vec<String> {
    let mut words = vec!["boot", "--flavor", "m1.tiny"];
    words.extend_from_slice(extra);
    let output = run(&command(&words, flags));
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| {
            let (_, rest) = line.split_once(" -> ").unwrap();
            rest.split_whitespace().next().unwrap().to_owned()
        })
        .collect()
}

/// The `services` table's row for `host` and `binary`, cells trimmed.
fn service_row(flags: &[String], host: &str, binary: &str) -> Vec<String> {
    let output = run(&command(&["services"], flags));
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| {
            line.split('|')
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|cells| {
            cells.get(2).is_some_and(|b| b == binary) && cells.get(3).is_some_and(|h| h == host)
        })
        .unwrap_or_else(|| panic!("no row for {binary} on {host}"))
}

/// The pids of a process's children.
fn children(pid: u32) -> BTreeSet<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The `scheduler` queue exists before the workers consume, so a boot waits in it.
async fn declare_scheduler_queue(vhost: &Vhost) {
    let connection = vhost.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            "scheduler".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "declared".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_workers_compute_agents_and_clients_as_separate_processes() {
    let Some(vhost) = Vhost::create("sched-deploy") else {
        return;
    };
    let Some(database) = TempDatabase::create(DatabaseServer::Postgres) else {
        return;
    };
    declare_scheduler_queue(&vhost).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("deploy"));
    std::fs::create_dir_all(&dir).unwrap();
    let flags: Vec<String> = [
        "--transport-url",
        &vhost.url(""),
        "--database-connection",
        &database.url(),
        "--set",
        "DEFAULT.report_interval=1",
        "--set",
        "DEFAULT.service_down_time=4",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();

    tokio::task::spawn_blocking(move || {
        let computes: Vec<Daemon> = (1..=3)
            .map(|n| {
                let host = format!("compute-{n}");
                let words = [
                    "compute",
                    "--host",
                    &host,
                    "--vcpus",
                    "4",
                    "--ram-mb",
                    "4096",
                    "--disk-gb",
                    "100",
                ];
                let args = command(&words, &flags);
                Daemon::start(&args, &dir)
            })
            .collect();
        let args = command(&["serve", "--workers", "2"], &flags);
        let scheduler = Daemon::start(&args, &dir);
        assert_eq!(children(scheduler.child.id()).len(), 2, "two workers");

        // Spread over the three hosts.
        let hosts: BTreeSet<String> = boot(&flags, &["--count", "6"]).into_iter().collect();
        assert_eq!(hosts.len(), 3, "{hosts:?}: {}", scheduler.log());

        // A dead compute agent goes down once its heartbeats are older than service_down_time.
        let mut computes = computes;
        let mut dead = computes.remove(2);
        dead.child.kill().unwrap();
        dead.child.wait().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while service_row(&flags, "compute-3", "nova-compute")[6] != "down" {
            assert!(
                std::time::Instant::now() < deadline,
                "compute-3 never went down"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let after = boot(&flags, &["--count", "4"]);
        assert_eq!(after.len(), 4);
        assert!(!after.contains(&"compute-3".to_owned()), "{after:?}");

        // A caller of the 3.x API, served through the shim.
        let args = command(&["boot", "--legacy", "--flavor", "m1.tiny"], &flags);
        let legacy = run(&args);
        assert!(legacy.status.success(), "{}", text(&legacy.stderr));
        let legacy = text(&legacy.stdout);
        assert!(legacy.contains("(3.x API)"), "{legacy}");
        assert!(!legacy.contains("compute-3"), "{legacy}");

        // A disabled compute service is skipped until enabled again.
        let words = [
            "services",
            "disable",
            "compute-2",
            "nova-compute",
            "--reason",
            "maintenance",
        ];
        let args = command(&words, &flags);
        assert!(run(&args).status.success());
        let row = service_row(&flags, "compute-2", "nova-compute");
        assert_eq!(
            (row[5].as_str(), row[8].as_str()),
            ("disabled", "maintenance")
        );
        assert_eq!(boot(&flags, &["--count", "2"]), ["compute-1", "compute-1"]);
        let args = command(&["services", "enable", "compute-2", "nova-compute"], &flags);
        assert!(run(&args).status.success());
        assert!(boot(&flags, &["--count", "2"]).contains(&"compute-2".to_owned()));

        // Every service registered, the scheduler once for its two workers.
        let row = service_row(&flags, &hostname(), "nova-scheduler");
        assert_eq!((row[4].as_str(), row[6].as_str()), ("internal", "up"));

        scheduler.stop();
        for compute in computes {
            compute.stop();
        }
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .unwrap();
    drop(vhost);
}

/// The machine's host name, as the scheduler registers without `--host`.
fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `serve 2>file` writes plain text (no colour codes into a file); with oslo.log's `use_json`,
/// `debug` and `log_file` every line is one JSON object, and a request's lines carry its
/// `request_id`, `topic` and `method`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text_in_a_file_and_json_lines_with_use_json() {
    let Some(vhost) = Vhost::create("sched-logs") else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("logs"));
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite:{}", dir.join("services.sqlite").display());
    let flags: Vec<String> = [
        "--transport-url",
        &vhost.url(""),
        "--database-connection",
        &database,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let json_log = dir.join("scheduler.json.log");
    let mut json_flags = flags.clone();
    for setting in [
        "DEFAULT.use_json=true".to_owned(),
        "DEFAULT.debug=true".to_owned(),
        format!("DEFAULT.log_file={}", json_log.display()),
    ] {
        json_flags.extend(["--set".to_owned(), setting]);
    }
    tokio::task::spawn_blocking(move || {
        // No compute agent: the boot fails with NoValidHost, which the scheduler logs at debug.
        let no_host = || {
            let output = run(&command(&["boot", "--flavor", "m1.tiny"], &flags));
            assert!(!output.status.success());
            let stderr = text(&output.stderr);
            assert!(stderr.contains("No valid host was found"), "{stderr}");
        };

        let plain = Daemon::start(&command(&["serve"], &flags), &dir);
        no_host();
        let log_path = plain.log.clone();
        plain.stop();
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(log.contains("RPC server consuming"), "{log}");
        assert!(!log.contains('\u{1b}'), "colour codes in a file: {log}");

        let json = Daemon::start(&command(&["serve"], &json_flags), &dir);
        no_host();
        assert_eq!(json.log(), "", "with log_file, nothing goes to stderr");
        json.stop();
        let lines = std::fs::read_to_string(&json_log).unwrap();
        let events: Vec<serde_json::Value> = lines
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert!(
            events
                .iter()
                .all(|e| e["level"].is_string() && e["timestamp"].is_string()),
            "{lines}"
        );
        assert!(
            events.iter().any(|e| e["level"] == "DEBUG"),
            "debug = true logs at debug: {lines}"
        );
        let failed = events
            .iter()
            .find(|e| e["message"] == "the call failed")
            .unwrap_or_else(|| panic!("no failed call logged: {lines}"));
        assert_eq!(failed["class"], "NoValidHost", "{failed}");
        let span = &failed["span"];
        assert_eq!(span["topic"], "scheduler", "{failed}");
        assert_eq!(span["method"], "select_destinations", "{failed}");
        assert!(
            span["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("req-")),
            "{failed}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .unwrap();
    drop(vhost);
}

/// A port free now on loopback, for a daemon to listen on.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_are_served_where_metrics_listen_says() {
    use rpc_integration_tests::scrape::{assert_at_least, get, sample};
    let Some(vhost) = Vhost::create("sched-metrics") else {
        return;
    };
    let vhost_name = vhost.name().to_owned();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name("metrics"));
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite:{}", dir.join("services.sqlite").display());
    let flags: Vec<String> = [
        "--transport-url",
        &vhost.url(""),
        "--database-connection",
        &database,
        "--set",
        "DEFAULT.report_interval=1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    tokio::task::spawn_blocking(move || {
        let with_metrics = |words: &[&str], port: u16| {
            let mut args = command(words, &flags);
            args.extend([
                "--set".to_owned(),
                format!("metrics.listen=127.0.0.1:{port}"),
            ]);
            args
        };
        let (compute_port, scheduler_port) = (free_port(), free_port());
        let compute = Daemon::start(
            &with_metrics(
                &[
                    "compute",
                    "--host",
                    "metered-1",
                    "--vcpus",
                    "4",
                    "--ram-mb",
                    "4096",
                    "--disk-gb",
                    "100",
                ],
                compute_port,
            ),
            &dir,
        );
        let scheduler = Daemon::start(&with_metrics(&["serve"], scheduler_port), &dir);
        let scheduler_addr = format!("127.0.0.1:{scheduler_port}").parse().unwrap();
        let compute_addr = format!("127.0.0.1:{compute_port}").parse().unwrap();
        // Started: alive and ready (the server consumes, the registry answers).
        for addr in [scheduler_addr, compute_addr] {
            assert_eq!(get(addr, "/healthz").0, 200);
            let (status, body) = get(addr, "/readyz");
            assert_eq!((status, body.as_str()), (200, "ready\n"));
        }

        assert_eq!(boot(&flags, &["--count", "2"]).len(), 2);
        let (status, text) = get(scheduler_addr, "/metrics");
        assert_eq!(status, 200);
        let selected = sample(
            &text,
            "rpc_server_requests_total",
            &[("topic", "scheduler"), ("method", "select_destinations")],
        );
        assert_eq!(selected, Some(1.0), "{text}");
        // The scheduler called the compute agent to claim, as a client.
        assert_at_least(
            &text,
            "rpc_client_requests_total",
            &[("topic", "compute")],
            2.0,
        );
        assert_at_least(
            &text,
            "rpc_registry_operation_duration_seconds_count",
            &[("operation", "create")],
            1.0,
        );
        assert_at_least(
            &text,
            "rpc_transport_connections",
            &[("transport", "rabbit")],
            1.0,
        );
        let (_, compute_text) = get(compute_addr, "/metrics");
        assert_at_least(
            &compute_text,
            "rpc_server_requests_total",
            &[("topic", "compute")],
            2.0,
        );
        assert_at_least(
            &compute_text,
            "rpc_registry_operation_duration_seconds_count",
            &[("operation", "heartbeat"), ("outcome", "ok")],
            1.0,
        );
        // The broker drops every connection: not ready until the scheduler has reconnected and
        // consumes again (kombu_reconnect_delay is a second: the gap is seen).
        rpc_integration_tests::rabbitmqctl(&[
            "close_all_connections",
            "--vhost",
            &vhost_name,
            "readiness test",
        ]);
        let until = |ready: bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let (status, body) = get(scheduler_addr, "/readyz");
                if (status == 200) == ready {
                    return body;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "readyz stayed {status}: {body}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        let why = until(false);
        assert!(why.contains("not consuming"), "{why}");
        until(true);
        assert_eq!(boot(&flags, &["--count", "1"]).len(), 1);
        let (_, text) = get(scheduler_addr, "/metrics");
        assert_at_least(
            &text,
            "rpc_transport_reconnects_total",
            &[("transport", "rabbit")],
            1.0,
        );
        scheduler.stop();
        compute.stop();
    })
    .await
    .unwrap();
}
