//! Two-thread stress: one reader, one churning writer, checking the reader guarantees of
//! DESIGN.md ("RCU mode"):
//!
//! 1. **Constant coverage** — a region whose pieces are replaced by other pieces covering
//!    the same indices never shows a hole to a point read.
//! 2. **No half-widened range** — a range widened on both sides by one store is seen either
//!    before or after, never widened on one side only: whenever a reader meets one of its
//!    values, the range reported with it is exactly the range that value was stored with.
//! 3. **Only stored values** — every value a reader gets is one the writer had stored
//!    (each value encodes a counter the writer publishes before storing it).
//!
//! The tree is prefilled so that it is several levels deep, and the writer also churns an
//! unrelated region so splits, merges and rebalances replace ancestors of the regions the
//! reader watches. Runs ~1 s per test; `MAPLE_STRESS=n` runs n times longer.

mod common;

use common::{stress, xv, SplitMix64};
use maple::{GapError, MapleTree, Value};
use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Region 1: always fully covered.
const COVER: (usize, usize) = (1_000_000, 1_000_999);
/// Region 2: widening slots, each `2 * SLOT_HALF + 1` wide, with singletons around the
/// centre that the widening range swallows.
const WIDEN_BASE: usize = 5_000_000;
const SLOT_HALF: usize = 300;
const SLOTS: usize = 8;
/// Region 3: random churn.
const CHURN: (usize, usize) = (20_000_000, 20_050_000);

/// Value classes (high bits), the low bits carry the writer's counter or an index.
const COVER_TAG: usize = 1 << 40;
const GEN_TAG: usize = 2 << 40;
const SINGLE_TAG: usize = 3 << 40;
const CHURN_TAG: usize = 4 << 40;
const FILL_TAG: usize = 5 << 40;
const TAG_MASK: usize = 0xff << 40;
const LOW: usize = (1 << 40) - 1;
/// A generation value: tag | cycle << 12 | k, stored over [centre - k, centre + k].
const K_BITS: usize = 12;

fn slot_centre(slot: usize) -> usize {
    WIDEN_BASE + slot * 4 * SLOT_HALF + SLOT_HALF
}

struct Shared {
    /// Highest counter the writer has used (published before the store that uses it).
    counter: AtomicUsize,
    stop: AtomicBool,
}

fn prefill(t: &MapleTree<Value>) {
    let w = t.lock();
    // Spread filler to make the tree deep: 3000 ranges in 0..3_000_000 and above CHURN.
    for i in 0..3000 {
        w.store_range(i * 300..=i * 300 + 150, xv(FILL_TAG | i))
            .unwrap();
        let hi = 30_000_000 + i * 1000;
        w.store_range(hi..=hi + 500, xv(FILL_TAG | i)).unwrap();
    }
    w.store_range(COVER.0..=COVER.1, xv(COVER_TAG)).unwrap();
    for j in 0..SLOTS * 4 * SLOT_HALF {
        let i = WIDEN_BASE + j;
        w.store_range(i..=i, xv(SINGLE_TAG | j)).unwrap();
    }
}

