//! Gap search side by side with the kernel's C maple tree: the same requests as the kernel
//! driver's `cg-gap` and `bench` modes (see `/work/shared/kernel-baseline/README.md`), on
//! an allocation tree of the DESIGN layout built by ascending `store_range` in RCU mode.
//!
//! ```text
//! gap_kernel cg KIND N [REPS]    REPS searches of kind KIND (for callgrind, see
//!                                benches/cg-gap.sh; the loop is `loop_gap`)
//! gap_kernel bench [N...]        ns per search, median of 5 runs of 200,000, kinds 0-2
//! ```
//!
//! Kinds 0-2 are the kernel driver's: 0 = 3 pages in `[0, end]` (the fit is near the top),
//! 1 = 4 pages in `[0, end]` (fits only below every range), 2 = 4 pages in
//! `[start of range 0, end]` (no fit). Kinds 3-5 are aligned searches
//! (`empty_area_rev_aligned`, size 1 page): 3 = alignment 2^16 in `[0, end]`, 4 = 2^21 in
//! `[0, end]`, 5 = 3 pages at 2^21 in `[start of range 0, end]` (no fit).
//! Every mode prints the first result, so the answers can be compared with the kernel's.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use benches::maple_peers::MapleAlloc;
use benches::peers::RangeLookup;
use benches::workload::{Layout, PAGE};
use maple::{AreaError, GapError};

/// `(window, size, align)` of kind `kind`: align 1 means an unaligned search.
fn args(layout: &Layout, kind: u32) -> Option<((usize, usize), usize, usize)> {
    let end = *layout.span().end();
    let start0 = *layout.span().start();
    Some(match kind {
        0 => ((0, end), 3 * PAGE, 1),
        1 => ((0, end), 4 * PAGE, 1),
        2 => ((start0, end), 4 * PAGE, 1),
        3 => ((0, end), PAGE, 1 << 16),
        4 => ((0, end), PAGE, 1 << 21),
        5 => ((start0, end), 3 * PAGE, 1 << 21),
        _ => return None,
    })
}

/// The kernel's convention for the result: the start, or a negative errno.
fn code(r: Result<usize, GapError>) -> i64 {
    match r {
        Ok(s) => s as i64,
        Err(GapError::Busy) => -16,
        Err(GapError::Invalid) => -22,
    }
}

fn code_aligned(r: Result<usize, AreaError>) -> i64 {
    match r {
        Ok(s) => s as i64,
        Err(AreaError::Busy) => -16,
        Err(_) => -22,
    }
}

/// `reps` searches, one read section each (the kernel driver takes `rcu_read_lock` per
/// search). Kept out of line so that callgrind can count it alone.
#[inline(never)]
fn loop_gap(m: &MapleAlloc, window: (usize, usize), size: usize, reps: u64) -> (i64, u64) {
    let mut first = 0;
    let mut acc = 0u64;
    for i in 0..reps {
        let r = code(
            m.tree
                .read()
                .empty_area_rev(black_box(window.0)..=black_box(window.1), black_box(size)),
        );
        acc = acc.wrapping_add(r as u64);
        if i == 0 {
            first = r;
        }
    }
    (first, acc)
}

/// [`loop_gap`] for the aligned kinds.
#[inline(never)]
fn loop_gap_aligned(
    m: &MapleAlloc,
    window: (usize, usize),
    size: usize,
    align: usize,
    reps: u64,
) -> (i64, u64) {
    let mut first = 0;
    let mut acc = 0u64;
    for i in 0..reps {
        let r = code_aligned(m.tree.read().empty_area_rev_aligned(
            black_box(window.0)..=black_box(window.1),
            black_box(size),
            black_box(align),
            0,
        ));
        acc = acc.wrapping_add(r as u64);
        if i == 0 {
            first = r;
        }
    }
    (first, acc)
}

fn run(m: &MapleAlloc, layout: &Layout, kind: u32, reps: u64) -> (i64, u64) {
    let (w, size, align) = args(layout, kind).expect("kind checked by the caller");
    if align == 1 {
        loop_gap(m, w, size, reps)
    } else {
        loop_gap_aligned(m, w, size, align, reps)
    }
}

fn main() -> ExitCode {
    let args_v: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| {
        args_v
            .get(i)
            .map_or(Some(d), |s| s.parse::<u64>().ok())
            .unwrap_or(d)
    };
    match args_v.first().map(String::as_str) {
        Some("cg") => {
            let kind = num(1, 0) as u32;
            let n = num(2, 100_000) as usize;
            let reps = num(3, 100_000);
            let layout = Layout::new(n);
            if args(&layout, kind).is_none() {
                eprintln!("unknown kind {kind}");
                return ExitCode::FAILURE;
            }
            let m = MapleAlloc::build(&layout);
            let (first, acc) = run(&m, &layout, kind, reps);
            println!(
                "Rust n={n} gap{kind} reps={reps} height={} first={first} ({first:#x}) acc={acc}",
                m.tree.height()
            );
        }
        Some("bench") => {
            let sizes: Vec<usize> = if args_v.len() > 1 {
                args_v[1..].iter().filter_map(|s| s.parse().ok()).collect()
            } else {
                vec![100_000, 1_000_000]
            };
            for n in sizes {
                let layout = Layout::new(n);
                let m = MapleAlloc::build(&layout);
                for kind in 0..6 {
                    let reps = 200_000;
                    let mut t = Vec::new();
                    let mut first = 0;
                    for _ in 0..5 {
                        let t0 = Instant::now();
                        first = black_box(run(&m, &layout, kind, reps)).0;
                        t.push(t0.elapsed().as_nanos() as f64 / reps as f64);
                    }
                    t.sort_by(f64::total_cmp);
                    println!(
                        "Rust n={n} gap{kind} ns/op={:.2} result={first} ({first:#x}) height={}",
                        t[2],
                        m.tree.height()
                    );
                }
            }
        }
        _ => {
            eprintln!("usage: gap_kernel cg KIND N [REPS] | gap_kernel bench [N...]");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
