//! Resource figures of the `scheduler-service` binary, beside Python's where measurable:
//!
//! - process start to ready (the `ready` line, printed once the service consumes) for
//!   `scheduler-service serve` on the embedded default (`memory://` + SQLite) and on RabbitMQ +
//!   PostgreSQL, median of several starts;
//! - resident memory of the idle scheduler and of an idle compute agent, and the scheduler's peak
//!   while a client keeps 16 `select_destinations` calls in flight against three agents;
//! - oslo.messaging 18.3.1's minimal RPC server (the peers benchmark's `oslo_server.py`), start to
//!   consuming and idle RSS, and the time nova 34's Python takes to import its scheduler manager
//!   (a lower bound of a nova-scheduler's start-up), each in a virtualenv under `target/`.
//!
//! Run: `cargo bench -p scheduler-service --bench footprint` with RabbitMQ and PostgreSQL on this
//! machine. `FOOTPRINT_STARTS` (10) sets the starts per figure, `FOOTPRINT_LOAD_SECS` (10) the
//! load's length, `FOOTPRINT_PYTHON=0` leaves Python out. Without `--bench` (as `cargo test
//! --bench footprint` runs it) it starts each configuration once and checks the figures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rpc_integration_tests::{
    DatabaseServer, TempDatabase, Vhost, python_venv, rss_mib, unique_name,
};
use rpc_runtime::CallOptions;
use scheduler_service::SchedulerManagerClient;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_scheduler-service");

/// A child process that is killed if the run ends early.
struct Daemon(Child);

impl Daemon {
    /// Starts `program args` and waits for its `ready` line; the daemon and the time that took.
    fn start(program: &Path, args: &[String]) -> Option<(Self, Duration)> {
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdout = BufReader::new(child.stdout.take()?);
        let mut first = String::new();
        stdout.read_line(&mut first).ok()?;
        let took = started.elapsed();
        // Keep reading, so the process never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let daemon = Self(child);
        (first.trim() == "ready").then_some((daemon, took))
    }

