//! Workloads for instruction counting under callgrind, one measured loop per mode.
//!
//! Each mode builds what it needs, then runs its loop in an `#[inline(never)]` function
//! named `cg_loop_<mode>` (the name `benches/callgrind.sh` passes to
//! `valgrind --toggle-collect`), and prints `ops <n>`: the number of operations the loop
//! ran, which the script divides the collected instructions by.
//!
//! ```text
//! callgrind store  [N]   ascending store_range of the DESIGN layout, one lock() per store
//!                        (RCU mode, seize), from an empty tree: the kernel driver's cg-store
//! callgrind append-mut [N]  the same through store_range_mut (no readers possible)
//! callgrind writes [N]   N random store_range / erase / punch (one lock() each) on a tree of
//!                        N layout ranges
//! callgrind store-random | erase | punch [N]
//!                        the write table's sequences (`benches/src/tables/write.rs`): N/10
//!                        operations, one lock() each, on a tree of N layout ranges
//! callgrind lookup [N]   10^6 random point loads, a read guard each, on a tree of N ranges
//! callgrind rw [N]       the same loads while a second thread churns the tree (erase a
//!                        random range, store it back, as the rw table's writer): run with
//!                        `--separate-threads=yes` and read the reader thread's count
//! ```
//!
//! Run through `benches/callgrind.sh`, which also measures the kernel's C tree when its
//! driver is available.

use std::hint::black_box;

use benches::maple_peers::{value, Tree};
use benches::workload::{Layout, Points, SplitMix64, PAGE};
use rcu::{Domain, Seize};

#[inline(never)]
fn cg_loop_store(t: &Tree<Seize>, layout: &Layout) -> usize {
    for (s, e, v) in layout.entries() {
        let _ = t.lock().store_range(s..=e, value(v));
    }
    layout.len()
}

#[inline(never)]
fn cg_loop_append_mut(t: &mut Tree<Seize>, layout: &Layout) -> usize {
    for (s, e, v) in layout.entries() {
        let _ = t.store_range_mut(s..=e, value(v));
    }
    layout.len()
}

/// One random write: 0 = store_range, 1 = erase, 2 = punch.
type Op = (usize, usize, u8);

#[inline(never)]
fn cg_loop_writes(t: &Tree<Seize>, ops: &[Op]) -> usize {
    for (i, &(a, b, k)) in ops.iter().enumerate() {
        let w = t.lock();
        match k {
            0 => {
                let _ = w.store_range(a..=b, value(i as u64));
            }
            1 => {
                black_box(w.erase(a).is_some());
            }
            _ => {
                let _ = w.punch(a..=b);
            }
        }
    }
    ops.len()
}

#[inline(never)]
fn cg_loop_store_random(t: &Tree<Seize>, ops: &[(usize, usize)]) -> usize {
    for (i, &(a, b)) in ops.iter().enumerate() {
        let _ = t.lock().store_range(a..=b, value(i as u64));
    }
    ops.len()
}

#[inline(never)]
fn cg_loop_erase(t: &Tree<Seize>, ops: &[(usize, usize)]) -> usize {
    for &(a, _) in ops {
        black_box(t.lock().erase(a).is_some());
    }
    ops.len()
}

#[inline(never)]
fn cg_loop_punch(t: &Tree<Seize>, ops: &[(usize, usize)]) -> usize {
    for &(a, b) in ops {
        let _ = t.lock().punch(a..=b);
    }
    ops.len()
}

/// The write table's operation sequence: `n` random page-aligned ranges of 1..=`pages`
/// pages (erase uses only the start, a random point).
fn table_ops(layout: &Layout, n: usize, pages: u64, point: bool) -> Vec<(usize, usize)> {
    let mut pts = Points::new(layout.span(), 3);
    (0..n)
        .map(|_| {
            if point {
                (pts.next_point(), 0)
            } else {
                let s = pts.next_point() & !(PAGE - 1);
                let len = (1 + pts.rng().below(pages)) as usize * PAGE;
                (s, s + len - 1)
            }
        })
        .collect()
}

#[inline(never)]
fn cg_loop_lookup(t: &Tree<Seize>, pts: &[usize]) -> usize {
    let mut hits = 0;
    for &p in pts {
        hits += t.read().load(p).is_some() as usize;
    }
    black_box(hits);
    pts.len()
}

#[inline(never)]
fn cg_loop_rw(t: &Tree<Seize>, pts: &[usize]) -> usize {
    cg_loop_lookup(t, pts)
}

fn build(layout: &Layout) -> Tree<Seize> {
    let t = Tree::<Seize>::default();
    for (s, e, v) in layout.entries() {
        let _ = t.lock().store_range(s..=e, value(v));
    }
    t.domain().synchronize();
    t
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("store");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let layout = Layout::new(n);
    let ops = match mode {
        "store" => {
            let t = Tree::<Seize>::default();
            let ops = cg_loop_store(&t, &layout);
            assert_eq!(t.len(), n);
            ops
        }
        "append-mut" => {
            let mut t = Tree::<Seize>::default();
            let ops = cg_loop_append_mut(&mut t, &layout);
            assert_eq!(t.len(), n);
            ops
        }
        "writes" => {
            let t = build(&layout);
            let span = layout.span();
            let mut rng = SplitMix64::new(4);
            let ops: Vec<Op> = (0..n)
                .map(|_| {
                    let a = span.start() + rng.below((span.end() - span.start()) as u64) as usize;
                    let len = (1 + rng.below(8) as usize) * PAGE;
                    (a, a + len - 1, rng.below(3) as u8)
                })
                .collect();
            let done = cg_loop_writes(&t, &ops);
            t.validate().expect("valid after the random writes");
            done
        }
        "store-random" | "erase" | "punch" => {
            let t = build(&layout);
            let (pages, point) = match mode {
                "store-random" => (32, false),
                "erase" => (1, true),
                _ => (8, false),
            };
            let ops = table_ops(&layout, n / 10, pages, point);
            let done = match mode {
                "store-random" => cg_loop_store_random(&t, &ops),
                "erase" => cg_loop_erase(&t, &ops),
                _ => cg_loop_punch(&t, &ops),
            };
            t.validate().expect("valid after the writes");
            done
        }
        "rw" => {
            use std::sync::atomic::{AtomicBool, Ordering};
            let t = build(&layout);
            let mut pts = layout.points();
            let pts: Vec<usize> = (0..1_000_000).map(|_| pts.next_point()).collect();
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                let writer = s.spawn(|| {
                    let mut rng = SplitMix64::new(0x5EED);
                    let mut steps = 0u64;
                    // Relaxed: a stop request; the join orders the rest.
                    while !stop.load(Ordering::Relaxed) {
                        let i = rng.below(layout.len() as u64) as usize;
                        let (a, b) = layout.ranges()[i];
                        t.lock().erase(a);
                        let _ = t.lock().store_range(a..=b, value(i as u64));
                        steps += 1;
                    }
                    steps
                });
                let done = cg_loop_rw(&t, &pts);
                // Relaxed: see above.
                stop.store(true, Ordering::Relaxed);
                let steps = writer.join().expect("writer thread");
                println!("writer steps {steps}");
                done
            })
        }
        "lookup" => {
            let t = build(&layout);
            let mut pts = layout.points();
            let pts: Vec<usize> = (0..1_000_000).map(|_| pts.next_point()).collect();
            cg_loop_lookup(&t, &pts)
        }
        other => {
            eprintln!(
                "unknown mode {other}: store, append-mut, writes, store-random, erase, punch, lookup"
            );
            std::process::exit(2);
        }
    };
    println!("ops {ops}");
}
