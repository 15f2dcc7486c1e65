//! Gap search side by side with the kernel's C maple tree, and the rows of `compare`'s gap
//! tables one at a time, for callgrind and for timing in isolation.
//!
//! ```text
//! gap_kernel cg KIND [N] [REPS]        REPS searches of KIND on N ranges (callgrind: the
//!                                      loop is `loop_gap`; see benches/cg-gap.sh)
//! gap_kernel bench [N...] [KIND...]    ns per search, median of 5 runs of REPS (200,000,
//!                                      fewer for scans), default kinds k0 k1 k2
//! ```
//!
//! The tree is an allocation tree of the DESIGN layout built by ascending `store_range` in
//! RCU mode, as the kernel driver builds its tree; one read section per search, as the
//! driver takes `rcu_read_lock` per search. Kinds:
//!
//! - `k0`, `k1`, `k2`: the kernel driver's `cg-gap` / `bench` requests
//!   (`/work/shared/kernel-baseline/README.md`): `empty_area_rev` of 3 pages in
//!   `[0, end]` (the fit is near the top), 4 pages in `[0, end]` (the fit is below every
//!   range), 4 pages in `[start of range 0, end]` (no fit);
//! - `t0`, `t1`, `t2`: the gap table's rows (`Fit::ALL`, same request stream), and `s0`,
//!   `s1`, `s2` the linear scan on the same requests;
//! - `a0` .. `a3`: the aligned gap table's rows (`AlignedFit::ALL`), `as0` .. `as3` the
//!   aligned scan, `ao0` .. `ao3` over-asking;
//! - `w0`, `b0`: the descent alone for `t0`'s requests, maple's `walk(top)` and the
//!   `BTreeMap`'s `range(..=top).next_back()`.
//!
//! Every mode prints the first result, so the answers can be compared with the kernel's
//! (`k0`: 0x1c678e000, `k1`: 0xfffd000, `k2`: -EBUSY at 10^5).

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use benches::maple_peers::MapleAlloc;
use benches::peers::{linear_gap_rev, BTreePeer, RangeLookup};
use benches::tables::gap::{linear_gap_rev_aligned, over_ask_rev, AlignedFit, Fit};
use benches::workload::{Layout, Points, PAGE};

/// What one kind runs.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A kernel driver request: window, size.
    Kernel((usize, usize), usize),
    /// A gap table row on maple, or (`true`) on the scan.
    Table(Fit, bool),
    /// An aligned gap table row: 0 maple exact, 1 aligned scan, 2 over-asking.
    Aligned(AlignedFit, u8),
    /// The descent alone for the near-top row's requests: maple's `walk(top)`, or
    /// (`true`) the `BTreeMap`'s `range(..=top).next_back()`.
    Descent(bool),
}

fn kind(name: &str, layout: &Layout) -> Option<Kind> {
    let end = *layout.span().end();
    let start0 = *layout.span().start();
    let digit = |p: &str| name.strip_prefix(p)?.parse::<usize>().ok();
    Some(match name {
        "k0" => Kind::Kernel((0, end), 3 * PAGE),
        "k1" => Kind::Kernel((0, end), 4 * PAGE),
        "k2" => Kind::Kernel((start0, end), 4 * PAGE),
        "w0" => Kind::Descent(false),
        "b0" => Kind::Descent(true),
        _ if name.starts_with("as") => Kind::Aligned(*AlignedFit::ALL.get(digit("as")?)?, 1),
        _ if name.starts_with("ao") => Kind::Aligned(*AlignedFit::ALL.get(digit("ao")?)?, 2),
        _ if name.starts_with('a') => Kind::Aligned(*AlignedFit::ALL.get(digit("a")?)?, 0),
        _ if name.starts_with('t') => Kind::Table(*Fit::ALL.get(digit("t")?)?, false),
        _ if name.starts_with('s') => Kind::Table(*Fit::ALL.get(digit("s")?)?, true),
        _ => return None,
    })
}

/// The kernel's convention for a result: the start, or a negative errno.
fn code<E>(r: Result<usize, E>) -> i64 {
    r.map_or(-16, |s| s as i64)
}

/// `reps` results of `f`: the first one and a checksum.
#[inline(always)]
fn each(reps: u64, mut f: impl FnMut() -> i64) -> (i64, u64) {
    let mut first = 0;
    let mut acc = 0u64;
    for i in 0..reps {
        let r = f();
        acc = acc.wrapping_add(r as u64);
        if i == 0 {
            first = r;
        }
    }
    (first, acc)
}

