//! [`SeqCount`]: a sequence counter for store-free optimistic readers.

use core::fmt;

use crate::sync::atomic::{fence, AtomicUsize, Ordering};

/// A sequence counter: even = stable, odd = a writer is inside.
///
/// Writers (serialised by some external lock) bracket their updates with
/// [`write_begin`](SeqCount::write_begin) / [`write_end`](SeqCount::write_end). Readers take
/// a snapshot with [`read_begin`](SeqCount::read_begin) (or
/// [`try_read_begin`](SeqCount::try_read_begin), which refuses while a writer is inside),
/// read the protected data **with atomic loads only** (any ordering, `Relaxed` is enough),
/// and accept what they read only if [`read_retry`](SeqCount::read_retry) returns `false`.
/// A reader never stores to shared memory.
///
/// The protected data must live in atomics: the reader's loads race with the writer's
/// stores by design, and a non-atomic racing read is undefined behaviour in Rust.
///
/// ```
/// use rcu::sync::atomic::{AtomicU64, Ordering};
/// use rcu::SeqCount;
///
/// let seq = SeqCount::new();
/// let (a, b) = (AtomicU64::new(0), AtomicU64::new(0));
///
/// // Writer (holding the lock that serialises writers).
/// seq.write_begin();
/// a.store(7, Ordering::Relaxed);
/// b.store(7, Ordering::Relaxed);
/// seq.write_end();
///
/// // Reader.
/// let (x, y) = loop {
///     let start = seq.read_begin();
///     let x = a.load(Ordering::Relaxed);
///     let y = b.load(Ordering::Relaxed);
///     if !seq.read_retry(start) {
///         break (x, y);
///     }
/// };
/// assert_eq!((x, y), (7, 7));
/// ```
pub struct SeqCount {
    seq: AtomicUsize,
}

impl Default for SeqCount {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SeqCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqCount")
            .field("seq", &self.raw())
            .finish()
    }
}

impl SeqCount {
    /// A counter at 0 (stable, no writer).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            seq: AtomicUsize::new(0),
        }
    }

    /// A counter at 0 (stable, no writer).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            seq: AtomicUsize::new(0),
        }
    }

    /// Start a read: wait while a writer is inside, return the (even) snapshot.
    #[inline]
    pub fn read_begin(&self) -> usize {
        loop {
            if let Some(s) = self.try_read_begin() {
                return s;
            }
            crate::sync::spin_loop();
        }
    }

    /// Start a read, or `None` at once if a writer is inside (odd count).
    ///
    /// ```
    /// let seq = rcu::SeqCount::new();
    /// seq.write_begin();
    /// assert!(seq.try_read_begin().is_none());
    /// seq.write_end();
    /// assert!(seq.try_read_begin().is_some());
    /// ```
    #[inline]
    pub fn try_read_begin(&self) -> Option<usize> {
        // Acquire: if we read the even value a `write_end` stored, every data store of that
        // write section happens-before our data loads, so we see them (or newer values,
        // which `read_retry` then catches).
        let s = self.seq.load(Ordering::Acquire);
        (s & 1 == 0).then_some(s)
    }

    /// End a read started at `start`: `true` means the data read may be torn and must be
    /// discarded (a writer entered or left since `start`).
    #[inline]
    pub fn read_retry(&self, start: usize) -> bool {
        // Acquire fence: orders every data load of the section before the count load below.
        // If any data load saw a store made by a writer after its `write_begin`, the fence
        // (synchronising with the Release fence in `write_begin`) makes that odd increment
        // visible here, so the count differs from `start`.
        fence(Ordering::Acquire);
        // Relaxed: the fence above supplies the ordering.
        self.seq.load(Ordering::Relaxed) != start
    }

    /// Enter a write section (count becomes odd). Writers must be serialised externally.
    #[inline]
    pub fn write_begin(&self) {
        // Relaxed load/store: only the (serialised) writers modify the count.
        let s = self.seq.load(Ordering::Relaxed);
        debug_assert!(s & 1 == 0, "SeqCount::write_begin inside a write section");
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // Release fence: orders the odd store above before every data store that follows.
        // A reader whose data load sees one of those stores and then issues its Acquire
        // fence synchronises with this fence, so its count load sees the odd value (or a
        // later one) and it retries.
        fence(Ordering::Release);
    }

    /// Leave a write section (count becomes even again).
    #[inline]
    pub fn write_end(&self) {
        // Relaxed load: only the writer modifies the count.
        let s = self.seq.load(Ordering::Relaxed);
        debug_assert!(s & 1 == 1, "SeqCount::write_end outside a write section");
        // Release: every data store of the section happens-before a reader's Acquire load
        // that reads this even value.
        self.seq.store(s.wrapping_add(1), Ordering::Release);
    }

    /// `true` while a writer is inside (odd count).
    #[inline]
    pub fn is_write_locked(&self) -> bool {
        self.raw() & 1 == 1
    }

    /// The raw count (even = stable). A `Relaxed` snapshot, for statistics and debugging.
    #[inline]
    pub fn raw(&self) -> usize {
        // Relaxed: no data is read on the strength of this value.
        self.seq.load(Ordering::Relaxed)
    }
}
