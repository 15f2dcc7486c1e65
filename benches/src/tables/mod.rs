//! The tables printed by `compare`, one module per table, listed in [`TABLES`].
//!
//! Adding a table is one file: write `fn run(&Ctx) -> Vec<Table>` in a new module, give it
//! a `pub const DEF: TableDef`, and add that to [`TABLES`].

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::harness::{self, Config, Contender, Measurement};
use crate::report::Table;

pub mod dup;
pub mod fault;
pub mod fork;
pub mod gap;
pub mod hot_vma;
pub mod listing;
pub mod lookup;
pub mod memory;
pub mod reclaim;
pub mod rw;
pub mod write;

/// How much work a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Smallest sizes, short batches: for development.
    Quick,
    /// The default: about a minute for every table together.
    Default,
    /// Every size, longer batches.
    Full,
}

/// What a table gets to run with: the mode, the timing configuration, and progress output.
#[derive(Debug)]
pub struct Ctx {
    /// The run's mode.
    pub mode: Mode,
    /// Timing configuration derived from the mode.
    pub cfg: Config,
    start: Instant,
    quiet: bool,
    spread: Cell<f64>,
    probe_exe: Option<PathBuf>,
}

impl Ctx {
    /// A context for `mode`.
    pub fn new(mode: Mode) -> Self {
        let cfg = match mode {
            Mode::Quick => Config::QUICK,
            Mode::Default => Config::DEFAULT,
            Mode::Full => Config::FULL,
        };
        Self {
            mode,
            cfg,
            start: Instant::now(),
            quiet: false,
            spread: Cell::new(0.0),
            probe_exe: None,
        }
    }

    /// A context that prints no progress (tests).
    pub fn quiet(mode: Mode) -> Self {
        Self {
            quiet: true,
            ..Self::new(mode)
        }
    }

    /// Let tables run measurements in fresh processes of `exe`, the `compare` binary
    /// (`compare --memory-probe NAME N`, used by the memory table).
    pub fn with_probe_exe(mut self, exe: PathBuf) -> Self {
        self.probe_exe = Some(exe);
        self
    }

    /// The `compare` executable, if set with [`Ctx::with_probe_exe`].
    pub fn probe_exe(&self) -> Option<&Path> {
        self.probe_exe.as_deref()
    }

    /// Print a progress line on stderr, stamped with the time since the run started.
    pub fn progress(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!(
                "[{:6.1}s] {}",
                self.start.elapsed().as_secs_f64(),
                msg.as_ref()
            );
        }
    }

    /// Measure contenders interleaved (see [`harness::run`]), with a progress line.
    pub fn measure(&self, what: &str, contenders: &mut [Contender<'_>]) -> Vec<Measurement> {
        let names: Vec<&str> = contenders.iter().map(|c| c.name()).collect();
        self.progress(format!("{what}: {}", names.join(", ")));
        let m = harness::run(&self.cfg, contenders);
        let worst = m.iter().map(|r| r.spread).fold(self.spread.get(), f64::max);
        self.spread.set(worst);
        m
    }

    /// The largest batch-to-batch spread (relative) measured since the last call; resets.
    pub fn take_spread(&self) -> f64 {
        self.spread.replace(0.0)
    }

    /// A note giving the largest batch-to-batch spread seen since the last call, and reset.
    pub fn spread_note(&self) -> String {
        spread_note(self.take_spread())
    }

    /// Pick a value by mode.
    pub fn pick<T>(&self, quick: T, default: T, full: T) -> T {
        match self.mode {
            Mode::Quick => quick,
            Mode::Default => default,
            Mode::Full => full,
        }
    }
}

/// The note [`Ctx::spread_note`] prints, for a spread taken with [`Ctx::take_spread`].
pub fn spread_note(s: f64) -> String {
    format!(
        "Largest batch-to-batch spread in this table (half the interquartile range over the \
         median): ±{:.0}%.",
        100.0 * s
    )
}

/// A registered table.
#[derive(Clone, Copy, Debug)]
pub struct TableDef {
    /// Name used on the command line.
    pub name: &'static str,
    /// One line saying what it measures.
    pub about: &'static str,
    /// Produce the table(s).
    pub run: fn(&Ctx) -> Vec<Table>,
}

/// Every table, in the order `compare` prints them.
pub const TABLES: &[TableDef] = &[
    reclaim::DEF,
    lookup::DEF,
    rw::DEF,
    write::DEF,
    dup::DEF,
    memory::DEF,
    gap::DEF,
    fault::DEF,
    hot_vma::DEF,
    fork::DEF,
    listing::DEF,
];

/// Find a table by name.
pub fn find(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in TABLES.iter().enumerate() {
            assert!(TABLES[i + 1..].iter().all(|b| b.name != a.name));
            assert_eq!(find(a.name).map(|t| t.name), Some(a.name));
        }
        assert!(find("no-such-table").is_none());
    }

    #[test]
    fn reclaim_table_has_a_figure_and_ratio_per_operation() {
        let tables = (reclaim::DEF.run)(&Ctx::quiet(Mode::Quick));
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[1].rows.len(), 3);
        let t = &tables[0];
        assert_eq!(t.rows.len(), 4);
        for row in &t.rows {
            assert_eq!(row.len(), t.header.len());
            assert!(row[1].ends_with('s') && row[2].ends_with('s'), "{row:?}");
            assert!(row[3].ends_with('x'), "{row:?}");
        }
    }
}
