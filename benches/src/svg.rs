//! SVG charts of `compare`'s tables, written by hand (no plotting dependency).
//!
//! [`Chart`] draws a line chart over a logarithmic x axis or a grouped bar chart, with a
//! linear or logarithmic y axis, a legend and a title. [`charts`] turns the tables that
//! have a chart (lookup, gap, hot-vma) into SVG files; `compare --svg DIR` writes them.
//! The figures are read back from the tables' cells (`37.1 ns (1.00x)`, `13.78 M/s`), so a
//! chart always shows exactly what the table printed.

use std::fmt::Write as _;

use crate::report::{fmt_ns, Table};

/// How the y axis maps values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// From zero, evenly.
    Linear,
    /// Decades evenly (the values must be positive).
    Log,
}

/// The x axis: numeric positions on a log scale (lines), or named groups (bars).
#[derive(Clone, Debug, PartialEq)]
pub enum XAxis {
    /// Points at these x values (positive), labelled; a line per series.
    Log(Vec<(f64, String)>),
    /// One group of bars per name; a bar per series in each group.
    Groups(Vec<String>),
}

/// One series: a name for the legend and a value per x point or group (`None`: missing).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// One value per x point or group.
    pub values: Vec<Option<f64>>,
}

/// A chart, rendered by [`Chart::to_svg`].
#[derive(Clone, Debug)]
pub struct Chart {
    /// Printed above the plot.
    pub title: String,
    /// The x axis.
    pub x: XAxis,
    /// Label under the x axis.
    pub x_label: String,
    /// Label of the y axis (printed above it).
    pub y_label: String,
    /// y scale.
    pub y: Scale,
    /// Formats a y tick value.
    pub y_fmt: fn(f64) -> String,
    /// The data.
    pub series: Vec<Series>,
}

/// Distinguishable colours (the Tableau 10 palette).
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 440.0;
/// The plot area: left, top, right, bottom.
const PLOT: (f64, f64, f64, f64) = (80.0, 50.0, 620.0, 360.0);

/// Escape text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Split `s` into lines of at most `width` characters at spaces.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in s.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Tick values for a y axis over `[lo, hi]` and the axis range they span.
///
/// ```
/// use benches::svg::{y_ticks, Scale};
/// assert_eq!(y_ticks(Scale::Linear, 0.0, 9.0).0, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
/// assert_eq!(y_ticks(Scale::Log, 30.0, 4000.0).0, [10.0, 100.0, 1000.0, 10000.0]);
/// assert_eq!(y_ticks(Scale::Log, 30.0, 70.0).0, [10.0, 20.0, 50.0, 100.0]);
/// ```
pub fn y_ticks(scale: Scale, lo: f64, hi: f64) -> (Vec<f64>, f64, f64) {
    match scale {
        Scale::Linear => {
            let hi = if hi > 0.0 { hi } else { 1.0 };
            let raw = hi / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .into_iter()
                .map(|m| m * mag)
                .find(|&s| s >= raw)
                .unwrap_or(10.0 * mag);
            let n = (hi / step).ceil() as usize;
            let ticks: Vec<f64> = (0..=n).map(|i| i as f64 * step).collect();
            let top = ticks.last().copied().unwrap_or(hi);
            (ticks, 0.0, top)
        }
        Scale::Log => {
            let (a, b) = (
                lo.log10().floor() as i32,
                hi.log10().ceil().max(lo.log10().floor() + 1.0) as i32,
            );
            // Within two decades, also tick at 2 and 5 of each decade.
            let steps: &[f64] = if b - a <= 2 { &[1.0, 2.0, 5.0] } else { &[1.0] };
            let mut ticks = Vec::new();
            for e in a..=b {
                for &m in steps {
                    let v = m * 10f64.powi(e);
                    if e < b || m == 1.0 {
                        ticks.push(v);
                    }
                }
            }
            (ticks, 10f64.powi(a), 10f64.powi(b))
        }
    }
}

