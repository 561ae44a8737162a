//! Charts drawn on the server as SVG: no script, readable at any width, described for screen
//! readers by their title and a summary.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// One bar: a label on the axis and stacked values (bottom first).
pub struct Bar {
    /// Axis label.
    pub label: String,
    /// Values, stacked.
    pub values: Vec<i64>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick step that gives about four lines up to `max`.
fn step(max: i64) -> i64 {
    let rough = (max.max(1) as f64 / 4.0).ceil() as i64;
    let magnitude = 10_i64.pow(rough.max(1).ilog10());
    [1, 2, 5, 10]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(rough)
}

fn frame(out: &mut String, title: &str, summary: &str, max: i64) -> f64 {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><title>{t}</title><desc>{d}</desc>"#,
        t = escape(title),
        d = escape(summary)
    );
    let step = step(max);
    let top = ((max.max(1) + step - 1) / step) * step;
    let mut tick = 0;
    while tick <= top {
        let y = H - BOTTOM - (tick as f64 / top as f64) * (H - TOP - BOTTOM);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = W - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            label = super::view::count(tick)
        );
        tick += step;
    }
    top as f64
}

/// Stacked bars, one per label; `series` names the stacked values (for the legend).
pub fn bars(title: &str, series: &[(&str, &str)], bars: &[Bar]) -> String {
    let mut out = String::new();
    let max = bars
        .iter()
        .map(|b| b.values.iter().sum::<i64>())
        .max()
        .unwrap_or(0);
    let summary = bars
        .iter()
        .map(|b| {
            let parts: Vec<String> = series
                .iter()
                .zip(&b.values)
                .map(|((name, _), v)| format!("{v} {name}"))
                .collect();
            format!("{}: {}", b.label, parts.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let top = frame(&mut out, title, &summary, max);
    let n = bars.len().max(1) as f64;
    let slot = (W - LEFT - RIGHT) / n;
    let width = (slot * 0.62).min(48.0);
    let label_every = (bars.len() / 10).max(1);
    for (i, bar) in bars.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - width) / 2.0;
        let mut base = H - BOTTOM;
        for (value, (name, class)) in bar.values.iter().zip(series) {
            if *value <= 0 {
                continue;
            }
            let h = *value as f64 / top * (H - TOP - BOTTOM);
            base -= h;
            let _ = write!(
                out,
                r#"<rect class="{class}" x="{x:.1}" y="{base:.1}" width="{width:.1}" height="{h:.1}"><title>{label}: {value} {name}</title></rect>"#,
                label = escape(&bar.label)
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                out,
                r#"<text class="tick xt{odd}" x="{cx:.1}" y="{y}" text-anchor="middle">{label}</text>"#,
                odd = if (i / label_every) % 2 == 1 {
                    " odd"
                } else {
                    ""
                },
                cx = x + width / 2.0,
                y = H - 10.0,
                label = escape(&bar.label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A line through `points` (label, value), with a dot on each.
pub fn line(title: &str, points: &[(String, i64)]) -> String {
    let mut out = String::new();
    let max = points.iter().map(|p| p.1).max().unwrap_or(0);
    let summary = points
        .iter()
        .map(|(label, v)| format!("{label}: {v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let top = frame(&mut out, title, &summary, max);
    let n = points.len();
    let x_of = |i: usize| {
        if n <= 1 {
            (LEFT + W - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |v: i64| H - BOTTOM - v as f64 / top * (H - TOP - BOTTOM);
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, (_, v))| format!("{:.1},{:.1}", x_of(i), y_of(*v)))
        .collect();
    let _ = write!(
        out,
        r#"<polyline class="line" fill="none" points="{}"/>"#,
        path.join(" ")
    );
    let label_every = (n / 8).max(1);
    for (i, (label, v)) in points.iter().enumerate() {
        let _ = write!(
            out,
            r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="3.5"><title>{label}: {v}</title></circle>"#,
            x = x_of(i),
            y = y_of(*v),
            label = escape(label)
        );
        if i % label_every == 0 {
            let _ = write!(
                out,
                r#"<text class="tick xt{odd}" x="{x:.1}" y="{y}" text-anchor="middle">{label}</text>"#,
                odd = if (i / label_every) % 2 == 1 {
                    " odd"
                } else {
                    ""
                },
                x = x_of(i),
                y = H - 10.0,
                label = escape(label)
            );
        }
        if i + 1 == n {
            let _ = write!(
                out,
                r#"<text class="value" x="{x:.1}" y="{y:.1}" text-anchor="{anchor}">{v}</text>"#,
                x = x_of(i),
                y = y_of(*v) - 8.0,
                anchor = if n > 1 { "end" } else { "middle" },
                v = super::view::count(*v)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(step(0), 1);
        assert_eq!(step(7), 2);
        assert_eq!(step(37), 10);
        assert_eq!(step(12_000), 5000);
    }

    #[test]
    fn charts_escape_labels_and_describe_themselves() {
        let svg = bars(
            "Orders <per day>",
            &[("placed", "ok"), ("failed", "bad")],
            &[Bar {
                label: "11-21".into(),
                values: vec![3, 1],
            }],
        );
        assert!(svg.contains("<title>Orders &lt;per day&gt;</title>"));
        assert!(svg.contains("11-21: 3 placed, 1 failed"));
        let svg = line("Points", &[("a".into(), 10), ("b".into(), 30)]);
        assert!(svg.contains("<polyline"));
    }
}
