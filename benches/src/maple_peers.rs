//! The maple tree behind the same adapters as the peers, on both rcu backends.
//!
//! Lookups take a read guard per lookup (the figure the goals are stated for); writes take
//! the tree's lock per operation, so the tree runs in RCU mode throughout.

use std::ops::RangeInclusive;

use maple::{MapleTree, Value};
use rcu::{Domain, Epoch, Seize};

use crate::peers::RangeLookup;
use crate::tables::dup::Dup;
use crate::tables::rw::Churn;
use crate::tables::write::RangeWrite;
use crate::workload::Layout;

/// A tree of small integer values (no allocation per entry) on domain `D`.
pub type Tree<D> = MapleTree<Value, D>;

/// The slot value for `v` (layout values and operation counters are far below `Value::MAX`).
#[inline]
pub fn value(v: u64) -> Value {
    Value::new(v as usize).expect("benchmark values are far below Value::MAX")
}

/// `(range, value)` pairs of a layout, for `FromIterator`.
pub fn pairs(layout: &Layout) -> impl Iterator<Item = (RangeInclusive<usize>, Value)> + '_ {
    layout.entries().map(|(s, e, v)| (s..=e, value(v)))
}

/// Build a tree by ascending `store_range`, taking the tree's lock for each store (as the
/// kernel's `mtree_store_range` does), then wait until the nodes the build replaced have
/// been destroyed, so that measurements start from a steady state instead of paying for
/// the build's garbage (crossbeam-epoch, for one, frees deferred garbage from inside later
/// `pin()` calls, i.e. from the measured readers).
///
/// Holding one write guard over the whole build instead is twice as slow and leaves the
/// tree slower to look up: the guard is also a read section, so none of the nodes the
/// build replaces can be freed until it ends (a peak of ~840 bytes per range at 10^6),
/// and the surviving nodes end up scattered over that much heap.
pub fn store_all<D: Domain>(tree: &Tree<D>, layout: &Layout) {
    for (s, e, v) in layout.entries() {
        // The layout's ranges are never empty, so the store cannot fail.
        let _ = tree.lock().store_range(s..=e, value(v));
    }
    tree.domain().synchronize();
}

/// A joined thread's result, re-raising its panic.
fn join<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The maple trees of the lookup table.
#[derive(Debug)]
pub struct Trees {
    /// Plain tree on seize, built by ascending `store_range`.
    pub seize: Maple<Seize>,
    /// Plain tree on crossbeam-epoch, built by ascending `store_range`.
    pub epoch: Maple<Epoch>,
    /// Plain tree on seize, built from the sorted ranges by `FromIterator`.
    pub bulk: Maple<Seize>,
    /// Allocation tree on seize, built by ascending `store_range`, if asked for.
    pub alloc: Option<MapleAlloc>,
}

/// Build the lookup table's trees from the layout, each on its own thread at the same
/// time.
///
/// Where a tree's nodes land in memory shows in lookups at 10^5 ranges and more: built one
/// after the other in one thread, the first tree was about 20% faster than the next one in
/// an experiment (presumably the later builds reuse the holes the earlier ones' retired
/// nodes left); built interleaved, both were slower. Building each on its own thread gives
/// each its own malloc arena (glibc), so each tree is laid out as if it had been built
/// alone, like the peers, which the tables build first on the main thread.
pub fn build_trees(layout: &Layout, alloc: bool) -> Trees {
    std::thread::scope(|s| {
        let seize = s.spawn(|| <Maple<Seize> as RangeLookup>::build(layout));
        let epoch = s.spawn(|| <Maple<Epoch> as RangeLookup>::build(layout));
        let bulk = s.spawn(|| Maple {
            tree: pairs(layout).collect(),
        });
        let alloc = alloc.then(|| s.spawn(|| MapleAlloc::build(layout)));
        Trees {
            seize: join(seize.join()),
            epoch: join(epoch.join()),
            bulk: join(bulk.join()),
            alloc: alloc.map(|h| join(h.join())),
        }
    })
}

/// A maple tree on domain `D`, as a lookup / write / dup / churn contender.
pub struct Maple<D: Domain> {
    /// The tree.
    pub tree: Tree<D>,
}

impl<D: Domain> Default for Maple<D> {
    fn default() -> Self {
        Self {
            tree: Tree::<D>::default(),
        }
    }
}

/// A seize tree written through `&mut self` (`store_range_mut`, `punch_mut`): the path
/// for a tree no reader can see yet, which may change nodes in place.
#[derive(Debug)]
pub struct MapleMut(pub Maple<Seize>);

impl RangeWrite for MapleMut {
    const NAME: &'static str = "maple &mut (seize)";
    fn empty() -> Self {
        Self(Maple::default())
    }
    fn store(&mut self, first: usize, last: usize, v: u64) {
        let _ = self.0.tree.store_range_mut(first..=last, value(v));
    }
    fn erase_at(&mut self, x: usize) {
        // `erase` through `&mut`: empty the whole range containing `x`, if stored.
        let (range, v) = self.0.tree.read().walk(x);
        if v.is_some() {
            let _ = self.0.tree.punch_mut(range);
        }
    }
    fn punch_range(&mut self, first: usize, last: usize) {
        let _ = self.0.tree.punch_mut(first..=last);
    }
    fn duplicate(&self) -> Self {
        Self(Maple {
            tree: self.0.tree.clone(),
        })
    }
}

