//! This framework against its peers, side by side in one run on one machine:
//!
//! - in process: `memory://` (the full oslo envelope encoded and decoded both ways) against
//!   tarpc's in-process channel (which encodes nothing) and tarpc over TCP with JSON;
//! - over RabbitMQ on 127.0.0.1:5672: `rabbit://` against a minimal hand-written lapin
//!   request/reply loop (the practical limit) and oslo.messaging 18.3.1 (Python, pip-installed
//!   into a virtualenv under `target/` on first use).
//!
//! For each: sequential call latency (p50, p99), calls per second with 1, 16, 64 and 256 in
//! flight, and casts per second (sent until all arrived). Notifications over RabbitMQ: this
//! framework's `Notifier` -> `NotificationListener` with 64 in flight (against the raw loop's
//! casts) and oslo.messaging's, and each listener draining a queue filled beforehand. Measurements are interleaved: each
//! round takes its steps (sequential, each level of calls in flight, casts) one by one, every
//! implementation of a group taking the step in turn, in alternating order from round to round,
//! so machine drift touches all alike. The tables show medians over rounds, the ratios against
//! each peer and which targets are met, and the chart goes to `docs/bench.svg`.
//!
//! Run: `cargo bench -p rpc-runtime --bench peers`. Knobs (environment): `BENCH_ROUNDS` (5),
//! `BENCH_CALLS` (calls per level over RabbitMQ, 20,000; five times that in process),
//! `BENCH_SEQ_CALLS` (sequential calls, a quarter of `BENCH_CALLS`), `BENCH_GROUPS`
//! (`metrics` adds a table of this framework with metrics off and on)
//! (`in-process,rabbit,escaping`; `escaping` times the envelope's one-pass JSON escaping against
//! two serde_json passes; `rabbit` includes the notification rows, and `notify` runs only them
//! with the raw loop's casts beside them), `BENCH_OSLO=0` (leave oslo.messaging out), `BENCH_ONLY_OURS=1` or
//! `BENCH_ONLY_RAW=1` (one side, for a profiler), `BENCH_CHART` (where the SVG goes; `0` for
//! nowhere). Without `--bench` (as `cargo test --bench peers` runs it) it does one small round
//! and writes no chart: a smoke test of the harness itself.

use std::path::{Path, PathBuf};

mod chart;
mod escaping;
mod in_process;
mod measure;
mod metrics_cost;
mod notify;
mod oslo;
mod rabbit;
mod report;

use measure::{Effort, Figures, Ours, Step, env_usize, measure_calls, measure_casts};
use report::{Group, Row};

/// Which implementations a run measures.
struct Selection {
    in_process: bool,
    escaping: bool,
    /// Metrics off against on (`metrics`).
    metrics: bool,
    rabbit: bool,
    /// The notification rows (in `rabbit`, or alone as `notify`).
    notify: bool,
    oslo: bool,
    ours: bool,
    peers: bool,
}