impl Chart {
    /// The chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let (l, t, r, b) = PLOT;
        let values = self.series.iter().flat_map(|s| s.values.iter().flatten());
        let values: Vec<f64> = values
            .copied()
            .filter(|v| v.is_finite() && (self.y == Scale::Linear || *v > 0.0))
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        let (lo, hi) = if values.is_empty() {
            (1.0, 10.0)
        } else {
            (lo, hi)
        };
        let (ticks, y0, y1) = y_ticks(self.y, lo, hi);
        let y_of = |v: f64| match self.y {
            Scale::Linear => b - (v - y0) / (y1 - y0) * (b - t),
            Scale::Log => b - (v.log10() - y0.log10()) / (y1.log10() - y0.log10()) * (b - t),
        };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
             width=\"{WIDTH}\" height=\"{HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        let _ = writeln!(
            s,
            "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n\
             <text x=\"{}\" y=\"24\" font-size=\"15\" font-weight=\"bold\" \
             text-anchor=\"middle\">{}</text>",
            WIDTH / 2.0,
            esc(&self.title)
        );
        // y axis: grid lines, tick labels, label.
        for &v in &ticks {
            let y = y_of(v);
            let _ = writeln!(
                s,
                "<line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                l - 6.0,
                y + 4.0,
                esc(&(self.y_fmt)(v))
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{l}\" y=\"{}\" text-anchor=\"start\">{}</text>\n\
             <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\" stroke=\"#333\"/>\n\
             <line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/>",
            t - 10.0,
            esc(&self.y_label)
        );
        match &self.x {
            XAxis::Log(points) => self.lines(&mut s, points, &y_of),
            XAxis::Groups(groups) => self.bars(&mut s, groups, &y_of),
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            (l + r) / 2.0,
            HEIGHT - 12.0,
            esc(&self.x_label)
        );
        // Legend, right of the plot.
        let mut y = t;
        for (i, series) in self.series.iter().enumerate() {
            let c = COLOURS[i % COLOURS.len()];
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{c}\"/>",
                r + 20.0,
                y
            );
            // Backquotes mark code in the tables' Markdown; a chart shows plain text.
            let name = series.name.replace('`', "");
            for (k, line) in wrap(&name, 36).iter().enumerate() {
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{:.1}\">{}</text>",
                    r + 40.0,
                    y + 9.0 + 14.0 * k as f64,
                    esc(line)
                );
                y += if k == 0 { 0.0 } else { 14.0 };
            }
            y += 22.0;
        }
        s.push_str("</svg>\n");
        s
    }

    /// One polyline with dots per series, over a log x axis.
    fn lines(&self, s: &mut String, points: &[(f64, String)], y_of: &dyn Fn(f64) -> f64) {
        let (l, _, r, b) = PLOT;
        let xs: Vec<f64> = points.iter().map(|p| p.0.log10()).collect();
        let (a, z) = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let pad = 30.0;
        let x_of = |x: f64| {
            if z > a {
                l + pad + (x - a) / (z - a) * (r - l - 2.0 * pad)
            } else {
                (l + r) / 2.0
            }
        };
        for (x, label) in xs.iter().zip(points.iter().map(|p| &p.1)) {
            let px = x_of(*x);
            let _ = writeln!(
                s,
                "<line x1=\"{px:.1}\" y1=\"{b}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#333\"/>\n\
                 <text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                b + 5.0,
                b + 20.0,
                esc(label)
            );
        }
        // In reverse, so that the first series (the reference peer) is drawn on top.
        for (i, series) in self.series.iter().enumerate().rev() {
            let c = COLOURS[i % COLOURS.len()];
            let pts: Vec<(f64, f64)> = xs
                .iter()
                .zip(&series.values)
                .filter_map(|(&x, v)| v.filter(|v| v.is_finite()).map(|v| (x_of(x), y_of(v))))
                .collect();
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                s,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
            for (x, y) in pts {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{c}\"/>"
                );
            }
        }
    }

    /// A group of bars (one per series) for each group name.
    fn bars(&self, s: &mut String, groups: &[String], y_of: &dyn Fn(f64) -> f64) {
        let (l, _, r, b) = PLOT;
        let n = groups.len().max(1) as f64;
        let group_w = (r - l) / n;
        let bar_w = group_w * 0.8 / self.series.len().max(1) as f64;
        for (g, name) in groups.iter().enumerate() {
            let gx = l + g as f64 * group_w;
            for (k, line) in wrap(name, (group_w / 6.5) as usize).iter().enumerate() {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    gx + group_w / 2.0,
                    b + 18.0 + 14.0 * k as f64,
                    esc(line)
                );
            }
            for (i, series) in self.series.iter().enumerate() {
                let Some(v) = series.values.get(g).copied().flatten() else {
                    continue;
                };
                if !v.is_finite() || (self.y == Scale::Log && v <= 0.0) {
                    continue;
                }
                let c = COLOURS[i % COLOURS.len()];
                let x = gx + group_w * 0.1 + i as f64 * bar_w;
                let y = y_of(v).min(b);
                let _ = writeln!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                     fill=\"{c}\"><title>{}: {}</title></rect>",
                    bar_w * 0.92,
                    b - y,
                    esc(&series.name),
                    esc(&(self.y_fmt)(v))
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// From tables to charts.

/// The leading quantity of a cell in base units: nanoseconds for `ns`/`µs`/`ms`/`s`,
/// per second for `/s`, `k/s`, `M/s`, `G/s`; `None` if the cell does not start with one.
///
/// ```
/// use benches::svg::parse_quantity;
/// assert_eq!(parse_quantity("37.1 ns (1.00x)"), Some(37.1));
/// assert_eq!(parse_quantity("1.61 µs (4.13x)"), Some(1610.0));
/// assert_eq!(parse_quantity("3.42 ms (0.11x)"), Some(3_420_000.0));
/// assert_eq!(parse_quantity("143 ns (2.94x slower)"), Some(143.0));
/// assert_eq!(parse_quantity("13.78 M/s (1.34x)"), Some(13_780_000.0));
/// assert_eq!(parse_quantity("92.4 k/s"), Some(92_400.0));
/// assert_eq!(parse_quantity("—"), None);
/// assert_eq!(parse_quantity("n/a"), None);
/// ```
pub fn parse_quantity(cell: &str) -> Option<f64> {
    let mut parts = cell.split_whitespace();
    let v: f64 = parts.next()?.parse().ok()?;
    let unit = match parts.next()? {
        "ns" => 1.0,
        "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "/s" => 1.0,
        "k/s" => 1e3,
        "M/s" => 1e6,
        "G/s" => 1e9,
        _ => return None,
    };
    Some(v * unit)
}

/// The count in a header like `10^5 ranges` or `134 ranges`.
///
/// ```
/// assert_eq!(benches::svg::parse_count("10^5 ranges"), Some(100_000.0));
/// assert_eq!(benches::svg::parse_count("134 ranges"), Some(134.0));
/// assert_eq!(benches::svg::parse_count("structure"), None);
/// ```
pub fn parse_count(header: &str) -> Option<f64> {
    let n = header.split_whitespace().next()?;
    match n.split_once('^') {
        Some((b, e)) => Some(b.parse::<f64>().ok()?.powi(e.parse().ok()?)),
        None => n.parse().ok(),
    }
}

/// `12.3 M/s` style labels for a rate in per second.
fn fmt_rate_axis(r: f64) -> String {
    if r == 0.0 {
        return "0".to_string();
    }
    let (v, unit) = if r >= 1e6 {
        (r / 1e6, "M/s")
    } else if r >= 1e3 {
        (r / 1e3, "k/s")
    } else {
        (r, "/s")
    };
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// The lookup table: ns per lookup against the number of ranges, a line per structure.
pub fn lookup_chart(t: &Table) -> Chart {
    let cols: Vec<(usize, f64)> = (1..t.header.len())
        .filter_map(|c| parse_count(&t.header[c]).map(|n| (c, n)))
        .collect();
    Chart {
        title: "lookup: ns per random point load".to_string(),
        x: XAxis::Log(
            cols.iter()
                .map(|&(c, n)| (n, t.header[c].clone()))
                .collect(),
        ),
        x_label: "ranges in the map (DESIGN.md layout)".to_string(),
        y_label: "time per lookup (log scale, lower is better)".to_string(),
        y: Scale::Log,
        y_fmt: fmt_ns,
        series: t
            .rows
            .iter()
            .map(|row| Series {
                name: row[0].clone(),
                values: cols.iter().map(|&(c, _)| parse_quantity(&row[c])).collect(),
            })
            .collect(),
    }
}

/// The gap table: ns per search, a group per request kind, a bar per contender and size.
pub fn gap_chart(t: &Table) -> Chart {
    let cols: Vec<usize> = (2..t.header.len())
        .filter(|&c| parse_count(&t.header[c]).is_some())
        .collect();
    let mut groups: Vec<String> = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    for row in &t.rows {
        if !groups.contains(&row[0]) {
            groups.push(row[0].clone());
        }
        for &c in &cols {
            let name = format!("{}, {}", row[1], t.header[c]);
            if !names.iter().any(|(n, _)| *n == name) {
                names.push((name, c));
            }
        }
    }
    let series = names
        .into_iter()
        .map(|(name, c)| Series {
            values: groups
                .iter()
                .map(|g| {
                    t.rows
                        .iter()
                        .find(|row| row[0] == *g && name.starts_with(&format!("{}, ", row[1])))
                        .and_then(|row| parse_quantity(&row[c]))
                })
                .collect(),
            name,
        })
        .collect();
    Chart {
        title: "gap: ns per highest-fit search vs the linear scan".to_string(),
        x: XAxis::Groups(groups),
        x_label: "request".to_string(),
        y_label: "time per search (log scale, lower is better)".to_string(),
        y: Scale::Log,
        y_fmt: fmt_ns,
        series,
    }
}

/// The hot-vma table: lookups per second (all threads) for 1 thread, all threads, and
/// all threads co-running, a bar per read path.
pub fn hot_vma_chart(t: &Table) -> Chart {
    let cols: Vec<usize> = (1..t.header.len())
        .filter(|&c| t.header[c].ends_with("lookups/s"))
        .collect();
    let groups = cols
        .iter()
        .map(|&c| t.header[c].trim_end_matches(": lookups/s").to_string())
        .collect();
    Chart {
        title: "hot-vma: every thread looks up one VMA".to_string(),
        x: XAxis::Groups(groups),
        x_label: "threads (co-running: pinned bursts that really ran side by side)".to_string(),
        y_label: "lookups per second, all threads (higher is better)".to_string(),
        y: Scale::Linear,
        y_fmt: fmt_rate_axis,
        series: t
            .rows
            .iter()
            .map(|row| Series {
                name: row[0].clone(),
                values: cols.iter().map(|&c| parse_quantity(&row[c])).collect(),
            })
            .collect(),
    }
}

/// The charts for `tables`, as `(file name, SVG)`: one per table that has a chart
/// (recognised by the start of its title).
pub fn charts(tables: &[Table]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for t in tables {
        let chart = if t.title.starts_with("lookup:") {
            ("lookup.svg", lookup_chart(t))
        } else if t.title.starts_with("gap:") {
            ("gap.svg", gap_chart(t))
        } else if t.title.starts_with("hot-vma: every thread") {
            ("hot-vma.svg", hot_vma_chart(t))
        } else {
            continue;
        };
        out.push((chart.0, chart.1.to_svg()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(s: &str, pat: &str) -> usize {
        s.matches(pat).count()
    }

    #[test]
    fn a_lookup_table_becomes_a_line_per_structure() {
        let mut t = Table::new(
            "lookup: ns per random point load",
            &["structure", "10^3 ranges", "10^5 ranges"],
        );
        t.row(vec![
            "BTreeMap".into(),
            "37.1 ns (1.00x)".into(),
            "102 ns (1.00x)".into(),
        ]);
        t.row(vec![
            "maple & co <seize>".into(),
            "—".into(),
            "1.20 µs (11.8x)".into(),
        ]);
        let c = lookup_chart(&t);
        assert_eq!(
            c.x,
            XAxis::Log(vec![
                (1e3, "10^3 ranges".into()),
                (1e5, "10^5 ranges".into())
            ])
        );
        assert_eq!(c.series[0].values, [Some(37.1), Some(102.0)]);
        assert_eq!(c.series[1].values, [None, Some(1200.0)]);
        let svg = c.to_svg();
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(count(&svg, "<polyline"), 2);
        assert_eq!(count(&svg, "<circle"), 3);
        // Names are escaped; every opened text element is closed.
        assert!(svg.contains("maple &amp; co &lt;seize&gt;"));
        assert_eq!(count(&svg, "<text"), count(&svg, "</text>"));
        // Log axis from 10 ns to 10 µs.
        assert!(
            svg.contains(">10.0 ns<") && svg.contains(">10.0 µs<"),
            "{svg}"
        );
    }

    #[test]
    fn a_gap_table_becomes_groups_of_bars() {
        let mut t = Table::new(
            "gap: ns per search",
            &["request", "contender", "10^3 ranges", "10^5 ranges"],
        );
        for (req, a, b) in [
            ("near", "47.0 ns (1.00x)", "131 ns (1.00x)"),
            ("far", "573 ns (1.00x)", "181 µs (1.00x)"),
        ] {
            t.row(vec![req.into(), "linear scan".into(), a.into(), b.into()]);
            t.row(vec![
                req.into(),
                "maple".into(),
                "143 ns (3.04x slower)".into(),
                "200 ns (900x faster)".into(),
            ]);
        }
        let c = gap_chart(&t);
        assert_eq!(c.x, XAxis::Groups(vec!["near".into(), "far".into()]));
        let names: Vec<&str> = c.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linear scan, 10^3 ranges",
                "linear scan, 10^5 ranges",
                "maple, 10^3 ranges",
                "maple, 10^5 ranges"
            ]
        );
        assert_eq!(c.series[1].values, [Some(131.0), Some(181_000.0)]);
        assert_eq!(c.series[3].values, [Some(200.0), Some(200.0)]);
        let svg = c.to_svg();
        // 8 bars plus the legend's 4 swatches and the background.
        assert_eq!(count(&svg, "<rect"), 8 + 4 + 1);
    }

    #[test]
    fn a_hot_vma_table_becomes_bars_per_thread_count() {
        let mut t = Table::new(
            "hot-vma: every thread looks up one VMA (ratios vs the per-VMA read lock)",
            &[
                "read path",
                "1 thread: lookups/s",
                "1 thread: CPU per lookup",
                "2 threads: lookups/s",
                "co-running 2 threads: lookups/s",
                "bursts kept",
            ],
        );
        t.row(vec![
            "speculation".into(),
            "13.78 M/s (1.34x)".into(),
            "37.2 ns (0.72x)".into(),
            "19.08 M/s (1.86x)".into(),
            "72.08 M/s (4.50x)".into(),
            "219/280".into(),
        ]);
        let c = hot_vma_chart(&t);
        assert_eq!(
            c.x,
            XAxis::Groups(vec![
                "1 thread".into(),
                "2 threads".into(),
                "co-running 2 threads".into()
            ])
        );
        assert_eq!(
            c.series[0].values,
            [Some(13.78e6), Some(19.08e6), Some(72.08e6)]
        );
        let names: Vec<&str> = charts(&[t]).iter().map(|c| c.0).collect();
        assert_eq!(names, ["hot-vma.svg"]);
    }

    #[test]
    fn empty_and_odd_data_still_render() {
        let c = Chart {
            title: "t".into(),
            x: XAxis::Groups(vec![]),
            x_label: String::new(),
            y_label: String::new(),
            y: Scale::Log,
            y_fmt: fmt_ns,
            series: vec![Series {
                name: "s".into(),
                values: vec![Some(0.0), Some(f64::NAN)],
            }],
        };
        let svg = c.to_svg();
        assert!(svg.ends_with("</svg>\n") && !svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
    }
}
