//! Markdown tables and the formatting of figures with their ratios.

use std::fmt;

/// One markdown table: a title, a header row, rows of cells, and notes printed below it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Printed as a `###` heading.
    pub title: String,
    /// Column headers.
    pub header: Vec<String>,
    /// Rows of cells (each as long as the header).
    pub rows: Vec<Vec<String>>,
    /// Lines printed after the table.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table with a title and column headers.
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Append a row (padded or cut to the header's width).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// Append a note line.
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }
}

impl fmt::Display for Table {
    /// ```
    /// let mut t = benches::report::Table::new("demo", &["a", "b"]);
    /// t.row(vec!["1".into(), "2".into()]);
    /// assert_eq!(t.to_string(), "### demo\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
    /// t.note("first");
    /// t.note("second");
    /// assert!(t.to_string().ends_with("| 1 | 2 |\n\nfirst\n\nsecond\n"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "### {}\n", self.title)?;
        writeln!(f, "| {} |", self.header.join(" | "))?;
        writeln!(f, "|{}", "---|".repeat(self.header.len()))?;
        for r in &self.rows {
            writeln!(f, "| {} |", r.join(" | "))?;
        }
        // Each note is its own markdown paragraph.
        for n in &self.notes {
            writeln!(f, "\n{n}")?;
        }
        Ok(())
    }
}

/// A duration in nanoseconds with three significant digits and a unit.
///
/// ```
/// use benches::report::fmt_ns;
/// assert_eq!(fmt_ns(3.14159), "3.14 ns");
/// assert_eq!(fmt_ns(123.4), "123 ns");
/// assert_eq!(fmt_ns(45_600.0), "45.6 µs");
/// assert_eq!(fmt_ns(7_890_000.0), "7.89 ms");
/// ```
pub fn fmt_ns(ns: f64) -> String {
    let (v, unit) = if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    format!("{} {unit}", sig3(v))
}

fn sig3(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio such as `0.72x`.
///
/// ```
/// assert_eq!(benches::report::fmt_ratio(0.7234), "0.72x");
/// assert_eq!(benches::report::fmt_ratio(1234.6), "1235x");
/// assert_eq!(benches::report::fmt_ratio(0.00045), "0.00045x");
/// ```
pub fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        return "n/a".to_string();
    }
    if r > 0.0 && r < 0.01 {
        // Keep two significant digits of very small ratios.
        let digits = (-r.log10()).ceil() as usize + 1;
        return format!("{r:.digits$}x");
    }
    format!("{}x", sig3(r))
}

/// `time (N× faster)` or `time (N× slower)` relative to the peer, for tables whose
/// contenders differ by orders of magnitude.
///
/// ```
/// assert_eq!(benches::report::fmt_speedup(50.0, 100_000.0), "50.0 ns (2000x faster)");
/// assert_eq!(benches::report::fmt_speedup(300.0, 100.0), "300 ns (3.00x slower)");
/// assert_eq!(benches::report::fmt_speedup(100.0, 100.0), "100 ns (1.00x)");
/// ```
pub fn fmt_speedup(ns: f64, peer_ns: f64) -> String {
    if ns == peer_ns {
        format!("{} (1.00x)", fmt_ns(ns))
    } else if ns < peer_ns {
        format!("{} ({} faster)", fmt_ns(ns), fmt_ratio(peer_ns / ns))
    } else {
        format!("{} ({} slower)", fmt_ns(ns), fmt_ratio(ns / peer_ns))
    }
}

/// `time (ratio)` where the ratio is `ns / peer_ns` (below 1 means faster than the peer).
///
/// ```
/// assert_eq!(benches::report::fmt_vs(50.0, 100.0), "50.0 ns (0.50x)");
/// ```
pub fn fmt_vs(ns: f64, peer_ns: f64) -> String {
    format!("{} ({})", fmt_ns(ns), fmt_ratio(ns / peer_ns))
}

/// Bytes with one decimal.
///
/// ```
/// assert_eq!(benches::report::fmt_bytes(14.66), "14.7 B");
/// ```
pub fn fmt_bytes(b: f64) -> String {
    format!("{b:.1} B")
}

/// `n` as `10^k` when it is an exact power of ten, else the plain number.
///
/// ```
/// assert_eq!(benches::report::fmt_count(100_000), "10^5");
/// assert_eq!(benches::report::fmt_count(134), "134");
/// ```
pub fn fmt_count(n: usize) -> String {
    let mut k = 0;
    let mut m = n;
    while m >= 10 && m % 10 == 0 {
        m /= 10;
        k += 1;
    }
    if m == 1 && k > 1 {
        format!("10^{k}")
    } else {
        n.to_string()
    }
}

/// `"met"` or `"MISSED"`, for goal lines.
///
/// ```
/// assert_eq!(benches::report::verdict(true), "met");
/// ```
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// One verdict of a goal, read from a table's `Goal, ...` note.
///
/// Tables state each goal they check as a note of the form `Goal, <subject>: <clause>[,
/// or ; <clause>]...`, where every clause ends in a parenthesised verdict made with
/// [`verdict`]: `(met)`, `(MISSED)`, or `(<target>: met)`. [`goals`] reads them back for
/// `compare`'s summary, so a table that adds a goal note gets a summary line for free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goal {
    /// The table's title up to its first `:` (its name and unit, e.g. `lookup`).
    pub table: String,
    /// What the goal is about, e.g. `maple (seize) at 10^6 with a guard per lookup`.
    pub subject: String,
    /// The figure and its target, verdict removed, e.g. `0.753x of BTreeMap (≤ 0.8x)`.
    pub figure: String,
    /// Whether it was met.
    pub met: bool,
}

