//! Loom models (every modelled party is a spawned thread: with the main thread as one of
//! the parties, loom explored fewer weak-memory outcomes in the SeqCount model). Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p maple-rcu --test loom`.
#![cfg(loom)]

use core::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;
use rcu::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use rcu::sync::UnsafeCell;
use rcu::{Domain, Guard, Seize, SeqCount, TypeStableCache};

/// A reader never accepts a torn pair: the writer moves (a, b) from (0, 0) to (1, 1) and
/// then to (2, 2); a reader that passes `read_retry` saw a == b.
#[test]
fn seqcount_no_torn_read() {
    loom::model(|| {
        let s = Arc::new((SeqCount::new(), AtomicUsize::new(0), AtomicUsize::new(0)));
        let r = {
            let s = s.clone();
            thread::spawn(move || {
                // `try_read_begin` (refuses while odd) keeps the model finite.
                if let Some(start) = s.0.try_read_begin() {
                    // Relaxed: ordered by the SeqCount protocol.
                    let a = s.1.load(Ordering::Relaxed);
                    let b = s.2.load(Ordering::Relaxed);
                    if !s.0.read_retry(start) {
                        assert_eq!(a, b, "torn read accepted (start {start})");
                        // The snapshot is at least as new as the section that made `start`.
                        assert!(a >= start / 2, "stale read accepted (start {start}, a {a})");
                    }
                }
            })
        };
        for v in 1..=2 {
            s.0.write_begin();
            // Relaxed: ordered by the SeqCount protocol.
            s.1.store(v, Ordering::Relaxed);
            s.2.store(v, Ordering::Relaxed);
            s.0.write_end();
        }
        r.join().unwrap();
    });
}

/// A cached object with a canary that only its destructor writes, non-atomically.
struct Obj {
    key: AtomicUsize,
    refs: AtomicUsize,
    payload: AtomicUsize,
    /// Written only by `Drop`: a racing read means someone touched freed memory.
    canary: UnsafeCell<usize>,
}

// SAFETY: `canary` is written only by `Drop` (exclusive access); every other field is an
// atomic.
unsafe impl Sync for Obj {}

impl Default for Obj {
    fn default() -> Self {
        Obj {
            key: AtomicUsize::new(0),
            refs: AtomicUsize::new(0),
            payload: AtomicUsize::new(0),
            canary: UnsafeCell::new(0xC0FFEE),
        }
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.canary.with_mut(|c| {
            // SAFETY: exclusive access in `drop`; loom checks it against racing readers.
            unsafe { *c = 0xDEAD }
        });
    }
}

fn init(key: usize) -> impl FnOnce(&Obj) {
    move |o: &Obj| {
        // Relaxed: published by the Release store of `refs`.
        o.key.store(key, Ordering::Relaxed);
        o.payload.store(key * 10, Ordering::Relaxed);
        // Release: a reader whose Acquire increment reads this 1 sees key and payload.
        o.refs.store(1, Ordering::Release);
    }
}

/// The reader protocol: enter, load, read the canary, increment unless zero, validate.
/// Returns Some(true) for "got the object I wanted", Some(false) for "identity changed",
/// None for "missed" (null or count zero).
fn reader(cache: &TypeStableCache<Obj, Seize>, slot: &AtomicPtr<Obj>, want: usize) -> Option<bool> {
    let g = cache.enter();
    let p = g.protect(slot, Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: type-stable memory: a valid `Obj` while `g` lives.
    let o = unsafe { &*p };
    // A non-atomic read: loom reports it if it races with the object's destruction.
    let canary = o.canary.with(|c| {
        // SAFETY: only `Drop` writes the canary, and the guard keeps `Drop` away.
        unsafe { *c }
    });
    assert_eq!(canary, 0xC0FFEE);
    let mut r = o.refs.load(Ordering::Relaxed);
    loop {
        if r == 0 {
            return None;
        }
        // Acquire: see the identity published with the count we increment.
        match o
            .refs
            .compare_exchange(r, r + 1, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(x) => r = x,
        }
    }
    drop(g);
    let key = o.key.load(Ordering::Relaxed);
    let payload = o.payload.load(Ordering::Relaxed);
    assert_eq!(
        payload,
        key * 10,
        "identity torn: key {key} payload {payload}"
    );
    // Release: our reads happen-before the writer's free.
    o.refs.fetch_sub(1, Ordering::Release);
    Some(key == want)
}

/// Writer side: unpublish, drop the publication reference once readers are gone, free.
fn unpublish_and_free(cache: &TypeStableCache<Obj, Seize>, slot: &AtomicPtr<Obj>) {
    let old = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: a live object of `cache`.
    let o = unsafe { &*old };
    // Acquire on success: readers' accesses happen-before the free/reuse.
    while o
        .refs
        .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        thread::yield_now();
    }
    // SAFETY: from this cache, unpublished, no references left.
    unsafe { cache.free(NonNull::new(old).unwrap()) };
}

