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
//! 4. **Iteration** — iterators driven from the front, the back or both ends yield
//!    disjoint, ordered items; over the always-covered region they tile it with no gap;
//!    an item is its stored range, clipped only where it would overlap what was yielded.
//!
//! The tree is prefilled so that it is several levels deep, and the writer also churns an
//! unrelated region so splits, merges and rebalances replace ancestors of the regions the
//! reader watches. Runs ~1 s per test; `MAPLE_STRESS=n` runs n times longer.
//!
//! Every test proves that it raced: a reader counts the read sections in which it saw a
//! value stored after the section began (or, in the lockstep test, the walks that ran
//! entirely inside one `store_range` call), the run continues until enough such races were
//! seen (within a bound), and the test fails if none was. Every test runs on a worker
//! thread and fails after a bound instead of hanging.

mod common;
mod concurrent;

use common::{stress, xv, SplitMix64};
use concurrent::{drive, run_bounded, Item, Steps};
use maple::{GapError, MapleTree, Value};
use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// How long a test may run in all before it counts as hung.
fn bound() -> Duration {
    Duration::from_secs(180 * stress())
}

/// Run for `dur`, then on until `raced() >= want` or `hard` has passed (or a worker
/// finished early, i.e. failed); returns whether the target was met.
fn run_until_raced(
    dur: Duration,
    hard: Duration,
    want: usize,
    raced: impl Fn() -> usize,
    finished: impl Fn() -> bool,
) {
    let start = Instant::now();
    while !finished() && (start.elapsed() < dur || (raced() < want && start.elapsed() < hard)) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Region 1: always fully covered.
const COVER: (usize, usize) = (1_000_000, 1_000_999);
/// Region 2: widening slots, each `2 * SLOT_HALF + 1` wide, with singletons around the
/// centre that the widening range swallows.
const WIDEN_BASE: usize = 5_000_000;
const SLOT_HALF: usize = 300;
const SLOTS: usize = 8;
/// Region 3: random churn.
const CHURN: (usize, usize) = (20_000_000, 20_050_000);

/// Race witnesses a test waits for (within its bound) before it stops.
const RACES: usize = 16;

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
    /// Read sections that saw a value stored after the section began (the race witness).
    raced: AtomicUsize,
    /// Iteration items that came out clipped (a writer changed their range under the
    /// iterator).
    clipped: AtomicUsize,
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

/// Check one iteration item: its value is valid where the item starts, and where the
/// value's stored range is known (generations, singletons) the item is exactly that range
/// cut to the clip bounds it was yielded under. Returns whether it was clipped.
fn check_item(item: &Item, limit: usize) -> bool {
    let (span, v) = (&item.span, item.value);
    let i = *span.start();
    let stored: Option<RangeInclusive<usize>> = match v & TAG_MASK {
        GEN_TAG => {
            let k = v & ((1 << K_BITS) - 1);
            let centre = slot_centre((i - WIDEN_BASE) / (4 * SLOT_HALF));
            Some(centre - k..=centre + k)
        }
        SINGLE_TAG => Some(WIDEN_BASE + (v & LOW)..=WIDEN_BASE + (v & LOW)),
        _ => None,
    };
    match stored {
        Some(r) => {
            assert_eq!(
                *span,
                item.expected(&r),
                "item {item:?}: value stored over {r:?}, clipped wrongly (or half-widened)"
            );
            check_seen(i, &r, Some(v), limit);
            *span != r
        }
        None => {
            // Whole-range facts only hold for the stored range, which may be larger.
            let tag = v & TAG_MASK;
            if (COVER.0..=COVER.1).contains(&i) {
                assert_eq!(
                    tag, COVER_TAG,
                    "item {item:?}: foreign value in the covered region"
                );
                assert!(
                    *span.end() <= COVER.1,
                    "{span:?} leaks out of the covered region"
                );
            }
            assert!(
                tag == COVER_TAG || tag == CHURN_TAG || tag == FILL_TAG,
                "item {item:?}: value never stored"
            );
            assert!(
                tag == FILL_TAG || v & LOW <= limit,
                "item {item:?}: not stored yet"
            );
            false
        }
    }
}

fn reader(t: &MapleTree<Value>, sh: &Shared, seed: u64) -> usize {
    let mut rng = SplitMix64(seed);
    let mut reads = 0;
    // Relaxed: a plain stop flag.
    while !sh.stop.load(Ordering::Relaxed) {
        let r = t.read();
        // Acquire: pairs with the writer's Release publication. A value carrying a larger
        // counter was stored after this load, i.e. while this section was open.
        let base = sh.counter.load(Ordering::Acquire);
        let mut newest = 0usize;
        let mut note = |v: usize| {
            if matches!(v & TAG_MASK, COVER_TAG | CHURN_TAG) {
                newest = newest.max(v & LOW);
            }
        };
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
            v.into_iter().chain(loaded).for_each(&mut note);
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
        // An iteration over one watched window, from the front, the back or both ends.
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
        let mode = rng.below(3);
        let mut pick = SplitMix64(rng.next_u64());
        let items = drive(
            "range",
            r.range(lo..=hi),
            || match mode {
                0 => false,
                1 => true,
                _ => pick.below(2) == 0,
            },
            Value::get,
        );
        // Acquire: as for the point reads, taken after the iteration.
        let limit = sh.counter.load(Ordering::Acquire);
        for item in items.in_order() {
            note(item.value);
            if check_item(&item, limit) {
                // Relaxed: a statistic.
                sh.clipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if lo == COVER.0 {
            items.assert_tiles("range over the covered region", lo, hi);
        }
        if newest > base {
            // Relaxed: a statistic, read after the threads are joined or as a hint.
            sh.raced.fetch_add(1, Ordering::Relaxed);
        }
        drop(r);
    }
    reads
}

fn run(t: MapleTree<Value>, seed: u64) {
    run_bounded("stress", bound(), move || run_inner(t, seed));
}

fn run_inner(t: MapleTree<Value>, seed: u64) {
    prefill(&t);
    t.validate().unwrap();
    let sh = Shared {
        counter: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        raced: AtomicUsize::new(0),
        clipped: AtomicUsize::new(0),
    };
    let dur = Duration::from_millis(1000 * stress());
    let (ops, reads) = std::thread::scope(|s| {
        let w = s.spawn(|| writer(&t, &sh, seed));
        let r = s.spawn(|| reader(&t, &sh, seed ^ 0x5555));
        run_until_raced(
            dur,
            dur * 30,
            RACES,
            // Relaxed: a statistic.
            || sh.raced.load(Ordering::Relaxed),
            || w.is_finished() || r.is_finished(),
        );
        // Relaxed: a plain stop flag.
        sh.stop.store(true, Ordering::Relaxed);
        let ops = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let reads = r.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (ops, reads)
    });
    t.validate().unwrap();
    // Relaxed: the threads are joined.
    let (raced, clipped) = (
        sh.raced.load(Ordering::Relaxed),
        sh.clipped.load(Ordering::Relaxed),
    );
    eprintln!(
        "stress: {ops} writer rounds, {reads} reads, {raced} read sections saw a concurrent \
         write, {clipped} items clipped, height {}, {} ranges",
        t.height(),
        t.len()
    );
    assert!(
        ops > 10 && reads > 100,
        "too little work: {ops} writer rounds, {reads} reads"
    );
    assert!(
        raced > 0,
        "the reader never saw a write land during its read section"
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
    run_bounded("boxed stress", bound(), move || boxed_stress_inner(t));
}

fn boxed_stress_inner<D: rcu::Domain>(t: MapleTree<Box<Checked>, D>) {
    {
        let w = t.lock();
        for i in 0..4000 {
            w.store_range(i * 8..=i * 8 + 5, Checked::new(i)).unwrap();
        }
    }
    let stop = AtomicBool::new(false);
    let counter = AtomicUsize::new(4000);
    // Read sections that reached a value stored after the section began.
    let raced = AtomicUsize::new(0);
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
                // Acquire: pairs with the writer's Release; a larger number seen below was
                // stored while this section was open.
                let base = counter.load(Ordering::Acquire);
                let mut newest = 0;
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
                        newest = newest.max(n);
                    }
                    reads += 1;
                }
                for (span, v) in g.range(i..=i + 64) {
                    newest = newest.max(v.check(*span.start()));
                }
                if let Some(v) = held {
                    v.check(i);
                }
                if newest > base {
                    // Relaxed: a statistic.
                    raced.fetch_add(1, Ordering::Relaxed);
                }
                drop(g);
            }
            reads
        });
        run_until_raced(
            dur,
            dur * 30,
            RACES,
            // Relaxed: a statistic.
            || raced.load(Ordering::Relaxed),
            || w.is_finished() || r.is_finished(),
        );
        // Relaxed: a plain stop flag.
        stop.store(true, Ordering::Relaxed);
        let rounds = w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let reads = r.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        // Relaxed: the threads are joined.
        let raced = raced.load(Ordering::Relaxed);
        eprintln!(
            "boxed stress: {rounds} writer rounds, {reads} reads, {raced} read sections saw \
             a concurrent write"
        );
        assert!(rounds > 10 && reads > 100);
        assert!(
            raced > 0,
            "the reader never saw a write land during its read section"
        );
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
/// `usize::MAX / 200` each; the middle one is widened by one index on both sides, step by
/// step (trimming its neighbours — the one-pivot "slot store" fast path must not be used
/// for this in RCU mode), while a reader walks its original first index and checks that
/// the growth on both sides is always equal. `empty_neighbours` runs the same with holes
/// on both sides.
///
/// Reader and writer run in lockstep, so the test checks something whatever the timing:
/// for step `k` the writer announces `k` and waits until the reader acknowledges (so the
/// reader is spinning on walks), stores the range widened by `k` while the reader walks,
/// then waits until the reader has seen step `k` complete. The reader checks every walk
/// against the step numbers (never behind the last completed step, never more than one
/// ahead, never half-widened) and counts the walks that ran entirely inside one
/// `store_range` call: begun after the writer entered it, ended before it returned. The
/// run goes on until enough such walks were seen (within a bound) and fails if there was
/// none.
fn slot_store_expansion(empty_neighbours: bool) {
    run_bounded("slot store expansion", bound(), move || {
        slot_store_expansion_inner(empty_neighbours)
    });
}