fn writer(t: &MapleTree<Value>, sh: &Shared, seed: u64) -> usize {
    let mut rng = SplitMix64(seed);
    let mut counter = 0usize;
    let mut ops = 0usize;
    let mut bump = |sh: &Shared| {
        counter += 1;
        // Release: published before the store that uses this counter, so a reader that sees
        // the stored value and then acquires `counter` gets at least this number.
        sh.counter.store(counter, Ordering::Release);
        counter
    };
    let (mut slot, mut cycle, mut k) = (0usize, 1usize, 0usize);
    // Relaxed: a plain stop flag; nothing is published through it.
    while !sh.stop.load(Ordering::Relaxed) {
        let w = t.lock();
        // 1. Constant coverage: replace a random piece of COVER by one or two new pieces.
        let a = COVER.0 + rng.below((COVER.1 - COVER.0) as u64) as usize;
        let b = (a + rng.below(200) as usize).min(COVER.1);
        let c = bump(sh);
        if rng.below(2) == 0 || a == b {
            w.store_range(a..=b, xv(COVER_TAG | c)).unwrap();
        } else {
            let mid = a + (b - a) / 2;
            w.store_range(a..=mid, xv(COVER_TAG | c)).unwrap();
            w.store_range(mid + 1..=b, xv(COVER_TAG | c)).unwrap();
        }
        if rng.below(50) == 0 {
            w.store_range(COVER.0..=COVER.1, xv(COVER_TAG | c)).unwrap();
        }

        // 2. Widen the current slot's generation range by one on both sides.
        let centre = slot_centre(slot);
        if k < SLOT_HALF {
            bump(sh);
            w.store_range(centre - k..=centre + k, xv(GEN_TAG | cycle << K_BITS | k))
                .unwrap();
            k += 1;
        } else {
            // Move to the next slot: clear it in one store, refill its singletons, start over.
            slot = (slot + 1) % SLOTS;
            cycle += 1;
            k = 0;
            let lo = WIDEN_BASE + slot * 4 * SLOT_HALF;
            w.punch(lo..=lo + 4 * SLOT_HALF - 1).unwrap();
            for j in 0..4 * SLOT_HALF {
                w.store_range(lo + j..=lo + j, xv(SINGLE_TAG | (slot * 4 * SLOT_HALF + j)))
                    .unwrap();
            }
        }

        // 3. Churn: stores, punches and erases of random sizes.
        for _ in 0..4 {
            let a = CHURN.0 + rng.below((CHURN.1 - CHURN.0) as u64) as usize;
            let len = match rng.below(10) {
                0..=5 => rng.below(8),
                6..=8 => rng.below(300),
                _ => rng.below(5000),
            } as usize;
            let b = (a + len).min(CHURN.1);
            match rng.below(4) {
                0 | 1 => {
                    let c = bump(sh);
                    w.store_range(a..=b, xv(CHURN_TAG | c)).unwrap();
                }
                2 => w.punch(a..=b).unwrap(),
                _ => {
                    w.erase(a);
                }
            }
        }
        drop(w);
        ops += 1;
        if ops % 64 == 0 {
            t.validate()
                .unwrap_or_else(|e| panic!("validate during stress: {e}"));
        }
    }
    ops
}

/// Check one (index, range, value) a reader saw; `limit` is the writer's counter loaded
/// after the read.
fn check_seen(i: usize, span: &std::ops::RangeInclusive<usize>, v: Option<usize>, limit: usize) {
    assert!(
        span.contains(&i),
        "walk({i}) returned {span:?}, which does not contain it"
    );
    if (COVER.0..=COVER.1).contains(&i) {
        let v = v
            .unwrap_or_else(|| panic!("hole at {i} in the always-covered region (range {span:?})"));
        assert_eq!(v & TAG_MASK, COVER_TAG, "foreign value {v:#x} at {i}");
        assert!(v & LOW <= limit, "value {v:#x} at {i} was not stored yet");
        assert!(
            *span.start() >= COVER.0 && *span.end() <= COVER.1,
            "{span:?} leaks out of the region"
        );
        return;
    }
    let Some(v) = v else { return };
    match v & TAG_MASK {
        GEN_TAG => {
            let k = v & ((1 << K_BITS) - 1);
            let slot = (i - WIDEN_BASE) / (4 * SLOT_HALF);
            let centre = slot_centre(slot);
            assert_eq!(
                *span,
                centre - k..=centre + k,
                "generation {k} seen at {i} with a half-widened range"
            );
        }
        SINGLE_TAG => {
            assert_eq!(*span, i..=i, "singleton at {i} reported as {span:?}");
            assert_eq!(v & LOW, i - WIDEN_BASE, "singleton value {v:#x} at {i}");
        }
        CHURN_TAG => {
            assert!((CHURN.0..=CHURN.1).contains(&i), "churn value at {i}");
            assert!(v & LOW <= limit, "value {v:#x} at {i} was not stored yet");
        }
        FILL_TAG => {}
        _ => panic!("value {v:#x} at {i} was never stored"),
    }
}

