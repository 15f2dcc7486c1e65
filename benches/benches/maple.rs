//! Criterion benches for the maple tree against `BTreeMap` on the DESIGN.md layout:
//! point lookups, ascending build, clone, `empty_area_rev` on an allocation tree, and the
//! read-under-write writer's erase + store-back step.
//!
//! `cargo bench -p benches --bench maple`

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::maple_peers::{store_all, value, Maple, MapleAlloc, Tree};
use benches::peers::{linear_gap_rev, BTreePeer, BTreeRangeMap, RangeLookup};
use benches::workload::{Layout, Points, PAGE};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rcu::{Epoch, Seize};

const SIZES: [usize; 2] = [1_000, 100_000];

fn lookup_one<P: RangeLookup>(c: &mut Criterion, layout: &Layout) {
    let p = P::build(layout);
    let mut pts = layout.points();
    c.benchmark_group("lookup")
        .bench_function(BenchmarkId::new(P::NAME, layout.len()), |b| {
            b.iter(|| p.lookup(pts.next_point()))
        });
}

fn lookup(c: &mut Criterion) {
    for n in SIZES {
        let layout = Layout::new(n);
        lookup_one::<BTreePeer>(c, &layout);
        lookup_one::<Maple<Seize>>(c, &layout);
        lookup_one::<Maple<Epoch>>(c, &layout);
    }
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build ascending");
    for n in SIZES {
        let layout = Layout::new(n);
        g.bench_function(BenchmarkId::new("BTreeMap", n), |b| {
            b.iter(|| BTreeRangeMap::build(&layout))
        });
        g.bench_function(BenchmarkId::new("maple store_range", n), |b| {
            b.iter(|| {
                let t = Tree::<Seize>::default();
                store_all(&t, &layout);
                t
            })
        });
    }
}

fn clone(c: &mut Criterion) {
    let mut g = c.benchmark_group("clone");
    for n in SIZES {
        let layout = Layout::new(n);
        let m = <Maple<Seize> as RangeLookup>::build(&layout);
        let bt = BTreePeer::build(&layout);
        g.bench_function(BenchmarkId::new("maple", n), |b| {
            b.iter_custom(|iters| time_clones(iters, || m.tree.clone()))
        });
        g.bench_function(BenchmarkId::new("BTreeMap", n), |b| {
            b.iter_custom(|iters| time_clones(iters, || bt.map.clone()))
        });
    }
}

fn time_clones<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        let r = f();
        total += t.elapsed();
        drop(black_box(r));
    }
    total
}

fn gap(c: &mut Criterion) {
    let mut g = c.benchmark_group("empty_area_rev 4-32 pages");
    for n in SIZES {
        let layout = Layout::new(n);
        let m = MapleAlloc::build(&layout);
        let bt = BTreePeer::build(&layout);
        let request = |pts: &mut Points| {
            let top = pts.next_point();
            (top, (4 + pts.rng().below(29) as usize) * PAGE)
        };
        let mut pts = Points::new(layout.span(), 4);
        g.bench_function(BenchmarkId::new("maple", n), |b| {
            b.iter(|| {
                let (top, size) = request(&mut pts);
                m.tree.read().empty_area_rev(0..=top, size).ok()
            })
        });
        let mut pts = Points::new(layout.span(), 4);
        g.bench_function(BenchmarkId::new("linear scan", n), |b| {
            b.iter(|| {
                let (top, size) = request(&mut pts);
                linear_gap_rev(&bt.map, 0, top, size)
            })
        });
    }
}

/// One churn step of the read-under-write table's writer (erase a random range of the
/// layout, store it back), on a tree in RCU mode (a lock per write) vs `BTreeMap`: the
/// write engine's steady state, without allocation (every step returns the tree to its
/// starting contents).
fn churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("erase + store back");
    for n in SIZES {
        let layout = Layout::new(n);
        let m = <Maple<Seize> as RangeLookup>::build(&layout);
        let mut rng = Points::new(layout.span(), 5);
        g.bench_function(BenchmarkId::new("maple (seize)", n), |b| {
            b.iter(|| {
                let i = rng.rng().below(layout.len() as u64) as usize;
                let (s, e) = layout.ranges()[i];
                black_box(m.tree.lock().erase(s).is_some());
                let _ = m.tree.lock().store_range(s..=e, value(i as u64));
            })
        });
        let mut bt = BTreeRangeMap::build(&layout);
        let mut rng = Points::new(layout.span(), 5);
        g.bench_function(BenchmarkId::new("BTreeMap", n), |b| {
            b.iter(|| {
                let i = rng.rng().below(layout.len() as u64) as usize;
                let (s, e) = layout.ranges()[i];
                black_box(bt.erase(s));
                bt.store_range(s, e, i as u64);
            })
        });
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookup, build, clone, gap, churn
}
criterion_main!(benches);
