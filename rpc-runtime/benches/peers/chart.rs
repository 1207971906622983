//! The SVG chart of one run: throughput per level of calls in flight and for casts, one panel per
//! transport family, bars on a logarithmic scale (the peers differ by orders of magnitude).

use std::fmt::Write as _;

use crate::measure::IN_FLIGHT;

/// One bar series: an implementation's name, colour, and values per group (NaN: not measured).
pub(crate) struct Series<'a> {
    pub(crate) name: &'a str,
    pub(crate) colour: &'a str,
    pub(crate) values: Vec<f64>,
}

/// One panel: a title and its series.
pub(crate) struct Panel<'a> {
    pub(crate) title: &'a str,
    pub(crate) series: Vec<Series<'a>>,
}

const PANEL_WIDTH: f64 = 480.0;
const PLOT_TOP: f64 = 56.0;
const PLOT_HEIGHT: f64 = 260.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 12.0;

/// The group labels under the bars: each level of calls in flight, then casts.
fn groups() -> Vec<String> {
    let mut groups: Vec<String> = IN_FLIGHT.iter().map(|n| format!("{n} in flight")).collect();
    groups.push("casts".into());
    groups
}

/// Renders the panels side by side, with a caption line under them.
pub(crate) fn render(panels: &[Panel<'_>], caption: &str) -> String {
    let legend_rows = panels.iter().map(|p| p.series.len()).max().unwrap_or(0);
    let height = PLOT_TOP + PLOT_HEIGHT + 40.0 + 18.0 * legend_rows as f64 + 30.0;
    let width = PANEL_WIDTH * panels.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    for (i, panel) in panels.iter().enumerate() {
        panel_svg(&mut svg, panel, PANEL_WIDTH * i as f64);
    }
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
        width / 2.0,
        height - 10.0,
        escape(caption)
    );
    svg.push_str("</svg>\n");
    svg
}

fn panel_svg(svg: &mut String, panel: &Panel<'_>, x0: f64) {
    let values = panel
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 {
        (lo.log10().floor(), hi.log10().ceil())
    } else {
        (0.0, 1.0)
    };
    let plot_width = PANEL_WIDTH - LEFT - RIGHT;
    let y = |v: f64| PLOT_TOP + PLOT_HEIGHT * (1.0 - (v.log10() - lo) / (hi - lo));
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="14" font-weight="bold">{}</text>"#,
        x0 + PANEL_WIDTH / 2.0,
        escape(panel.title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="42" text-anchor="middle" fill="#555">calls or casts per second (log scale, higher is better)</text>"##,
        x0 + PANEL_WIDTH / 2.0
    );
    for exponent in (lo as i32)..=(hi as i32) {
        let v = 10f64.powi(exponent);
        let yy = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + LEFT,
            x0 + PANEL_WIDTH - RIGHT,
            x0 + LEFT - 6.0,
            yy + 4.0,
            short(v)
        );
    }
    let groups = groups();
    let group_width = plot_width / groups.len() as f64;
    let bar_width = (group_width - 12.0) / panel.series.len().max(1) as f64;
    for (g, label) in groups.iter().enumerate() {
        let gx = x0 + LEFT + group_width * g as f64;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + group_width / 2.0,
            PLOT_TOP + PLOT_HEIGHT + 16.0,
            escape(label)
        );
        for (s, series) in panel.series.iter().enumerate() {
            let Some(&v) = series.values.get(g) else {
                continue;
            };
            if !v.is_finite() || v <= 0.0 {
                continue;
            }
            let bx = gx + 6.0 + bar_width * s as f64;
            let top = y(v);
            let _ = writeln!(
                svg,
                r#"<rect x="{bx:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {v:.0}/s</title></rect>"#,
                bar_width - 1.0,
                PLOT_TOP + PLOT_HEIGHT - top,
                series.colour,
                escape(series.name)
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="8">{}</text>"#,
                bx + bar_width / 2.0,
                top - 3.0,
                short(v)
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        x0 + LEFT,
        PLOT_TOP + PLOT_HEIGHT,
        x0 + PANEL_WIDTH - RIGHT,
        PLOT_TOP + PLOT_HEIGHT
    );
    for (s, series) in panel.series.iter().enumerate() {
        let ly = PLOT_TOP + PLOT_HEIGHT + 34.0 + 18.0 * s as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            x0 + LEFT,
            ly - 10.0,
            series.colour,
            x0 + LEFT + 18.0,
            ly,
            escape(series.name)
        );
    }
}

/// 1,500 as "1.5k", 2,000,000 as "2M".
fn short(v: f64) -> String {
    let (scaled, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if scaled >= 100.0 || scaled.fract() == 0.0 {
        format!("{scaled:.0}{unit}")
    } else {
        format!("{scaled:.1}{unit}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
