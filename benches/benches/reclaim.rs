//! Criterion bench for the **reclaim** workload: the same operations as the `compare`
//! table (guard enter + leave, a protected load inside a guard, retire per object including
//! reclamation), for the `Seize` and `Epoch` domains, plus retiring through the seize crate
//! directly (one entry per object), the design `Seize` does not use.
//!
//! `cargo bench -p benches --bench reclaim`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rcu::sync::atomic::{AtomicPtr, Ordering};
use rcu::{Domain, DropBox, Epoch, Guard, Seize};

/// A small node-sized object to retire.
struct Retired(#[allow(dead_code)] [u64; 4]);

fn domain<D: Domain>(c: &mut Criterion) {
    let d = D::default();
    let mut value = 7u64;
    let slot = AtomicPtr::new(&mut value as *mut u64);
    let mut g = c.benchmark_group("reclaim");
    g.bench_function(BenchmarkId::new("enter+leave", D::NAME), |b| {
        b.iter(|| {
            let guard = d.enter();
            black_box(&guard);
        })
    });
    g.bench_function(BenchmarkId::new("protect in guard", D::NAME), |b| {
        let guard = d.enter();
        // Acquire: the load a real reader makes of a published pointer.
        b.iter(|| guard.protect(black_box(&slot), Ordering::Acquire))
    });
    g.bench_function(BenchmarkId::new("enter+protect+leave", D::NAME), |b| {
        b.iter(|| {
            let guard = d.enter();
            // Acquire: as above.
            guard.protect(black_box(&slot), Ordering::Acquire)
        })
    });
    g.bench_function(
        BenchmarkId::new("retire (incl. reclamation)", D::NAME),
        |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    let p = Box::into_raw(Box::new(Retired([i; 4])));
                    // SAFETY: `p` was never shared, so no section can reach it; it is retired
                    // once; `DropBox` frees it as the `Box` it came from.
                    unsafe { d.retire::<Retired, DropBox>(p) };
                }
                d.synchronize();
                t.elapsed()
            })
        },
    );
    g.finish();
}

/// The retire design `rcu::Seize` replaced for seize's own: one seize entry per object in the
/// calling thread's batch (no domain-wide `synchronize` possible; `reclaim_all` instead,
/// sound because no guard exists).
fn seize_direct(c: &mut Criterion) {
    let collector = seize::Collector::new();
    let mut g = c.benchmark_group("reclaim");
    g.bench_function(
        BenchmarkId::new("retire (incl. reclamation)", "seize-crate-direct"),
        |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                for i in 0..iters {
                    let p = Box::into_raw(Box::new(Retired([i; 4])));
                    // SAFETY: `p` was never shared and is retired once; `reclaim::boxed`
                    // frees it as the `Box` it came from.
                    unsafe { collector.retire(p, seize::reclaim::boxed) };
                }
                // SAFETY: no guard of this collector exists.
                unsafe { collector.reclaim_all() };
                t.elapsed()
            })
        },
    );
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn reclaim(c: &mut Criterion) {
    domain::<Seize>(c);
    domain::<Epoch>(c);
    seize_direct(c);
}

criterion_group! {
    name = benches;
    config = config();
    targets = reclaim
}
criterion_main!(benches);
