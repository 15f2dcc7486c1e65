//! `TypeStableCache` tests: reuse, grace periods, and a multi-threaded reader/writer stress
//! following the documented reader protocol. `MAPLE_STRESS=1` runs longer.
#![cfg(not(loom))]

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use rcu::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use rcu::{CacheStats, Domain, Epoch, Guard, Seize, TypeStableCache};

/// An object with an identity (`key`), a reference count (0 = free), and a payload that
/// must always match the key.
#[derive(Default)]
struct Obj {
    key: AtomicUsize,
    refs: AtomicUsize,
    payload: AtomicUsize,
}

fn payload_of(key: usize) -> usize {
    key.wrapping_mul(0x9E37_79B9).rotate_left(7)
}

fn init(key: usize) -> impl FnOnce(&Obj) {
    move |o: &Obj| {
        // Relaxed: published by the Release store of `refs` below.
        o.key.store(key, Ordering::Relaxed);
        o.payload.store(payload_of(key), Ordering::Relaxed);
        // Release: a reader whose Acquire increment reads this sees key and payload.
        o.refs.store(1, Ordering::Release);
    }
}

/// Reader protocol step 3: increment unless zero.
fn try_get(o: &Obj) -> bool {
    let mut r = o.refs.load(Ordering::Relaxed);
    loop {
        if r == 0 {
            return false;
        }
        // Acquire: see the identity published with the count we increment.
        match o
            .refs
            .compare_exchange_weak(r, r + 1, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(x) => r = x,
        }
    }
}

fn put(o: &Obj) {
    // Release: our reads happen-before the writer's free.
    o.refs.fetch_sub(1, Ordering::Release);
}

/// Writer side: wait for readers, then drop the publication reference (1 -> 0).
fn retire_ref(o: &Obj) {
    // Acquire on success: readers' accesses happen-before the free.
    while o
        .refs
        .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}

#[test]
fn free_then_alloc_reuses_at_once_and_shrink_releases() {
    let cache: TypeStableCache<Obj> = TypeStableCache::default();
    let a = cache.alloc(init(1));
    let b = cache.alloc(init(2));
    assert_ne!(a, b);
    assert_eq!(cache.len(), 2);
    // SAFETY: from this cache, freed once, not used after.
    unsafe { cache.free(a) };
    assert_eq!(
        cache.stats(),
        CacheStats {
            in_use: 1,
            free: 1,
            released: 0
        }
    );
    let c = cache.alloc(init(3));
    assert_eq!(a, c, "a freed object is reused at once");
    // SAFETY: `c` is live and ours.
    assert_eq!(unsafe { c.as_ref() }.key.load(Ordering::Relaxed), 3);
    // SAFETY: from this cache, freed once each.
    unsafe {
        cache.free(b);
        cache.free(c);
    }
    assert_eq!(cache.capacity(), 2);
    assert!(cache.is_empty());
    assert_eq!(cache.shrink(), 2);
    assert_eq!(cache.capacity(), 0);
    assert_eq!(cache.stats().released, 2);
    cache.domain().synchronize();
    assert_eq!(cache.domain().pending(), 0);
    assert!(format!("{cache:?}").contains("TypeStableCache"));
}

static DROPS_SEIZE: AtomicUsize = AtomicUsize::new(0);
static DROPS_EPOCH: AtomicUsize = AtomicUsize::new(0);

