//! Regression tests for the maple audit findings: panics from user code inside writes,
//! exhausted `RangeInclusive` input, re-entrant `lock()`, `&mut` paths after a leaked
//! guard, and clone reference counts.
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use maple::{MapleTree, Value};
use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rcu::{Domain, Reclaim, Seize};

/// Tests in this file share the drop counters below: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const IDS: usize = 256;
/// How many times each `Counted` id was dropped.
static DROPS: [AtomicUsize; IDS] = [const { AtomicUsize::new(0) }; IDS];
/// The id whose next drop panics (`usize::MAX`: none).
static PANIC_ID: AtomicUsize = AtomicUsize::new(usize::MAX);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn reset_drops() {
    for d in &DROPS {
        // Relaxed: test counters, read after the tree and its domain are gone.
        d.store(0, Ordering::Relaxed);
    }
}

fn drops(id: usize) -> usize {
    // Relaxed: see `reset_drops`.
    DROPS[id].load(Ordering::Relaxed)
}

/// An entry payload that counts its drops (per id: clones share it) and can be told to
/// panic in one of them.
#[derive(Debug, Clone)]
struct Counted(usize);

impl Drop for Counted {
    fn drop(&mut self) {
        // Relaxed: test counter.
        DROPS[self.0].fetch_add(1, Ordering::Relaxed);
        // Relaxed: test flag, set by the same thread before the write.
        if PANIC_ID
            .compare_exchange(self.0, usize::MAX, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            panic!("Counted({}) panics in drop (test)", self.0);
        }
    }
}

/// When set, the next `Fussy::retire` panics after handing the object over (as if the
/// domain had run an older, panicking destructor on the caller's thread).
static ARMED: AtomicBool = AtomicBool::new(false);

/// A domain that forwards to `Seize` but can make one `retire` call panic.
#[derive(Debug, Default)]
struct Fussy {
    inner: Seize,
}

// SAFETY: every call is forwarded to `Seize`, which keeps the grace-period promise; the
// injected panic happens after the object was handed over, so it is reclaimed once.
unsafe impl Domain for Fussy {
    type Guard<'d> = <Seize as Domain>::Guard<'d>;

    const NAME: &'static str = "fussy";

    fn enter(&self) -> Self::Guard<'_> {
        self.inner.enter()
    }

    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
        // SAFETY: forwarded from the caller.
        unsafe { self.inner.retire::<T, R>(ptr) };
        // Relaxed: test flag, set by this same thread.
        if ARMED.swap(false, Ordering::Relaxed) {
            panic!("a destructor run by the domain panicked (test)");
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }

    fn synchronize(&self) {
        self.inner.synchronize()
    }

    fn pending(&self) -> usize {
        self.inner.pending()
    }
}

fn counted(id: usize) -> Box<Counted> {
    Box::new(Counted(id))
}

/// Ranges and ids as the tree reports them.
fn contents<D: Domain>(t: &MapleTree<Box<Counted>, D>) -> Vec<(usize, usize, usize)> {
    let r = t.read();
    r.iter().map(|(k, v)| (*k.start(), *k.end(), v.0)).collect()
}

