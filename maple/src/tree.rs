//! The safe API: [`MapleTree`], its read and write guards, and iterators.

use core::cell::RefCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Bound, RangeBounds, RangeInclusive};

use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rcu::sync::{Mutex, MutexGuard};
use rcu::{Domain, Seize};

use crate::entry::{clone_word, drop_word, Entry};
use crate::error::{
    AllocError, AllocErrorKind, GapError, InsertError, InsertErrorKind, InvalidRange, StoreError,
    ValidateError,
};
use crate::raw::session::Session;
use crate::raw::walk::{self, LeafCursor};
#[cfg(any(test, feature = "stats"))]
use crate::raw::StoreKind;
use crate::raw::{dump, gap, validate, RawTree};

// Aligned gap search, aligned allocation and exact-range removal (own file).
mod area;

/// An RCU-safe B-tree mapping ranges of `usize` indices to entries.
///
/// Every index in `0..=usize::MAX` maps to an entry or to nothing. Readers
/// ([`MapleTree::read`]) never lock and never store to shared memory; one writer at a time
/// ([`MapleTree::lock`]) stores, punches and erases ranges. Replaced nodes and overwritten
/// entries are destroyed through the tree's reclamation domain `D` after every reader that
/// could see them has left.
///
/// ```
/// use maple::{MapleTree, Value};
///
/// let tree: MapleTree<Value> = MapleTree::new();
/// let w = tree.lock();
/// w.store_range(10..20, Value::new(1).unwrap()).unwrap();
/// w.store_range(15..=16, Value::new(2).unwrap()).unwrap();
/// drop(w);
///
/// let r = tree.read();
/// assert_eq!(r.load(12).map(Value::get), Some(1));
/// assert_eq!(r.walk(15), (15..=16, Value::new(2)));
/// assert_eq!(r.walk(30), (20..=usize::MAX, None));
/// let ranges: Vec<_> = r.iter().map(|(range, v)| (range, v.get())).collect();
/// assert_eq!(ranges, [(10..=14, 1), (15..=16, 2), (17..=19, 1)]);
/// ```
///
/// # Panics
/// Bad input never panics (only misuse does: see [`MapleTree::lock`]), but entry types
/// run user code: `Drop` (immediately for `&mut self` writes and when the tree drops, or
/// later, from the domain, possibly on a writer's thread while it stores) and `Clone` (in
/// `clone`). If such code panics inside a write, the tree stays **structurally valid and exact**:
/// a store runs no user code until it has published its change and recorded all of its
/// bookkeeping (`len`, shared-value counts, dead nodes), so [`MapleTree::validate`]
/// passes and [`MapleTree::len`] is right afterwards. What that write was still handing
/// over to the domain (old values, replaced nodes) may be leaked, never freed twice. The
/// write lock is poisoned by such a panic; the tree ignores the poison, so later
/// [`MapleTree::lock`] calls work normally.
///
/// # Liveness
/// - **Readers never block** and never run user code: leaving a read section only tells
///   the domain that a grace period may be over. Entry destructors run on the thread of a
///   writer-side domain call: a store's retire (under the write lock), dropping a
///   [`WriteGuard`], `domain().flush()` / `domain().synchronize()`, or dropping the tree.
///   A destructor that panics there does not stop the others; its panic is re-raised from
///   that call (see the "Liveness" section of [`rcu::Seize`]), and the tree stays valid.
///   A destructor that calls [`MapleTree::lock`] on the same tree panics with the
///   re-entrant-lock message when it runs inside this thread's write section, and works
///   elsewhere; it never deadlocks (see [`WriteGuard`]).
/// - **Any number of readers** may be inside read sections; replaced nodes and values
///   are reclaimed once they leave (`domain().synchronize()` waits for exactly that).
/// - **Dropping the tree never blocks**, whatever guards were forgotten. A read section
///   that never ends (`mem::forget(tree.read())`, or of a [`WriteGuard`]) stops
///   reclamation for the tree's domain: everything the tree retires afterwards stays
///   pending, and `domain().synchronize()` would never return. When the tree drops, what
///   is still reachable from it is destroyed as usual; what was retired behind the
///   forgotten section is destroyed by an [`rcu::Epoch`] domain, and by an [`rcu::Seize`]
///   domain only as far as it was still buffered: the blocks it had already handed to
///   seize are **leaked** (bounded by what was retired while the section was open; the
///   destructors of those entries never run).
#[repr(C)] // in this order: what readers read apart from what every write changes
pub struct MapleTree<E: Entry, D: Domain = Seize> {
    /// Read by readers (entering and leaving sections).
    domain: D,
    /// The engine: the root in a cache line of its own, then the writer's counters.
    raw: RawTree,
    /// The write lock, around the writer's session (the engine's bookkeeping between
    /// writes).
    lock: Mutex<Session>,
    /// Identity of the thread holding the write lock (0 when none), so `validate`, dumps
    /// and `clone` can run inside that thread's own write section without deadlocking.
    writer: AtomicUsize,
    /// `alloc_cyclic` wrapped past `usize::MAX` and has not reported it yet.
    wrapped: AtomicBool,
    _entries: PhantomData<E>,
}

/// An identity for the current thread (the address of a thread-local).
#[cfg(not(loom))]
fn thread_id() -> usize {
    thread_local!(static ID: u8 = const { 0 });
    ID.with(|x| x as *const u8 as usize)
}

/// Under loom, modelled threads may share an OS thread: thread-locals cannot tell them
/// apart, so `exclusive` always takes the lock there and this value is never compared.
#[cfg(loom)]
fn thread_id() -> usize {
    1
}

/// The panic for [`MapleTree::lock`] re-entry, out of line to keep `lock` small.
#[cold]
#[inline(never)]
#[track_caller]
fn reentrant_lock() -> ! {
    panic!(
        "MapleTree::lock called while this thread already holds the tree's write lock \
         (re-entrant locking would deadlock); use the existing WriteGuard"
    )
}

