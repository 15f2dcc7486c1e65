//! Many readers iterate regions whose coverage never changes while one writer keeps
//! re-cutting them into different pieces; the iteration contract of `ReadGuard::range`
//! must hold under real concurrency:
//!
//! * **no skip**: the items of every iteration tile the window with no gap (every index is
//!   covered the whole time, so every index must be yielded);
//! * **no overlap, ordered**: front items strictly increase, back items strictly decrease,
//!   no index twice (from the front, the back, or both ends alternately);
//! * **real items**: each item lies inside the range its value was stored over, and that
//!   value was already stored; items are clipped only at what was already yielded.
//!
//! A `find` / `find_rev` loop over the same windows must skip nothing and return whole
//! stored ranges with strictly increasing ends (decreasing starts).
//!
//! Exact clipping checks under concurrency: every value encodes the range it was stored
//! over. The writer replaces a run of whole pieces by new pieces stored one by one, in a
//! fixed direction per region: left to right in "L" regions, so a piece being replaced
//! only ever loses its start (its end stays the encoded end), right to left in "R"
//! regions (its start stays). So in an L region every item must end exactly where the
//! contract says (`min(stored end, hi)`) and a back item ending before its stored end was
//! provably clipped by the iterator; R regions are the mirror image.
//!
//! Race witnesses: the readers count iterations that saw a value stored after the
//! iteration began, and items provably clipped at the front and at the back. The run goes
//! on (within a bound) until each count reaches a target, and fails if one is zero. Both
//! reclamation domains, plain and allocation trees. ~1 s per test; `MAPLE_STRESS=n` runs
//! n times longer.

mod common;
mod concurrent;

use common::{stress, SplitMix64};
use concurrent::{drive, run_bounded, Items};
use maple::{MapleTree, Value};
use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rcu::Domain;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// Region width (indices); offsets take 10 bits in a value.
const W: usize = 1024;
const OFF_BITS: u32 = 10;
/// Region starts: at 0, in the middle, and at the very top of `usize`.
const REGIONS: [usize; 4] = [0, 1 << 20, 1 << 21, usize::MAX - (W - 1)];
/// Whether region `r` is replaced left to right (L) or right to left (R).
const LEFT_TO_RIGHT: [bool; 4] = [false, true, false, true];
/// Filler outside the regions, so the tree is several levels deep.
const FILL: usize = 1 << 62;
const READERS: usize = 4;
/// Targets for the witnesses before a run may stop.
const WANT_RACED: usize = 256;
const WANT_CLIPPED: usize = 16;

/// A value: generation, region, stored start and end offsets.
fn encode(gen: usize, region: usize, a: usize, b: usize) -> Value {
    let base = REGIONS[region];
    let v =
        gen << (2 * OFF_BITS + 2) | region << (2 * OFF_BITS) | (a - base) << OFF_BITS | (b - base);
    Value::new(v).expect("generation fits")
}

/// What a region value says: (generation, region, stored range).
fn decode(v: usize) -> (usize, usize, RangeInclusive<usize>) {
    assert!(v & FILL == 0, "filler value {v:#x} inside a region");
    let mask = (1 << OFF_BITS) - 1;
    let region = (v >> (2 * OFF_BITS)) & 3;
    let base = REGIONS[region];
    let (a, b) = (base + ((v >> OFF_BITS) & mask), base + (v & mask));
    assert!(a <= b, "value {v:#x} encodes an inverted range");
    (v >> (2 * OFF_BITS + 2), region, a..=b)
}

#[derive(Default)]
struct Shared {
    /// Highest generation used; published (Release) before the store that uses it.
    gen: AtomicUsize,
    stop: AtomicBool,
    /// Iterations (or find loops) that saw a value stored after they began.
    raced: AtomicUsize,
    /// Items provably clipped at their start / at their end.
    clipped: [AtomicUsize; 2],
    iterations: AtomicUsize,
}

fn prefill<D: Domain>(t: &MapleTree<Value, D>, seed: u64) {
    let mut rng = SplitMix64(seed);
    let w = t.lock();
    for i in 0..3000usize {
        let a = (1 << 22) + i * 300;
        w.store_range(a..=a + 150, Value::new(FILL | i).unwrap())
            .unwrap();
    }
    for (r, &base) in REGIONS.iter().enumerate() {
        let mut a = base;
        loop {
            let b = a.saturating_add(rng.below(32) as usize).min(base + (W - 1));
            w.store_range(a..=b, encode(0, r, a, b)).unwrap();
            if b == base + (W - 1) {
                break;
            }
            a = b + 1;
        }
    }
}

