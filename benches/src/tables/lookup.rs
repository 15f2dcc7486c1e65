//! **lookup**: random point loads over the DESIGN.md layout, single thread, against every
//! peer, at 10^3 / 10^5 / 10^6 ranges. Ratios are time / `BTreeMap` time (below 1 = faster).

use rcu::{Epoch, Seize};

use super::{Ctx, TableDef};
use crate::harness::{repeat, Contender};
use crate::maple_peers::{build_trees, Maple};
use crate::peers::{
    BTreePeer, RangeLookup, RangeMapPeer, RwLockBTreePeer, SkipMapPeer, TreeIndexPeer,
};
use crate::report::{fmt_count, fmt_vs, verdict, Table};
use crate::workload::Layout;

/// Row name of the bulk-built tree.
const BULK: &str = "maple (seize), bulk-built";

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "lookup",
    about: "random point loads at 10^3/10^5/10^6 ranges vs BTreeMap, SkipMap, TreeIndex, rangemap",
    run,
};

/// A contender doing one `lookup` per operation at the layout's lookup points.
pub fn contender<'a, P: RangeLookup>(p: &'a P, layout: &Layout) -> Contender<'a> {
    let mut pts = layout.points();
    Contender::new(P::NAME, move |n| repeat(n, |_| p.lookup(pts.next_point())))
}

/// Build `P` from the layout, with a progress line.
pub fn build<P: RangeLookup>(ctx: &Ctx, layout: &Layout) -> P {
    ctx.progress(format!("  build {} ({} ranges)", P::NAME, layout.len()));
    P::build(layout)
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let sizes: &[usize] = ctx.pick(
        &[1_000, 100_000],
        &[1_000, 100_000, 1_000_000],
        &[1_000, 100_000, 1_000_000],
    );
    // rows[name] = one cell per size; the ratio to SkipMap is kept for the goal note.
    let mut names: Vec<String> = Vec::new();
    let mut cells: Vec<Vec<String>> = Vec::new();
    let mut goal_notes = Vec::new();
    for (si, &n) in sizes.iter().enumerate() {
        let layout = Layout::new(n);
        let bt: BTreePeer = build(ctx, &layout);
        let rw: RwLockBTreePeer = build(ctx, &layout);
        let sk: SkipMapPeer = build(ctx, &layout);
        let ti: TreeIndexPeer = build(ctx, &layout);
        let rm: RangeMapPeer = build(ctx, &layout);
        ctx.progress(format!(
            "  build maple trees, one thread each ({} ranges)",
            layout.len()
        ));
        let trees = build_trees(&layout, true);
        let (ms, me, ma) = (&trees.seize, &trees.epoch, &trees.alloc);
        let mut pts = layout.points();
        let per_batch = Contender::new(
            format!("{}, one guard per batch", Maple::<Seize>::NAME),
            move |n| {
                let r = ms.tree.read();
                repeat(n, |_| r.load(pts.next_point()).map(|v| v.get()))
            },
        );
        let bulk = &trees.bulk;
        let mut pts = layout.points();
        let bulk = Contender::new(BULK, move |n| {
            repeat(n, |_| {
                bulk.tree.read().load(pts.next_point()).map(|v| v.get())
            })
        });
        let mut cs = vec![
            contender(&bt, &layout),
            contender(ms, &layout),
            contender(me, &layout),
            per_batch,
            bulk,
            contender(&rw, &layout),
            contender(&sk, &layout),
            contender(&ti, &layout),
            contender(&rm, &layout),
        ];
        if let Some(ma) = ma {
            cs.insert(5, contender(ma, &layout));
        }
        let m = ctx.measure(&format!("lookup {}", fmt_count(n)), &mut cs);
        let peer = m[0].ns_per_op;
        let skip = m
            .iter()
            .find(|r| r.name == SkipMapPeer::NAME)
            .map_or(f64::NAN, |r| r.ns_per_op);
        for r in &m {
            let i = match names.iter().position(|x| *x == r.name) {
                Some(i) => i,
                None => {
                    names.push(r.name.clone());
                    cells.push(vec!["—".to_string(); si]);
                    names.len() - 1
                }
            };
            cells[i].push(fmt_vs(r.ns_per_op, peer));
            let goal_row = [Maple::<Seize>::NAME, Maple::<Epoch>::NAME, BULK].contains(&&*r.name);
            if goal_row && n == 1_000_000 {
                let (vb, vs) = (r.ns_per_op / peer, r.ns_per_op / skip);
                goal_notes.push(format!(
                    "Goal, {} at 10^6 with a guard per lookup: {vb:.3}x of BTreeMap (≤ 0.8x: \
                     {}), {vs:.3}x of SkipMap (≤ 0.5x: {}).",
                    r.name,
                    verdict(vb <= 0.8),
                    verdict(vs <= 0.5)
                ));
            }
        }
    }
    let mut header = vec!["structure".to_string()];
    header.extend(sizes.iter().map(|&n| format!("{} ranges", fmt_count(n))));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(
        "lookup: ns per random point load (ratio vs BTreeMap)",
        &header,
    );
    for (name, mut row) in names.into_iter().zip(cells) {
        row.resize(sizes.len(), "—".to_string());
        let mut r = vec![name];
        r.extend(row);
        t.row(r);
    }
    t.note(format!(
        "Layout of DESIGN.md (SplitMix64 state 1 from 0x10000000, holes of 0-3 pages, ranges \
         of 1-32 pages); points from SplitMix64 state 2 over the whole span, so about 8% miss. \
         Median of up to {} interleaved batches. RwLock takes the read lock per lookup; \
         SkipMap and TreeIndex pin their epoch per lookup. maple trees are built by ascending \
         store_range with the lock taken per store (like mtree_store_range), except the \
         bulk-built one (FromIterator). The peers are built first and get the freshest heap; \
         the maple trees are built each on its own thread (own malloc arena).",
        ctx.cfg.rounds
    ));
    t.note(
        "For reference, not measured here: the kernel's own lib/maple_tree.c on this layout \
         took ~0.9x / ~0.7x / ~0.65x of BTreeMap's time at 10^3 / 10^5 / 10^6 (DESIGN.md).",
    );
    t.note(ctx.spread_note());
    for g in goal_notes {
        t.note(g);
    }
    vec![t]
}
