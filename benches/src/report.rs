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