fn reader(t: &MapleTree<Value>, sh: &Shared, seed: u64) -> usize {
    let mut rng = SplitMix64(seed);
    let mut reads = 0;
    // Relaxed: a plain stop flag.
    while !sh.stop.load(Ordering::Relaxed) {
        let r = t.read();
        for _ in 0..32 {
            let i = match rng.below(4) {
                0 => COVER.0 + rng.below((COVER.1 - COVER.0 + 1) as u64) as usize,
                1 | 2 => {
                    let slot = rng.below(SLOTS as u64) as usize;
                    slot_centre(slot) - SLOT_HALF + rng.below(2 * SLOT_HALF as u64 + 1) as usize
                }
                _ => CHURN.0 + rng.below((CHURN.1 - CHURN.0) as u64) as usize,
            };
            let (span, v) = r.walk(i);
            let v = v.map(Value::get);
            let loaded = r.load(i).map(Value::get);
            // Acquire: pairs with the writer's Release publication, so the counter is at
            // least the one of any value read before this load.
            let limit = sh.counter.load(Ordering::Acquire);
            check_seen(i, &span, v, limit);
            if let Some(l) = loaded {
                let tag = l & TAG_MASK;
                assert!(
                    tag != 0 && tag <= FILL_TAG,
                    "load({i}) = {l:#x} was never stored"
                );
                assert!(
                    tag == GEN_TAG || tag == SINGLE_TAG || tag == FILL_TAG || l & LOW <= limit,
                    "load({i}) = {l:#x} not stored yet"
                );
            }
            if (COVER.0..=COVER.1).contains(&i) {
                assert!(
                    loaded.is_some(),
                    "load({i}) saw a hole in the always-covered region"
                );
                assert!(r.find(COVER.0..=COVER.1).is_some());
            }
            reads += 1;
        }
        if t.is_alloc() {
            // Lock-free gap search agrees with constant coverage: never a hole in COVER.
            assert_eq!(
                r.empty_area(COVER.0..=COVER.1, 1),
                Err(GapError::Busy),
                "gap in COVER"
            );
            assert_eq!(
                r.empty_area_rev(COVER.0..=COVER.1, 1),
                Err(GapError::Busy),
                "gap in COVER (rev)"
            );
            let a = CHURN.0 + rng.below((CHURN.1 - CHURN.0) as u64) as usize;
            let size = 1 + rng.below(64) as usize;
            let fits = [
                r.empty_area(a..=a + 5000, size),
                r.empty_area_rev(a..=a + 5000, size),
            ];
            for s in fits.into_iter().flatten() {
                assert!(
                    s >= a && s + size - 1 <= a + 5000,
                    "fit {s} size {size} outside the window at {a}"
                );
            }
        }
        // A short iteration over one watched window: items in strictly increasing, disjoint
        // order, each consistent with its value.
        let (lo, hi) = match rng.below(3) {
            0 => (COVER.0, COVER.1),
            1 => {
                let c = slot_centre(rng.below(SLOTS as u64) as usize);
                (c - SLOT_HALF, c + SLOT_HALF)
            }
            _ => {
                let a = CHURN.0 + rng.below((CHURN.1 - CHURN.0) as u64) as usize;
                (a, a + 3000)
            }
        };
        let mut prev_end: Option<usize> = None;
        let items: Vec<_> = r.range(lo..=hi).map(|(span, v)| (span, v.get())).collect();
        // Acquire: as for the point reads, taken after the iteration.
        let limit = sh.counter.load(Ordering::Acquire);
        for (span, v) in items {
            if let Some(e) = prev_end {
                assert!(
                    *span.start() > e,
                    "range({lo}..={hi}) went backwards: {span:?} after {e}"
                );
            }
            prev_end = Some(*span.end());
            let probe = (*span.start()).max(lo);
            check_seen(probe, &span, Some(v), limit);
        }
        drop(r);
    }
    reads
}

