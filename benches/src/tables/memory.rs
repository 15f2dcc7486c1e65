//! **memory**: heap bytes per stored range, counted by the `compare` binary's global
//! allocator ([`crate::alloc::CountingAlloc`]) while each structure is built.
//!
//! Each structure is measured in a **fresh process** (`compare --memory-probe NAME N`) when
//! the context knows the `compare` executable ([`Ctx::with_probe_exe`]): in a process that
//! has already run other tables, epoch-based peers (crossbeam's global collector, scc's)
//! free garbage left by earlier tables while the next structure is being built, and that
//! would be subtracted from its figure. Without the executable the build is measured
//! in-process and the table says so.

use std::process::Command;

use rcu::Seize;

use super::{Ctx, TableDef};
use crate::alloc::{self, Usage};
use crate::maple_peers::{pairs, store_all, Tree};
use crate::peers::{BTreePeer, RangeLookup, RangeMapPeer, SkipMapPeer, TreeIndexPeer};
use crate::report::{fmt_bytes, fmt_count, fmt_ratio, verdict, Table};
use crate::workload::Layout;

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "memory",
    about: "heap bytes per range at 10^6 ranges (counting allocator, one process each)",
    run,
};

/// Row name of the allocation tree.
const ALLOC_TREE: &str = "maple alloc tree (store_range)";

/// Every structure the table can measure, by row name, in table order.
pub const STRUCTURES: [&str; 7] = [
    BTreePeer::NAME,
    SkipMapPeer::NAME,
    TreeIndexPeer::NAME,
    RangeMapPeer::NAME,
    "maple (store_range)",
    "maple (bulk build)",
    ALLOC_TREE,
];

/// What one measurement found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Net heap bytes the build left allocated; `None` if the counting allocator is not
    /// the global allocator of this process.
    pub bytes: Option<usize>,
    /// The most heap bytes live at any point during the build (same `None` rule).
    pub peak: Option<usize>,
    /// The tree's height, for maple trees.
    pub height: Option<usize>,
}

impl Probe {
    /// The line `compare --memory-probe` prints.
    ///
    /// ```
    /// use benches::tables::memory::Probe;
    /// let p = Probe { bytes: Some(123), peak: Some(456), height: None };
    /// assert_eq!(Probe::parse(&p.line()), Some(p));
    /// ```
    pub fn line(&self) -> String {
        let show = |v: Option<usize>| v.map_or("none".to_string(), |v| v.to_string());
        format!(
            "memory-probe bytes={} peak={} height={}",
            show(self.bytes),
            show(self.peak),
            show(self.height)
        )
    }

    /// Parse a line made by [`Probe::line`] (`None` if it is not one).
    pub fn parse(line: &str) -> Option<Probe> {
        let rest = line.trim().strip_prefix("memory-probe ")?;
        let (b, rest) = rest.split_once(' ')?;
        let (p, h) = rest.split_once(' ')?;
        let value = |s: &str, key: &str| -> Option<Option<usize>> {
            match s.strip_prefix(key)? {
                "none" => Some(None),
                v => v.parse().ok().map(Some),
            }
        };
        Some(Probe {
            bytes: value(b, "bytes=")?,
            peak: value(p, "peak=")?,
            height: value(h, "height=")?,
        })
    }
}

/// Build structure `name` (one of [`STRUCTURES`]) from `layout` in this process with
/// counting on. `None` for an unknown name.
pub fn probe(name: &str, layout: &Layout) -> Option<Probe> {
    fn count<T>(layout: &Layout, build: impl FnOnce(&Layout) -> T) -> (T, Option<Usage>) {
        alloc::measure_usage(|| build(layout))
    }
    let tree = |t: (Tree<Seize>, Option<Usage>)| Probe {
        bytes: t.1.map(|u| u.net),
        peak: t.1.map(|u| u.peak),
        height: Some(t.0.height()),
    };
    let peer = |u: Option<Usage>| Probe {
        bytes: u.map(|u| u.net),
        peak: u.map(|u| u.peak),
        height: None,
    };
    Some(match name {
        BTreePeer::NAME => peer(count(layout, BTreePeer::build).1),
        SkipMapPeer::NAME => peer(count(layout, SkipMapPeer::build).1),
        TreeIndexPeer::NAME => peer(count(layout, TreeIndexPeer::build).1),
        RangeMapPeer::NAME => peer(count(layout, RangeMapPeer::build).1),
        "maple (store_range)" => tree(count(layout, |l| {
            let t = Tree::<Seize>::default();
            store_all(&t, l);
            t
        })),
        "maple (bulk build)" => tree(count(layout, |l| pairs(l).collect::<Tree<Seize>>())),
        ALLOC_TREE => tree(count(layout, |l| {
            let t = Tree::<Seize>::new_alloc();
            store_all(&t, l);
            t
        })),
        _ => return None,
    })
}