/// Convert any range to inclusive bounds; `None` if it is empty.
pub(crate) fn bounds(r: &impl RangeBounds<usize>) -> Option<(usize, usize)> {
    let a = match r.start_bound() {
        Bound::Included(&a) => a,
        Bound::Excluded(&a) => a.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let b = match r.end_bound() {
        Bound::Included(&b) => b,
        Bound::Excluded(&b) => b.checked_sub(1)?,
        Bound::Unbounded => usize::MAX,
    };
    (a <= b).then_some((a, b))
}

impl<E: Entry> MapleTree<E> {
    /// A plain range tree (internal nodes are range_64).
    pub fn new() -> Self {
        Self::with_domain(Seize::default())
    }

    /// An allocation tree: internal nodes are arange_64 and track the largest free run
    /// under each child, so [`ReadGuard::empty_area`] and the `alloc_*` methods run in
    /// O(height).
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new_alloc();
    /// let w = t.lock();
    /// assert_eq!(w.alloc_range(10, Value::new(1).unwrap(), 0..=1000).unwrap(), 0);
    /// assert_eq!(w.alloc_rrange(10, Value::new(2).unwrap(), 0..=1000).unwrap(), 991);
    /// assert_eq!(w.empty_area(0..=1000, 5), Ok(10));
    /// ```
    pub fn new_alloc() -> Self {
        Self::alloc_with_domain(Seize::default())
    }
}

impl<E: Entry, D: Domain> Default for MapleTree<E, D> {
    fn default() -> Self {
        Self::with_domain(D::default())
    }
}

impl<E: Entry, D: Domain> MapleTree<E, D> {
    fn make(alloc: bool, domain: D) -> Self {
        MapleTree {
            raw: RawTree::new(alloc),
            domain,
            lock: Mutex::new(Session::default()),
            writer: AtomicUsize::new(0),
            wrapped: AtomicBool::new(false),
            _entries: PhantomData,
        }
    }

    /// A plain tree reclaiming through `domain` (e.g. `rcu::Epoch::default()`).
    pub fn with_domain(domain: D) -> Self {
        Self::make(false, domain)
    }

    /// An allocation tree reclaiming through `domain`.
    pub fn alloc_with_domain(domain: D) -> Self {
        Self::make(true, domain)
    }

    /// The reclamation domain (for `flush`, `synchronize`, `pending` in tests).
    pub fn domain(&self) -> &D {
        &self.domain
    }

    /// Whether this is an allocation tree.
    pub fn is_alloc(&self) -> bool {
        self.raw.alloc
    }

    /// Enter a lock-free read section. Never blocks.
    pub fn read(&self) -> ReadGuard<'_, E, D> {
        ReadGuard {
            tree: self,
            guard: self.domain.enter(),
            _not_send: PhantomData,
        }
    }

    /// Become the one writer (blocks while another writer holds the lock). The guard is
    /// also a read section: it derefs to [`ReadGuard`].
    ///
    /// A poisoned lock (a panic inside an earlier write section) is taken over silently:
    /// the tree stays valid and exact, see [`MapleTree`]'s "Panics" section.
    ///
    /// # Panics
    /// If this thread already holds the tree's write lock (a live, or leaked, guard from an
    /// earlier `lock()`): taking it twice is a programmer error that would otherwise
    /// deadlock. Use the guard you already have.
    ///
    /// ```should_panic
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new();
    /// let _w = t.lock();
    /// let _again = t.lock(); // panics: this thread already holds the write lock
    /// ```
    pub fn lock(&self) -> WriteGuard<'_, E, D> {
        let me = thread_id();
        // Relaxed: equality with this thread's own identity can only be observed if this
        // thread stored it (below) and has not cleared it (guard drop) since.
        if cfg!(not(loom)) && self.writer.load(Ordering::Relaxed) == me {
            reentrant_lock();
        }
        let lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Relaxed: only read by this same thread (`thread_id` comparison) or compared for
        // inequality by others, who then take the lock.
        self.writer.store(me, Ordering::Relaxed);
        WriteGuard {
            state: RefCell::new(lock),
            read: self.read(),
        }
    }

    /// Number of stored (non-empty) ranges. Writer-maintained; exact when no write is in
    /// progress.
    pub fn len(&self) -> usize {
        // Relaxed: a statistic; the writer updates it during each write.
        self.raw.len.load(Ordering::Relaxed)
    }

    /// Whether no range is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tree height: 0 when empty, 1 for a single leaf, and so on.
    pub fn height(&self) -> usize {
        // Relaxed: a statistic.
        self.raw.height.load(Ordering::Relaxed)
    }

    /// Run `f` with writers excluded: directly if this thread holds the write lock,
    /// otherwise under the lock.
    fn exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        // Relaxed: equality with this thread's own identity can only be observed if this
        // thread stored it (in `lock`).
        if cfg!(not(loom)) && self.writer.load(Ordering::Relaxed) == thread_id() {
            f()
        } else {
            let _l = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            f()
        }
    }

    /// Release the tree's cache of recycled nodes to the allocator; returns how many nodes
    /// were freed.
    ///
    /// Nodes a write replaces are not freed: after their grace period they return to a
    /// per-tree cache that later writes allocate from first. Each write keeps at most 256
    /// spare nodes (64 KiB) and frees the rest, so between two writes the cache holds at
    /// most those plus the nodes that came back since the last write (reclamation, which
    /// may run on a reader's thread, never frees). Everything is freed when the tree
    /// drops; call this (after
    /// `domain().synchronize()`, so pending nodes have arrived) to give the memory back
    /// earlier, e.g. before counting live allocations. Inside this thread's own write
    /// section only the part not held by the writer is released.
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new();
    /// for i in 0..100 {
    ///     t.lock().store_range(i * 10..=i * 10 + 5, Value::new(i).unwrap()).unwrap();
    /// }
    /// rcu::Domain::synchronize(t.domain());
    /// t.shrink();
    /// assert_eq!(t.shrink(), 0);
    /// ```
    pub fn shrink(&self) -> usize {
        let mut n = 0;
        // Relaxed: as in `exclusive` (under loom the lock is always taken, as there).
        if cfg!(loom) || self.writer.load(Ordering::Relaxed) != thread_id() {
            n += self.lock.lock().unwrap_or_else(|e| e.into_inner()).shrink();
        }
        n + self.raw.pool.shrink()
    }

    /// Check every structural invariant: pivots strictly increase inside each node's
    /// range; no two adjacent empty ranges in leaf order; no leaf but the right-most ends
    /// in an empty slot; minimum occupancy (6 for leaf/range, 4 for arange) except at the
    /// root and the right-most node of a level; parent/child links agree; all leaves at
    /// one depth; in allocation trees every gap equals the child's largest free run; and
    /// `len`/`height` match. Takes the write lock (or runs directly inside this thread's
    /// own write section).
    pub fn validate(&self) -> Result<(), ValidateError> {
        // SAFETY: `exclusive` excludes other writers.
        self.exclusive(|| unsafe { validate::validate(&self.raw) })
    }

    /// An indented text dump of every node (for debugging and failed assertions).
    pub fn dump(&self) -> String {
        // SAFETY: `exclusive` excludes other writers.
        self.exclusive(|| unsafe { dump::text(&self.raw, &fmt_entry::<E>) })
    }

    /// The tree as a Graphviz DOT graph (`dot -Tsvg`), one record per node. The
    /// [crate documentation](crate#layout) shows a rendered example.
    pub fn to_dot(&self) -> String {
        // SAFETY: `exclusive` excludes other writers.
        self.exclusive(|| unsafe { dump::dot(&self.raw, &fmt_entry::<E>) })
    }

    /// The kind of the last write (white-box tests; only with the `stats` feature).
    #[cfg(any(test, feature = "stats"))]
    pub fn last_store_kind(&self) -> Option<StoreKind> {
        self.raw.kinds.last()
    }

    /// How many times each [`StoreKind`] ran, in [`StoreKind::ALL`] order (only with the
    /// `stats` feature).
    #[cfg(any(test, feature = "stats"))]
    pub fn store_kind_counts(&self) -> [usize; StoreKind::COUNT] {
        self.raw.kinds.counts()
    }

    /// Overwrite `r` with `value` through `&mut self`: no reader can exist, so slot
    /// stores and appends change the leaf in place and replaced nodes and values are freed
    /// at once instead of being retired (the fast path for building a tree before
    /// sharing it). Same semantics as [`WriteGuard::store_range`].
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let mut t: MapleTree<Value> = MapleTree::new();
    /// for i in 0..100usize {
    ///     t.store_range_mut(i * 10..i * 10 + 5, Value::new(i).unwrap()).unwrap();
    /// }
    /// t.punch_mut(0..=1000).unwrap();
    /// assert_eq!(t.len(), 0);
    /// ```
    pub fn store_range_mut(
        &mut self,
        r: impl RangeBounds<usize>,
        value: E,
    ) -> Result<(), StoreError<E>> {
        match bounds(&r) {
            Some((a, b)) => {
                self.store_exclusive(a, b, value.into_word());
                Ok(())
            }
            None => Err(StoreError { value }),
        }
    }

    /// Punch a hole through `&mut self` (see [`MapleTree::store_range_mut`]).
    pub fn punch_mut(&mut self, r: impl RangeBounds<usize>) -> Result<(), InvalidRange> {
        let (a, b) = bounds(&r).ok_or(InvalidRange)?;
        self.store_exclusive(a, b, 0);
        Ok(())
    }

    /// Store with exclusive access: no readers exist, so in-place writes and direct frees.
    fn store_exclusive(&mut self, first: usize, last: usize, word: usize) {
        // `&mut self`: no lock needed (and none taken, so a forgotten guard cannot
        // deadlock this); a poisoned session is consistent, see the type's docs.
        let st = self.lock.get_mut().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `&mut self` excludes readers and other writers, and `st` is this tree's
        // session; the word is an owned entry word (or 0).
        unsafe { st.store_exclusive::<E>(&self.raw, first, last, word) };
    }
}