fn slot_store_expansion_inner(empty_neighbours: bool) {
    let range_cnt = 200usize;
    let len = usize::MAX / range_cnt;
    let start = range_cnt / 2 * len;
    let end = start + len - 1;
    let index = start;
    let t: MapleTree<Value> = MapleTree::new_alloc();
    for i in 0..range_cnt {
        if empty_neighbours && (i == range_cnt / 2 - 1 || i == range_cnt / 2 + 1) {
            continue;
        }
        t.lock()
            .store_range(i * len..=i * len + len - 1, xv(i * 100))
            .unwrap();
    }
    let min_steps = 10_000 * stress() as usize;
    let steps = Steps::new(bound() / 2);
    // The step the writer announced, the step the reader acknowledged, the step whose
    // store the writer has entered, the step whose store has returned, and the last
    // completed step the reader has seen.
    let [announced, acked, entered, done, seen] = [(); 5].map(|_| AtomicUsize::new(0));
    // Walks that ran entirely inside one store: (saw the old range, saw the new one).
    let inside = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let stop = AtomicBool::new(false);
    let k = std::thread::scope(|s| {
        let r = s.spawn(|| {
            let _m = steps.member();
            let mut walks = 0usize;
            let mut seen_local = 0;
            // Relaxed: a plain stop flag (set after the last step was seen).
            while !stop.load(Ordering::Relaxed) {
                assert!(!steps.aborted(), "the writer failed");
                // A fresh section now and then, so retired nodes can be reclaimed.
                let g = t.read();
                for _ in 0..64 {
                    // Acquire (all four): pairs with the writer's Release stores, so the
                    // step numbers order this walk against the writer's stores.
                    let a = announced.load(Ordering::Acquire);
                    if a > acked.load(Ordering::Relaxed) {
                        acked.store(a, Ordering::Release);
                    }
                    let e = entered.load(Ordering::Acquire);
                    let d = done.load(Ordering::Acquire);
                    let (span, v) = g.walk(index);
                    let d_after = done.load(Ordering::Acquire);
                    let grown = index - span.start();
                    assert_eq!(
                        grown,
                        span.end() - end,
                        "the range grew on one side only: {span:?}"
                    );
                    // Step k stores the range grown by k; the writer starts step d + 2
                    // only after this thread saw step d + 1 complete.
                    assert!(
                        grown == d || grown == d + 1,
                        "walk saw step {grown}, but step {d} had completed before it"
                    );
                    let v = v.map(Value::get);
                    let want = if grown == 0 { 100 * 100 } else { 100 };
                    assert_eq!(v, Some(want), "value at the centre after step {grown}");
                    if e == d + 1 && d_after == d {
                        // Relaxed: statistics, read after the join or as a hint.
                        inside[(grown > d) as usize].fetch_add(1, Ordering::Relaxed);
                    }
                    if grown == d && d > seen_local {
                        seen_local = d;
                        // Release: orders this thread's checks before the writer's next step.
                        seen.store(d, Ordering::Release);
                    }
                    walks += 1;
                }
            }
            walks
        });
        let _m = steps.member();
        let mut k = 0usize;
        loop {
            k += 1;
            // Release (all stores below): see the reader's Acquire loads.
            announced.store(k, Ordering::Release);
            // Acquire: pairs with the reader's acknowledgement.
            steps.wait("reader acknowledges the step", || {
                acked.load(Ordering::Acquire) >= k
            });
            let w = t.lock();
            entered.store(k, Ordering::Release);
            w.store_range(start - k..=end + k, xv(100)).unwrap();
            done.store(k, Ordering::Release);
            drop(w);
            // Acquire: pairs with the reader's Release of `seen`.
            steps.wait("reader sees the step", || seen.load(Ordering::Acquire) >= k);
            // Relaxed: a statistic.
            let hits = inside[0].load(Ordering::Relaxed) + inside[1].load(Ordering::Relaxed);
            if k >= min_steps && (hits >= RACES || k >= 50 * min_steps || steps.expired()) {
                break;
            }
        }
        // Relaxed: a plain stop flag.
        stop.store(true, Ordering::Relaxed);
        let walks = r.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        // Relaxed: the reader is joined.
        let [old, new] = inside.each_ref().map(|c| c.load(Ordering::Relaxed));
        eprintln!(
            "slot store expansion: {k} steps, {walks} walks, {} inside a store ({old} saw \
             the old range, {new} the new one)",
            old + new
        );
        assert!(
            old + new > 0,
            "no walk ran inside a store_range call: the race window was never hit"
        );
        k
    });
    t.validate().unwrap();
    assert_eq!(t.read().walk(index), (start - k..=end + k, Some(xv(100))));
}

#[test]
fn rcu_slot_store_expansion() {
    slot_store_expansion(false);
}

#[test]
fn rcu_slot_store_expansion_into_holes() {
    slot_store_expansion(true);
}