/// One writer step: replace a run of whole pieces of one region by new pieces covering
/// the same indices (a merge, a re-split, an exact overwrite or a run of tiny pieces).
fn write_step<D: Domain>(t: &MapleTree<Value, D>, sh: &Shared, rng: &mut SplitMix64) {
    let r = rng.below(REGIONS.len() as u64) as usize;
    let base = REGIONS[r];
    let x = base + rng.below(W as u64) as usize;
    let width = match rng.below(8) {
        0..=3 => rng.below(16),
        4..=6 => rng.below(128),
        _ => rng.below(W as u64),
    } as usize;
    let y = x.saturating_add(width).min(base + (W - 1));
    let w = t.lock();
    // Aligned to whole pieces (the writer's view is current under the lock).
    let a = *w.walk(x).0.start();
    let b = *w.walk(y).0.end();
    // New pieces start at `a` and at up to n random points in (a, b].
    let n = match rng.below(6) {
        0 | 1 => 0,
        2 | 3 => rng.below(4),
        4 => rng.below(16),
        _ => 64,
    } as usize;
    let mut starts = vec![a];
    for _ in 0..n.min(b - a) {
        starts.push(a + 1 + rng.below((b - a) as u64) as usize);
    }
    starts.sort_unstable();
    starts.dedup();
    let mut pieces: Vec<(usize, usize)> = starts
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, starts.get(i + 1).map_or(b, |&next| next - 1)))
        .collect();
    if !LEFT_TO_RIGHT[r] {
        pieces.reverse();
    }
    for (pa, pb) in pieces {
        // Relaxed: only the writer changes it.
        let g = sh.gen.load(Ordering::Relaxed) + 1;
        // Release: published before the value that carries it.
        sh.gen.store(g, Ordering::Release);
        w.store_range(pa..=pb, encode(g, r, pa, pb)).unwrap();
    }
}

/// Check one item (or find result) of region `r` against its value; returns whether its
/// start / end was provably clipped (decidable on one side per region: the side the
/// writer never trims there).
fn check_item(
    what: &str,
    span: &RangeInclusive<usize>,
    v: usize,
    lo: usize,
    hi: usize,
    limit: usize,
) -> (bool, bool) {
    let (gen, r, stored) = decode(v);
    assert!(
        gen <= limit,
        "{what}: item {span:?} has generation {gen}, not stored yet"
    );
    assert!(
        stored.start() <= span.start() && span.end() <= stored.end(),
        "{what}: item {span:?} sticks out of the range {stored:?} its value was stored over"
    );
    let base = REGIONS[r];
    assert!(
        (base..=base + (W - 1)).contains(span.start()),
        "{what}: item {span:?} has a value of region {r}"
    );
    if LEFT_TO_RIGHT[r] {
        // Pieces keep their stored end until removed: the end is exact.
        let want = (*stored.end()).min(hi);
        assert_eq!(
            *span.end(),
            want,
            "{what}: item {span:?} from {stored:?} under hi {hi}"
        );
        (false, want < *stored.end())
    } else {
        let want = (*stored.start()).max(lo);
        assert_eq!(
            *span.start(),
            want,
            "{what}: item {span:?} from {stored:?} under lo {lo}"
        );
        (want > *stored.start(), false)
    }
}

fn reader<D: Domain>(t: &MapleTree<Value, D>, sh: &Shared, seed: u64) {
    let mut rng = SplitMix64(seed);
    // Relaxed: a plain stop flag.
    while !sh.stop.load(Ordering::Relaxed) {
        let r = rng.below(REGIONS.len() as u64) as usize;
        let base = REGIONS[r];
        let (x, y) = if rng.below(3) == 0 {
            (base, base + (W - 1))
        } else {
            let off = rng.below(W as u64) as usize;
            let x = base + off;
            (x, x + rng.below((W - off) as u64) as usize)
        };
        let g = t.read();
        // Acquire: pairs with the writer's Release; a larger generation seen below was
        // stored after this load, i.e. during this iteration.
        let start = sh.gen.load(Ordering::Acquire);
        let mode = rng.below(5);
        let mut newest = 0;
        let mut clipped = [0usize; 2];
        if mode < 3 {
            let mut pick = SplitMix64(rng.next_u64());
            let items: Items = drive(
                "range",
                g.range(x..=y),
                || match mode {
                    0 => false,
                    1 => true,
                    _ => pick.below(2) == 0,
                },
                Value::get,
            );
            // Acquire: every value read above was stored before this load.
            let limit = sh.gen.load(Ordering::Acquire);
            items.assert_tiles("range", x, y);
            for it in items.in_order() {
                let (f, b) = check_item("range", &it.span, it.value, it.lo, it.hi, limit);
                clipped[0] += f as usize;
                clipped[1] += b as usize;
                newest = newest.max(decode(it.value).0);
            }
        } else {
            // A hand-written find loop: whole ranges, ends strictly increasing (or starts
            // strictly decreasing), no gap.
            let mut got = Vec::new();
            if mode == 3 {
                let mut i = x;
                while let Some((k, v)) = g.find(i..=y) {
                    assert!(*k.start() <= i, "find({i}..={y}) skipped to {k:?}");
                    assert!(*k.end() >= i);
                    got.push((k.clone(), v.get()));
                    match k.end().checked_add(1) {
                        Some(n) if n <= y => i = n,
                        _ => break,
                    }
                }
                assert!(
                    got.last().is_some_and(|(k, _)| *k.end() >= y),
                    "find loop stopped early: {got:?}"
                );
            } else {
                let mut j = y;
                while let Some((k, v)) = g.find_rev(x..=j) {
                    assert!(*k.end() >= j, "find_rev({x}..={j}) skipped to {k:?}");
                    assert!(*k.start() <= j);
                    got.push((k.clone(), v.get()));
                    match k.start().checked_sub(1) {
                        Some(n) if n >= x => j = n,
                        _ => break,
                    }
                }
                assert!(
                    got.last().is_some_and(|(k, _)| *k.start() <= x),
                    "find_rev loop stopped early: {got:?}"
                );
            }
            // Acquire: as above.
            let limit = sh.gen.load(Ordering::Acquire);
            for (k, v) in &got {
                // Whole ranges: no clip bounds.
                check_item("find loop", k, *v, 0, usize::MAX, limit);
                newest = newest.max(decode(*v).0);
            }
        }
        drop(g);
        // Relaxed (all): statistics, read after the join or as a hint.
        if newest > start {
            sh.raced.fetch_add(1, Ordering::Relaxed);
        }
        sh.clipped[0].fetch_add(clipped[0], Ordering::Relaxed);
        sh.clipped[1].fetch_add(clipped[1], Ordering::Relaxed);
        sh.iterations.fetch_add(1, Ordering::Relaxed);
    }
}

