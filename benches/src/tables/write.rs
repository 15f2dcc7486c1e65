//! **write**: append, random `store_range`, random `erase` and hole punches, single thread,
//! against a `BTreeMap`-based range map with the same semantics ([`BTreeRangeMap`]).
//! Every contender runs the same operation sequence on a copy of the same starting map.

use std::hint::black_box;

use rcu::{Epoch, Seize};

use super::{Ctx, TableDef};
use crate::harness::{Contender, Stopwatch};
use crate::maple_peers::{Maple, MapleMut};
use crate::peers::BTreeRangeMap;
use crate::peers::RangeLookup;
use crate::report::{fmt_count, fmt_ratio, fmt_vs, verdict, Table};
use crate::workload::{Layout, Points, PAGE};

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "write",
    about: "append, random store_range, erase, punch vs a BTreeMap range map",
    run,
};

/// A range map that the write table can drive.
pub trait RangeWrite: Sized {
    /// Name used in table headers.
    const NAME: &'static str;
    /// An empty map.
    fn empty() -> Self;
    /// Overwrite `[first, last]` with `value`.
    fn store(&mut self, first: usize, last: usize, value: u64);
    /// Remove the whole range containing `x`, if any.
    fn erase_at(&mut self, x: usize);
    /// Empty `[first, last]`.
    fn punch_range(&mut self, first: usize, last: usize);
    /// A copy to run a batch on.
    fn duplicate(&self) -> Self;
}

impl RangeWrite for BTreeRangeMap {
    const NAME: &'static str = "BTreeMap";
    fn empty() -> Self {
        Self::default()
    }
    fn store(&mut self, first: usize, last: usize, value: u64) {
        self.store_range(first, last, value);
    }
    fn erase_at(&mut self, x: usize) {
        black_box(self.erase(x));
    }
    fn punch_range(&mut self, first: usize, last: usize) {
        self.punch(first, last);
    }
    fn duplicate(&self) -> Self {
        self.clone()
    }
}

/// The operations of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Build the layout from empty by ascending stores.
    Append,
    /// Store a random page-aligned range of 1-32 pages.
    Store,
    /// Erase the range at a random point.
    Erase,
    /// Punch a random page-aligned hole of 1-8 pages.
    Punch,
}

impl Op {
    /// Every operation, in table order.
    pub const ALL: [Op; 4] = [Op::Append, Op::Store, Op::Erase, Op::Punch];

    /// The goal for maple in RCU mode, as a ratio to `BTreeMap` (issue 11).
    pub fn goal(self) -> f64 {
        match self {
            Op::Append => 1.5,
            Op::Store => 1.3,
            Op::Erase => 1.5,
            Op::Punch => 2.0,
        }
    }

    /// Row label.
    pub fn label(self) -> &'static str {
        match self {
            Op::Append => "append (ascending store_range from empty)",
            Op::Store => "store_range, random 1-32 pages",
            Op::Erase => "erase at a random point",
            Op::Punch => "punch a random 1-8 page hole",
        }
    }
}

fn random_range(pts: &mut Points, max_pages: u64) -> (usize, usize) {
    let s = pts.next_point() & !(PAGE - 1);
    let len = (1 + pts.rng().below(max_pages)) as usize * PAGE;
    (s, s + len - 1)
}

/// A contender performing `ops` operations of kind `op` per batch on a copy of `base`
/// (for [`Op::Append`]: building the whole layout from empty per batch).
pub fn contender<'a, M: RangeWrite>(
    op: Op,
    base: &'a M,
    layout: &'a Layout,
    ops: u64,
) -> Contender<'a> {
    let step: fn(&mut M, &mut Points, u64) = match op {
        Op::Append => return append_contender::<M>(layout),
        Op::Store => |m, pts, i| {
            let (s, e) = random_range(pts, 32);
            m.store(s, e, i);
        },
        Op::Erase => |m, pts, _| m.erase_at(pts.next_point()),
        Op::Punch => |m, pts, _| {
            let (s, e) = random_range(pts, 8);
            m.punch_range(s, e);
        },
    };
    Contender::timed(M::NAME, move |n| {
        let mut m = base.duplicate();
        // The same sequence in every batch and for every contender.
        let mut pts = Points::new(layout.span(), 3);
        let t = Stopwatch::start();
        for i in 0..n {
            step(&mut m, &mut pts, i);
        }
        let el = t.elapsed();
        drop(black_box(m));
        el
    })
    .fixed(ops)
}

fn append_contender<M: RangeWrite>(layout: &Layout) -> Contender<'_> {
    Contender::timed(M::NAME, move |_| {
        let mut m = M::empty();
        let t = Stopwatch::start();
        for (s, e, v) in layout.entries() {
            m.store(s, e, v);
        }
        let el = t.elapsed();
        drop(black_box(m));
        el
    })
    .fixed(layout.len() as u64)
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let n = ctx.pick(10_000, 100_000, 100_000);
    let ops = (n / 10) as u64;
    let layout = Layout::new(n);
    let base = BTreeRangeMap::build(&layout);
    ctx.progress(format!(
        "write: build maple trees ({} ranges)",
        fmt_count(n)
    ));
    let ms = <Maple<Seize> as RangeLookup>::build(&layout);
    let me = <Maple<Epoch> as RangeLookup>::build(&layout);
    let mm = MapleMut(<Maple<Seize> as RangeLookup>::build(&layout));
    let mut t = Table::new(
        format!(
            "write: ns per operation on {} ranges (ratio vs BTreeMap)",
            fmt_count(n)
        ),
        &[
            "operation",
            BTreeRangeMap::NAME,
            <Maple<Seize> as RangeWrite>::NAME,
            <Maple<Epoch> as RangeWrite>::NAME,
            MapleMut::NAME,
        ],
    );
    let mut goals = Vec::new();
    for op in Op::ALL {
        let mut cs = vec![
            contender(op, &base, &layout, ops),
            contender(op, &ms, &layout, ops),
            contender(op, &me, &layout, ops),
            contender(op, &mm, &layout, ops),
        ];
        let m = ctx.measure(&format!("write {}", op.label()), &mut cs);
        let peer = m[0].ns_per_op;
        let mut row = vec![op.label().to_string()];
        row.extend(m.iter().map(|r| fmt_vs(r.ns_per_op, peer)));
        t.row(row);
        // The goal is for RCU mode: the two backends, not the `&mut` column.
        let worst = m[1..3]
            .iter()
            .map(|r| r.ns_per_op / peer)
            .fold(0.0, f64::max);
        goals.push(format!(
            "{}: {} (≤ {}x: {})",
            op.label(),
            fmt_ratio(worst),
            op.goal(),
            verdict(worst <= op.goal())
        ));
    }
    t.note(format!(
        "Each batch copies the starting map (untimed) and runs {ops} operations (append: \
         builds all {n} ranges from empty); every contender sees the same sequence. Median \
         of up to {} batches. The RCU-mode columns take the tree's lock per operation; the \
         `&mut` column writes through store_range_mut / punch_mut (erase: walk, then \
         punch_mut), the path for a tree no reader can see. Goals for maple in RCU mode: \
         append ≤ 1.5x, random store_range ≤ 1.3x, erase ≤ 1.5x, punch ≤ 2x BTreeMap.",
        ctx.cfg.rounds
    ));
    t.note(ctx.spread_note());
    t.note(
        "For reference, not measured here: the kernel built 10^5 ranges by ascending \
         store_range at ~200 ns per insert (DESIGN.md).",
    );
    t.note(format!(
        "Goal, maple vs BTreeMap (the slower backend): {}.",
        goals.join("; ")
    ));
    vec![t]
}
