//! What a run prints: the figures table, the ratios against each peer with the targets they
//! meet, and the chart's panels.

use std::fmt::Write as _;

use crate::chart::{Panel, Series};
use crate::measure::{Figures, IN_FLIGHT};

/// Which panel (and which peers) a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    InProcess,
    Rabbit,
}

/// One implementation's row: its name, colour on the chart, and figures.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) group: Group,
    pub(crate) name: &'static str,
    pub(crate) colour: &'static str,
    pub(crate) on_chart: bool,
    pub(crate) figures: Figures,
}

impl Row {
    pub(crate) fn new(group: Group, name: &'static str, colour: &'static str) -> Self {
        Self {
            group,
            name,
            colour,
            on_chart: true,
            figures: Figures::default(),
        }
    }

    /// In the tables only (an analysis row).
    pub(crate) fn off_chart(mut self) -> Self {
        self.on_chart = false;
        self
    }

    /// Adds one round's figures measured elsewhere.
    pub(crate) fn absorb(&mut self, round: Figures) {
        let f = &mut self.figures;
        f.p50.extend(round.p50);
        f.p99.extend(round.p99);
        f.concurrent.resize(IN_FLIGHT.len(), Vec::new());
        for (level, rates) in round.concurrent.into_iter().enumerate() {
            f.concurrent[level].extend(rates);
        }
        f.casts.extend(round.casts);
    }
}

/// The indexes of the rows compared, as `main` lays them out.
const OURS_MEMORY: usize = 0;
const TARPC_CHANNEL: usize = 1;
const TARPC_TCP_JSON: usize = 2;
const OURS_RABBIT: usize = 3;
const RAW_LAPIN: usize = 4;
const RAW_LAPIN_SIZED: usize = 5;
const OSLO: usize = 6;
const OURS_NOTIFY: usize = 7;
const OSLO_NOTIFY: usize = 8;
const OURS_DRAIN: usize = 9;
const OSLO_DRAIN: usize = 10;
const RAW_LAPIN_SHAPED: usize = 11;

fn count(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let digits = format!("{v:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}x")
    } else {
        "—".into()
    }
}

fn micros(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 100.0 {
        format!("{} µs", count(v))
    } else {
        format!("{v:.1} µs")
    }
}

/// The figures of every measured row.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let levels: Vec<String> = IN_FLIGHT.iter().map(|n| format!("{n} in flight")).collect();
    let _ = writeln!(
        out,
        "| implementation | p50 | p99 | calls/s, {} | casts/s |",
        levels.join(" | ")
    );
    let _ = writeln!(out, "|---|---|---|{}---|", "---|".repeat(IN_FLIGHT.len()));
    for row in rows.iter().filter(|r| !r.figures.is_empty()) {
        let f = &row.figures;
        let rates: Vec<String> = (0..IN_FLIGHT.len()).map(|i| count(f.rate(i))).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            row.name,
            micros(f.p50()),
            micros(f.p99()),
            rates.join(" | "),
            count(f.cast_rate())
        );
    }
    out
}

/// A comparison of ours against one peer, and the target it must meet.
struct Comparison {
    ours: usize,
    peer: usize,
    target: Target,
}

