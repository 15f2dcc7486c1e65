//! The safe API: [`MapleTree`], its read and write guards, and iterators.

use core::cell::RefCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Bound, RangeBounds, RangeInclusive};
use std::collections::HashMap;

use rcu::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use rcu::sync::{Mutex, MutexGuard};
use rcu::{Domain, Seize};

use crate::entry::{clone_word, drop_word, Entry};
use crate::error::{
    AllocError, AllocErrorKind, GapError, InsertError, InsertErrorKind, InvalidRange, StoreError,
    ValidateError,
};
use crate::raw::node::Item;
use crate::raw::walk::{self, LeafCursor};
use crate::raw::write::{Garbage, Mode};
use crate::raw::{dump, gap, validate, RawTree, StoreKind};

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
pub struct MapleTree<E: Entry, D: Domain = Seize> {
    raw: RawTree,
    domain: D,
    lock: Mutex<WriterState>,
    /// Identity of the thread holding the write lock (0 when none), so `validate`, dumps
    /// and `clone` can run inside that thread's own write section without deadlocking.
    writer: AtomicUsize,
    /// `alloc_cyclic` wrapped past `usize::MAX` and has not reported it yet.
    wrapped: AtomicBool,
    /// Recycled nodes: replaced nodes come back here after their grace period.
    pool: rcu::sync::Arc<crate::raw::pool::NodePool>,
    _entries: PhantomData<E>,
}

/// State only the writer touches, kept inside the write lock.
#[derive(Default, Debug)]
struct WriterState {
    /// For owning entry types: how many slots beyond the first hold each word. A store
    /// into the middle of a range leaves the value on both sides; the value is retired
    /// (or dropped) only when its last slot goes.
    dups: HashMap<usize, usize>,
    /// Reused between writes so a write allocates nothing for its bookkeeping.
    garbage: Garbage,
}

impl WriterState {
    /// Account for a write's duplicated and removed words; returns the words whose last
    /// slot went (to be retired or dropped).
    /// Leaves in `g.values` only the words to retire.
    fn resolve<E: Entry>(&mut self, g: &mut Garbage) {
        if !E::OWNED {
            return;
        }
        for &w in &g.dup_added {
            *self.dups.entry(w).or_insert(0) += 1;
        }
        if !self.dups.is_empty() {
            g.values.retain(|&w| !self.release(w));
        }
    }