fn fmt_entry<E: Entry>(word: usize) -> String {
    struct W<E>(usize, PhantomData<E>);
    impl<E: Entry> fmt::Display for W<E> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            E::fmt_word(self.0, f)
        }
    }
    W::<E>(word, PhantomData).to_string()
}

impl<E: Entry, D: Domain> Drop for MapleTree<E, D> {
    fn drop(&mut self) {
        // `&mut self`: no lock needed; a poisoned state is consistent (see the type docs).
        let st = self.lock.get_mut().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `&mut self`: no readers or writers; a word in several slots is dropped
        // only at its last one (`dups`), so each owned value is dropped once.
        unsafe {
            self.raw.destroy(&mut |_, _, w| {
                if !E::OWNED || !st.release(w) {
                    drop_word::<E>(w)
                }
            })
        };
    }
}

impl<E: Entry, D: Domain> fmt::Debug for MapleTree<E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Entries<'a, E: Entry, D: Domain>(&'a MapleTree<E, D>);
        impl<E: Entry, D: Domain> fmt::Debug for Entries<'_, E, D> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let r = self.0.read();
                let mut m = f.debug_map();
                let mut cur = LeafCursor::new();
                let mut i = 0usize;
                loop {
                    // SAFETY: `r` is a live section of this tree's domain.
                    let s = unsafe { cur.slot_at(&self.0.raw, &r.guard, i) };
                    if s.word != 0 {
                        m.entry(
                            &(s.min..=s.max),
                            &format_args!("{}", fmt_entry::<E>(s.word)),
                        );
                    }
                    if s.max == usize::MAX {
                        break;
                    }
                    i = s.max + 1;
                }
                m.finish()
            }
        }
        f.debug_struct("MapleTree")
            .field("alloc", &self.raw.alloc)
            .field("len", &self.len())
            .field("height", &self.height())
            .field("entries", &Entries(self))
            .finish()
    }
}