/// Measure `name` in a fresh `compare --memory-probe` process; `None` if that fails.
fn probe_in_child(ctx: &Ctx, name: &str, n: usize) -> Option<Probe> {
    let exe = ctx.probe_exe()?;
    let out = Command::new(exe)
        .args(["--memory-probe", name, &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(Probe::parse)
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let n = ctx.pick(100_000, 1_000_000, 1_000_000);
    let mut layout = None;
    let mut in_process = false;
    let mut rows: Vec<(&str, Probe)> = Vec::new();
    for name in STRUCTURES {
        ctx.progress(format!("memory {}: {name}", fmt_count(n)));
        let p = probe_in_child(ctx, name, n).or_else(|| {
            in_process = true;
            probe(name, layout.get_or_insert_with(|| Layout::new(n)))
        });
        if let Some(p) = p {
            rows.push((name, p));
        }
    }
    let peer = rows.first().and_then(|r| r.1.bytes);
    let mut t = Table::new(
        format!(
            "memory: heap bytes per range at {} ranges (ratio vs BTreeMap)",
            fmt_count(n)
        ),
        &[
            "structure",
            "bytes/range",
            "ratio",
            "peak during build, bytes/range",
            "height",
        ],
    );
    let mut goals = Vec::new();
    for (name, p) in rows {
        let per_range = p.bytes.map(|b| b as f64 / n as f64);
        let height = p.height.map_or(String::new(), |h| h.to_string());
        if let (Some(b), true) = (per_range, name.starts_with("maple")) {
            goals.push(format!(
                "Goal, {name}: {} per range (≤ 32 B at 10^6: {}).",
                fmt_bytes(b),
                verdict(b <= 32.0)
            ));
        }
        let peak = p
            .peak
            .map_or("n/a".to_string(), |b| fmt_bytes(b as f64 / n as f64));
        match (per_range, peer) {
            (Some(b), Some(p)) => t.row(vec![
                name.to_string(),
                fmt_bytes(b),
                fmt_ratio(b * n as f64 / p as f64),
                peak,
                height,
            ]),
            _ => t.row(vec![
                name.to_string(),
                "n/a".into(),
                "n/a".into(),
                peak,
                height,
            ]),
        }
    }
    t.note(format!(
        "Net bytes left allocated after building by ascending insertion (allocator request \
         sizes, not counting malloc's own overhead; maple trees after their retired nodes \
         were freed), each structure {}. The peak column is the most the build had \
         allocated at once (for maple, retired nodes waiting for their grace period \
         included; the build takes the lock per store). Goal for maple: ≤ 32 bytes per range; the kernel's \
         tree used 14.7 (57,549 nodes, height 5). n/a: the counting allocator is not \
         installed (only the `compare` binary installs it).",
        if in_process {
            "in this process (figures may be off by garbage other tables left behind)"
        } else {
            "in a fresh process"
        }
    ));
    if n == 1_000_000 {
        for g in goals {
            t.note(g);
        }
    }
    vec![t]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_structure_can_be_probed() {
        let layout = Layout::new(300);
        for name in STRUCTURES {
            let p = probe(name, &layout).unwrap_or_else(|| panic!("{name} unknown"));
            // The test binary does not install the counting allocator.
            assert_eq!((p.bytes, p.peak), (None, None));
            assert_eq!(p.height.is_some(), name.starts_with("maple"), "{name}");
        }
        assert_eq!(probe("no such structure", &layout), None);
    }

    #[test]
    fn probe_lines_round_trip() {
        for p in [
            Probe {
                bytes: None,
                peak: None,
                height: Some(4),
            },
            Probe {
                bytes: Some(31_000_000),
                peak: Some(800_000_000),
                height: None,
            },
        ] {
            assert_eq!(Probe::parse(&p.line()), Some(p));
        }
        assert_eq!(Probe::parse("something else"), None);
    }
}
