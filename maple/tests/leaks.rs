//! Leak checks with a counting global allocator (its own test binary).
//!
//! Nodes are the only allocations aligned to 256 bytes or more, so the allocator keeps a
//! live count and live byte total of those; values are `Box<Tracked>` whose drops are
//! counted. Checked on both reclamation backends (`rcu::Seize`, `rcu::Epoch`):
//!
//! * after `drop(tree)` every node and every value is freed — including values that were
//!   overwritten, erased or punched (retired to the domain) and the trees' clones;
//! * `into_iter()` hands every value out exactly once and frees every node;
//! * while a tree lives, retired nodes and values are reclaimed: under steady churn the
//!   live node bytes and live values stay bounded instead of growing with the number of
//!   writes.

use maple::MapleTree;
use rcu::sync::atomic::{AtomicUsize, Ordering};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;

/// Counts live allocations of node alignment; everything else passes straight through.
struct Counting;

static NODE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Live bytes of every allocation, whatever its alignment.
static ALL_BYTES: AtomicUsize = AtomicUsize::new(0);
static NODE_ALLOCS: AtomicUsize = AtomicUsize::new(0);
const NODE_ALIGN: usize = 256;

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counters are plain atomics and never influence the returned memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            // Relaxed: statistics only.
            ALL_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        if !p.is_null() && layout.align() >= NODE_ALIGN {
            // Relaxed: statistics only; read after the work is done and joined.
            NODE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            // Relaxed: statistics only.
            NODE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            // Relaxed: statistics only.
            ALL_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        if !p.is_null() && layout.align() >= NODE_ALIGN {
            // Relaxed: statistics only.
            NODE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            // Relaxed: statistics only.
            NODE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Relaxed: statistics only.
        ALL_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        if layout.align() >= NODE_ALIGN {
            // Relaxed: statistics only.
            NODE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            // Relaxed: statistics only.
            NODE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with this layout (all our allocations do).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Tests in this binary share the counters: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

static CREATED: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// A value whose construction and destruction are counted.
#[derive(Debug)]
struct Tracked(usize);

impl Tracked {
    fn boxed(v: usize) -> Box<Tracked> {
        // Relaxed: statistics only.
        CREATED.fetch_add(1, Ordering::Relaxed);
        Box::new(Tracked(v))
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        // Relaxed: statistics only.
        CREATED.fetch_add(1, Ordering::Relaxed);
        Tracked(self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Relaxed: statistics only.
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// (live node allocations, live node bytes, live values)
fn live() -> (usize, usize, usize) {
    // Relaxed: read after the measured work finished on this thread (or was joined).
    let nodes = NODE_ALLOCS.load(Ordering::Relaxed);
    // Relaxed: as above.
    let bytes = NODE_BYTES.load(Ordering::Relaxed);
    // Relaxed: as above.
    let created = CREATED.load(Ordering::Relaxed);
    // Relaxed: as above.
    let dropped = DROPPED.load(Ordering::Relaxed);
    assert!(
        dropped <= created,
        "{dropped} drops for {created} values: a value was dropped twice"
    );
    let values = created - dropped;
    (nodes, bytes, values)
}

type T<D> = MapleTree<Box<Tracked>, D>;

/// Build, overwrite, erase, punch, clone and drop; everything must be gone afterwards.
fn build_and_drop<D: rcu::Domain>(make: impl Fn() -> T<D>) {
    let base = live();
    {
        let t = make();
        {
            let w = t.lock();
            for i in 0..3000 {
                w.store_range(i * 10..=i * 10 + 7, Tracked::boxed(i))
                    .unwrap();
            }
            // Overwrite a third (exact fits, partial overlaps and spanning stores).
            for i in (0..3000).step_by(3) {
                w.store_range(i * 10..=i * 10 + 7, Tracked::boxed(i + 1))
                    .unwrap();
            }
            w.store_range(5_003..=9_998, Tracked::boxed(7)).unwrap();
            w.store_range(12_345..=20_000, Tracked::boxed(8)).unwrap();
            // Stores and punches strictly inside a range leave two pieces of one value
            // (kernel semantics); it must be dropped once, with its last piece.
            w.store_range(12_400..=12_410, Tracked::boxed(10)).unwrap();
            w.punch(13_000..=13_001).unwrap();
            w.store_range(14_000..=14_000, Tracked::boxed(11)).unwrap();
            // Erase and punch.
            for i in (0..3000).step_by(7) {
                w.erase(i * 10 + 3);
            }
            w.punch(21_000..=25_555).unwrap();
            // Values handed back by failed writes are dropped by the caller.
            let e = w.insert_range(11..=11, Tracked::boxed(9)).unwrap_err();
            drop(e);
        }
        t.validate().unwrap();
        assert!(
            live().0 > base.0,
            "the tree allocates 256-byte-aligned nodes"
        );
        let copy = t.clone();
        copy.validate().unwrap();
        assert_eq!(copy.len(), t.len());
        drop(copy);
        drop(t);
    }
    let after = live();
    assert_eq!(
        after.0, base.0,
        "node allocations leaked after drop (live nodes {after:?}, before {base:?})"
    );
    assert_eq!(after.1, base.1, "node bytes leaked after drop");
    assert_eq!(
        after.2,
        base.2,
        "values leaked after drop: {} still alive",
        after.2 - base.2
    );
}

/// `into_iter()` yields every value once and frees the nodes.
fn into_iter_frees<D: rcu::Domain>(make: impl Fn() -> T<D>) {
    let base = live();
    let t = make();
    {
        let w = t.lock();
        for i in 0..2000 {
            w.store_range(i * 3..=i * 3 + 1, Tracked::boxed(i)).unwrap();
        }
        for i in 0..500 {
            w.store_range(i * 3..=i * 3 + 1, Tracked::boxed(i + 10_000))
                .unwrap();
        }
    }
    {
        // Split some ranges so that one value has several pieces.
        let w = t.lock();
        for i in (0..2000).step_by(5) {
            w.punch(i * 3 + 1..=i * 3 + 1).unwrap();
        }
        w.store_range(100..=5000, Tracked::boxed(20_000)).unwrap();
        w.store_range(200..=200, Tracked::boxed(20_001)).unwrap();
        w.punch(300..=301).unwrap();
    }
    let n = t.len();
    let mut seen = 0;
    for (_, v) in t {
        assert!(v.0 < 2000 || v.0 >= 10_000);
        seen += 1;
        drop(v);
    }
    // A value split into pieces is handed out once (at its last piece).
    assert!(
        seen <= n && seen > 0,
        "into_iter yielded {seen} values for {n} ranges"
    );
    let after = live();
    assert_eq!(
        (after.0, after.1),
        (base.0, base.1),
        "nodes leaked by into_iter"
    );
    assert_eq!(after.2, base.2, "values leaked by into_iter");
}

/// Steady churn on a small tree: retired nodes and values must be reclaimed while the tree
/// lives, so the live totals stay bounded by the tree size plus the backend's batching.
fn churn_is_bounded<D: rcu::Domain>(make: impl Fn() -> T<D>) {
    let base = live();
    let t = make();
    {
        let w = t.lock();
        for i in 0..100 {
            w.store_range(i * 10..=i * 10 + 5, Tracked::boxed(i))
                .unwrap();
        }
    }
    let steady = live();
    let mut peak = (0, 0, 0);
    for round in 0..20_000usize {
        {
            let w = t.lock();
            let i = round % 100;
            match round % 4 {
                0 => w
                    .store_range(i * 10..=i * 10 + 5, Tracked::boxed(round))
                    .unwrap(),
                1 => w
                    .store_range(i * 10 + 1..=i * 10 + 12, Tracked::boxed(round))
                    .unwrap(),
                2 => {
                    w.erase(i * 10 + 2);
                    w.store_range(i * 10..=i * 10 + 5, Tracked::boxed(round))
                        .unwrap();
                }
                _ => w.punch(i * 10 + 3..=i * 10 + 4).unwrap(),
            }
        }
        if round % 500 == 0 {
            let l = live();
            peak = (peak.0.max(l.0), peak.1.max(l.1), peak.2.max(l.2));
        }
    }
    t.validate().unwrap();
    let values_in_tree = t.len();
    // 20 000 writes retire ~40 000 objects; only a bounded backlog may stay alive.
    let slack_values = 4096;
    assert!(
        peak.2 - base.2 <= values_in_tree + 300 + slack_values,
        "retired values are not reclaimed while the tree lives: peak {} live values for a tree of {}",
        peak.2 - base.2,
        values_in_tree
    );
    let slack_nodes = 2048;
    assert!(
        peak.0 <= steady.0 + slack_nodes,
        "retired nodes are not reclaimed while the tree lives: peak {} live nodes, {} after the fill",
        peak.0 - base.0,
        steady.0 - base.0
    );
    drop(t);
    let after = live();
    assert_eq!(
        after, base,
        "leak after churn + drop (live now {after:?}, before {base:?})"
    );
}

/// After `synchronize()` on the tree's domain nothing retired is left: the live values are
/// exactly the distinct values in the tree, and the live nodes exactly as many as a
/// node-by-node clone of the tree allocates.
fn exact_after_synchronize<D: rcu::Domain>(make: impl Fn() -> T<D>) {
    let base = live();
    let t = make();
    for round in 0..3000usize {
        let w = t.lock();
        let i = (round * 7919) % 1000;
        match round % 5 {
            0 | 1 => w
                .store_range(i * 10..=i * 10 + 6, Tracked::boxed(round))
                .unwrap(),
            2 => w.punch(i * 10 + 2..=i * 10 + 3).unwrap(),
            3 => {
                w.erase(i * 10 + 5);
            }
            _ => w
                .store_range(i * 10 + 4..=i * 10 + 14, Tracked::boxed(round))
                .unwrap(),
        }
    }
    t.validate().unwrap();
    t.domain().synchronize();
    assert_eq!(
        t.domain().pending(),
        0,
        "retired objects left after synchronize()"
    );
    // Replaced nodes return to the tree's bounded node cache after their grace period;
    // release it so the count below is the nodes the tree itself uses.
    t.shrink();
    assert_eq!(t.shrink(), 0, "shrink() must empty the node cache");
    let distinct: std::collections::HashSet<*const Tracked> =
        t.read().iter().map(|(_, v)| v as *const Tracked).collect();
    let now = live();
    assert_eq!(
        now.2 - base.2,
        distinct.len(),
        "after synchronize() the live values should be exactly the {} distinct values in the tree",
        distinct.len()
    );
    let tree_nodes = now.0 - base.0;
    let copy = t.clone();
    let with_copy = live();
    let copy_nodes = with_copy.0 - now.0;
    assert_eq!(
        tree_nodes, copy_nodes,
        "after synchronize() the tree holds {tree_nodes} nodes but a node-by-node clone needs {copy_nodes}"
    );
    drop(copy);
    drop(t);
    assert_eq!(live(), base, "leak after synchronize + drop");
}

/// A reader section held across writes delays reclamation but does not leak: once it ends
/// and the tree is dropped, everything is freed.
fn held_reader_then_drop<D: rcu::Domain>(make: impl Fn() -> T<D>) {
    let base = live();
    let t = make();
    {
        let w = t.lock();
        for i in 0..200 {
            w.store_range(i * 4..=i * 4 + 2, Tracked::boxed(i)).unwrap();
        }
    }
    let r = t.read();
    let seen = r.load(40).map(|v| v.0);
    for round in 0..2000 {
        t.lock()
            .store_range(40..=42, Tracked::boxed(round + 1000))
            .unwrap();
    }
    // The reader still sees a live value (old or new), never freed memory.
    assert!(r.load(40).map(|v| v.0).is_some());
    assert_eq!(seen, Some(10));
    drop(r);
    drop(t);
    assert_eq!(live(), base, "leak after a held reader section");
}

/// One whole tree lifecycle through every API path that allocates: bulk build, `Extend`,
/// stores, splits, erases, a clone, `into_iter`, and drop.
fn lifecycle<D: rcu::Domain>(make: impl Fn() -> T<D>) {
    let mut t = make();
    t.extend((0..100usize).map(|j| (j * 10..=j * 10 + 5, Tracked::boxed(j))));
    {
        let w = t.lock();
        for j in 0..50usize {
            w.store_range(j * 7..=j * 7 + 2, Tracked::boxed(j)).unwrap();
        }
        w.punch(300..=305).unwrap();
        w.erase(500);
        let _ = w.alloc_range(3, Tracked::boxed(1), 2000..=3000);
        let _ = w.alloc_rrange(3, Tracked::boxed(2), 2000..=3000);
        let mut next = 0;
        let _ = w.alloc_cyclic(4000..=5000, &mut next, Tracked::boxed(3));
    }
    {
        let r = t.read();
        assert!(r.iter().count() > 0 && r.range(100..=400).rev().count() > 0);
        let _ = (r.walk(3), r.find(..), r.find_rev(..), r.load(10));
        let _ = (r.empty_area(.., 5), r.empty_area_rev(.., 5));
    }
    let copy = t.clone();
    drop(t);
    let n = copy.into_iter().count();
    assert!(n > 0);
    let built: MapleTree<Box<Tracked>> = (0..300usize)
        .map(|j| (j * 4..=j * 4 + 1, Tracked::boxed(j)))
        .collect();
    drop(built);
}

/// Repeating a whole lifecycle must not grow the heap: any byte an API path forgets to free
/// (not only nodes and values) shows up as growth proportional to the repetitions.
fn no_heap_growth<D: rcu::Domain>(make: impl Fn() -> T<D> + Copy) {
    for _ in 0..5 {
        lifecycle(make); // warm up thread-locals and backend caches
    }
    // Relaxed: read on the only thread doing work.
    let before = ALL_BYTES.load(Ordering::Relaxed);
    let rounds = 30;
    for _ in 0..rounds {
        lifecycle(make);
    }
    // Relaxed: as above.
    let after = ALL_BYTES.load(Ordering::Relaxed);
    let growth = after.saturating_sub(before);
    assert!(
        // A few KiB of slack for backend caches that fill in steps (garbage bags and the
        // like); a per-round leak of even 600 bytes exceeds it.
        growth < rounds * 64 + 16 * 1024,
        "the heap grew by {growth} bytes over {rounds} identical tree lifecycles ({} per round)",
        growth / rounds
    );
}

fn all<D: rcu::Domain>(make: impl Fn() -> T<D> + Copy) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    build_and_drop(make);
    into_iter_frees(make);
    churn_is_bounded(make);
    exact_after_synchronize(make);
    held_reader_then_drop(make);
    no_heap_growth(make);
}

#[test]
fn leaks_seize_plain() {
    all::<rcu::Seize>(MapleTree::new);
}

#[test]
fn leaks_seize_alloc() {
    all::<rcu::Seize>(MapleTree::new_alloc);
}

#[test]
fn leaks_epoch_plain() {
    all::<rcu::Epoch>(|| MapleTree::with_domain(rcu::Epoch::default()));
}

#[test]
fn leaks_epoch_alloc() {
    all::<rcu::Epoch>(|| MapleTree::alloc_with_domain(rcu::Epoch::default()));
}

#[test]
fn default_is_a_plain_tree_on_any_domain() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = live();
    let t: T<rcu::Epoch> = MapleTree::default();
    assert!(!t.is_alloc());
    t.lock().store_range(1..=2, Tracked::boxed(1)).unwrap();
    drop(t);
    assert_eq!(live(), base);
}