fn run(t: MapleTree<Value>, seed: u64) {
    prefill(&t);
    t.validate().unwrap();
    let sh = Shared {
        counter: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    let dur = Duration::from_millis(1000 * stress());
    let (ops, reads) = std::thread::scope(|s| {
        let w = s.spawn(|| writer(&t, &sh, seed));
        let r = s.spawn(|| reader(&t, &sh, seed ^ 0x5555));
        let start = Instant::now();
        while start.elapsed() < dur && !w.is_finished() && !r.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Relaxed: a plain stop flag.
        sh.stop.store(true, Ordering::Relaxed);
        let ops = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let reads = r.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (ops, reads)
    });
    t.validate().unwrap();
    eprintln!(
        "stress: {ops} writer rounds, {reads} reads, height {}, {} ranges",
        t.height(),
        t.len()
    );
    assert!(
        ops > 10 && reads > 100,
        "too little work: {ops} writer rounds, {reads} reads"
    );
    assert!(
        t.height() >= 3,
        "the stress tree should be several levels deep (height {})",
        t.height()
    );
    // The covered region is still covered, piece by piece.
    let r = t.read();
    let mut next = COVER.0;
    for (span, _) in r.range(COVER.0..=COVER.1) {
        assert_eq!(*span.start(), next, "hole before {span:?}");
        next = span.end() + 1;
    }
    assert_eq!(next, COVER.1 + 1);
}

#[test]
fn stress_plain_tree() {
    run(MapleTree::new(), 11);
}

#[test]
fn stress_alloc_tree() {
    run(MapleTree::new_alloc(), 12);
}

/// A boxed value whose words check each other; a reader that got a value freed under it
/// would (with overwhelming likelihood) see a broken checksum once the memory is reused.
#[derive(Debug)]
struct Checked([usize; 4]);

impl Checked {
    const K: usize = 0x9e37_79b9_7f4a_7c15;

    fn new(n: usize) -> Box<Checked> {
        Box::new(Checked([n, n ^ Self::K, !n, n.rotate_left(17)]))
    }

    fn check(&self, at: usize) -> usize {
        let [n, x, y, z] = self.0;
        assert!(
            x == n ^ Self::K && y == !n && z == n.rotate_left(17),
            "value at {at} is corrupt (freed under a reader?): {:x?}",
            self.0
        );
        n
    }
}

/// One churning writer and one reader on a tree of boxed values: every value a reader
/// reaches must still be intact (reclamation waits for the reader's section), including
/// values the writer has overwritten, erased or punched meanwhile.
fn boxed_stress<D: rcu::Domain>(t: MapleTree<Box<Checked>, D>) {
    {
        let w = t.lock();
        for i in 0..4000 {
            w.store_range(i * 8..=i * 8 + 5, Checked::new(i)).unwrap();
        }
    }
    let stop = AtomicBool::new(false);
    let counter = AtomicUsize::new(4000);
    let dur = Duration::from_millis(1000 * stress());
    std::thread::scope(|s| {
        let w = s.spawn(|| {
            let mut rng = SplitMix64(21);
            let mut rounds = 0usize;
            // Relaxed: a plain stop flag.
            while !stop.load(Ordering::Relaxed) {
                let w = t.lock();
                for _ in 0..8 {
                    let a = rng.below(32_000) as usize;
                    let b = a + rng.below(40) as usize;
                    // Relaxed: only the writer changes the counter; readers use it as an
                    // upper bound after an Acquire load.
                    let n = counter.load(Ordering::Relaxed) + 1;
                    // Release: published before the value that carries it.
                    counter.store(n, Ordering::Release);
                    match rng.below(4) {
                        0 | 1 => w.store_range(a..=b, Checked::new(n)).unwrap(),
                        2 => w.punch(a..=b).unwrap(),
                        _ => {
                            w.erase(a);
                        }
                    }
                }
                drop(w);
                rounds += 1;
            }
            rounds
        });
        let r = s.spawn(|| {
            let mut rng = SplitMix64(22);
            let mut reads = 0usize;
            // Relaxed: a plain stop flag.
            while !stop.load(Ordering::Relaxed) {
                let g = t.read();
                let i = rng.below(32_100) as usize;
                let held = g.load(i);
                // Hold one reference across further reads and check it again at the end.
                for _ in 0..16 {
                    let j = rng.below(32_100) as usize;
                    if let Some(v) = g.load(j) {
                        let n = v.check(j);
                        // Acquire: pairs with the writer's Release publication.
                        assert!(
                            n <= counter.load(Ordering::Acquire),
                            "value {n} at {j} not stored yet"
                        );
                    }
                    reads += 1;
                }
                for (span, v) in g.range(i..=i + 64) {
                    v.check(*span.start());
                }
                if let Some(v) = held {
                    v.check(i);
                }
                drop(g);
            }
            reads
        });
        let start = Instant::now();
        while start.elapsed() < dur && !w.is_finished() && !r.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Relaxed: a plain stop flag.
        stop.store(true, Ordering::Relaxed);
        let rounds = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let reads = r.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        eprintln!("boxed stress: {rounds} writer rounds, {reads} reads");
        assert!(rounds > 10 && reads > 100);
    });
    t.validate().unwrap();
    for (span, v) in t.read().iter() {
        v.check(*span.start());
    }
}

#[test]
fn stress_boxed_values_seize() {
    boxed_stress(MapleTree::<Box<Checked>>::new());
}

#[test]
fn stress_boxed_values_epoch() {
    boxed_stress(MapleTree::<Box<Checked>, rcu::Epoch>::with_domain(
        rcu::Epoch::default(),
    ));
}

/// Port of `run_check_rcu_slot_store` (tools/testing/radix-tree/maple.c): 200 ranges of
/// `usize::MAX / 200` each; the middle one is widened by one index on both sides 10 000 times
/// (trimming its neighbours — the one-pivot "slot store" fast path must not be used for this
/// in RCU mode) while a reader walks its original first index and checks that the growth on
/// both sides is always equal. `empty_neighbours` runs the same with holes on both sides.
fn slot_store_expansion(empty_neighbours: bool) {
    let range_cnt = 200usize;
    let len = usize::MAX / range_cnt;
    let mut start = range_cnt / 2 * len;
    let mut end = start + len - 1;
    let (index, last) = (start, end);
    let t: MapleTree<Value> = MapleTree::new_alloc();
    for i in 0..range_cnt {
        if empty_neighbours && (i == range_cnt / 2 - 1 || i == range_cnt / 2 + 1) {
            continue;
        }
        t.lock()
            .store_range(i * len..=i * len + len - 1, xv(i * 100))
            .unwrap();
    }
    let stop = AtomicBool::new(false);
    let limit = 10_000 * stress() as usize;
    std::thread::scope(|s| {
        let r = s.spawn(|| {
            let mut walks = 0usize;
            let g = t.read();
            // Relaxed: a plain stop flag.
            while !stop.load(Ordering::Relaxed) {
                let (span, v) = g.walk(index);
                assert_eq!(
                    index - span.start(),
                    span.end() - last,
                    "the range grew on one side only: {span:?}"
                );
                let v = v.map(Value::get);
                assert!(
                    v == Some(100 * 100) || v == Some(100),
                    "value {v:?} at the centre"
                );
                walks += 1;
            }
            walks
        });
        for _ in 0..limit {
            start -= 1;
            end += 1;
            t.lock().store_range(start..=end, xv(100)).unwrap();
        }
        // Relaxed: a plain stop flag.
        stop.store(true, Ordering::Relaxed);
        let walks = r.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert!(walks > 0);
    });
    t.validate().unwrap();
    assert_eq!(t.read().walk(index), (start..=end, Some(xv(100))));
}

#[test]
fn rcu_slot_store_expansion() {
    slot_store_expansion(false);
}

#[test]
fn rcu_slot_store_expansion_into_holes() {
    slot_store_expansion(true);
}