/// The same lookups on an allocation tree (`new_alloc`, gap-tracking internal nodes).
pub struct MapleAlloc {
    /// The tree.
    pub tree: Tree<Seize>,
}

impl<D: Domain> std::fmt::Debug for Maple<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maple")
            .field("domain", &D::NAME)
            .field("len", &self.tree.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for MapleAlloc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapleAlloc")
            .field("len", &self.tree.len())
            .finish_non_exhaustive()
    }
}

macro_rules! maple_impls {
    ($d:ty, $name:literal) => {
        impl RangeLookup for Maple<$d> {
            const NAME: &'static str = $name;
            fn build(layout: &Layout) -> Self {
                let m = Self::default();
                store_all(&m.tree, layout);
                m
            }
            #[inline]
            fn lookup(&self, x: usize) -> Option<u64> {
                self.tree.read().load(x).map(|v| v.get() as u64)
            }
        }

        impl RangeWrite for Maple<$d> {
            const NAME: &'static str = $name;
            fn empty() -> Self {
                Self::default()
            }
            fn store(&mut self, first: usize, last: usize, v: u64) {
                let _ = self.tree.lock().store_range(first..=last, value(v));
            }
            fn erase_at(&mut self, x: usize) {
                std::hint::black_box(self.tree.lock().erase(x).is_some());
            }
            fn punch_range(&mut self, first: usize, last: usize) {
                let _ = self.tree.lock().punch(first..=last);
            }
            fn duplicate(&self) -> Self {
                Self {
                    tree: self.tree.clone(),
                }
            }
        }

        impl Dup for Maple<$d> {
            const NAME: &'static str = $name;
            fn insert_all(layout: &Layout) -> Self {
                <Self as RangeLookup>::build(layout)
            }
            fn bulk(layout: &Layout) -> Option<Self> {
                Some(Self {
                    tree: pairs(layout).collect(),
                })
            }
            fn duplicate(&self) -> Self {
                Self {
                    tree: self.tree.clone(),
                }
            }
        }

        impl Churn for Maple<$d> {
            fn churn(&self, layout: &Layout, i: usize) {
                let (s, e) = layout.ranges()[i];
                let _ = self.tree.lock().erase(s);
                let _ = self.tree.lock().store_range(s..=e, value(i as u64));
            }
        }
    };
}

maple_impls!(Seize, "maple (seize)");
maple_impls!(Epoch, "maple (epoch)");

impl RangeLookup for MapleAlloc {
    const NAME: &'static str = "maple alloc tree (seize)";
    fn build(layout: &Layout) -> Self {
        let tree = Tree::<Seize>::new_alloc();
        store_all(&tree, layout);
        Self { tree }
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        self.tree.read().load(x).map(|v| v.get() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::BTreeRangeMap;
    use crate::workload::{Points, SplitMix64, PAGE};

    fn check_lookup<P: RangeLookup>(layout: &Layout) {
        let p = P::build(layout);
        let mut pts = layout.points();
        for _ in 0..5000 {
            let x = pts.next_point();
            assert_eq!(p.lookup(x), layout.expected(x), "{} at {x:#x}", P::NAME);
        }
    }

    #[test]
    fn maple_lookups_agree_with_the_layout() {
        let layout = Layout::new(2000);
        check_lookup::<Maple<Seize>>(&layout);
        check_lookup::<Maple<Epoch>>(&layout);
        check_lookup::<MapleAlloc>(&layout);
    }

    /// Run the write table's operations on `m` and on the `BTreeMap` range map, then
    /// compare lookups (through `lookup`) on `m` and on a duplicate of it.
    fn check_writes<M: RangeWrite>(
        mut m: M,
        layout: &Layout,
        lookup: impl Fn(&M, usize) -> Option<u64>,
    ) {
        let mut b = BTreeRangeMap::build(layout);
        let mut pts = Points::new(layout.span(), 11);
        let mut rng = SplitMix64::new(12);
        for i in 0..2000u64 {
            let s = pts.next_point() & !(PAGE - 1);
            let e = s + (1 + rng.below(8) as usize) * PAGE - 1;
            match rng.below(3) {
                0 => {
                    m.store(s, e, i);
                    b.store_range(s, e, i);
                }
                1 => {
                    m.punch_range(s, e);
                    b.punch(s, e);
                }
                _ => {
                    m.erase_at(s);
                    b.erase(s);
                }
            }
        }
        let c = m.duplicate();
        let mut pts = layout.points();
        for _ in 0..5000 {
            let x = pts.next_point();
            assert_eq!(lookup(&m, x), b.load(x), "{} at {x:#x}", M::NAME);
            assert_eq!(lookup(&c, x), b.load(x), "{} copy at {x:#x}", M::NAME);
        }
    }

    #[test]
    fn maple_writes_agree_with_the_btree_range_map() {
        let layout = Layout::new(500);
        check_writes(
            <Maple<Seize> as RangeLookup>::build(&layout),
            &layout,
            |m, x| m.lookup(x),
        );
        check_writes(
            <Maple<Epoch> as RangeLookup>::build(&layout),
            &layout,
            |m, x| m.lookup(x),
        );
        let mm = MapleMut(<Maple<Seize> as RangeLookup>::build(&layout));
        check_writes(mm, &layout, |m, x| m.0.lookup(x));
        let bulk = <Maple<Epoch> as Dup>::bulk(&layout).map(|m| m.tree.len());
        assert_eq!(bulk, Some(layout.len()));
    }
}