impl<E: Entry + Clone, D: Domain> Clone for MapleTree<E, D> {
    /// Node-by-node duplication in one pre-order pass (like the kernel's `__mt_dup`),
    /// cloning each entry (a value shared by several ranges is cloned once per range);
    /// much faster than re-inserting. Takes the source's write lock.
    fn clone(&self) -> Self {
        let copy = Self::make(self.raw.alloc, D::default());
        self.exclusive(|| {
            // Relaxed: under the lock (or inside this thread's own write section); the
            // tree flags travel with the copy, as `__mt_dup` copies `ma_flags`.
            copy.wrapped
                .store(self.wrapped.load(Ordering::Relaxed), Ordering::Relaxed);
            // SAFETY: writers of `self` are excluded; `copy` is private and empty; every
            // live word is cloned into an owned one.
            unsafe { self.raw.dup_into(&copy.raw, &|w| clone_word::<E>(w)) };
        });
        copy
    }
}

impl<E: Entry, D: Domain> Extend<(RangeInclusive<usize>, E)> for MapleTree<E, D> {
    /// Store each range in order (later ones overwrite earlier ones). Into an empty tree,
    /// sorted non-overlapping input takes the bulk-build path. Empty ranges are skipped.
    fn extend<I: IntoIterator<Item = (RangeInclusive<usize>, E)>>(&mut self, iter: I) {
        let mut v: Vec<_> = iter.into_iter().collect();
        // Relaxed: `&mut self`, no other threads.
        if self.raw.root.load(Ordering::Relaxed) == 0 {
            match self.bulk(v) {
                Ok(()) => return,
                Err(back) => v = back,
            }
        }
        for (r, e) in v {
            // `bounds` honours an exhausted `RangeInclusive` (e.g. `5..=5` after `next()`),
            // which `start()`/`end()` do not.
            if let Some((a, b)) = bounds(&r) {
                self.store_exclusive(a, b, e.into_word());
            }
        }
    }
}

impl<E: Entry, D: Domain> MapleTree<E, D> {
    /// Bulk-build from `v` if it is sorted, non-overlapping and has no empty range (the
    /// tree then owns every value); otherwise hand `v` back untouched.
    fn bulk(
        &mut self,
        v: Vec<(RangeInclusive<usize>, E)>,
    ) -> Result<(), Vec<(RangeInclusive<usize>, E)>> {
        let mut next: Option<usize> = Some(0);
        for (r, _) in &v {
            match (next, bounds(r)) {
                (Some(n), Some((a, b))) if a >= n => next = b.checked_add(1),
                _ => return Err(v),
            }
        }
        let ranges = v.into_iter().map(|(r, e)| {
            let Some((a, b)) = bounds(&r) else {
                unreachable!("checked non-empty above")
            };
            (a, b, e.into_word())
        });
        // SAFETY: `&mut self`, empty tree, sorted disjoint ranges; the words are owned
        // entries handed to the tree.
        unsafe { self.raw.bulk_build(ranges) };
        Ok(())
    }
}

impl<E: Entry, D: Domain> FromIterator<(RangeInclusive<usize>, E)> for MapleTree<E, D> {
    /// Build a plain tree. Sorted, non-overlapping input is laid out leaf by leaf in O(n)
    /// (levels of 2^16 items and more are built in parallel with rayon); anything else
    /// falls back to storing each range in order. Empty ranges are skipped.
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = (0..1000usize)
    ///     .map(|i| (i * 10..=i * 10 + 4, Value::new(i).unwrap()))
    ///     .collect();
    /// assert_eq!(t.len(), 1000);
    /// assert_eq!(t.read().load(9994).map(Value::get), Some(999));
    /// t.validate().unwrap();
    /// ```
    fn from_iter<I: IntoIterator<Item = (RangeInclusive<usize>, E)>>(iter: I) -> Self {
        let mut t = Self::default();
        t.extend(iter);
        t
    }
}

/// Owned iterator over a tree's ranges and values, in index order.
pub struct IntoIter<E> {
    inner: std::vec::IntoIter<(RangeInclusive<usize>, E)>,
}

impl<E> fmt::Debug for IntoIter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("remaining", &self.inner.len())
            .finish()
    }
}

impl<E> Iterator for IntoIter<E> {
    type Item = (RangeInclusive<usize>, E);
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<E> DoubleEndedIterator for IntoIter<E> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back()
    }
}

impl<E> ExactSizeIterator for IntoIter<E> {}

impl<E: Entry, D: Domain> IntoIterator for MapleTree<E, D> {
    type Item = (RangeInclusive<usize>, E);
    type IntoIter = IntoIter<E>;
    fn into_iter(mut self) -> IntoIter<E> {
        let mut out = Vec::with_capacity(self.len());
        // Owned: no lock needed; a poisoned state is consistent (see the type docs).
        let st = self.lock.get_mut().unwrap_or_else(|e| e.into_inner());
        // SAFETY: owning `self`: no readers or writers; every owned word is taken back
        // once (a value shared by several ranges at its last range) and the tree is left
        // empty, so its Drop frees nothing twice.
        unsafe {
            self.raw.destroy(&mut |a, b, w| {
                if !E::OWNED || !st.release(w) {
                    out.push((a..=b, E::from_word(w)))
                }
            })
        };
        IntoIter {
            inner: out.into_iter(),
        }
    }
}