/// Outcomes seen across all executions of a model: [got wanted, identity changed, missed].
static OUTCOMES: std::sync::Mutex<[usize; 3]> = std::sync::Mutex::new([0; 3]);

fn record(got: Option<bool>) {
    let mut o = OUTCOMES.lock().unwrap();
    match got {
        Some(true) => o[0] += 1,
        Some(false) => o[1] += 1,
        None => o[2] += 1,
    }
}

/// A reader racing free + immediate reuse never accepts a torn identity, and detects the
/// identity change (the run must reach both "got it" and "identity changed").
#[test]
fn cache_reuse_identity_change_detected() {
    *OUTCOMES.lock().unwrap() = [0; 3];
    loom::model(|| {
        let cache = Arc::new(TypeStableCache::<Obj, Seize>::default());
        let a = cache.alloc(init(1));
        let slot = Arc::new(AtomicPtr::new(a.as_ptr()));
        let w = {
            let (cache, slot) = (cache.clone(), slot.clone());
            thread::spawn(move || {
                unpublish_and_free(&cache, &slot);
                // Reused at once for another identity (published elsewhere in real code).
                let b = cache.alloc(init(2));
                assert_eq!(b, a, "the freed object is reused at once");
            })
        };
        let r = {
            let (cache, slot) = (cache.clone(), slot.clone());
            thread::spawn(move || record(reader(&cache, &slot, 1)))
        };
        w.join().unwrap();
        r.join().unwrap();
    });
    let o = *OUTCOMES.lock().unwrap();
    eprintln!("outcomes [wanted, identity changed, missed] = {o:?}");
    assert!(o[0] > 0 && o[1] > 0 && o[2] > 0, "{o:?}");
}

/// A reader racing free + shrink + synchronize never touches the object after its
/// destructor ran (the canary read would race with the destructor's write).
#[test]
fn cache_shrink_waits_for_reader() {
    loom::model(|| {
        let cache = Arc::new(TypeStableCache::<Obj, Seize>::default());
        let slot = Arc::new(AtomicPtr::new(cache.alloc(init(1)).as_ptr()));
        let w = {
            let (cache, slot) = (cache.clone(), slot.clone());
            thread::spawn(move || {
                unpublish_and_free(&cache, &slot);
                assert_eq!(cache.shrink(), 1);
                cache.domain().synchronize();
                assert_eq!(cache.domain().pending(), 0);
            })
        };
        let r = {
            let (cache, slot) = (cache.clone(), slot.clone());
            thread::spawn(move || {
                let _ = reader(&cache, &slot, 1);
            })
        };
        w.join().unwrap();
        r.join().unwrap();
    });
}

/// An object that records its destruction.
struct Flagged {
    freed: Arc<rcu::sync::atomic::AtomicBool>,
}

struct SetFlag;