impl fmt::Display for Goal {
    /// ```
    /// let g = benches::report::Goal {
    ///     table: "dup".into(),
    ///     subject: "clone ≥ 5x faster".into(),
    ///     figure: "9.1x".into(),
    ///     met: true,
    /// };
    /// assert_eq!(g.to_string(), "met — dup: clone ≥ 5x faster: 9.1x");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.met { "met" } else { "**MISSED**" };
        write!(f, "{v} — {}: {}: {}", self.table, self.subject, self.figure)
    }
}

/// Split `s` at the first `sep` outside parentheses and backquotes.
fn split_top(s: &str, sep: &str) -> Option<(usize, usize)> {
    let (mut depth, mut code) = (0i32, false);
    for (i, c) in s.char_indices() {
        match c {
            '`' => code = !code,
            '(' if !code => depth += 1,
            ')' if !code => depth -= 1,
            _ if depth == 0 && !code && s[i..].starts_with(sep) => return Some((i, i + sep.len())),
            _ => {}
        }
    }
    None
}

/// The verdict clauses of one goal note's body: each clause runs up to a top-level
/// parenthesised group ending in `met` or `MISSED`.
fn clauses(body: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let (mut depth, mut code, mut open, mut from) = (0i32, false, 0, 0);
    for (i, c) in body.char_indices() {
        match c {
            '`' => code = !code,
            '(' if !code => {
                if depth == 0 {
                    open = i;
                }
                depth += 1;
            }
            ')' if !code => {
                depth -= 1;
                if depth != 0 {
                    continue;
                }
                let inner = &body[open + 1..i];
                let met = if inner.ends_with(verdict(true)) {
                    true
                } else if inner.ends_with(verdict(false)) {
                    false
                } else {
                    continue;
                };
                // `(≤ 0.8x: met)` keeps its target; `(met)` goes entirely.
                let target = inner
                    .rsplit_once(": ")
                    .map(|(t, _)| format!(" ({t})"))
                    .unwrap_or_default();
                let clause = format!("{}{target}", body[from..open].trim_end());
                let clause = clause.trim_start_matches([',', ';', ' ']).to_string();
                out.push((clause, met));
                from = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// Every goal verdict in `table`'s notes (see [`Goal`]).
///
/// ```
/// use benches::report::{goals, Table};
/// let mut t = Table::new("write: ns per operation", &["a"]);
/// t.note("Goal, maple vs BTreeMap (slower backend): append (from empty): 2.53x (≤ 2x: \
///         MISSED); store_range, random: 1.25x (≤ 2x: met).");
/// t.note("Goal, clone ≥ 5x faster than re-insertion: 9.39x (met).");
/// t.note("Goal for maple: ≤ 2x (a description, no verdict).");
/// let g = goals(&t);
/// assert_eq!(g.len(), 3);
/// assert_eq!(g[0].table, "write");
/// assert_eq!(g[0].subject, "maple vs BTreeMap (slower backend)");
/// assert_eq!((g[0].figure.as_str(), g[0].met), ("append (from empty): 2.53x (≤ 2x)", false));
/// assert_eq!((g[1].figure.as_str(), g[1].met), ("store_range, random: 1.25x (≤ 2x)", true));
/// assert_eq!((g[2].figure.as_str(), g[2].met), ("9.39x", true));
/// ```
pub fn goals(table: &Table) -> Vec<Goal> {
    let name = table.title.split(':').next().unwrap_or_default().trim();
    let mut out = Vec::new();
    for note in &table.notes {
        let Some(rest) = note.strip_prefix("Goal, ") else {
            continue;
        };
        let Some((end, body)) = split_top(rest, ": ") else {
            continue;
        };
        for (figure, met) in clauses(&rest[body..]) {
            out.push(Goal {
                table: name.to_string(),
                subject: rest[..end].to_string(),
                figure,
                met,
            });
        }
    }
    out
}

/// The summary `compare` prints before its tables: one line per goal verdict found in
/// `tables` (see [`goals`]), and the tables that failed.
///
/// ```
/// use benches::report::{summary, Table};
/// let mut t = Table::new("dup: copy", &["a"]);
/// t.note("Goal, clone at 10^5 ≥ 5x faster: 9.39x (met).");
/// let s = summary(&[t], &["gap"]);
/// assert!(s.starts_with("### Summary: 1 of 1 goals met\n"), "{s}");
/// assert!(s.contains("\n- met — dup: clone at 10^5 ≥ 5x faster: 9.39x\n"), "{s}");
/// assert!(s.contains("gap (FAILED"), "{s}");
/// ```
pub fn summary(tables: &[Table], failed: &[&str]) -> String {
    let all: Vec<Goal> = tables.iter().flat_map(goals).collect();
    let met = all.iter().filter(|g| g.met).count();
    let mut s = format!("### Summary: {met} of {} goals met\n\n", all.len());
    for g in &all {
        s.push_str(&format!("- {g}\n"));
    }
    if !failed.is_empty() {
        s.push_str(&format!(
            "- tables that panicked: {} (FAILED, see below)\n",
            failed.join(", ")
        ));
    }
    s.push_str(
        "\nEach figure is measured against a peer in the same run (the tables below); on a \
         loaded machine a figure near its target can land on either side from run to run.\n",
    );
    s
}