/// A lock-free read section on a tree. `!Send`: it must end on the thread that began it.
///
/// Every method takes `&self`; returned references live as long as that borrow, and the
/// values they point to stay alive until the guard is dropped even if a writer removes
/// them meanwhile.
pub struct ReadGuard<'t, E: Entry, D: Domain = Seize> {
    tree: &'t MapleTree<E, D>,
    guard: D::Guard<'t>,
    _not_send: PhantomData<*const ()>,
}

impl<E: Entry, D: Domain> fmt::Debug for ReadGuard<'_, E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard").finish_non_exhaustive()
    }
}

impl<'t, E: Entry, D: Domain> ReadGuard<'t, E, D> {
    /// # Safety
    /// `word` is a non-zero entry word read under this section.
    #[inline]
    unsafe fn entry(&self, word: usize) -> E::Ref<'_> {
        // SAFETY: the word was read under `self.guard`, so its value is not destroyed
        // before the guard (and thus this borrow) ends.
        unsafe { E::word_ref(word) }
    }

    /// The entry at `index`, if any.
    #[inline]
    pub fn load(&self, index: usize) -> Option<E::Ref<'_>> {
        // SAFETY: the guard is a live section of this tree's domain.
        let w = unsafe { walk::load(&self.tree.raw, &self.guard, index) };
        // SAFETY: read under this section.
        (w != 0).then(|| unsafe { self.entry(w) })
    }

    /// The range containing `index` and what is stored there; for an empty index, the
    /// whole maximal empty range around it and `None` (like `mas_walk`).
    pub fn walk(&self, index: usize) -> (RangeInclusive<usize>, Option<E::Ref<'_>>) {
        // SAFETY: live section.
        let s = unsafe { walk::walk(&self.tree.raw, &self.guard, index) }.slot;
        // SAFETY: read under this section.
        (
            s.min..=s.max,
            (s.word != 0).then(|| unsafe { self.entry(s.word) }),
        )
    }

    /// The first stored range that ends at or after the start of `r` and begins at or
    /// before its end, whole (it may stick out of `r`). `None` for an empty `r`.
    ///
    /// Called in a loop to walk a region (`find(i..=last)`, then `i = end + 1` until the
    /// end reaches `last`) while a writer changes the tree: no index that holds an entry
    /// through the whole loop is skipped, and the results' ends strictly increase; but as
    /// each result is a whole stored range, one that a writer grew backwards may overlap
    /// the previous result (the kernel's `mas_find` after `mas_pause` behaves the same).
    /// Clip each result's start to `i`, or use [`ReadGuard::range`], for disjoint items.
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new();
    /// let w = t.lock();
    /// for i in 0..3 {
    ///     w.store_range(i * 10..=i * 10 + 9, Value::new(i).unwrap()).unwrap();
    /// }
    /// let (first, _) = w.find(0..).unwrap();
    /// assert_eq!(first, 0..=9);
    /// w.store_range(5..=12, Value::new(7).unwrap()).unwrap(); // a write between calls
    /// let (second, _) = w.find(first.end() + 1..).unwrap();
    /// assert_eq!(second, 5..=12); // whole: overlaps `first`, but 10..=12 are not skipped
    /// ```
    pub fn find(&self, r: impl RangeBounds<usize>) -> Option<(RangeInclusive<usize>, E::Ref<'_>)> {
        let (a, b) = bounds(&r)?;
        // SAFETY: live section.
        let s = unsafe { walk::next_entry(&self.tree.raw, &self.guard, a, b) }?;
        // SAFETY: read under this section.
        Some((s.min..=s.max, unsafe { self.entry(s.word) }))
    }

    /// The last stored range that begins at or before the end of `r` and ends at or
    /// after its start, whole. `None` for an empty `r`.
    ///
    /// In a loop (`find_rev(first..=j)`, then `j = start - 1`) under concurrent writes:
    /// the mirror image of [`ReadGuard::find`]'s guarantee, with strictly decreasing
    /// starts; a result may overlap the previous one at its end.
    pub fn find_rev(
        &self,
        r: impl RangeBounds<usize>,
    ) -> Option<(RangeInclusive<usize>, E::Ref<'_>)> {
        let (a, b) = bounds(&r)?;
        // SAFETY: live section.
        let s = unsafe { walk::prev_entry(&self.tree.raw, &self.guard, b, a) }?;
        // SAFETY: read under this section.
        Some((s.min..=s.max, unsafe { self.entry(s.word) }))
    }

    /// Stored ranges overlapping `r`, in index order, from either end (double-ended). Each
    /// item is the whole stored range, even where it sticks out of `r`, unless a concurrent
    /// write cut it (below). Empty for an empty `r`.
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = (0..10usize).map(|i| (i * 10..=i * 10 + 4, Value::new(i).unwrap())).collect();
    /// let r = t.read();
    /// let got: Vec<_> = r.range(12..=31).map(|(k, _)| k).collect();
    /// assert_eq!(got, [10..=14, 20..=24, 30..=34]);
    /// assert_eq!(r.range(..).rev().next().map(|(k, _)| k), Some(90..=94));
    /// ```
    ///
    /// # Iterating while the tree changes
    /// The iterator takes no snapshot: every call reads the tree as it is then, so it sees
    /// writes that land ahead of it (from other threads, or from this thread's own
    /// [`WriteGuard`], whose iterators may be used across its writes). Whatever the writes,
    /// it keeps this contract:
    ///
    /// 1. **Ordered and disjoint.** Items from `next` strictly increase, items from
    ///    `next_back` strictly decrease, and every front item lies below every back item:
    ///    no index is in two items.
    /// 2. **No live index is skipped.** Every index of `r` that holds an entry for the whole
    ///    life of the iterator (even if the ranges holding it are split, merged, resized or
    ///    overwritten meanwhile) is in exactly one item once the iterator has returned
    ///    `None`.
    /// 3. **Items are real and current.** An item's value was stored over the item's whole
    ///    range at one moment during the iteration; a write that happened before the call
    ///    (returned on this thread, or synchronised with it) is always visible to it.
    ///
    /// The rule that gives this: `next` resumes at the lowest index of `r` it has not
    /// passed yet (`start(r)` at first, then one past the last front item or past an empty
    /// stretch it stepped over), takes the stored range that now holds that index or the
    /// first one after it, and yields it **clipped** to what neither end has yielded yet:
    /// starting after the last front item and ending before the last back item.
    /// `next_back` is the mirror image. Without concurrent writes nothing is ever clipped.
    /// With them, what a caller sees is `(start..=end, value)` where `start..=end` may be
    /// only part of the range `value` is stored over: the front cuts the start of a range
    /// a writer grew back over indices it already yielded, the back cuts the end. Indices a
    /// writer stores into a stretch the iterator already passed are not yielded (they were
    /// empty when it passed); an index emptied at some moment may or may not be.
    ///
    /// For example, with `0..=9`, `10..=19`, `20..=29` stored: `next()` yields `0..=9`, a
    /// store of `5..=12` lands, and the next items are `10..=12` (the stored `5..=12`,
    /// clipped), `13..=19` and `20..=29`. Here the writer iterates in its own section:
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new();
    /// let w = t.lock();
    /// for i in 0..5 {
    ///     w.store_range(i * 10..=i * 10 + 9, Value::new(i).unwrap()).unwrap();
    /// }
    /// let mut it = w.iter();
    /// assert_eq!(it.next().map(|(k, v)| (k, v.get())), Some((0..=9, 0)));
    /// w.store_range(5..=12, Value::new(7).unwrap()).unwrap();
    /// assert_eq!(it.next().map(|(k, v)| (k, v.get())), Some((10..=12, 7)));
    /// assert_eq!(it.next_back().map(|(k, v)| (k, v.get())), Some((40..=49, 4)));
    /// w.store_range(15..=45, Value::new(8).unwrap()).unwrap();
    /// let rest: Vec<_> = it.map(|(k, v)| (k, v.get())).collect();
    /// assert_eq!(rest, [(13..=14, 1), (15..=39, 8)]); // 40..=45 came from the back
    /// ```
    ///
    /// This is the kernel's `mas_find` resume point with a different answer there. The
    /// kernel, after `mas_pause`, resumes one past the last item and returns the range
    /// found there whole (so it may overlap the previous item); inside `mas_next_slot`,
    /// after meeting a dead node, it rewalks to the last item's *end* and steps to the
    /// following slot (so it skips the indices a grown range took over). Here the resume
    /// point is the pause path's and the answer is clipped, so neither happens.
    ///
    /// A hand-written loop over [`ReadGuard::find`] (`find(i..)`, then `i = end + 1`)
    /// skips no live index either and its ends strictly increase, but it returns whole
    /// stored ranges, so after a concurrent write a result may overlap the previous one
    /// (as the kernel's paused `mas_find` does); clip each start to `i` to get this rule.
    pub fn range(&self, r: impl RangeBounds<usize>) -> Iter<'_, 't, E, D> {
        let (front, back, done) = match bounds(&r) {
            Some((a, b)) => (a, b, false),
            None => (0, 0, true),
        };
        Iter {
            g: self,
            front,
            back,
            done,
            fcur: LeafCursor::new(),
            bcur: LeafCursor::new(),
            lo: 0,
            hi: usize::MAX,
        }
    }

    /// Every stored range in order; same as `range(..)`, including its contract under
    /// concurrent writes (see [`ReadGuard::range`]).
    pub fn iter(&self) -> Iter<'_, 't, E, D> {
        self.range(..)
    }

    /// Lowest start `s` with `[s, s + size - 1]` empty and inside `window`.
    ///
    /// `Invalid` for size 0, an empty window or one narrower than `size`; `Busy` when
    /// nothing fits. O(height) on allocation trees; a scan of the window on plain trees.
    pub fn empty_area(
        &self,
        window: impl RangeBounds<usize>,
        size: usize,
    ) -> Result<usize, GapError> {
        let (lo, hi) = bounds(&window).ok_or(GapError::Invalid)?;
        // SAFETY: live section.
        unsafe { gap::empty_area(&self.tree.raw, &self.guard, lo, hi, size, false) }
    }

    /// Highest start `s` with `[s, s + size - 1]` empty and inside `window`; errors as for
    /// [`ReadGuard::empty_area`].
    pub fn empty_area_rev(
        &self,
        window: impl RangeBounds<usize>,
        size: usize,
    ) -> Result<usize, GapError> {
        let (lo, hi) = bounds(&window).ok_or(GapError::Invalid)?;
        // SAFETY: live section.
        unsafe { gap::empty_area(&self.tree.raw, &self.guard, lo, hi, size, true) }
    }
}

