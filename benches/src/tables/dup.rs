//! **dup**: copying a whole map (`Clone`) against rebuilding it by insertion, and a bulk
//! build from sorted input, at several sizes (134 is the tree the kernel's `__mt_dup`
//! measured for fork).

use std::hint::black_box;
use std::time::Duration;

use rcu::{Epoch, Seize};

use super::{Ctx, TableDef};
use crate::harness::{Contender, Stopwatch};
use crate::maple_peers::Maple;
use crate::peers::BTreeRangeMap;
use crate::report::{fmt_count, fmt_ratio, fmt_vs, verdict, Table};
use crate::workload::Layout;

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "dup",
    about: "clone a map vs rebuild it by insertion (and bulk build)",
    run,
};

/// A map that can be copied three ways.
pub trait Dup: Sized {
    /// Name used in row labels.
    const NAME: &'static str;
    /// Build by inserting the layout's ranges one by one, ascending.
    fn insert_all(layout: &Layout) -> Self;
    /// Build from the sorted ranges in one go, when the structure has such a path.
    fn bulk(layout: &Layout) -> Option<Self>;
    /// Copy.
    fn duplicate(&self) -> Self;
}

impl Dup for BTreeRangeMap {
    const NAME: &'static str = "BTreeMap";
    fn insert_all(layout: &Layout) -> Self {
        let mut m = BTreeRangeMap::default();
        for (s, e, v) in layout.entries() {
            m.map.insert(s, (e, v));
        }
        m
    }
    fn bulk(layout: &Layout) -> Option<Self> {
        Some(BTreeRangeMap {
            map: layout.entries().map(|(s, e, v)| (s, (e, v))).collect(),
        })
    }
    fn duplicate(&self) -> Self {
        self.clone()
    }
}

const CLONE: &str = " clone";
const REINSERT: &str = " re-insert";
const BULK: &str = " bulk build";
const SUFFIXES: [&str; 3] = [CLONE, REINSERT, BULK];

/// Copies kept alive at once while timing (their drops happen with the clock stopped).
const SEGMENT: u64 = 32;

/// Time `n` runs of `f` (thread CPU time), excluding the drop of what they return: results
/// are kept in segments of [`SEGMENT`] and dropped while the clock is stopped, which keeps
/// both the clock's own cost and the memory held small.
fn time_each<R>(n: u64, mut f: impl FnMut() -> R) -> Duration {
    let mut total = Duration::ZERO;
    let mut keep = Vec::with_capacity(SEGMENT.min(n) as usize);
    let mut left = n;
    while left > 0 {
        let k = left.min(SEGMENT);
        let t = Stopwatch::start();
        for _ in 0..k {
            keep.push(f());
        }
        total += t.elapsed();
        keep.clear();
        left -= k;
    }
    drop(black_box(keep));
    total
}

/// The contenders for one structure: clone, re-insertion, and bulk build if it has one.
pub fn contenders<'a, M: Dup + 'a>(base: &'a M, layout: &'a Layout) -> Vec<Contender<'a>> {
    let mut v = vec![
        Contender::timed(format!("{}{CLONE}", M::NAME), move |n| {
            time_each(n, || base.duplicate())
        }),
        Contender::timed(format!("{}{REINSERT}", M::NAME), move |n| {
            time_each(n, || M::insert_all(layout))
        }),
    ];
    if M::bulk(layout).is_some() {
        v.push(Contender::timed(format!("{}{BULK}", M::NAME), move |n| {
            time_each(n, || M::bulk(layout))
        }));
    }
    v
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let sizes: &[usize] = ctx.pick(
        &[134, 1_000, 100_000],
        &[134, 1_000, 100_000],
        &[134, 1_000, 100_000, 1_000_000],
    );
    let mut names: Vec<String> = Vec::new();
    let mut cells: Vec<Vec<String>> = Vec::new();
    let mut goals = Vec::new();
    for &n in sizes {
        let layout = Layout::new(n);
        let bt = BTreeRangeMap::insert_all(&layout);
        let ms = Maple::<Seize>::insert_all(&layout);
        let me = Maple::<Epoch>::insert_all(&layout);
        let mut cs = contenders(&ms, &layout);
        cs.extend(contenders(&me, &layout));
        cs.extend(contenders(&bt, &layout));
        let m = ctx.measure(&format!("dup {}", fmt_count(n)), &mut cs);
        // Each structure's rows are compared with its own re-insertion.
        for (i, r) in m.iter().enumerate() {
            let structure = SUFFIXES
                .iter()
                .find_map(|s| r.name.strip_suffix(s))
                .unwrap_or(&r.name);
            let reinsert = m
                .iter()
                .find(|x| x.name == format!("{structure}{REINSERT}"))
                .map_or(f64::NAN, |x| x.ns_per_op);
            if names.len() <= i {
                names.push(r.name.clone());
                cells.push(Vec::new());
            }
            cells[i].push(fmt_vs(r.ns_per_op, reinsert));
            if n == 100_000 && r.name.starts_with("maple") && r.name.ends_with(CLONE) {
                let speedup = reinsert / r.ns_per_op;
                goals.push(format!(
                    "Goal, {} at 10^5 ≥ 5x faster than re-insertion: {} ({}).",
                    r.name,
                    fmt_ratio(speedup),
                    verdict(speedup >= 5.0)
                ));
            }
        }
    }
    let mut header = vec!["method".to_string()];
    header.extend(sizes.iter().map(|&n| format!("{} ranges", fmt_count(n))));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(
        "dup: time to copy a whole map (ratio vs re-inserting into the same structure)",
        &header,
    );
    for (name, row) in names.into_iter().zip(cells) {
        let mut r = vec![name];
        r.extend(row);
        t.row(r);
    }
    t.note(format!(
        "Median of up to {} interleaved batches; the drop of each copy is not timed. A ratio of \
         0.20x means 5x faster than re-insertion (goal for maple clone at 10^5: ≥ 5x). \
         maple's re-insertion is ascending `store_range` with the lock taken per store, \
         including the wait for the nodes it replaced to be freed.",
        ctx.cfg.rounds
    ));
    t.note(ctx.spread_note());
    for g in goals {
        t.note(g);
    }
    vec![t]
}