/// `reps` requests of `kind`; returns the first result and a checksum. Out of line so
/// that callgrind can count it alone; each kind gets a loop of its own (the match is
/// outside the loops), so a kernel kind costs its search plus the loop, as in the
/// kernel driver's `loop_gap`.
#[inline(never)]
fn loop_gap(m: &MapleAlloc, bt: &BTreePeer, layout: &Layout, kind: Kind, reps: u64) -> (i64, u64) {
    let end = *layout.span().end();
    let mut pts = Points::new(layout.span(), 4);
    let mut apts = Points::new(layout.span(), 5);
    match kind {
        Kind::Kernel(w, size) => each(reps, || {
            code(
                m.tree
                    .read()
                    .empty_area_rev(black_box(w.0)..=black_box(w.1), black_box(size)),
            )
        }),
        Kind::Table(fit, false) => each(reps, || {
            let (top, size) = fit.request(&mut pts, end);
            code(m.tree.read().empty_area_rev(0..=top, size))
        }),
        Kind::Table(fit, true) => each(reps, || {
            let (top, size) = fit.request(&mut pts, end);
            code(linear_gap_rev(&bt.map, 0, top, size).ok_or(()))
        }),
        Kind::Descent(false) => each(reps, || {
            let (top, _) = Fit::NearTop.request(&mut pts, end);
            code(Ok::<usize, ()>(*m.tree.read().walk(top).0.start()))
        }),
        Kind::Descent(true) => each(reps, || {
            let (top, _) = Fit::NearTop.request(&mut pts, end);
            code(bt.map.range(..=top).next_back().map(|(&s, _)| s).ok_or(()))
        }),
        Kind::Aligned(fit, how) => {
            let a = fit.align();
            match how {
                0 => each(reps, || {
                    let (top, size) = fit.request(&mut apts);
                    code(m.tree.read().empty_area_rev_aligned(0..=top, size, a, 0))
                }),
                1 => each(reps, || {
                    let (top, size) = fit.request(&mut apts);
                    code(linear_gap_rev_aligned(&bt.map, 0, top, size, a, 0).ok_or(()))
                }),
                _ => each(reps, || {
                    let (top, size) = fit.request(&mut apts);
                    code(over_ask_rev(m, top, size, a).ok_or(()))
                }),
            }
        }
    }
}

/// Searches per timed run: fewer for the scans that walk the whole map.
fn reps_for(kind: Kind, n: usize) -> u64 {
    let slow = match kind {
        Kind::Table(Fit::NearTop, true) => false,
        Kind::Table(_, true) => true,
        Kind::Aligned(f, 1) => f.far() || f.log2 == 12,
        _ => false,
    };
    if slow {
        (20_000_000 / n as u64).max(20)
    } else {
        200_000
    }
}

/// The tree: by ascending `store_range` under the lock (RCU mode, as the kernel driver
/// builds its tree), or with `GAP_BUILD=mut` through `store_range_mut` (in place).
fn build(layout: &Layout) -> MapleAlloc {
    if std::env::var("GAP_BUILD").as_deref() == Ok("mut") {
        let mut tree = maple::MapleTree::new_alloc();
        for (s, e, v) in layout.entries() {
            let _ = tree.store_range_mut(s..=e, benches::maple_peers::value(v));
        }
        MapleAlloc { tree }
    } else {
        MapleAlloc::build(layout)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || {
        eprintln!("usage: gap_kernel cg KIND [N] [REPS] | gap_kernel bench [N...] [KIND...]");
        ExitCode::FAILURE
    };
    let probe = Layout::new(1);
    match args.first().map(String::as_str) {
        Some("cg") => {
            let Some(name) = args.get(1) else {
                return usage();
            };
            let n = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            let reps = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
            let layout = Layout::new(n);
            let Some(k) = kind(name, &layout) else {
                return usage();
            };
            let m = build(&layout);
            let bt = BTreePeer::build(&layout);
            let (first, acc) = loop_gap(&m, &bt, &layout, k, reps);
            println!(
                "Rust n={n} {name} reps={reps} height={} first={first} ({first:#x}) acc={acc}",
                m.tree.height()
            );
        }
        Some("bench") => {
            let sizes: Vec<usize> = args[1..].iter().filter_map(|s| s.parse().ok()).collect();
            let sizes = if sizes.is_empty() {
                vec![100_000]
            } else {
                sizes
            };
            let mut names: Vec<&str> = args[1..]
                .iter()
                .map(String::as_str)
                .filter(|s| s.parse::<usize>().is_err())
                .collect();
            if names.is_empty() {
                names = vec!["k0", "k1", "k2"];
            }
            if names.iter().any(|k| kind(k, &probe).is_none()) {
                return usage();
            }
            for n in sizes {
                let layout = Layout::new(n);
                let m = build(&layout);
                let bt = BTreePeer::build(&layout);
                for name in &names {
                    let k = kind(name, &layout).expect("checked above");
                    let reps = reps_for(k, n);
                    let mut t = Vec::new();
                    let mut first = 0;
                    for _ in 0..5 {
                        let t0 = Instant::now();
                        first = black_box(loop_gap(&m, &bt, &layout, k, reps)).0;
                        t.push(t0.elapsed().as_nanos() as f64 / reps as f64);
                    }
                    t.sort_by(f64::total_cmp);
                    println!(
                        "Rust n={n} {name} ns/op={:.2} result={first} ({first:#x}) height={}",
                        t[2],
                        m.tree.height()
                    );
                }
            }
        }
        _ => return usage(),
    }
    ExitCode::SUCCESS
}