/// Iterator over stored ranges of a read section; see [`ReadGuard::range`] for what it
/// yields while a writer changes the tree.
///
/// # Invariants
/// While not `done`: `lo <= front <= back <= hi`. Every index of the query range below
/// `front` or above `back` has been yielded, or was empty when a cursor passed it; every
/// yielded index is below `lo` (front items) or above `hi` (back items). So the piece
/// that holds `front` (or `back`) always meets `[lo, hi]` in a non-empty range that
/// contains the cursor.
pub struct Iter<'g, 't, E: Entry, D: Domain = Seize> {
    g: &'g ReadGuard<'t, E, D>,
    /// Lowest index of the query range the front has not passed.
    front: usize,
    /// Highest index of the query range the back has not passed.
    back: usize,
    done: bool,
    fcur: LeafCursor,
    bcur: LeafCursor,
    /// One past the last front item (0 before the first): items start at or after this.
    lo: usize,
    /// One below the last back item (`usize::MAX` before the first): items end at or
    /// before this.
    hi: usize,
}

impl<E: Entry, D: Domain> fmt::Debug for Iter<'_, '_, E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("front", &self.front)
            .field("back", &self.back)
            .field("done", &self.done)
            .field("lo", &self.lo)
            .field("hi", &self.hi)
            .finish()
    }
}

