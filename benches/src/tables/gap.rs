//! **gap**: find the highest free run of `size` pages below a random window top
//! (`empty_area_rev`), against the top-down first-fit scan over a `BTreeMap` that Rust VMMs
//! use today ([`linear_gap_rev`]).

use std::hint::black_box;

use super::{spread_note, Ctx, TableDef};
use crate::harness::{repeat, Contender, Stopwatch};
use crate::maple_peers::{value, MapleAlloc};
use crate::peers::{linear_gap_rev, BTreePeer, BTreeRangeMap, RangeLookup};
use crate::report::{fmt_count, fmt_ns, fmt_ratio, fmt_speedup, verdict, Table};
use crate::workload::{Layout, Points, PAGE};

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "gap",
    about: "empty_area_rev and alloc_rrange vs a linear top-down scan",
    run,
};

/// The request classes of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// 1-3 pages below a random top: the layout's holes are 0-3 pages, so a fit is usually
    /// a few ranges below the top.
    NearTop,
    /// 4-32 pages below a random top: larger than every hole, so the only fit is below all
    /// ranges, and a scan walks the ranges under the top (half the map on average).
    BelowAll,
    /// 4-32 pages below the end of the map (mmap's case: the window top is fixed at
    /// `mmap_base`), so a scan walks every range.
    BelowAllFromEnd,
}

impl Fit {
    /// Every class, in table order.
    pub const ALL: [Fit; 3] = [Fit::NearTop, Fit::BelowAll, Fit::BelowAllFromEnd];

    /// Row label.
    pub fn label(self) -> &'static str {
        match self {
            Fit::NearTop => "1-3 pages below a random top (fit near the top)",
            Fit::BelowAll => "4-32 pages below a random top (fit below every range)",
            Fit::BelowAllFromEnd => "4-32 pages below the end of the map (fit below every range)",
        }
    }

    /// A random request over `span`: `(window top, size in bytes)`; the window is
    /// `0..=top`.
    pub fn request(self, pts: &mut Points, span_end: usize) -> (usize, usize) {
        let top = pts.next_point();
        let (top, pages) = match self {
            Fit::NearTop => (top, 1 + pts.rng().below(3)),
            Fit::BelowAll => (top, 4 + pts.rng().below(29)),
            Fit::BelowAllFromEnd => (span_end, 4 + pts.rng().below(29)),
        };
        (top, pages as usize * PAGE)
    }
}

/// maple's `empty_area_rev` on an allocation tree, one read guard per search.
pub fn maple_contender<'a>(m: &'a MapleAlloc, layout: &Layout, fit: Fit) -> Contender<'a> {
    let mut pts = Points::new(layout.span(), 4);
    let end = *layout.span().end();
    Contender::new("maple empty_area_rev", move |n| {
        repeat(n, |_| {
            let (top, size) = fit.request(&mut pts, end);
            m.tree.read().empty_area_rev(0..=top, size).ok()
        })
    })
}

/// The linear-scan contender.
pub fn linear_contender<'a>(map: &'a BTreePeer, layout: &Layout, fit: Fit) -> Contender<'a> {
    let mut pts = Points::new(layout.span(), 4);
    let end = *layout.span().end();
    Contender::new("linear scan", move |n| {
        repeat(n, |_| {
            let (top, size) = fit.request(&mut pts, end);
            linear_gap_rev(&map.map, 0, top, size)
        })
    })
}

/// Allocations per batch of the alloc table at `n` ranges (fewer for large maps, where
/// each linear scan is long).
pub fn allocs_per_batch(n: usize) -> u64 {
    (10_000_000 / n.max(1) as u64).clamp(20, 1000)
}

/// [`allocs_per_batch`] top-down allocations of 1-32 pages below the span's end, each batch
/// on a fresh copy of the starting map: maple's `alloc_rrange` against linear scan + insert.
/// There is always room below the layout, so every allocation must succeed; a failure
/// panics (and `compare` reports the table as failed) rather than timing an error path.
fn alloc_contenders<'a>(
    bt: &'a BTreeRangeMap,
    ma: &'a MapleAlloc,
    layout: &'a Layout,
) -> Vec<Contender<'a>> {
    let top = *layout.span().end();
    let allocs = allocs_per_batch(layout.len());
    let sizes = |i: u64| (1 + (i * 7 + i / 3) % 32) as usize * PAGE;
    vec![
        Contender::timed("linear scan + insert", move |n| {
            let mut m = bt.clone();
            let t = Stopwatch::start();
            for i in 0..n {
                let size = sizes(i);
                let s = linear_gap_rev(&m.map, 0, top, size);
                let s = s.expect("the linear scan found no room below the layout");
                m.store_range(s, s + size - 1, i);
            }
            let el = t.elapsed();
            drop(black_box(m));
            el
        })
        .fixed(allocs),
        Contender::timed("maple alloc_rrange", move |n| {
            let tree = ma.tree.clone();
            let t = Stopwatch::start();
            for i in 0..n {
                let r = tree.lock().alloc_rrange(sizes(i), value(i), 0..=top);
                assert!(r.is_ok(), "alloc_rrange failed: {r:?}");
            }
            let el = t.elapsed();
            drop(black_box(tree));
            el
        })
        .fixed(allocs),
    ]
}