    /// One slot holding `w` goes away: true if another slot still holds it.
    fn release(&mut self, w: usize) -> bool {
        match self.dups.get_mut(&w) {
            Some(c) => {
                *c -= 1;
                if *c == 0 {
                    self.dups.remove(&w);
                }
                true
            }
            None => false,
        }
    }
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
            lock: Mutex::new(WriterState::default()),
            writer: AtomicUsize::new(0),
            wrapped: AtomicBool::new(false),
            pool: rcu::sync::Arc::new(Default::default()),
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
            read: self.read(),
            state: RefCell::new(lock),
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
    /// small per-tree cache (at most a few hundred nodes) that later writes allocate from
    /// first. Everything is freed when the tree drops; call this (after
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
            let mut st = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            n += st.garbage.spare.len();
            // SAFETY: the stash holds unreferenced node allocations owned by the writer
            // state, which we hold.
            unsafe { crate::raw::pool::free_all(&st.garbage.spare) };
            st.garbage.spare = Vec::new();
        }
        n + self.pool.shrink()
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

    /// The kind of the last write (for white-box tests and curiosity).
    #[doc(hidden)]
    pub fn last_store_kind(&self) -> Option<StoreKind> {
        self.raw.last_kind()
    }

    /// How many times each [`StoreKind`] ran, in [`StoreKind::ALL`] order.
    #[doc(hidden)]
    pub fn store_kind_counts(&self) -> [usize; StoreKind::COUNT] {
        // Relaxed: statistics.
        core::array::from_fn(|i| self.raw.kind_counts[i].load(Ordering::Relaxed))
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
        // deadlock this); a poisoned state is consistent, see the type's docs.
        let st = self.lock.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut g = core::mem::take(&mut st.garbage);
        // SAFETY: `&mut self` excludes readers and other writers; the word is owned.
        unsafe { self.raw.store(first, last, word, Mode::Exclusive, &mut g) };
        // Bookkeeping before any foreign code (the drops below run user `Drop`).
        st.resolve::<E>(&mut g);
        g.dedup();
        for &n in &g.nodes {
            if g.spare.len() < crate::raw::pool::POOL_CAP {
                // Unlinked and unreachable (no readers exist): reuse it directly.
                g.spare.push(n.addr());
                continue;
            }
            // SAFETY: unlinked by the store and unreachable: no readers exist.
            unsafe { n.free() };
        }
        for &v in &g.values {
            // SAFETY: overwritten words owned by the tree, now unreachable.
            unsafe { drop_word::<E>(v) };
        }
        g.clear();
        st.garbage = g;
    }

    /// Dispose of a write's garbage in RCU mode: mark nodes dead, retire nodes and values.
    ///
    /// Panic safety: everything the tree's own consistency depends on (the duplicate-word
    /// counts, the dead marks, the list of nodes waiting for a batch) is recorded FIRST,
    /// before any call into the domain. A domain call may run older destructors (user
    /// `Drop` code) on this thread; if one panics, the words and nodes of this write not
    /// yet handed over are leaked, never retired twice or lost from the counts.
    fn retire(&self, g: &mut Garbage, st: &mut WriterState) {
        // 1. Bookkeeping only: no foreign code runs until every step here is done.
        st.resolve::<E>(g);
        g.dedup();
        for &n in &g.nodes {
            // SAFETY: the store has published the replacement, so the node is unreachable
            // for new readers; it is marked exactly once (deduplicated).
            unsafe { n.mark_dead() };
        }
        // 2. Hand over to the domain (may run foreign destructors, which may panic).
        g.dead.extend(g.nodes.iter().map(|n| n.addr()));
        if g.dead.len() >= crate::raw::pool::BATCH_NODES {
            self.retire_dead(g);
        }
        for &v in &g.values {
            // SAFETY: words whose last slot went are unreachable for new readers and are
            // retired once (shared words are counted in `WriterState::dups`).
            unsafe { E::retire_word(&self.domain, v) };
        }
    }

    /// Retire the nodes waiting in `g.dead` (unlinked and marked dead) as batches that
    /// return them to the node pool after their grace period; refill the writer's stash.
    fn retire_dead(&self, g: &mut Garbage) {
        use crate::raw::pool::{self, Batch, RecycleBatch};
        // Taken out first: if a domain call panics (a foreign destructor run during the
        // hand-off), the nodes not yet handed over are leaked with the taken list instead
        // of staying in `g.dead` to be retired a second time by a later write.
        let mut dead = core::mem::take(&mut g.dead);
        // SAFETY: the nodes are unlinked and marked dead and handed over once (the list was
        // taken out of `g`); the domain reclaims each batch after its grace period.
        unsafe {
            pool::pack(&self.pool, &dead, |b| {
                self.domain.retire::<Batch, RecycleBatch>(b)
            })
        };
        dead.clear();
        g.dead = dead;
        if g.spare.len() < 4 {
            self.pool.take_all(&mut g.spare);
        }
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
        let mut items = Vec::with_capacity(v.len() * 2 + 1);
        let mut cur = 0usize;
        let mut at_end = false;
        for (r, e) in v.into_iter() {
            let Some((a, b)) = bounds(&r) else {
                unreachable!("checked non-empty above")
            };
            if a > cur {
                items.push(Item {
                    piv: a - 1,
                    slot: 0,
                    gap: 0,
                });
            }
            items.push(Item {
                piv: b,
                slot: e.into_word(),
                gap: 0,
            });
            match b.checked_add(1) {
                Some(n) => cur = n,
                None => at_end = true,
            }
        }
        if !at_end {
            items.push(Item {
                piv: usize::MAX,
                slot: 0,
                gap: 0,
            });
        }
        // SAFETY: `&mut self`, empty tree, sorted items covering everything; the words are
        // owned entries.
        unsafe { self.raw.bulk_build(&items) };
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
    /// before its end. `None` for an empty `r`.
    pub fn find(&self, r: impl RangeBounds<usize>) -> Option<(RangeInclusive<usize>, E::Ref<'_>)> {
        let (a, b) = bounds(&r)?;
        // SAFETY: live section.
        let s = unsafe { walk::next_entry(&self.tree.raw, &self.guard, a, b) }?;
        // SAFETY: read under this section.
        Some((s.min..=s.max, unsafe { self.entry(s.word) }))
    }

    /// The last stored range that begins at or before the end of `r` and ends at or
    /// after its start. `None` for an empty `r`.
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

    /// Stored ranges overlapping `r`, in index order (double-ended). Each item is the
    /// whole stored range, even where it sticks out of `r`. Empty for an empty `r`.
    ///
    /// ```
    /// use maple::{MapleTree, Value};
    /// let t: MapleTree<Value> = (0..10usize).map(|i| (i * 10..=i * 10 + 4, Value::new(i).unwrap())).collect();
    /// let r = t.read();
    /// let got: Vec<_> = r.range(12..=31).map(|(k, _)| k).collect();
    /// assert_eq!(got, [10..=14, 20..=24, 30..=34]);
    /// assert_eq!(r.range(..).rev().next().map(|(k, _)| k), Some(90..=94));
    /// ```
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
            fstart: 0,
            fmoved: false,
            bend: usize::MAX,
            bmoved: false,
        }
    }

    /// Every stored range in order; same as `range(..)`.
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