    fn rss_mib(&self) -> f64 {
        rss_mib(self.0.id())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn args(words: &[&str], flags: &[String]) -> Vec<String> {
    let mut args: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    args.extend_from_slice(flags);
    args
}

/// Starts `serve` `starts` times; the median start-to-ready in seconds, and the last one left
/// running.
fn start_serve(flags: &[String], starts: usize) -> (f64, Daemon) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..starts {
        let (daemon, took) =
            Daemon::start(Path::new(BIN), &args(&["serve"], flags)).expect("serve starts");
        times.push(took.as_secs_f64());
        last = Some(daemon);
    }
    (median(times), last.expect("at least one start"))
}

/// One row of the report.
struct Row {
    what: String,
    start: f64,
    idle_rss: f64,
    load_rss: Option<f64>,
}

/// Keeps 16 `select_destinations` calls in flight for `length`; the peak RSS of `pid` meanwhile
/// and the calls answered per second.
async fn load(url: &str, pid: u32, length: Duration) -> (f64, f64) {
    let transport = rpc_runtime::connect(url).await.expect("client transport");
    let client = SchedulerManagerClient::new(transport)
        .prepare(CallOptions::new().timeout(Duration::from_secs(60)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut peak = rss_mib(pid);
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !done.load(Ordering::Relaxed) {
                tick.tick().await;
                peak = peak.max(rss_mib(pid));
            }
            peak
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut answered = 0_u64;
                while started.elapsed() < length {
                    common::place_one(&client).await.expect("placed");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let mut answered = 0;
    for worker in workers {
        answered += worker.await.expect("load worker");
    }
    let rate = answered as f64 / started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    (sampler.await.expect("sampler"), rate)
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let starts = if smoke {
        1
    } else {
        number("FOOTPRINT_STARTS", 10)
    };
    let load_length = Duration::from_secs(if smoke {
        1
    } else {
        number("FOOTPRINT_LOAD_SECS", 10)
    } as u64);
    let python = !smoke && std::env::var("FOOTPRINT_PYTHON").map_or(true, |v| v != "0");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("footprint"));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let mut rows = Vec::new();

    // The embedded default: memory:// and a SQLite file.
    let sqlite = format!("sqlite:{}?mode=rwc", dir.join("services.sqlite").display());
    let flags: Vec<String> = [
        "--transport-url",
        "memory://footprint",
        "--database-connection",
        &sqlite,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let (start, daemon) = start_serve(&flags, starts);
    rows.push(Row {
        what: "scheduler-service serve, memory:// + SQLite".into(),
        start,
        idle_rss: daemon.rss_mib(),
        load_rss: None,
    });
    drop(daemon);

    // A deployment: RabbitMQ (a vhost of our own) and PostgreSQL (a database of our own).
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let (Some(vhost), Some(database)) = (
        Vhost::create("footprint"),
        TempDatabase::create(DatabaseServer::Postgres),
    ) {
        let flags: Vec<String> = [
            "--transport-url",
            &vhost.url(""),
            "--database-connection",
            &database.url(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let computes: Vec<(Daemon, Duration)> = (1..=3)
            .map(|n| {
                let host = format!("compute-{n}");
                let words = [
                    "compute",
                    "--host",
                    &host,
                    "--vcpus",
                    "1000",
                    "--ram-mb",
                    "10000000",
                    "--disk-gb",
                    "100000",
                ];
                Daemon::start(Path::new(BIN), &args(&words, &flags)).expect("compute starts")
            })
            .collect();
        let (start, scheduler) = start_serve(&flags, starts);
        let idle = scheduler.rss_mib();
        let (peak, rate) = runtime.block_on(load(&vhost.url(""), scheduler.0.id(), load_length));
        eprintln!("load: {rate:.0} select_destinations/s with 16 in flight");
        rows.push(Row {
            what: format!(
                "scheduler-service serve, rabbit:// + PostgreSQL (load: {rate:.0} placements/s)"
            ),
            start,
            idle_rss: idle,
            load_rss: Some(peak),
        });
        let (agent, agent_start) = &computes[0];
        rows.push(Row {
            what: "scheduler-service compute (one simulated agent), rabbit:// + PostgreSQL".into(),
            start: agent_start.as_secs_f64(),
            idle_rss: agent.rss_mib(),
            load_rss: None,
        });
        drop(scheduler);
        drop(computes);

        if python {
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/oslo-bench-venv");
            if let Some(py) = python_venv(&venv, &["oslo.messaging==18.3.1"], "oslo_messaging") {
                let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../rpc-runtime/benches/peers/py/oslo_server.py");
                let url = vhost.url("");
                let mut times = Vec::new();
                let mut last = None;
                for _ in 0..starts {
                    let started = Daemon::start(
                        &py,
                        &[
                            script.display().to_string(),
                            url.clone(),
                            "footprint_oslo".into(),
                        ],
                    );
                    if let Some((daemon, took)) = started {
                        times.push(took.as_secs_f64());
                        last = Some(daemon);
                    }
                }
                if let Some(daemon) = last {
                    rows.push(Row {
                        what: "oslo.messaging 18.3.1 minimal RPC server (Python)".into(),
                        start: median(times),
                        idle_rss: daemon.rss_mib(),
                        load_rss: None,
                    });
                }
            }
        }
    }
    if python {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nova-venv");
        if let Some(py) = python_venv(&venv, &["nova==34.0.0"], "nova.scheduler.rpcapi") {
            let times: Vec<f64> = (0..starts)
                .filter_map(|_| {
                    let started = Instant::now();
                    let ok = Command::new(&py)
                        .args(["-c", "import nova.scheduler.manager, oslo_service.service"])
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success());
                    ok.then(|| started.elapsed().as_secs_f64())
                })
                .collect();
            if !times.is_empty() {
                rows.push(Row {
                    what: "nova 34 (Python): importing nova.scheduler.manager alone".into(),
                    start: median(times),
                    idle_rss: f64::NAN,
                    load_rss: None,
                });
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("\nmedian of {starts} starts; RSS read from /proc after the ready line\n");
    println!("| process | start to ready | RSS idle | RSS peak under load |");
    println!("|---|---|---|---|");
    for row in &rows {
        let idle = if row.idle_rss.is_finite() {
            format!("{:.1} MiB", row.idle_rss)
        } else {
            "—".into()
        };
        let load = row.load_rss.map_or("—".into(), |v| format!("{v:.1} MiB"));
        println!("| {} | {:.3} s | {idle} | {load} |", row.what, row.start);
    }
    if smoke {
        for row in &rows {
            assert!(
                row.start > 0.0 && row.idle_rss > 0.0,
                "{}: {} s, {} MiB",
                row.what,
                row.start,
                row.idle_rss
            );
        }
    }
}
