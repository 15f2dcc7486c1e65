//! A counting global allocator for the **memory** table.
//!
//! The `compare` binary installs [`CountingAlloc`] as its global allocator. Counting is off
//! by default, so the other tables pay one relaxed load per allocation and no shared
//! read-modify-write; [`measure`] switches it on around the build being measured.
//! Counting is process-wide: measure while no other thread allocates.

use std::alloc::{GlobalAlloc, Layout, System};

use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static SEEN: AtomicUsize = AtomicUsize::new(0);
/// Where LIVE starts for each measurement: far from 0 and from `usize::MAX`.
const BASE: usize = usize::MAX / 4;

/// The system allocator, counting live bytes while [`measure`] runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the same arguments, so the `GlobalAlloc`
// contract is `System`'s; the counters are side effects only.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count_add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_sub(layout.size());
        // SAFETY: forwarded unchanged; `ptr` came from this allocator (i.e. from `System`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_sub(layout.size());
            count_add(new_size);
        }
        p
    }
}

#[inline]
fn count_add(n: usize) {
    // Relaxed: a switch read on every allocation; `measure` orders it against the measured
    // code by running on the same thread, and nothing else depends on it.
    if ENABLED.load(Ordering::Relaxed) {
        // Relaxed: plain counters, read only after the measured code finished.
        let live = LIVE.fetch_add(n, Ordering::Relaxed).wrapping_add(n);
        // Relaxed: as above. `measure_usage` starts LIVE and PEAK at BASE, far from both
        // ends of the range, so an unsigned max tracks the peak.
        PEAK.fetch_max(live, Ordering::Relaxed);
        // Relaxed: as above; records that this allocator is installed.
        SEEN.fetch_add(1, Ordering::Relaxed);
    }
}

#[inline]
fn count_sub(n: usize) {
    // Relaxed: see `count_add`.
    if ENABLED.load(Ordering::Relaxed) {
        // Relaxed: plain counter, read only after the measured code finished.
        LIVE.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Heap usage of a measured closure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated and not freed when the closure returned.
    pub net: usize,
    /// The most bytes live at any point while it ran (above the starting level).
    pub peak: usize,
}

/// Run `f` with counting on; returns its result and the net bytes it left allocated
/// (allocations minus frees), or `None` when [`CountingAlloc`] is not the global allocator.
///
/// ```
/// // In a doctest the global allocator is the system's, so nothing is counted.
/// let (v, bytes) = benches::alloc::measure(|| vec![0u8; 100]);
/// assert_eq!(v.len(), 100);
/// assert_eq!(bytes, None);
/// ```
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Option<usize>) {
    let (r, usage) = measure_usage(f);
    (r, usage.map(|u| u.net))
}

/// Like [`measure`], also reporting the peak.
pub fn measure_usage<R>(f: impl FnOnce() -> R) -> (R, Option<Usage>) {
    // Relaxed for all of these: single-threaded bookkeeping around `f` on this thread
    // (threads `f` spawns are joined inside it, which orders their counting before ours).
    LIVE.store(BASE, Ordering::Relaxed);
    PEAK.store(BASE, Ordering::Relaxed);
    let seen0 = SEEN.load(Ordering::Relaxed);
    ENABLED.store(true, Ordering::Relaxed);
    let probe = std::hint::black_box(Box::new(0u64));
    let r = f();
    drop(probe);
    ENABLED.store(false, Ordering::Relaxed);
    // Frees of memory allocated before counting started can pull LIVE below BASE;
    // such a measurement reports 0 rather than wrapping.
    let net = LIVE.load(Ordering::Relaxed).saturating_sub(BASE);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(BASE);
    let seen = SEEN.load(Ordering::Relaxed) != seen0;
    (r, seen.then_some(Usage { net, peak }))
}
