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
    let mut cs = contenders(&seize, &slot);
    cs.extend(contenders(&epoch, &slot));
    cs.push(alloc_free_baseline());
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
    vec![t]
}
