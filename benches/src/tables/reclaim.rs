//! **reclaim**: the cost of the read side and of deferred destruction, seize vs
//! crossbeam-epoch, both measured in the same run through the `rcu` crate's `Domain` trait.

use std::hint::black_box;

use rcu::sync::atomic::{AtomicPtr, Ordering};
use rcu::{Domain, DropBox, Epoch, Guard, Seize};

use super::{Ctx, TableDef};
use crate::harness::{repeat, Contender, Stopwatch};
use crate::report::{fmt_ns, fmt_ratio, Table};

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "reclaim",
    about: "guard enter/leave, protected load, retire per object: Seize vs Epoch",
    run,
};

/// What one retired object looks like (a small node-sized payload).
#[derive(Debug)]
#[allow(dead_code)] // The payload is only there to give the object a size.
struct Retired([u64; 4]);

/// Objects retired per batch of the retire row (then the domain is synchronized).
pub const RETIRE_BATCH: u64 = 16 * 1024;

/// The operations of the table, as contenders for domain `D`.
///
/// Exposed so the criterion bench measures exactly what the table does.
pub fn contenders<'a, D: Domain>(domain: &'a D, slot: &'a AtomicPtr<u64>) -> Vec<Contender<'a>> {
    vec![
        Contender::new(format!("{}: enter+leave", D::NAME), move |n| {
            repeat(n, |_| {
                let g = domain.enter();
                black_box(&g);
            })
        }),
        Contender::new(format!("{}: protect in guard", D::NAME), move |n| {
            let g = domain.enter();
            // Acquire: the pointee was published with a release store, as in a real reader.
            repeat(n, |_| g.protect(black_box(slot), Ordering::Acquire));
        }),
        Contender::new(format!("{}: enter+protect+leave", D::NAME), move |n| {
            repeat(n, |_| {
                let g = domain.enter();
                // Acquire: as above.
                g.protect(black_box(slot), Ordering::Acquire)
            })
        }),
        Contender::timed(format!("{}: retire", D::NAME), move |n| {
            let t = Stopwatch::start();
            for i in 0..n {
                let p = Box::into_raw(Box::new(Retired([i; 4])));
                // SAFETY: `p` was never shared, so no section can reach it; it is retired
                // exactly once; `DropBox` frees it as the `Box` it came from.
                unsafe { domain.retire::<Retired, DropBox>(p) };
            }
            // Include reclamation in the cost: wait until every object is destroyed.
            domain.synchronize();
            t.elapsed()
        })
        .fixed(RETIRE_BATCH),
    ]
}

/// The retire design the `Seize` backend replaced for seize's own: every object a seize
/// entry in the calling thread's seize batch (seize's default batch size), no domain-wide
/// buffer. It cannot offer `synchronize` (entries stranded in other threads' batches are
/// out of reach), so the batch ends with `reclaim_all`, sound here because no guard of the
/// collector exists.
fn seize_direct_retire(collector: &seize::Collector) -> Contender<'_> {
    Contender::timed("seize crate: retire per object", move |n| {
        let t = Stopwatch::start();
        for i in 0..n {
            let p = Box::into_raw(Box::new(Retired([i; 4])));
            // SAFETY: `p` was never shared and is retired once; `reclaim::boxed` frees it
            // as the `Box` it came from.
            unsafe { collector.retire(p, seize::reclaim::boxed) };
        }
        // SAFETY: no guard of this collector exists (single-threaded, none entered).
        unsafe { collector.reclaim_all() };
        t.elapsed()
    })
    .fixed(RETIRE_BATCH)
}

/// `Box::new` + drop of the same object, for reference (what retire adds to).
fn alloc_free_baseline() -> Contender<'static> {
    Contender::new("Box alloc+free", |n| {
        repeat(n, |i| drop(black_box(Box::new(Retired([i; 4])))))
    })
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let seize = Seize::default();
    let epoch = Epoch::default();
    let mut value = 7u64;
    let slot = AtomicPtr::new(&mut value as *mut u64);
    let direct = seize::Collector::new();
    let mut cs = contenders(&seize, &slot);
    cs.extend(contenders(&epoch, &slot));
    cs.push(alloc_free_baseline());
    cs.push(seize_direct_retire(&direct));
    let m = ctx.measure("reclaim", &mut cs);
    let ops = [
        "guard enter + leave",
        "protected load (guard held)",
        "enter + protected load + leave",
        "retire, per object (amortised, incl. reclamation)",
    ];
    let mut t = Table::new(
        "reclaim: rcu domains, single thread",
        &["operation", Seize::NAME, Epoch::NAME, "seize / epoch"],
    );
    for (i, op) in ops.iter().enumerate() {
        let (s, e) = (m[i].ns_per_op, m[i + ops.len()].ns_per_op);
        t.row(vec![op.to_string(), fmt_ns(s), fmt_ns(e), fmt_ratio(s / e)]);
    }
    let base = m[2 * ops.len()].ns_per_op;
    t.note(format!(
        "Median of up to {} interleaved batches per cell; ratio below 1 means seize is faster. \
         The retire row retires {RETIRE_BATCH} boxed 32-byte objects then calls \
         `synchronize()`, so it includes `Box::new` ({} alone with an immediate free) and \
         the destruction.",
        ctx.cfg.rounds,
        fmt_ns(base)
    ));
    t.note(ctx.spread_note());

    // Retire designs side by side (the `Seize` backend's, seize's own per-object batching,
    // and `Epoch`'s), all per object including reclamation.
    let ours = m[ops.len() - 1].ns_per_op;
    let direct = m[2 * ops.len() + 1].ns_per_op;
    let epoch_retire = m[2 * ops.len() - 1].ns_per_op;
    let mut d = Table::new(
        "reclaim: retire designs, per object (incl. reclamation)",
        &["design", "time", "vs rcu Seize"],
    );
    for (name, ns) in [
        (
            "rcu Seize: one seize entry per block of 64 + one no-op entry per thread slot",
            ours,
        ),
        (
            "seize crate directly: one seize entry per object, per-thread batches",
            direct,
        ),
        (
            "rcu Epoch: crossbeam deferred function per block of 64",
            epoch_retire,
        ),
    ] {
        d.row(vec![name.to_string(), fmt_ns(ns), fmt_ratio(ns / ours)]);
    }
    d.note(format!(
        "Same interleaved batches as the table above ({RETIRE_BATCH} boxed 32-byte objects per \
         batch). The seize-crate row cannot offer a domain-wide `synchronize` (objects wait \
         in the retiring thread's seize batch, invisible to other threads, until that batch \
         holds one entry per thread inside a guard): it ends each batch with `reclaim_all`, \
         sound only because no guard exists. Block sizes grow to the number of thread slots \
         beyond 64; see BENCHMARKS.md for that regime."
    ));
    vec![t, d]
}