impl<E: Entry, D: Domain> core::iter::FusedIterator for Iter<'_, '_, E, D> {}

impl<'g, E: Entry, D: Domain> Iterator for Iter<'g, '_, E, D> {
    type Item = (RangeInclusive<usize>, E::Ref<'g>);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            // SAFETY: the guard is a live section of the tree's domain, used for every
            // call on this cursor.
            let s = unsafe {
                self.fcur
                    .slot_at(&self.g.tree.raw, &self.g.guard, self.front)
            };
            // `s` holds `front` (invariant: `front <= back`); everything up to `s.max` is
            // accounted for after this step.
            if s.max >= self.back {
                self.done = true;
            } else {
                self.front = s.max + 1;
            }
            if s.word != 0 {
                // Clip to what neither end has yielded; a no-op unless a writer changed
                // the tree under us (type invariant: the result contains the old `front`).
                let (a, b) = (s.min.max(self.lo), s.max.min(self.hi));
                debug_assert!(a <= b);
                // Wrapping only at `b == usize::MAX`, where `s.max >= back` ended the
                // iteration above.
                self.lo = b.wrapping_add(1);
                // SAFETY: read under the section, which outlives 'g.
                return Some((a..=b, unsafe { E::word_ref(s.word) }));
            }
        }
        None
    }
}

impl<E: Entry, D: Domain> DoubleEndedIterator for Iter<'_, '_, E, D> {
    fn next_back(&mut self) -> Option<Self::Item> {
        while !self.done {
            // SAFETY: as in `next`.
            let s = unsafe {
                self.bcur
                    .slot_at(&self.g.tree.raw, &self.g.guard, self.back)
            };
            if s.min <= self.front {
                self.done = true;
            } else {
                self.back = s.min - 1;
            }
            if s.word != 0 {
                // Mirror of `next`.
                let (a, b) = (s.min.max(self.lo), s.max.min(self.hi));
                debug_assert!(a <= b);
                // Wrapping only at `a == 0`, where `s.min <= front` ended the iteration.
                self.hi = a.wrapping_sub(1);
                // SAFETY: read under the section, which outlives 'g.
                return Some((a..=b, unsafe { E::word_ref(s.word) }));
            }
        }
        None
    }
}

/// The tree's one writer; also a read section (derefs to [`ReadGuard`]). `!Send`.
///
/// # Liveness
/// Dropping the guard retires the nodes its writes replaced, clears the writer identity and
/// releases the write lock, and only then ends its read section. The domain runs value
/// destructors from writer-side calls (see [`MapleTree`]'s "Liveness" section): one that
/// runs inside this guard (during a store, or while this guard is dropped) and calls
/// [`MapleTree::lock`] on the same tree panics with the documented re-entrant-lock message
/// (raised from that store or drop, after the domain finished its batch); one that runs
/// outside any write section (e.g. during `domain().synchronize()`) can lock the tree
/// normally. It never deadlocks.
///
/// A guard passed to `mem::forget` keeps the write lock forever: later `lock()` calls
/// block (other threads) or panic (this thread); `&mut` methods and dropping the tree
/// still work, and its read section never ends (see [`MapleTree`]).
pub struct WriteGuard<'t, E: Entry, D: Domain = Seize> {
    // Field order is drop order: the write lock is released before the read section ends,
    // so nothing that leaving the section may trigger runs under the lock.
    state: RefCell<MutexGuard<'t, Session>>,
    read: ReadGuard<'t, E, D>,
}

impl<E: Entry, D: Domain> fmt::Debug for WriteGuard<'_, E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard").finish_non_exhaustive()
    }
}

impl<'t, E: Entry, D: Domain> core::ops::Deref for WriteGuard<'t, E, D> {
    type Target = ReadGuard<'t, E, D>;
    fn deref(&self) -> &ReadGuard<'t, E, D> {
        &self.read
    }
}

impl<E: Entry, D: Domain> Drop for WriteGuard<'_, E, D> {
    fn drop(&mut self) {
        /// Clears the writer identity when dropped: at the end of this body, also when a
        /// destructor run by the domain below panics, and before the fields (the lock,
        /// then the read section) drop.
        struct ClearWriter<'a>(&'a AtomicUsize);
        impl Drop for ClearWriter<'_> {
            fn drop(&mut self) {
                // Relaxed: see `MapleTree::lock`.
                self.0.store(0, Ordering::Relaxed);
            }
        }
        // Still this thread's identity while retiring: a value destructor the domain runs
        // here and that calls `lock()` hits the re-entrancy panic instead of blocking on
        // the mutex this thread holds.
        let _clear = ClearWriter(&self.read.tree.writer);
        let tree = self.read.tree;
        // SAFETY: we hold the tree's lock and its session; the domain is the tree's.
        unsafe { self.state.borrow_mut().end_section(&tree.raw, &tree.domain) };
    }
}

