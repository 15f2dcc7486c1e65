//! How a kernel, or any runtime with an RCU of its own, plugs it into `maple`: implement
//! [`rcu::Domain`] and [`rcu::Guard`] for it, then use `MapleTree<E, YourDomain>`.
//!
//! ```text
//! cargo run -p maple-tree --example custom_domain
//! ```
//!
//! The domain written here, [`CounterRcu`], is the scheme of Linux's SRCU reduced to one
//! global pair of counters. A reader increments the counter of the current *phase* on
//! entry and decrements it on exit. Retired objects wait in the bag of the phase they were
//! retired in. A grace period flips the phase once the *other* counter has drained: then no
//! reader can still see what was retired before the previous flip, so that bag is freed.
//! New readers join the new phase's counter, so a grace period waits only for readers that
//! were already there: writers are never starved by a stream of readers.
//!
//! A kernel would use per-CPU counters (or its scheduler's quiescent states) instead of
//! two shared ones, but the contract it must meet is the same: see the `# Safety` sections
//! of [`rcu::Domain`] and [`rcu::Guard`].

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::sync::atomic::{fence, AtomicBool};
use std::sync::{mpsc, Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread;

use maple::MapleTree;
use rcu::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use rcu::{Domain, Guard, Reclaim};

/// Retirements that fill the current bag to this size try to end a grace period.
const BATCH: usize = 64;

/// A retired object and its type-erased destructor.
#[derive(Debug)]
struct Retired {
    ptr: *mut (),
    reclaim: unsafe fn(*mut ()),
}

// SAFETY: a retired object is reachable only from the domain, and `Domain::retire`'s
// contract makes running its destructor on any thread sound.
unsafe impl Send for Retired {}

/// `R::reclaim` for a type-erased pointer.
///
/// # Safety
///
/// Same as `R::reclaim(ptr.cast::<T>())`.
unsafe fn reclaim_erased<T, R: Reclaim<T>>(ptr: *mut ()) {
    // SAFETY: forwarded to the caller.
    unsafe { R::reclaim(ptr.cast::<T>()) }
}

/// A reclamation domain with two global reader counters and a phase bit (see the top of
/// this file).
#[derive(Debug, Default)]
pub struct CounterRcu {
    /// Readers inside a section, by the phase they entered in.
    readers: [AtomicUsize; 2],
    /// The current phase, 0 or 1. Changed only with both `advance` and `bags` locked.
    phase: AtomicUsize,
    /// Objects retired in each phase, waiting for their grace period.
    bags: Mutex<[Vec<Retired>; 2]>,
    /// Held while a grace period ends and its bag is destroyed: one at a time.
    advance: Mutex<()>,
    /// Retired and not yet destroyed.
    pending: AtomicUsize,
    /// Grace periods completed so far.
    grace_periods: AtomicUsize,
}

/// A read-side section of a [`CounterRcu`]; `!Send`, ends when dropped.
#[derive(Debug)]
pub struct CounterGuard<'d> {
    domain: &'d CounterRcu,
    /// The counter this section incremented.
    phase: usize,
    _not_send: PhantomData<*mut ()>,
}

impl CounterRcu {
    /// Grace periods completed so far.
    pub fn grace_periods(&self) -> usize {
        // Relaxed: a statistic.
        self.grace_periods.load(Ordering::Relaxed)
    }