/// What a comparison must show.
enum Target {
    /// Throughput ratio at least this at each listed level of [`IN_FLIGHT`] (by index).
    Throughput(f64, &'static [usize]),
    /// Sequential p50 at most this multiple of the peer's.
    Latency(f64),
    /// Cast rate ratio at least this.
    Casts(f64),
    /// Shown for analysis, no target.
    None,
}

const COMPARISONS: [Comparison; 13] = [
    Comparison {
        ours: OURS_MEMORY,
        peer: TARPC_CHANNEL,
        target: Target::Throughput(0.5, &[0, 1, 2, 3]),
    },
    Comparison {
        ours: OURS_MEMORY,
        peer: TARPC_TCP_JSON,
        target: Target::Throughput(1.5, &[0, 1, 2, 3]),
    },
    Comparison {
        ours: OURS_RABBIT,
        peer: RAW_LAPIN,
        target: Target::Throughput(0.9, &[1, 2, 3]),
    },
    // Issue 3's goal: 0.8x the raw loop with 64 calls in flight.
    Comparison {
        ours: OURS_RABBIT,
        peer: RAW_LAPIN,
        target: Target::Throughput(0.8, &[2]),
    },
    Comparison {
        ours: OURS_RABBIT,
        peer: RAW_LAPIN,
        target: Target::Latency(1.2),
    },
    Comparison {
        ours: OURS_RABBIT,
        peer: RAW_LAPIN,
        target: Target::Casts(0.9),
    },
    Comparison {
        ours: OURS_RABBIT,
        peer: OSLO,
        target: Target::Throughput(25.0, &[1, 2, 3]),
    },
    Comparison {
        ours: OURS_RABBIT,
        peer: RAW_LAPIN_SIZED,
        target: Target::None,
    },
    Comparison {
        ours: OURS_RABBIT,
        peer: OSLO,
        target: Target::Casts(25.0),
    },
    // Issue 21: notifications within 0.8x of the raw loop's casts, the listener 20x oslo's.
    Comparison {
        ours: OURS_NOTIFY,
        peer: RAW_LAPIN,
        target: Target::Casts(0.8),
    },
    Comparison {
        ours: OURS_DRAIN,
        peer: OSLO_DRAIN,
        target: Target::Casts(20.0),
    },
    Comparison {
        ours: OURS_NOTIFY,
        peer: OSLO_NOTIFY,
        target: Target::Casts(20.0),
    },
    Comparison {
        ours: OURS_NOTIFY,
        peer: RAW_LAPIN_SHAPED,
        target: Target::None,
    },
];

/// Ours over each peer (throughput and casts: ours / peer; p50: ours / peer, lower is better),
/// then each target and whether this run met it.
pub(crate) fn ratios(rows: &[Row]) -> String {
    let mut out = String::new();
    let levels: Vec<String> = IN_FLIGHT.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(
        out,
        "\n| ours / peer | p50 (lower is better) | throughput at {} in flight | casts |",
        levels.join(", ")
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let mut shown = Vec::new();
    for c in &COMPARISONS {
        let (ours, peer) = (&rows[c.ours], &rows[c.peer]);
        if ours.figures.is_empty() || peer.figures.is_empty() || shown.contains(&(c.ours, c.peer)) {
            continue;
        }
        shown.push((c.ours, c.peer));
        let (o, p) = (&ours.figures, &peer.figures);
        let throughput: Vec<String> = (0..IN_FLIGHT.len())
            .map(|i| ratio(o.rate(i) / p.rate(i)))
            .collect();
        let _ = writeln!(
            out,
            "| {} / {} | {} | {} | {} |",
            ours.name,
            peer.name,
            ratio(o.p50() / p.p50()),
            throughput.join(", "),
            ratio(o.cast_rate() / p.cast_rate())
        );
    }
    let _ = writeln!(out, "\ntargets:");
    for c in &COMPARISONS {
        let (ours, peer) = (&rows[c.ours], &rows[c.peer]);
        if ours.figures.is_empty() || peer.figures.is_empty() {
            continue;
        }
        let (o, p) = (&ours.figures, &peer.figures);
        let (what, met) = match c.target {
            Target::Throughput(min, levels) => {
                let worst = levels
                    .iter()
                    .map(|&i| o.rate(i) / p.rate(i))
                    .fold(f64::INFINITY, f64::min);
                let at: Vec<String> = levels.iter().map(|&i| IN_FLIGHT[i].to_string()).collect();
                let spread: Vec<String> = levels
                    .iter()
                    .filter_map(|&i| per_round(o, p, i))
                    .map(|(low, high)| format!("{low:.2}-{high:.2}"))
                    .collect();
                (
                    format!(
                        "calls >= {min}x at {} in flight: worst {worst:.2}x (round by round: {})",
                        at.join("/"),
                        spread.join(", ")
                    ),
                    worst >= min,
                )
            }
            Target::Latency(max) => {
                let r = o.p50() / p.p50();
                (format!("sequential p50 within {max}x: {r:.2}x"), r <= max)
            }
            Target::Casts(min) => {
                let r = o.cast_rate() / p.cast_rate();
                (format!("{} >= {min}x: {r:.2}x", ours.name), r >= min)
            }
            Target::None => continue,
        };
        let _ = writeln!(
            out,
            "  [{}] vs {}: {what}",
            if met { "met" } else { "NOT met" },
            peer.name
        );
    }
    out
}

/// The lowest and highest ratio of ours to the peer at one level, round by round (rounds measure
/// each level of both side by side, so each round's ratio is a fair pair).
fn per_round(ours: &Figures, peer: &Figures, level: usize) -> Option<(f64, f64)> {
    let (o, p) = (ours.concurrent.get(level)?, peer.concurrent.get(level)?);
    let ratios = o.iter().zip(p).map(|(o, p)| o / p);
    let (low, high) = ratios.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), r| {
        (low.min(r), high.max(r))
    });
    low.is_finite().then_some((low, high))
}

/// The chart's two panels from the rows that were measured.
pub(crate) fn panels(rows: &[Row]) -> Vec<Panel<'_>> {
    [
        (Group::InProcess, "In process"),
        (Group::Rabbit, "RabbitMQ on loopback"),
    ]
    .into_iter()
    .map(|(group, title)| Panel {
        title,
        series: rows
            .iter()
            .filter(|r| r.group == group && r.on_chart && !r.figures.is_empty())
            .map(|r| {
                let mut values: Vec<f64> =
                    (0..IN_FLIGHT.len()).map(|i| r.figures.rate(i)).collect();
                values.push(r.figures.cast_rate());
                Series {
                    name: r.name,
                    colour: r.colour,
                    values,
                }
            })
            .collect(),
    })
    .filter(|p| !p.series.is_empty())
    .collect()
}

/// A smoke run's check: every row the run selected (`selected(index)`) measured something, and
/// every figure it measured is a positive number.
pub(crate) fn check_smoke(rows: &[Row], selected: impl Fn(usize) -> bool) {
    for (index, row) in rows.iter().enumerate() {
        if !selected(index) {
            continue;
        }
        assert!(
            !row.figures.is_empty(),
            "{}: selected, but it measured nothing",
            row.name
        );
        let f = &row.figures;
        if f.p50.is_empty() {
            // A row of one-way rates only (notifications).
            assert!(f.cast_rate() > 0.0, "{}: no rate", row.name);
            continue;
        }
        let mut figures = vec![f.p50(), f.p99()];
        figures.extend((0..IN_FLIGHT.len()).map(|i| f.rate(i)));
        assert!(
            figures.iter().all(|v| v.is_finite() && *v > 0.0),
            "{}: a figure is missing or not positive: {figures:?}",
            row.name
        );
        if !f.casts.is_empty() {
            assert!(f.cast_rate() > 0.0, "{}: no cast rate", row.name);
        }
    }
}