/// Finding 2: a panic from the domain while a write that split a shared value hands over
/// its replaced nodes must not lose the split's duplicate count (else the value would be
/// dropped once per half: a double free).
#[test]
fn panic_in_domain_during_split_keeps_counts() {
    let _s = serial();
    reset_drops();
    let t: MapleTree<Box<Counted>, Fussy> = MapleTree::default();
    t.lock().store_range(0..=9999, counted(0)).unwrap();
    let mut panicked = false;
    let mut stored = 0;
    // Relaxed: test flag for this thread.
    ARMED.store(true, Ordering::Relaxed);
    let res = catch_unwind(AssertUnwindSafe(|| {
        let w = t.lock();
        // Each store lands inside value 0's right part: every write splits it (one more
        // slot for the same word) and replaces at least one node; after a dozen writes the
        // replaced nodes go to the domain, which then panics.
        for k in 1..200 {
            w.store_range(k * 40 + 3..=k * 40 + 5, counted(k)).unwrap();
            stored = k;
        }
    }));
    if res.is_err() {
        panicked = true;
    }
    assert!(panicked, "the armed domain never panicked");
    // Relaxed: test flag.
    assert!(!ARMED.load(Ordering::Relaxed));
    t.validate().unwrap();
    let c = contents(&t);
    assert_eq!(t.len(), c.len(), "len must be exact after the panic");
    // The panicking write itself was published: value `stored + 1` is in the tree.
    assert!(c.iter().any(|&(_, _, id)| id == stored + 1), "{c:?}");
    let zero_slots = c.iter().filter(|&&(_, _, id)| id == 0).count();
    assert_eq!(zero_slots, stored + 2, "{c:?}");
    // The (poisoned) lock still works; remove every slot of value 0 one by one.
    {
        let w = t.lock();
        for &(a, b, id) in &c {
            if id == 0 {
                w.punch(a..=b).unwrap();
            }
        }
    }
    t.validate().unwrap();
    drop(t);
    for id in 0..=stored + 1 {
        assert_eq!(drops(id), 1, "value {id} dropped {} times", drops(id));
    }
}

/// Finding 2, `&mut` path: a value's `Drop` panicking during `store_range_mut` leaves the
/// tree valid and exact, and nothing is dropped twice.
#[test]
fn panic_in_drop_during_exclusive_store() {
    let _s = serial();
    reset_drops();
    let mut t: MapleTree<Box<Counted>> = MapleTree::new();
    for k in 0..100 {
        t.store_range_mut(k * 10..=k * 10 + 9, counted(k)).unwrap();
    }
    // Split value 100 in two, then overwrite value 50 and its neighbours.
    t.store_range_mut(2000..=2999, counted(100)).unwrap();
    t.store_range_mut(2400..=2499, counted(101)).unwrap();
    // Relaxed: test flag for this thread.
    PANIC_ID.store(50, Ordering::Relaxed);
    let res = catch_unwind(AssertUnwindSafe(|| {
        t.store_range_mut(495..=515, counted(102)).unwrap();
    }));
    assert!(res.is_err(), "value 50's drop should have panicked");
    t.validate().unwrap();
    assert_eq!(t.len(), contents(&t).len());
    assert_eq!(t.read().load(500).map(|c| c.0), Some(102));
    // Both halves of value 100 still there; removing them drops it once.
    t.punch_mut(2000..=2399).unwrap();
    assert_eq!(drops(100), 0);
    t.punch_mut(2500..=2999).unwrap();
    assert_eq!(drops(100), 1);
    drop(t);
    for id in 0..=102 {
        assert_eq!(drops(id), 1, "value {id} dropped {} times", drops(id));
    }
}

/// Finding 2, drop of the tree itself with a panicking value: no double drop.
#[test]
fn panic_in_drop_during_tree_drop_is_not_a_double_free() {
    let _s = serial();
    reset_drops();
    let mut t: MapleTree<Box<Counted>> = MapleTree::new();
    t.store_range_mut(0..=99, counted(0)).unwrap();
    t.store_range_mut(40..=49, counted(1)).unwrap();
    // Relaxed: test flag for this thread.
    PANIC_ID.store(1, Ordering::Relaxed);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(t))).is_err());
    assert_eq!(drops(1), 1);
    assert!(drops(0) <= 1);
}