fn run(ctx: &Ctx) -> Vec<Table> {
    // 10^6 only in --full: the linear scans there take milliseconds each.
    let sizes: &[usize] = ctx.pick(
        &[1_000, 100_000],
        &[1_000, 100_000],
        &[1_000, 100_000, 1_000_000],
    );
    let mut header = vec!["request".to_string(), "contender".to_string()];
    header.extend(sizes.iter().map(|&n| format!("{} ranges", fmt_count(n))));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(
        "gap: ns per highest-fit search (empty_area_rev) vs the linear scan",
        &header,
    );
    let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut alloc_rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut goals = Vec::new();
    let (mut gap_spread, mut alloc_spread) = (0.0f64, 0.0f64);
    for (si, &n) in sizes.iter().enumerate() {
        let layout = Layout::new(n);
        let bt = BTreePeer::build(&layout);
        let ma = MapleAlloc::build(&layout);
        for (fi, fit) in Fit::ALL.into_iter().enumerate() {
            let mut cs = vec![
                linear_contender(&bt, &layout, fit),
                maple_contender(&ma, &layout, fit),
            ];
            let m = ctx.measure(&format!("gap {} {}", fmt_count(n), fit.label()), &mut cs);
            let peer = m[0].ns_per_op;
            if n == 100_000 {
                let speedup = peer / m[1].ns_per_op;
                goals.push(match fit {
                    Fit::BelowAll | Fit::BelowAllFromEnd => format!(
                        "Goal, empty_area_rev ≥ 1000x faster than the scan at 10^5, {}: {} \
                         ({}).",
                        fit.label(),
                        fmt_ratio(speedup),
                        verdict(speedup >= 1000.0)
                    ),
                    Fit::NearTop => format!(
                        "Near-top fits at 10^5: maple {} per search (the kernel: ~31 ns), \
                         {} the scan, which stops after a few ranges.",
                        fmt_ns(m[1].ns_per_op),
                        if speedup >= 1.0 {
                            format!("{} faster than", fmt_ratio(speedup))
                        } else {
                            format!("{} slower than", fmt_ratio(1.0 / speedup))
                        }
                    ),
                });
            }
            for (ci, r) in m.iter().enumerate() {
                let idx = fi * m.len() + ci;
                if si == 0 {
                    rows.push((fit.label().to_string(), r.name.clone(), Vec::new()));
                }
                rows[idx].2.push(fmt_speedup(r.ns_per_op, peer));
            }
        }
        gap_spread = gap_spread.max(ctx.take_spread());
        let btr = BTreeRangeMap { map: bt.map };
        let mut cs = alloc_contenders(&btr, &ma, &layout);
        let m = ctx.measure(&format!("alloc {}", fmt_count(n)), &mut cs);
        let peer = m[0].ns_per_op;
        for (ci, r) in m.iter().enumerate() {
            if si == 0 {
                alloc_rows.push((r.name.clone(), Vec::new()));
            }
            alloc_rows[ci].1.push(fmt_speedup(r.ns_per_op, peer));
        }
        alloc_spread = alloc_spread.max(ctx.take_spread());
    }
    for (req, name, cells) in rows {
        let mut r = vec![req, name];
        r.extend(cells);
        t.row(r);
    }
    t.note(format!(
        "Window 0..=top, with top a random point of the lookup span or the end of the map; \
         sizes uniform in the class. Median of up to {} interleaved batches. Goal for maple's empty_area_rev: ≥ 1000x \
         faster than the scan at 10^5.",
        ctx.cfg.rounds
    ));
    t.note(spread_note(gap_spread));
    for g in goals {
        t.note(g);
    }
    let mut header = vec!["contender".to_string()];
    header.extend(sizes.iter().map(|&n| format!("{} ranges", fmt_count(n))));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut a = Table::new(
        "alloc: ns per top-down allocation of 1-32 pages (vs linear scan + insert)",
        &header,
    );
    for (name, cells) in alloc_rows {
        let mut r = vec![name];
        r.extend(cells);
        a.row(r);
    }
    a.note(format!(
        "Each batch copies the starting map (untimed), then makes {} allocations of \
         the highest fit below the end of the layout, like mmap's top-down placement; the \
         BTreeMap side scans with the same first-fit loop and inserts. Median of up to {} batches.",
        sizes
            .iter()
            .map(|&n| format!("{} (at {})", allocs_per_batch(n), fmt_count(n)))
            .collect::<Vec<_>>()
            .join(" / "),
        ctx.cfg.rounds
    ));
    a.note(spread_note(alloc_spread));
    vec![t, a]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both contenders answer every request of the table identically.
    #[test]
    fn maple_and_the_linear_scan_agree() {
        let layout = Layout::new(2000);
        let bt = BTreePeer::build(&layout);
        let ma = MapleAlloc::build(&layout);
        let mut pts = Points::new(layout.span(), 4);
        let end = *layout.span().end();
        for fit in Fit::ALL {
            for _ in 0..500 {
                let (top, size) = fit.request(&mut pts, end);
                let want = linear_gap_rev(&bt.map, 0, top, size);
                let got = ma.tree.read().empty_area_rev(0..=top, size).ok();
                assert_eq!(got, want, "{fit:?}: top {top:#x} size {size:#x}");
            }
        }
    }
}