    fn bags(&self) -> MutexGuard<'_, [Vec<Retired>; 2]> {
        // A panic while a bag was locked cannot leave the vectors inconsistent.
        self.bags.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// End a grace period if the other phase's readers have all left: destroy the other
    /// phase's bag and make it the current phase. Returns whether it did. The caller holds
    /// `advance`.
    fn try_advance(&self, _advancing: &MutexGuard<'_, ()>) -> bool {
        // Relaxed: `phase` changes only under `advance`, which we hold.
        let old = 1 - self.phase.load(Ordering::Relaxed);
        // SeqCst fence: pairs with the fences in `enter` and `retire`. A reader whose
        // increment this thread does not see below is ordered after this fence, so after
        // the unlinking of every object in `bags[old]` (see `enter`).
        fence(Ordering::SeqCst);
        // Acquire: the decrements (Release) of the readers that left happen-before the
        // destruction below, so their reads of the objects come first.
        if self.readers[old].load(Ordering::Acquire) != 0 {
            return false;
        }
        let garbage = {
            let mut bags = self.bags();
            // Everything in `bags[old]` was retired before the flip away from `old`: while
            // the phase is not `old`, `retire` pushes to the other bag.
            let garbage = mem::take(&mut bags[old]);
            // Relaxed: readers may see the old phase for a while; both counters are safe
            // to join (see `enter`).
            self.phase.store(old, Ordering::Relaxed);
            garbage
        };
        // Outside the `bags` lock: a destructor may retire more objects.
        for r in garbage {
            // SAFETY: retired by `retire` with its destructor, destroyed once (taken out of
            // the bag), and its grace period is over (argued above).
            unsafe { (r.reclaim)(r.ptr) };
            // Relaxed: a count for `pending`.
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
        // Relaxed: a statistic.
        self.grace_periods.fetch_add(1, Ordering::Relaxed);
        true
    }
}

// SAFETY: `retire` never destroys an object while a guard that was live at the call is
// live: the object is destroyed only after the phase it was retired in has been left and
// that phase's counter (which every guard live at the call was counted in, or which sees
// the unlink, see `enter`) has been seen at zero. Each object sits in one bag once and is
// destroyed once. Guards meet the `Guard` contract (below).
unsafe impl Domain for CounterRcu {
    type Guard<'d> = CounterGuard<'d>;

    const NAME: &'static str = "counter";

    fn enter(&self) -> CounterGuard<'_> {
        // Relaxed: joining either counter is safe. A reader that joins the old phase's
        // counter after a grace period checked it is ordered after that check's fence by
        // the fence below, so it cannot see what that grace period frees; the next grace
        // period then waits for it.
        let phase = self.phase.load(Ordering::Relaxed);
        // Relaxed: ordered by the fence below.
        self.readers[phase].fetch_add(1, Ordering::Relaxed);
        // SeqCst fence, pairing with the fences in `retire` and `try_advance`: either they
        // come first, and this section's loads see every unlink made before them, or this
        // one comes first, and a grace period that checks our counter after it sees the
        // increment.
        fence(Ordering::SeqCst);
        CounterGuard {
            domain: self,
            phase,
            _not_send: PhantomData,
        }
    }

    unsafe fn retire<T, R: Reclaim<T>>(&self, ptr: *mut T) {
        // SeqCst fence: the caller unlinked `ptr` before this call; this fence publishes
        // the unlink to every reader whose `enter` fence comes later (see `enter`).
        fence(Ordering::SeqCst);
        // Relaxed: a count for `pending`.
        self.pending.fetch_add(1, Ordering::Relaxed);
        let full = {
            let mut bags = self.bags();
            // Relaxed: `phase` changes only with `bags` locked, which we hold.
            let phase = self.phase.load(Ordering::Relaxed);
            bags[phase].push(Retired {
                ptr: ptr.cast(),
                reclaim: reclaim_erased::<T, R>,
            });
            bags[phase].len() >= BATCH
        };
        if full {
            self.flush();
        }
    }

    fn flush(&self) {
        // Never blocks: if another thread (or this one, from inside a destructor) is
        // ending a grace period, leave it to them.
        if let Ok(advancing) = self.advance.try_lock() {
            self.try_advance(&advancing);
        }
    }

    fn synchronize(&self) {
        // Two grace periods of our own: the first destroys the other phase's bag, the
        // second the current one, so everything retired before this call. Grace periods
        // are serialised by `advance`, so earlier ones have fully finished. As with every
        // domain, calling this inside one of its own sections would wait forever for
        // that section.
        let mut done = 0;
        while done < 2 {
            let advancing = self.advance.lock().unwrap_or_else(PoisonError::into_inner);
            if self.try_advance(&advancing) {
                done += 1;
            } else {
                drop(advancing);
                thread::yield_now();
            }
        }
    }

    fn pending(&self) -> usize {
        // Relaxed: a count for tests.
        self.pending.load(Ordering::Relaxed)
    }
}