impl<E: Entry, D: Domain> WriteGuard<'_, E, D> {
    fn tree(&self) -> &MapleTree<E, D> {
        self.read.tree
    }

    /// Run one RCU-mode store and retire what it replaced.
    fn write(&self, first: usize, last: usize, word: usize) {
        let tree = self.tree();
        // The session finishes the store (new nodes, `len`, publishing, bookkeeping) before
        // it runs any foreign code (see `raw::session` on panics).
        // SAFETY: we hold the tree's lock and its session; the domain is the tree's; `word`
        // is 0 or an owned entry word.
        unsafe {
            self.state
                .borrow_mut()
                .store::<E, D>(&tree.raw, &tree.domain, first, last, word)
        };
    }

    /// Overwrite `[first, last]` with `value`: partly covered neighbours are trimmed, fully
    /// covered ones removed (and retired).
    pub fn store_range(&self, r: impl RangeBounds<usize>, value: E) -> Result<(), StoreError<E>> {
        match bounds(&r) {
            Some((a, b)) => {
                self.write(a, b, value.into_word());
                Ok(())
            }
            None => Err(StoreError { value }),
        }
    }

    /// Punch a hole: make every index in `r` empty. Readers see the old or the new
    /// contents, never a mix.
    pub fn punch(&self, r: impl RangeBounds<usize>) -> Result<(), InvalidRange> {
        let (a, b) = bounds(&r).ok_or(InvalidRange)?;
        self.write(a, b, 0);
        Ok(())
    }

    /// Store only if every index in `r` is empty.
    pub fn insert_range(&self, r: impl RangeBounds<usize>, value: E) -> Result<(), InsertError<E>> {
        let Some((a, b)) = bounds(&r) else {
            return Err(InsertError {
                value,
                kind: InsertErrorKind::InvalidRange,
            });
        };
        if self.read.find(a..=b).is_some() {
            return Err(InsertError {
                value,
                kind: InsertErrorKind::Occupied,
            });
        }
        self.write(a, b, value.into_word());
        Ok(())
    }

    /// Remove the whole stored range containing `index`; returns it and its value (the
    /// value is retired: the reference stays valid for this borrow of the guard).
    pub fn erase(&self, index: usize) -> Option<(RangeInclusive<usize>, E::Ref<'_>)> {
        let tree = self.tree();
        // SAFETY: we hold the tree's lock and its session; the domain is the tree's.
        let (first, last, word) = unsafe {
            self.state
                .borrow_mut()
                .erase::<E, D>(&tree.raw, &tree.domain, index)
        }?;
        // SAFETY: the value was retired after our section began, so it lives until the
        // guard ends.
        Some((first..=last, unsafe { self.read.entry(word) }))
    }

    fn alloc_common(
        &self,
        size: usize,
        value: E,
        window: impl RangeBounds<usize>,
        rev: bool,
    ) -> Result<usize, AllocError<E>> {
        if !self.tree().raw.alloc {
            return Err(AllocError {
                value,
                kind: AllocErrorKind::NotAllocTree,
            });
        }
        let found = if rev {
            self.read.empty_area_rev(window, size)
        } else {
            self.read.empty_area(window, size)
        };
        match found {
            Ok(s) => {
                self.write(s, s + (size - 1), value.into_word());
                Ok(s)
            }
            Err(e) => Err(AllocError {
                value,
                kind: gap_to_alloc(e),
            }),
        }
    }

    /// Find the lowest fit of `size` indices in `window`, store `value` there and return
    /// its start. Allocation trees only.
    pub fn alloc_range(
        &self,
        size: usize,
        value: E,
        window: impl RangeBounds<usize>,
    ) -> Result<usize, AllocError<E>> {
        self.alloc_common(size, value, window, false)
    }

    /// Find the highest fit of `size` indices in `window`, store `value` there and return
    /// its start. Allocation trees only.
    pub fn alloc_rrange(
        &self,
        size: usize,
        value: E,
        window: impl RangeBounds<usize>,
    ) -> Result<usize, AllocError<E>> {
        self.alloc_common(size, value, window, true)
    }

    /// Allocate one index at or after `*next` inside `window`, wrapping to the window
    /// start once; returns `(index, wrapped)` and sets `*next = index + 1` (like
    /// `mtree_alloc_cyclic`). `wrapped` is also reported by the first allocation after
    /// `*next` itself wrapped past `usize::MAX`.
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = MapleTree::new_alloc();
    /// let w = t.lock();
    /// let mut next = 0;
    /// assert_eq!(w.alloc_cyclic(10..=12, &mut next, Value::new(0).unwrap()).unwrap(), (10, false));
    /// assert_eq!(next, 11);
    /// next = 12;
    /// assert_eq!(w.alloc_cyclic(10..=12, &mut next, Value::new(1).unwrap()).unwrap(), (12, false));
    /// assert_eq!(w.alloc_cyclic(10..=12, &mut next, Value::new(2).unwrap()).unwrap(), (11, true));
    /// ```
    pub fn alloc_cyclic(
        &self,
        window: impl RangeBounds<usize>,
        next: &mut usize,
        value: E,
    ) -> Result<(usize, bool), AllocError<E>> {
        let tree = self.tree();
        if !tree.raw.alloc {
            return Err(AllocError {
                value,
                kind: AllocErrorKind::NotAllocTree,
            });
        }
        let Some((lo, hi)) = bounds(&window) else {
            return Err(AllocError {
                value,
                kind: AllocErrorKind::Invalid,
            });
        };
        let start = lo.max(*next);
        let mut wrapped = false;
        let mut found = self.read.empty_area(start..=hi, 1).map_err(|_| ());
        if start > hi {
            found = Err(());
        }
        // Relaxed: the flag is only touched under the write lock.
        if found.is_ok() && tree.wrapped.swap(false, Ordering::Relaxed) {
            wrapped = true;
        }
        let found = match found {
            Ok(s) => Ok(s),
            Err(()) if start > lo => {
                wrapped = true;
                self.read.empty_area(lo..=hi, 1)
            }
            Err(()) => self.read.empty_area(lo..=hi, 1),
        };
        match found {
            Ok(s) => {
                self.write(s, s, value.into_word());
                *next = s.wrapping_add(1);
                if *next == 0 {
                    // Relaxed: only touched under the write lock.
                    tree.wrapped.store(true, Ordering::Relaxed);
                }
                Ok((s, wrapped))
            }
            Err(e) => Err(AllocError {
                value,
                kind: gap_to_alloc(e),
            }),
        }
    }
}

fn gap_to_alloc(e: GapError) -> AllocErrorKind {
    match e {
        GapError::Busy => AllocErrorKind::Busy,
        GapError::Invalid => AllocErrorKind::Invalid,
    }
}
