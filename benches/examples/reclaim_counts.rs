//! Instruction-count probe for the reclaim table (run under callgrind; see BENCHMARKS.md).
//!
//! Each measured loop is an `#[inline(never)]` function, so
//! `valgrind --tool=callgrind --toggle-collect='*reclaim_counts::<name>*'` counts exactly
//! its instructions; divide by the iteration count printed here. Uses only the public
//! `rcu` API, so the same file builds against older versions of the crate.
//!
//! `cargo run --release -p benches --example reclaim_counts -- [threads]`: with a positive
//! `threads`, that many threads enter a guard of a throwaway domain first (raising the
//! number of thread slots a `Seize` hand-off provides for), then exit.

use std::hint::black_box;

use rcu::{Domain, DropBox, Epoch, Seize};

const ENTER: u64 = 1_000_000;
const RETIRE: u64 = 1 << 16;

#[inline(always)]
fn enter_leave<D: Domain>(d: &D, n: u64) {
    for _ in 0..n {
        let g = d.enter();
        black_box(&g);
    }
}

#[inline(always)]
fn retire_sync<D: Domain>(d: &D, n: u64) {
    for i in 0..n {
        let p = Box::into_raw(Box::new([i; 4]));
        // SAFETY: never shared, from `Box::into_raw`, retired once.
        unsafe { d.retire::<[u64; 4], DropBox>(p) };
    }
    d.synchronize();
}

// One non-generic function per backend, so callgrind can tell them apart by name.
#[inline(never)]
fn enter_leave_seize(d: &Seize, n: u64) {
    enter_leave(d, n)
}
#[inline(never)]
fn enter_leave_epoch(d: &Epoch, n: u64) {
    enter_leave(d, n)
}
#[inline(never)]
fn retire_sync_seize(d: &Seize, n: u64) {
    retire_sync(d, n)
}
#[inline(never)]
fn retire_sync_epoch(d: &Epoch, n: u64) {
    retire_sync(d, n)
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if threads > 0 {
        let d = std::sync::Arc::new(Seize::default());
        let b = std::sync::Arc::new(std::sync::Barrier::new(threads));
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (d, b) = (d.clone(), b.clone());
                std::thread::spawn(move || {
                    let g = d.enter();
                    b.wait();
                    drop(g);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    }
    let s = Seize::default();
    let e = Epoch::default();
    // Warm-up (thread registration, first allocations), outside the measured functions.
    enter_leave(&s, 1000);
    enter_leave(&e, 1000);
    retire_sync(&s, 1000);
    retire_sync(&e, 1000);
    enter_leave_seize(&s, ENTER);
    enter_leave_epoch(&e, ENTER);
    retire_sync_seize(&s, RETIRE);
    retire_sync_epoch(&e, RETIRE);
    println!("enter_leave: {ENTER} iterations per backend; retire_sync: {RETIRE} objects");
}