/// Iterator over stored ranges of a read section; see [`ReadGuard::range`].
pub struct Iter<'g, 't, E: Entry, D: Domain = Seize> {
    g: &'g ReadGuard<'t, E, D>,
    front: usize,
    back: usize,
    done: bool,
    fcur: LeafCursor,
    bcur: LeafCursor,
    /// Items from the front must start at or after this once one was yielded.
    fstart: usize,
    fmoved: bool,
    /// Items from the back must end at or before this once one was yielded.
    bend: usize,
    bmoved: bool,
}

impl<E: Entry, D: Domain> fmt::Debug for Iter<'_, '_, E, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("front", &self.front)
            .field("back", &self.back)
            .field("done", &self.done)
            .finish()
    }
}

impl<'g, E: Entry, D: Domain> Iterator for Iter<'g, '_, E, D> {
    type Item = (RangeInclusive<usize>, E::Ref<'g>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            // SAFETY: the guard is a live section of the tree's domain.
            let s = unsafe {
                self.fcur
                    .slot_at(&self.g.tree.raw, &self.g.guard, self.front)
            };
            if s.max >= self.back {
                self.done = true;
            } else {
                self.front = s.max + 1;
            }
            // After the first item, a range starting before `front` was changed by a
            // writer under us and overlaps what was already yielded: skip it, so items
            // stay strictly ordered.
            if s.word != 0 && (s.min >= self.fstart || !self.fmoved) {
                self.fmoved = true;
                self.fstart = s.max.saturating_add(1);
                // SAFETY: read under the section, which outlives 'g.
                return Some((s.min..=s.max, unsafe { E::word_ref(s.word) }));
            }
        }
    }
}

impl<E: Entry, D: Domain> DoubleEndedIterator for Iter<'_, '_, E, D> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            // SAFETY: the guard is a live section of the tree's domain.
            let s = unsafe {
                self.bcur
                    .slot_at(&self.g.tree.raw, &self.g.guard, self.back)
            };
            if s.min <= self.front {
                self.done = true;
            } else {
                self.back = s.min - 1;
            }
            // Mirror of `next`: skip ranges reaching past what was already yielded.
            if s.word != 0 && (s.max <= self.bend || !self.bmoved) {
                self.bmoved = true;
                self.bend = s.min.saturating_sub(1);
                // SAFETY: read under the section, which outlives 'g.
                return Some((s.min..=s.max, unsafe { E::word_ref(s.word) }));
            }
        }
    }
}

/// The tree's one writer; also a read section (derefs to [`ReadGuard`]). `!Send`.
pub struct WriteGuard<'t, E: Entry, D: Domain = Seize> {
    read: ReadGuard<'t, E, D>,
    state: RefCell<MutexGuard<'t, WriterState>>,
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
        // Relaxed: see `MapleTree::lock`; cleared before the lock is released (fields drop
        // after this body).
        self.read.tree.writer.store(0, Ordering::Relaxed);
        let st = &mut *self.state.borrow_mut();
        if !st.garbage.dead.is_empty() {
            self.read.tree.retire_dead(&mut st.garbage);
        }
    }
}

impl<E: Entry, D: Domain> WriteGuard<'_, E, D> {
    fn tree(&self) -> &MapleTree<E, D> {
        self.read.tree
    }

    /// Run one RCU-mode store and retire what it replaced.
    fn write(&self, first: usize, last: usize, word: usize) -> StoreKind {
        let mut st = self.state.borrow_mut();
        let mut g = core::mem::take(&mut st.garbage);
        // The engine treats entry words as opaque and runs no user code: it finishes the
        // store (new nodes, `len`, publishing) before anything below can panic. If a
        // domain call in `retire` panics, `g` is dropped with what it still lists (leaked,
        // never retired twice) and the writer state keeps a fresh, empty `Garbage`.
        // SAFETY: we hold the write lock; `word` is 0 or an owned entry word.
        let kind = unsafe { self.tree().raw.store(first, last, word, Mode::Rcu, &mut g) };
        self.tree().retire(&mut g, &mut st);
        g.clear();
        st.garbage = g;
        kind
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
        // SAFETY: the guard is a live section; holding the lock makes the answer current.
        let s = unsafe { walk::walk(&self.tree().raw, &self.read.guard, index) }.slot;
        if s.word == 0 {
            return None;
        }
        self.write(s.min, s.max, 0);
        // SAFETY: the value was retired after our section began, so it lives until the
        // guard ends.
        Some((s.min..=s.max, unsafe { self.read.entry(s.word) }))
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