struct Counted(AtomicUsize, &'static AtomicUsize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

/// Memory goes back only after a grace period: a reader inside a guard keeps a freed,
/// shrunk object alive; and dropping the cache drops every object it owns.
fn shrink_waits_for_readers<D: Domain>(drops: &'static AtomicUsize) {
    let cache = Arc::new(TypeStableCache::<Counted, D>::new(move || {
        Counted(AtomicUsize::new(7), drops)
    }));
    let p = cache.alloc(|_| {});
    let slot = Arc::new(AtomicPtr::new(p.as_ptr()));
    let in_guard = Arc::new(Barrier::new(2));
    let release = Arc::new(AtomicBool::new(false));
    let reader = {
        let (cache, slot, in_guard, release) = (
            cache.clone(),
            slot.clone(),
            in_guard.clone(),
            release.clone(),
        );
        thread::spawn(move || {
            let g = cache.enter();
            let q = g.protect(&slot, Ordering::Acquire);
            in_guard.wait();
            // Acquire: pairs with the Release below.
            while !release.load(Ordering::Acquire) {
                // SAFETY: protected by `g`; the cache keeps the memory until a grace period
                // of its domain has passed.
                assert_eq!(unsafe { &*q }.0.load(Ordering::Relaxed), 7);
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    in_guard.wait();
    slot.store(core::ptr::null_mut(), Ordering::Release);
    // SAFETY: from this cache, freed once; the reader follows the protocol.
    unsafe { cache.free(p) };
    assert_eq!(cache.shrink(), 1);
    cache.domain().flush();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(drops.load(Ordering::Relaxed), 0, "{}", D::NAME);
    release.store(true, Ordering::Release);
    reader.join().unwrap();
    cache.domain().synchronize();
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    // In-use and free objects are dropped with the cache.
    let _in_use = cache.alloc(|_| {});
    let f = cache.alloc(|_| {});
    // SAFETY: from this cache, freed once.
    unsafe { cache.free(f) };
    drop(Arc::try_unwrap(cache).expect("threads joined"));
    assert_eq!(drops.load(Ordering::Relaxed), 3);
}

#[test]
fn shrink_waits_for_readers_seize() {
    shrink_waits_for_readers::<Seize>(&DROPS_SEIZE);
}

#[test]
fn shrink_waits_for_readers_epoch() {
    shrink_waits_for_readers::<Epoch>(&DROPS_EPOCH);
}

/// Writers replace objects in slots (free + immediate reuse); readers follow the protocol
/// and must never accept an object whose payload does not match its key, and must detect
/// identity changes.
fn stress<D: Domain>() {
    const SLOTS: usize = 4;
    let rounds = if std::env::var_os("MAPLE_STRESS").is_some() {
        200_000
    } else {
        20_000
    };
    let cache = Arc::new(TypeStableCache::<Obj, D>::default());
    let slots: Arc<Vec<AtomicPtr<Obj>>> = Arc::new(
        (0..SLOTS)
            .map(|i| AtomicPtr::new(cache.alloc(init(i)).as_ptr()))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, changed, missed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (cache, slots, stop) = (cache.clone(), slots.clone(), stop.clone());
            let (ok, changed, missed) = (ok.clone(), changed.clone(), missed.clone());
            thread::spawn(move || {
                let mut i = r;
                // Relaxed: only a stop flag.
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 1) % SLOTS;
                    let g = cache.enter();
                    let p = g.protect(&slots[i], Ordering::Acquire);
                    // SAFETY: type-stable: `p` stays a valid `Obj` while `g` lives.
                    let o = unsafe { &*p };
                    if !try_get(o) {
                        missed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    drop(g); // the reference now keeps the object from being freed
                    let key = o.key.load(Ordering::Relaxed);
                    assert_eq!(o.payload.load(Ordering::Relaxed), payload_of(key));
                    if key % SLOTS == i {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        changed.fetch_add(1, Ordering::Relaxed);
                    }
                    put(o);
                }
            })
        })
        .collect();
    for n in 0..rounds {
        let i = n % SLOTS;
        // A key for slot `i`; old objects' memory is reused at once for any slot.
        let key = SLOTS * (n + 1) + i;
        let new = cache.alloc(init(key));
        let old = slots[i].swap(new.as_ptr(), Ordering::AcqRel);
        // SAFETY: `old` is a live object of this cache that we published.
        retire_ref(unsafe { &*old });
        // SAFETY: from this cache, unpublished, publication reference dropped.
        unsafe { cache.free(core::ptr::NonNull::new(old).unwrap()) };
        if n % 4096 == 0 {
            cache.shrink();
        }
    }
    // Readers may not even have started on a loaded machine; let them finish a lookup.
    while ok.load(Ordering::Relaxed) == 0 {
        thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    eprintln!(
        "{}: ok {} identity-changed {} missed {} stats {:?}",
        D::NAME,
        ok.load(Ordering::Relaxed),
        changed.load(Ordering::Relaxed),
        missed.load(Ordering::Relaxed),
        cache.stats()
    );
    assert_eq!(cache.len(), SLOTS);
    for s in slots.iter() {
        let p = s.load(Ordering::Relaxed);
        // SAFETY: published objects of this cache, freed once.
        unsafe { cache.free(core::ptr::NonNull::new(p).unwrap()) };
    }
    assert!(cache.is_empty());
    cache.shrink();
    cache.domain().synchronize();
    assert_eq!(cache.capacity(), 0);
    assert_eq!(cache.domain().pending(), 0);
}

#[test]
fn stress_seize() {
    stress::<Seize>();
}

#[test]
fn stress_epoch() {
    stress::<Epoch>();
}