impl Drop for CounterRcu {
    fn drop(&mut self) {
        // `&mut self`: no guard exists (guards borrow the domain). Destructors may retire
        // more objects, so repeat until both bags stay empty.
        loop {
            let bags = self.bags.get_mut().unwrap_or_else(PoisonError::into_inner);
            let garbage: Vec<Retired> = bags.iter_mut().flat_map(mem::take).collect();
            if garbage.is_empty() {
                break;
            }
            for r in garbage {
                // SAFETY: no reader can exist; each object is taken out of its bag once.
                unsafe { (r.reclaim)(r.ptr) };
            }
        }
    }
}

impl Drop for CounterGuard<'_> {
    fn drop(&mut self) {
        // Release: this section's reads happen-before the destruction by a grace period
        // that sees the counter at zero (its Acquire load).
        self.domain.readers[self.phase].fetch_sub(1, Ordering::Release);
    }
}

/// At least `Acquire`: what a reader needs to read what the pointer points to.
fn load_order(order: Ordering) -> Ordering {
    match order {
        Ordering::SeqCst => Ordering::SeqCst,
        _ => Ordering::Acquire,
    }
}

// SAFETY: `protect` and `protect_word` return the value they load, with at least the
// requested ordering. It stays protected until the guard drops: the guard's counter stays
// non-zero, so no grace period that could free the object completes (see `Domain`).
unsafe impl Guard for CounterGuard<'_> {
    fn protect<T>(&self, src: &AtomicPtr<T>, order: Ordering) -> *mut T {
        src.load(load_order(order))
    }

    fn protect_word(&self, src: &AtomicUsize, order: Ordering) -> usize {
        src.load(load_order(order))
    }

    fn flush(&self) {
        self.domain.flush();
    }
}

// ---------------------------------------------------------------------------------------
// The demonstration: a maple tree on `CounterRcu`, read by several threads while a writer
// rewrites it.

/// Readers, ranges, and the writer's passes over them.
const READERS: usize = 4;
const RANGES: usize = 64;
const PASSES: usize = 40;
/// Each range covers this many indices.
const SPAN: usize = 0x1000;

/// A value that counts its drops, so the run can show that each was destroyed once.
struct Tracked {
    range: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // Relaxed: read after every thread has been joined.
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a run saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// A value loaded in a read section stayed alive while the writer replaced it.
    pub kept_while_read: bool,
    /// ... and was destroyed by `synchronize` once the section had ended.
    pub freed_after: bool,
    /// Loads made by the readers while the writer ran.
    pub loads: usize,
    /// Loads that found a value of another range, or nothing (must be 0).
    pub wrong: usize,
    /// Stores the writer made meanwhile.
    pub stores: usize,
    /// Grace periods the domain completed.
    pub grace_periods: usize,
    /// Objects still retired after `synchronize` (must be 0).
    pub pending_after_sync: usize,
    /// Values created.
    pub created: usize,
    /// Values dropped by the end (must equal `created`).
    pub dropped: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b| if b { "yes" } else { "NO" };
        writeln!(f, "maple tree on the `{}` domain", CounterRcu::NAME)?;
        writeln!(
            f,
            "a value loaded in a read section outlived its replacement: {}",
            yes(self.kept_while_read)
        )?;
        writeln!(
            f,
            "and was freed by synchronize after the section: {}",
            yes(self.freed_after)
        )?;
        writeln!(
            f,
            "{READERS} readers made {} loads while 1 writer made {} stores",
            self.loads, self.stores
        )?;
        writeln!(
            f,
            "loads that found the wrong value or none: {}",
            self.wrong
        )?;
        writeln!(f, "grace periods completed: {}", self.grace_periods)?;
        writeln!(
            f,
            "retired objects pending after synchronize: {}",
            self.pending_after_sync
        )?;
        writeln!(
            f,
            "values created: {}, dropped: {}",
            self.created, self.dropped
        )
    }
}