impl Selection {
    fn from_env(smoke: bool) -> Self {
        let groups =
            std::env::var("BENCH_GROUPS").unwrap_or_else(|_| "in-process,rabbit,escaping".into());
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| v != "0");
        Self {
            in_process: groups.split(',').any(|g| g.trim() == "in-process"),
            escaping: groups.split(',').any(|g| g.trim() == "escaping"),
            metrics: groups.split(',').any(|g| g.trim() == "metrics"),
            rabbit: groups.split(',').any(|g| g.trim() == "rabbit"),
            notify: groups
                .split(',')
                .any(|g| matches!(g.trim(), "rabbit" | "notify")),
            oslo: !smoke && std::env::var("BENCH_OSLO").map_or(true, |v| v != "0"),
            ours: !set("BENCH_ONLY_RAW"),
            peers: !set("BENCH_ONLY_OURS"),
        }
    }
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rounds = if smoke {
        1
    } else {
        env_usize("BENCH_ROUNDS", 5)
    };
    let calls = if smoke {
        200
    } else {
        env_usize("BENCH_CALLS", 20_000)
    };
    let rabbit_effort = Effort {
        sequential: env_usize("BENCH_SEQ_CALLS", calls / 4),
        per_level: calls,
        casts: calls * 2,
    };
    let memory_effort = Effort {
        sequential: rabbit_effort.sequential * 5,
        per_level: calls * 5,
        casts: calls * 10,
    };
    let oslo_calls = (calls / 20).max(200);
    let mut select = Selection::from_env(smoke);
    if select.escaping {
        escaping::run(smoke);
    }
    let mut metrics_over_rabbit = select.metrics;
    if (select.rabbit || select.notify || select.metrics) && !broker_reachable() {
        // As the test harness reads it (tests/support): `true` or `1`.
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(!ci, "RabbitMQ is not reachable on {}", rabbit::BROKER);
        eprintln!(
            "RabbitMQ is not reachable on {}: leaving it out",
            rabbit::BROKER
        );
        select.rabbit = false;
        select.notify = false;
        metrics_over_rabbit = false;
    }
    let python = if (select.rabbit || select.notify) && select.oslo && select.peers {
        oslo::python()
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rows = runtime.block_on(async {
        let topic = format!("bench_{}", std::process::id());
        let mut rows = vec![
            Row::new(
                Group::InProcess,
                "rpc-runtime memory:// (oslo envelope)",
                "#1f77b4",
            ),
            Row::new(
                Group::InProcess,
                "tarpc in-process channel (no encoding)",
                "#ff7f0e",
            ),
            Row::new(Group::InProcess, "tarpc TCP + JSON (loopback)", "#2ca02c"),
            Row::new(
                Group::Rabbit,
                "rpc-runtime rabbit:// (oslo wire)",
                "#1f77b4",
            ),
            Row::new(Group::Rabbit, "raw lapin loop", "#ff7f0e"),
            Row::new(
                Group::Rabbit,
                "raw lapin loop, oslo-sized messages",
                "#bcbd22",
            )
            .off_chart(),
            Row::new(Group::Rabbit, "oslo.messaging 18.3.1 (Python)", "#d62728"),
            Row::new(
                Group::Rabbit,
                "rpc-runtime Notifier -> NotificationListener",
                "#1f77b4",
            )
            .off_chart(),
            Row::new(
                Group::Rabbit,
                "oslo.messaging Notifier -> NotificationListener (Python)",
                "#d62728",
            )
            .off_chart(),
            Row::new(
                Group::Rabbit,
                "rpc-runtime NotificationListener draining a queue",
                "#1f77b4",
            )
            .off_chart(),
            Row::new(
                Group::Rabbit,
                "oslo.messaging NotificationListener draining a queue (Python)",
                "#d62728",
            )
            .off_chart(),
            Row::new(
                Group::Rabbit,
                "raw lapin casts, oslo notification-shaped",
                "#bcbd22",
            )
            .off_chart(),
        ];
        let memory = if select.in_process {
            Some((
                in_process::ours().await,
                in_process::tarpc_in_process(),
                in_process::tarpc_tcp_json().await,
            ))
        } else {
            None
        };
        let notifications = if select.notify && select.ours {
            Some(notify::ours(&format!("{topic}_notify")).await)
        } else {
            None
        };
        let amqp = if select.rabbit {
            Some((
                rabbit::ours(&topic).await,
                rabbit::raw(&format!("{topic}_bare"), rabbit::Shape::Bare).await,
                rabbit::raw(&format!("{topic}_sized"), rabbit::Shape::OsloSized).await,
            ))
        } else {
            None
        };
        // `notify` alone: the raw loop only for its casts, the notifications' yardstick.
        let raw_casts = if select.notify && !select.rabbit && select.peers {
            Some(rabbit::raw(&format!("{topic}_casts"), rabbit::Shape::Bare).await)
        } else {
            None
        };
        let raw_shaped = if select.notify && select.peers {
            Some(notify::raw_shaped(&topic).await)
        } else {
            None
        };
        let mut notify_queues: Vec<String> = vec![format!("{topic}_notify.info")];
        for round in 0..rounds {
            // Step by step, each implementation of a group in turn; the order alternates from
            // round to round.
            let reversed = round % 2 == 1;
            if let Some(((ours, _server), in_process, tcp_json)) = &memory {
                let sides = [
                    (0, select.ours, Side::Ours(ours)),
                    (1, select.peers, Side::Tarpc(in_process)),
                    (2, select.peers, Side::Tarpc(tcp_json)),
                ];
                run_round(&sides, reversed, memory_effort, &mut rows).await;
            }
            if let Some(((ours, _server), bare, sized)) = &amqp {
                let sides = [
                    (3, select.ours, Side::Ours(ours)),
                    (4, select.peers, Side::Raw(bare)),
                    (5, select.peers, Side::Raw(sized)),
                ];
                run_round(&sides, reversed, rabbit_effort, &mut rows).await;
            }
            if let Some(raw) = &raw_casts {
                measure_casts(raw, rabbit_effort, &mut rows[4].figures).await;
            }
            if let Some(raw) = &raw_shaped {
                measure_casts(raw, rabbit_effort, &mut rows[11].figures).await;
            }
            if let Some((notifying, _listener)) = &notifications {
                // Notifier -> listener at 64 in flight, beside the raw loop's casts (row 4).
                let mut figures = Figures::default();
                measure_casts(notifying, rabbit_effort, &mut figures).await;
                rows[7].absorb(figures);
                let mut figures = Figures::default();
                let drained = format!("{topic}_drain_{round}");
                notify::ours_drain(&drained, rabbit_effort.casts, &mut figures).await;
                rows[9].absorb(figures);
                notify_queues.push(format!("{drained}.info"));
            }
            if let Some(python) = python.as_ref().filter(|_| select.notify) {
                let oslo_topic = format!("{topic}_oslo_notify_{round}");
                let (mut drain, mut end_to_end) = (Figures::default(), Figures::default());
                match notify::oslo_round(
                    python,
                    &oslo_topic,
                    oslo_calls * 2,
                    &mut drain,
                    &mut end_to_end,
                )
                .await
                {
                    Ok(()) => {
                        rows[8].absorb(end_to_end);
                        rows[10].absorb(drain);
                    }
                    Err(reason) => eprintln!("oslo.messaging notification round failed: {reason}"),
                }
                notify_queues.push(format!("{oslo_topic}_drain.info"));
                notify_queues.push(format!("{oslo_topic}_e2e.info"));
            }
            if let Some(python) = python.as_ref().filter(|_| select.rabbit) {
                let python = python.clone();
                let oslo_topic = format!("{topic}_oslo");
                let mut figures = Figures::default();
                let outcome = tokio::task::spawn_blocking(move || {
                    oslo::round(&python, &oslo_topic, oslo_calls, oslo_calls, &mut figures)
                        .map(|()| figures)
                })
                .await
                .expect("oslo round");
                match outcome {
                    Ok(figures) => rows[6].absorb(figures),
                    Err(reason) => eprintln!("oslo.messaging round failed: {reason}"),
                }
            }
            eprintln!("round {}/{rounds} done", round + 1);
        }
        if let Some((_, listener)) = notifications {
            listener.stop().await;
            rabbit::delete_queues(&notify_queues).await;
        }
        if let Some(((_, server), _, _)) = amqp {
            server.stop().await;
            rabbit::delete_queues(&[
                topic.clone(),
                format!("{topic}.bench"),
                format!("{topic}_oslo"),
                format!("{topic}_oslo.oslo"),
            ])
            .await;
        }
        if select.metrics {
            metrics_cost::run(
                rounds,
                memory_effort,
                rabbit_effort,
                metrics_over_rabbit,
                &topic,
            )
            .await;
        }
        rows
    });
    println!(
        "\nmedians of {rounds} interleaved rounds, 64-byte payload, 2 runtime worker threads; \
         RabbitMQ: {} calls per level, no publisher confirms on the Rust sides (oslo confirms \
         every publish); in process: {} calls per level\n",
        rabbit_effort.per_level, memory_effort.per_level
    );
    print!("{}", report::table(&rows));
    print!("{}", report::ratios(&rows));
    if smoke {
        // Every row the selection ran must have measured something.
        let selected = |index: usize| match index {
            0 => select.in_process && select.ours,
            1 | 2 => select.in_process && select.peers,
            3 => select.rabbit && select.ours,
            7 | 9 => select.notify && select.ours,
            4 => (select.rabbit || select.notify) && select.peers,
            5 => select.rabbit && select.peers,
            6 => select.rabbit && python.is_some(),
            8 | 10 => select.notify && python.is_some(),
            11 => select.notify && select.peers,
            _ => false,
        };
        report::check_smoke(&rows, selected);
        return;
    }
    let panels = report::panels(&rows);
    if panels.is_empty() {
        // Nothing was measured for the chart (`BENCH_GROUPS=escaping`): keep the last one.
        return;
    }
    if let Some(path) = chart_path() {
        let caption = format!(
            "medians of {rounds} interleaved rounds on one machine (tarpc has no one-way messages); `cargo bench -p rpc-runtime --bench peers`"
        );
        let svg = chart::render(&panels, &caption);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, svg));
        match written {
            Ok(()) => println!("\nchart written to {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
}

/// One implementation under test, as a round takes its steps.
enum Side<'a> {
    Ours(&'a Ours),
    Tarpc(&'a in_process::Tarpc),
    Raw(&'a rabbit::Raw),
}

impl Side<'_> {
    /// Takes one step; implementations without one-way messages skip the casts.
    async fn measure(&self, step: Step, effort: Effort, figures: &mut Figures) {
        match (self, step) {
            (Self::Ours(ours), Step::Casts) => measure_casts(*ours, effort, figures).await,
            (Self::Raw(raw), Step::Casts) if raw.measures_casts() => {
                measure_casts(*raw, effort, figures).await;
            }
            (Self::Tarpc(_) | Self::Raw(_), Step::Casts) => {}
            (Self::Ours(ours), step) => measure_calls(*ours, step, effort, figures).await,
            (Self::Tarpc(tarpc), step) => measure_calls(*tarpc, step, effort, figures).await,
            (Self::Raw(raw), step) => measure_calls(*raw, step, effort, figures).await,
        }
    }
}

/// One round of a group: every step, each selected side (row index, selected, side) in turn,
/// backwards when `reversed`.
async fn run_round(
    sides: &[(usize, bool, Side<'_>)],
    reversed: bool,
    effort: Effort,
    rows: &mut [Row],
) {
    for step in Step::all() {
        let mut order: Vec<&(usize, bool, Side<'_>)> = sides.iter().filter(|s| s.1).collect();
        if reversed {
            order.reverse();
        }
        for (row, _, side) in order {
            side.measure(step, effort, &mut rows[*row].figures).await;
        }
    }
}

/// Whether the broker accepts connections.
fn broker_reachable() -> bool {
    rabbit::BROKER.parse().is_ok_and(|addr| {
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok()
    })
}

/// Where the chart goes: `BENCH_CHART`, or `docs/bench.svg` in the workspace.
fn chart_path() -> Option<PathBuf> {
    match std::env::var("BENCH_CHART") {
        Ok(v) if v == "0" => None,
        Ok(v) => Some(PathBuf::from(v)),
        Err(_) => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench.svg")),
    }
}
