//! What metrics cost a call (`BENCH_GROUPS=metrics`): this framework's `memory://` and
//! `rabbit://` echo servers with metrics off and on, the two taking each step in turn (in
//! alternating order from round to round), so both see the same machine.

use rpc_runtime::metrics;

use crate::measure::{Effort, Figures, Ours, Step, measure_calls, measure_casts};
use crate::{in_process, rabbit};

/// The level of calls in flight compared (`IN_FLIGHT[2]`: 64).
const LEVEL: usize = 2;

/// Runs `rounds` rounds and prints the table. Metrics are left off.
pub(crate) async fn run(
    rounds: usize,
    memory_effort: Effort,
    rabbit_effort: Effort,
    with_rabbit: bool,
    topic: &str,
) {
    let (memory, memory_server) = in_process::ours().await;
    let amqp = if with_rabbit {
        Some(rabbit::ours(&format!("{topic}_metrics")).await)
    } else {
        None
    };
    let mut sides: Vec<(&str, &Ours, Effort, [Figures; 2])> =
        vec![("memory://", &memory, memory_effort, Default::default())];
    if let Some((ours, _)) = &amqp {
        sides.push(("rabbit://", ours, rabbit_effort, Default::default()));
    }
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for (_, ours, effort, figures) in &mut sides {
            for step in [Step::Sequential, Step::InFlight(LEVEL), Step::Casts] {
                for on in order {
                    if on {
                        metrics::enable();
                    } else {
                        metrics::disable();
                    }
                    let figures = &mut figures[usize::from(on)];
                    match step {
                        Step::Casts => measure_casts(*ours, *effort, figures).await,
                        step => measure_calls(*ours, step, *effort, figures).await,
                    }
                }
            }
        }
        metrics::disable();
        eprintln!("metrics round {}/{rounds} done", round + 1);
    }
    println!("\nmetrics off and on, medians of {rounds} interleaved rounds\n");
    println!("| | metrics off | metrics on | on / off | cost per call |");
    println!("|---|---|---|---|---|");
    for (name, _, _, [off, on]) in &sides {
        let (p50_off, p50_on) = (off.p50(), on.p50());
        println!(
            "| {name} sequential p50 | {p50_off:.1} µs | {p50_on:.1} µs | {:.2}x | {:+.2} µs |",
            p50_on / p50_off,
            p50_on - p50_off
        );
        let per_call = |rate: f64| 1e6 / rate;
        let (rate_off, rate_on) = (off.rate(LEVEL), on.rate(LEVEL));
        println!(
            "| {name} calls/s, 64 in flight | {rate_off:.0} | {rate_on:.0} | {:.2}x | {:+.2} µs |",
            rate_on / rate_off,
            per_call(rate_on) - per_call(rate_off)
        );
        let (casts_off, casts_on) = (off.cast_rate(), on.cast_rate());
        println!(
            "| {name} casts/s | {casts_off:.0} | {casts_on:.0} | {:.2}x | {:+.2} µs |",
            casts_on / casts_off,
            per_call(casts_on) - per_call(casts_off)
        );
    }
    memory_server.stop().await;
    if let Some((_, server)) = amqp {
        server.stop().await;
        rabbit::delete_queues(&[format!("{topic}_metrics"), format!("{topic}_metrics.bench")])
            .await;
    }
}