/// Finding 8: an exhausted `RangeInclusive` is empty and must be skipped, in the bulk
/// path and in the store-by-store path.
#[test]
fn exhausted_range_inclusive_is_skipped() {
    let v = |x| Value::new(x).unwrap();
    let mut gone = 5..=5;
    assert_eq!(gone.next(), Some(5));
    assert!(gone.is_empty());

    let t: MapleTree<Value> = [(gone.clone(), v(1))].into_iter().collect();
    assert!(t.is_empty());
    assert_eq!(t.read().load(5), None);

    // Sorted input (the bulk-build candidate) with an exhausted range in the middle.
    let t: MapleTree<Value> = [(0..=3, v(1)), (gone.clone(), v(2)), (7..=9, v(3))]
        .into_iter()
        .collect();
    t.validate().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.read().load(5), None);
    assert_eq!(t.read().load(8).map(Value::get), Some(3));

    // Unsorted input (store-by-store path) and `extend` into a non-empty tree.
    let mut t: MapleTree<Value> = [(7..=9, v(3)), (gone.clone(), v(2)), (0..=3, v(1))]
        .into_iter()
        .collect();
    t.extend([(gone.clone(), v(4))]);
    t.validate().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.read().load(5), None);

    // A partly consumed range stores what is left of it.
    let mut part = 10..=20;
    part.next();
    let t: MapleTree<Value> = [(part, v(9))].into_iter().collect();
    assert_eq!(t.read().walk(15).0, 11..=20);
}

/// Finding 10: a second `lock()` on the same thread panics with a clear message.
#[test]
fn reentrant_lock_panics() {
    let t: MapleTree<Value> = MapleTree::new();
    let w = t.lock();
    let err = catch_unwind(AssertUnwindSafe(|| drop(t.lock()))).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("");
    assert!(msg.contains("already holds"), "{msg}");
    // The first guard is unaffected.
    w.store_range(1..=2, Value::new(1).unwrap()).unwrap();
    drop(w);
    // After the guard is gone the thread may lock again, and other threads too.
    drop(t.lock());
    std::thread::scope(|s| {
        s.spawn(|| drop(t.lock()));
    });
    t.validate().unwrap();
}

/// Finding 7: `&mut` operations do not take the lock, so a leaked guard cannot deadlock
/// them.
#[test]
fn mut_paths_after_leaked_guard() {
    let mut t: MapleTree<Value> = MapleTree::new();
    core::mem::forget(t.lock());
    t.store_range_mut(0..=9, Value::new(1).unwrap()).unwrap();
    t.punch_mut(3..=4).unwrap();
    t.validate().unwrap();
    let got: Vec<_> = t.into_iter().map(|(r, v)| (r, v.get())).collect();
    assert_eq!(got, [(0..=2, 1), (5..=9, 1)]);
}

/// Finding 3: cloning an `Arc` tree takes one strong reference per copied slot (a value
/// shared by two ranges of the source included) and gives each back once.
#[test]
fn clone_arc_tree_counts() {
    let a = Arc::new(7u32);
    let mut t: MapleTree<Arc<u32>> = MapleTree::new();
    t.store_range_mut(0..=99, a.clone()).unwrap();
    t.store_range_mut(40..=49, Arc::new(8)).unwrap();
    assert_eq!(Arc::strong_count(&a), 2);
    let c = t.clone();
    c.validate().unwrap();
    assert_eq!(Arc::strong_count(&a), 4);
    {
        let w = c.lock();
        w.punch(0..=39).unwrap();
    }
    c.domain().synchronize();
    assert_eq!(Arc::strong_count(&a), 3);
    drop(c);
    assert_eq!(Arc::strong_count(&a), 2);
    drop(t);
    assert_eq!(Arc::strong_count(&a), 1);
}

/// Finding 3: cloning a `Box` tree while a reader holds a reference into it.
#[test]
fn clone_box_tree_with_reader() {
    let _s = serial();
    reset_drops();
    let t: MapleTree<Box<Counted>> = MapleTree::new();
    t.lock().store_range(0..=99, counted(0)).unwrap();
    t.lock().store_range(10..=19, counted(1)).unwrap();
    let r = t.read();
    let held = r.load(50).unwrap();
    let c = t.clone();
    assert_eq!(held.0, 0);
    assert_eq!(c.read().load(5).map(|x| x.0), Some(0));
    drop(r);
    drop(c);
    // The copy held two separate clones of value 0 (one per range) and one of value 1.
    assert_eq!(drops(0), 2);
    assert_eq!(drops(1), 1);
    drop(t);
    assert_eq!(drops(0), 3);
    assert_eq!(drops(1), 2);
}