// SAFETY: reclaims a boxed `Flagged` once; only stores to its shared flag.
unsafe impl rcu::Reclaim<Flagged> for SetFlag {
    unsafe fn reclaim(ptr: *mut Flagged) {
        // SAFETY: from `Box::into_raw`, reclaimed once.
        let f = unsafe { Box::from_raw(ptr) };
        // Release: pairs with the Acquire loads after `synchronize` returns.
        f.freed.store(true, Ordering::Release);
    }
}

/// Two concurrent `synchronize` calls: neither returns before the object retired before
/// both has been destroyed (one of them takes it; the other must not return early with an
/// empty list while the first is still running its destructor).
#[test]
fn concurrent_synchronize_both_wait() {
    loom::model(|| {
        let domain = Arc::new(Seize::default());
        let freed = Arc::new(rcu::sync::atomic::AtomicBool::new(false));
        let obj = Box::into_raw(Box::new(Flagged {
            freed: freed.clone(),
        }));
        // SAFETY: never shared, retired once.
        unsafe { domain.retire::<Flagged, SetFlag>(obj) };
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (domain, freed) = (domain.clone(), freed.clone());
                thread::spawn(move || {
                    domain.synchronize();
                    // Acquire: pairs with the Release store in the destructor.
                    assert!(freed.load(Ordering::Acquire), "synchronize returned early");
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(domain.pending(), 0);
    });
}

/// The id/drain ordering of the retire buffers: a `synchronize` racing a `flush` on another
/// thread must not return before an object retired before both calls has been destroyed.
/// The flush may take the object out of the shards first; its block must then already have
/// an id (taken before the flush unlocked the shards) when the synchronize's own drain gets
/// through, so that the synchronize waits for it. (Taking the id after unlocking, as an
/// earlier version did, fails this model.)
#[test]
fn synchronize_racing_flush_waits_for_flushed_block() {
    loom::model(|| {
        let domain = Arc::new(Seize::default());
        let freed = Arc::new(rcu::sync::atomic::AtomicBool::new(false));
        let obj = Box::into_raw(Box::new(Flagged {
            freed: freed.clone(),
        }));
        // SAFETY: never shared, retired once.
        unsafe { domain.retire::<Flagged, SetFlag>(obj) };
        let flusher = {
            let domain = domain.clone();
            thread::spawn(move || domain.flush())
        };
        let syncer = {
            let (domain, freed) = (domain.clone(), freed.clone());
            thread::spawn(move || {
                domain.synchronize();
                // Acquire: pairs with the Release store in the destructor.
                assert!(freed.load(Ordering::Acquire), "synchronize returned early");
            })
        };
        flusher.join().unwrap();
        syncer.join().unwrap();
    });
}

/// Full blocks (`retire` filling a shard) race `synchronize` the same way: an object in a
/// block another thread is handing over is waited for.
#[test]
fn synchronize_racing_full_block_waits() {
    loom::model(|| {
        let domain = Arc::new(Seize::default());
        let freed = Arc::new(rcu::sync::atomic::AtomicBool::new(false));
        let first = Box::into_raw(Box::new(Flagged {
            freed: freed.clone(),
        }));
        // SAFETY: never shared, retired once.
        unsafe { domain.retire::<Flagged, SetFlag>(first) };
        let retirer = {
            let (domain, freed) = (domain.clone(), freed.clone());
            thread::spawn(move || {
                // Fills the shard (2 objects per block under loom): hands a block over.
                let second = Box::into_raw(Box::new(Flagged { freed }));
                // SAFETY: never shared, retired once.
                unsafe { domain.retire::<Flagged, SetFlag>(second) };
            })
        };
        domain.synchronize();
        // The first object was retired before the call: destroyed, whoever drained it.
        // Acquire: pairs with the Release store in the destructor.
        assert!(freed.load(Ordering::Acquire), "synchronize returned early");
        retirer.join().unwrap();
    });
}

/// Debug builds catch `synchronize` under a guard of the same domain in the loom build too.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "would deadlock")]
fn synchronize_under_own_guard_panics_in_debug() {
    loom::model(|| {
        let domain = Seize::default();
        let _g = domain.enter();
        domain.synchronize();
    });
}