fn run<D: Domain>(alloc: bool, seed: u64) {
    let name = format!(
        "iter stress ({}, {})",
        std::any::type_name::<D>(),
        if alloc { "alloc" } else { "plain" }
    );
    let bound = Duration::from_secs(180 * stress());
    run_bounded(&name.clone(), bound, move || {
        let t: MapleTree<Value, D> = if alloc {
            MapleTree::alloc_with_domain(D::default())
        } else {
            MapleTree::with_domain(D::default())
        };
        prefill(&t, seed);
        t.validate().unwrap();
        assert!(t.height() >= 3, "the tree should be several levels deep");
        let sh = Shared::default();
        let dur = Duration::from_millis(1000 * stress());
        let hard = bound / 2;
        let writes = std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let mut rng = SplitMix64(seed ^ 0xabcd);
                let mut n = 0usize;
                // Relaxed: a plain stop flag.
                while !sh.stop.load(Ordering::Relaxed) {
                    write_step(&t, &sh, &mut rng);
                    n += 1;
                    if n % 512 == 0 {
                        t.validate().unwrap_or_else(|e| panic!("validate: {e}"));
                    }
                }
                n
            });
            let readers: Vec<_> = (0..READERS)
                .map(|i| {
                    let (t, sh) = (&t, &sh);
                    s.spawn(move || reader(t, sh, seed + i as u64))
                })
                .collect();
            let begin = Instant::now();
            // Relaxed (all): statistics.
            let met = || {
                sh.raced.load(Ordering::Relaxed) >= WANT_RACED
                    && sh
                        .clipped
                        .iter()
                        .all(|c| c.load(Ordering::Relaxed) >= WANT_CLIPPED)
            };
            while !writer.is_finished()
                && !readers.iter().any(|r| r.is_finished())
                && (begin.elapsed() < dur || (!met() && begin.elapsed() < hard))
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Relaxed: a plain stop flag.
            sh.stop.store(true, Ordering::Relaxed);
            for r in readers {
                r.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            }
            writer
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        t.validate().unwrap();
        // Relaxed (all): the threads are joined.
        let raced = sh.raced.load(Ordering::Relaxed);
        let [front, back] = sh.clipped.each_ref().map(|c| c.load(Ordering::Relaxed));
        let iterations = sh.iterations.load(Ordering::Relaxed);
        eprintln!(
            "{name}: {writes} writer steps, {iterations} iterations, {raced} saw a concurrent \
             write, items clipped at the start {front}, at the end {back}"
        );
        assert!(raced > 0, "{name}: no iteration saw a concurrent write");
        assert!(
            front > 0 && back > 0,
            "{name}: clipping under concurrency was not observed on both sides"
        );
        // Coverage never changed: each region is still tiled.
        let g = t.read();
        for &base in &REGIONS {
            drive(
                "final",
                g.range(base..=base + (W - 1)),
                || false,
                Value::get,
            )
            .assert_tiles("final", base, base + (W - 1));
        }
    });
}

#[test]
fn iter_stress_seize_plain() {
    run::<rcu::Seize>(false, 1);
}

#[test]
fn iter_stress_seize_alloc() {
    run::<rcu::Seize>(true, 2);
}

#[test]
fn iter_stress_epoch_plain() {
    run::<rcu::Epoch>(false, 3);
}

#[test]
fn iter_stress_epoch_alloc() {
    run::<rcu::Epoch>(true, 4);
}
