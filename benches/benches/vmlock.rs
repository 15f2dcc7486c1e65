//! Criterion bench for the **vmlock** workloads of the `compare` tables `fault`, `hot-vma`
//! and `fork`, using the same address spaces and read paths:
//!
//! - `vmlock-hot-vma/1 thread/*` and `vmlock-hot-vma/2 threads/*`: look up a random byte
//!   of one hot VMA through each read path (2 threads: wall time per lookup of both
//!   threads together, thread start-up included).
//! - `vmlock-fault/*`: read faults at random VMAs of a 10^3-VMA space, single thread, and
//!   two faulting threads beside a writer that unmaps and maps back random VMAs.
//! - `vmlock-fork/*`: `Mm::fork` of 10^4 VMAs vs rebuilding them by `mmap(MAP_FIXED)`.
//!
//! `cargo bench -p benches --bench vmlock` (add `--features vmlock/vma-align-128` for the
//! 128-byte VMA layout).

use std::hint::black_box;
use std::time::Duration;

use benches::tables::fault::{run_threads, Op, Path, Space, FAULTERS};
use benches::tables::fork::{layout, rebuild};
use benches::tables::hot_vma::{HotPath, HotSpace};
use benches::workload::SplitMix64;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn hot_vma(c: &mut Criterion) {
    let space = HotSpace::new();
    let mut g = c.benchmark_group("vmlock-hot-vma");
    for p in HotPath::ALL {
        g.bench_function(BenchmarkId::new("1 thread", format!("{p:?}")), |b| {
            let mut rng = SplitMix64::new(1);
            b.iter(|| p.find(&space.mm, space.random_addr(&mut rng)))
        });
    }
    for p in HotPath::ALL {
        g.bench_function(BenchmarkId::new("2 threads", format!("{p:?}")), |b| {
            let mut seed = 0;
            b.iter_custom(|iters| {
                let read = |rng: &mut SplitMix64| {
                    black_box(p.find(&space.mm, space.random_addr(rng)));
                };
                seed += 1;
                run_threads(2, iters, seed, &read, None).wall
            })
        });
    }
    g.finish();
}

fn fault(c: &mut Criterion) {
    let space = Space::new(1000);
    let mut g = c.benchmark_group("vmlock-fault");
    for p in Path::ALL {
        g.bench_function(BenchmarkId::new("1 thread", format!("{p:?}")), |b| {
            let mut rng = SplitMix64::new(1);
            b.iter(|| p.fault(&space.mm, space.random_addr(&mut rng)))
        });
    }
    for p in Path::ALL {
        let name = format!("{FAULTERS} threads + writer");
        g.bench_function(BenchmarkId::new(name, format!("{p:?}")), |b| {
            let mut seed = 0;
            b.iter_custom(|iters| {
                let read = |rng: &mut SplitMix64| {
                    let _ = black_box(p.fault(&space.mm, space.random_addr(rng)));
                };
                let write = |rng: &mut SplitMix64| space.churn(rng);
                seed += 1;
                run_threads(FAULTERS, iters, seed, &read, Some(&write as Op<'_>)).wall
            })
        });
    }
    g.finish();
}

fn fork(c: &mut Criterion) {
    let reqs = layout(10_000);
    let parent = rebuild(&reqs);
    let mut g = c.benchmark_group("vmlock-fork");
    g.sample_size(20);
    g.bench_function("Mm::fork 10^4", |b| {
        b.iter_with_large_drop(|| parent.fork())
    });
    g.bench_function("rebuild by mmap 10^4", |b| {
        b.iter_with_large_drop(|| rebuild(&reqs))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = hot_vma, fault, fork
}
criterion_main!(benches);