/// Run the demonstration: a tree of `RANGES` ranges on a `CounterRcu`; one reader holding
/// a section across a replacement; then `READERS` threads loading while a writer replaces
/// every value `PASSES` times (every other pass by storing the two halves of each range
/// separately, which rewrites nodes); then everything torn down.
pub fn run() -> Report {
    let drops = Arc::new(AtomicUsize::new(0));
    // Relaxed: `drops` is read where the dropping threads are known to be done.
    let dropped = || drops.load(Ordering::Relaxed);
    let mut created = 0;
    let mut value = |range| {
        created += 1;
        Box::new(Tracked {
            range,
            drops: Arc::clone(&drops),
        })
    };
    let tree: MapleTree<Box<Tracked>, CounterRcu> = MapleTree::with_domain(CounterRcu::default());
    for r in 0..RANGES {
        let v = value(r);
        tree.lock()
            .store_range(r * SPAN..(r + 1) * SPAN, v)
            .expect("a valid range");
    }

    // 1. A section keeps what it loaded alive: the writer replaces range 0's value while a
    //    reader holds it, and a grace period cannot end until the reader leaves.
    let (kept_while_read, freed_after) = thread::scope(|s| {
        let (entered_tx, entered) = mpsc::channel();
        let (leave, leave_rx) = mpsc::channel::<()>();
        let tree = &tree;
        let reader = s.spawn(move || {
            let guard = tree.read();
            let v = guard.load(0).expect("range 0 is stored");
            entered_tx.send(()).expect("main thread waits");
            leave_rx.recv().expect("main thread signals");
            v.range == 0 // still readable: not freed
        });
        entered.recv().expect("the reader enters");
        let before = dropped();
        let v = value(0);
        tree.lock().store_range(0..SPAN, v).expect("a valid range");
        tree.domain().flush();
        tree.domain().flush();
        let kept = dropped() == before;
        leave.send(()).expect("the reader waits");
        let read_ok = reader.join().expect("the reader panicked");
        tree.domain().synchronize();
        (kept && read_ok, dropped() == before + 1)
    });

    // 2. Readers on every thread while the writer rewrites the tree.
    let writing = AtomicBool::new(true);
    let start = Barrier::new(READERS + 1);
    let (mut loads, mut wrong, mut stores) = (0, 0, 0);
    thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|id| {
                let (tree, writing, start) = (&tree, &writing, &start);
                s.spawn(move || {
                    let (mut loads, mut wrong) = (0, 0);
                    let mut x: usize = id * 7919;
                    start.wait();
                    loop {
                        let guard = tree.read(); // one `CounterRcu` section
                        for _ in 0..32 {
                            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345)
                                % (RANGES * SPAN);
                            match guard.load(x) {
                                Some(v) if v.range == x / SPAN => {}
                                _ => wrong += 1,
                            }
                            loads += 1;
                        }
                        drop(guard);
                        // Relaxed: a stop flag; the loop ends some time after the writer.
                        if !writing.load(Ordering::Relaxed) {
                            return (loads, wrong);
                        }
                    }
                })
            })
            .collect();
        start.wait();
        for pass in 0..PASSES {
            for r in 0..RANGES {
                let (lo, hi) = (r * SPAN, (r + 1) * SPAN);
                if pass % 2 == 0 {
                    let v = value(r);
                    tree.lock().store_range(lo..hi, v).expect("a valid range");
                    stores += 1;
                } else {
                    let mid = lo + SPAN / 2;
                    let (a, b) = (value(r), value(r));
                    let w = tree.lock();
                    w.store_range(lo..mid, a).expect("a valid range");
                    w.store_range(mid..hi, b).expect("a valid range");
                    stores += 2;
                }
            }
        }
        // Relaxed: see the readers' loop.
        writing.store(false, Ordering::Relaxed);
        for h in readers {
            let (l, x) = h.join().expect("a reader panicked");
            loads += l;
            wrong += x;
        }
    });

    // 3. Teardown: wait for every retired object, then drop the tree (and its domain).
    tree.domain().synchronize();
    let grace_periods = tree.domain().grace_periods();
    let pending_after_sync = tree.domain().pending();
    drop(tree);
    Report {
        kept_while_read,
        freed_after,
        loads,
        wrong,
        stores,
        grace_periods,
        pending_after_sync,
        created,
        dropped: dropped(),
    }
}

fn main() {
    print!("{}", run());
}
