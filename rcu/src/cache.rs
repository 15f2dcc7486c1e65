//! [`TypeStableCache`]: a type-stable object cache (the kernel's `SLAB_TYPESAFE_BY_RCU`).

use core::fmt;
use core::ptr::{self, NonNull};

use crate::domain::{Domain, DropBox};
use crate::sync::{Mutex, MutexGuard, UnsafeCell};
use crate::Seize;

/// A cache of `T` objects whose memory stays a valid `T` across free and reuse.
///
/// [`free`](TypeStableCache::free) puts an object on the cache's free list and the next
/// [`alloc`](TypeStableCache::alloc) may hand it out again **at once**, while readers that
/// looked it up earlier may still be reading it. Memory goes back to the allocator only
/// through [`shrink`](TypeStableCache::shrink) (or `Drop`), which retires free objects
/// through the cache's domain `D`, i.e. after a grace period. So a reader inside a guard of
/// the cache's domain that holds a stale pointer always reads a live object of the right
/// type, **but maybe not the one it looked up**.
///
/// # Requirements on `T`
///
/// - `T: Sync`, and every field a reader reads without holding a reference (identity,
///   reference count, the fields it validates) is an atomic (or otherwise `Sync`
///   interior-mutable). Reuse re-initialises the object through `&T` while such readers may
///   be reading it; a plain field written on reuse would be a data race.
/// - `T: Send`: objects are dropped on whatever thread runs the grace period.
///
/// # Reader protocol
///
/// 1. Enter a guard of the cache's domain ([`enter`](TypeStableCache::enter)) before
///    loading a pointer to a cached object, and keep it until step 4 or until done.
/// 2. Load the pointer from wherever it is published (with [`Guard::protect`](crate::Guard)
///    or an `Acquire` load).
/// 3. Take a reference using only atomics, e.g. increment a count unless it is zero (zero =
///    freed or being freed; the writer must drop it to zero before `free`).
/// 4. **Re-validate identity** after taking the reference (owner, key, range, generation):
///    the object may have been freed and reused between steps 2 and 3. On a mismatch, drop
///    the reference and retry or give up.
/// 5. While holding a reference the object cannot be freed (the writer's protocol), so the
///    guard may be dropped.
///
/// ```
/// use rcu::sync::atomic::{AtomicUsize, Ordering};
/// use rcu::TypeStableCache;
///
/// #[derive(Default)]
/// struct Obj {
///     key: AtomicUsize,
///     refs: AtomicUsize,
/// }
///
/// let cache: TypeStableCache<Obj> = TypeStableCache::default();
/// let a = cache.alloc(|o| {
///     o.key.store(1, Ordering::Relaxed);
///     o.refs.store(1, Ordering::Release);
/// });
/// // SAFETY: `a` is from this cache and no longer used by us.
/// unsafe { cache.free(a) };
/// let b = cache.alloc(|o| {
///     o.key.store(2, Ordering::Relaxed);
///     o.refs.store(1, Ordering::Release);
/// });
/// assert_eq!(a, b); // reused at once: a stale reader of `a` must check `key`
/// // SAFETY: `b` is from this cache, not used after this.
/// unsafe { cache.free(b) };
/// assert_eq!(cache.shrink(), 1); // memory returns to the allocator after a grace period
/// ```
pub struct TypeStableCache<T, D: Domain = Seize> {
    domain: D,
    ctor: Box<dyn Fn() -> T + Send + Sync>,
    state: Mutex<State<T>>,
}

/// Bookkeeping protected by the cache lock.
///
/// # Invariants
///
/// `head` is a doubly linked list (through `Slot::links`) of every slot the cache owns;
/// `free` lists exactly the slots with `links.free == true`; `in_use` counts the others.
struct State<T> {
    head: *mut Slot<T>,
    free: Vec<NonNull<Slot<T>>>,
    in_use: usize,
    /// Objects retired by `shrink` so far.
    released: usize,
}

/// One object plus the cache's private links. `value` is first, so a pointer to the slot is
/// a pointer to the value (`repr(C)`).
#[repr(C)]
struct Slot<T> {
    value: T,
    /// Touched only with the cache lock held; readers never look at it.
    links: UnsafeCell<Links<T>>,
}

struct Links<T> {
    prev: *mut Slot<T>,
    next: *mut Slot<T>,
    free: bool,
}

// SAFETY: the cache owns `T` values (so `T: Send` to move them to whichever thread drops
// them); shared access hands out `&T` to any thread (so `T: Sync`); raw pointers in the
// state are only used under the lock.
unsafe impl<T: Send + Sync, D: Domain> Send for TypeStableCache<T, D> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync, D: Domain> Sync for TypeStableCache<T, D> {}

/// Statistics of a [`TypeStableCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Objects handed out and not freed.
    pub in_use: usize,
    /// Objects on the free list (ready for reuse, memory still owned).
    pub free: usize,
    /// Objects whose memory was handed back through `shrink` so far.
    pub released: usize,
}

impl<T: Default + Send + Sync + 'static, D: Domain> Default for TypeStableCache<T, D> {
    fn default() -> Self {
        Self::new(T::default)
    }
}

impl<T: Send + Sync, D: Domain> TypeStableCache<T, D> {
    /// A cache that builds fresh objects with `ctor` (run once per object's memory, like a
    /// slab constructor; reused objects are re-initialised by `alloc`'s `init` instead).
    pub fn new(ctor: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Self::with_domain(ctor, D::default())
    }

    /// As [`new`](Self::new) with a given domain.
    pub fn with_domain(ctor: impl Fn() -> T + Send + Sync + 'static, domain: D) -> Self {
        Self {
            domain,
            ctor: Box::new(ctor),
            state: Mutex::new(State {
                head: ptr::null_mut(),
                free: Vec::new(),
                in_use: 0,
                released: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The lock is never held across user code, so poisoning cannot leave the state
        // half-updated; tolerate it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The domain whose grace periods protect readers of this cache.
    pub fn domain(&self) -> &D {
        &self.domain
    }

    /// Enter a read-side section of the cache's domain (reader protocol step 1).
    pub fn enter(&self) -> D::Guard<'_> {
        self.domain.enter()
    }

    /// Hand out an object: a free one if there is one (possibly still being read by stale
    /// readers), else a fresh one from the constructor. `init` runs on it before it is
    /// returned and must set every field through `&T` (atomics), publishing the new
    /// identity with `Release` stores as the reader protocol needs.
    ///
    /// The pointer stays valid until it is passed to [`free`](Self::free) or the cache is
    /// dropped. Pass back exactly the pointer you got (not one re-derived from a reference).
    pub fn alloc(&self, init: impl FnOnce(&T)) -> NonNull<T> {
        let reused = {
            let mut st = self.lock();
            let slot = st.free.pop();
            if let Some(slot) = slot {
                // SAFETY: slots on the free list are owned by the cache and alive; links are
                // only touched under the lock, which we hold.
                unsafe { slot.as_ref() }.links.with_mut(|l| {
                    // SAFETY: as above.
                    unsafe { (*l).free = false }
                });
                st.in_use += 1;
            }
            slot
        };
        let slot = match reused {
            Some(s) => s,
            None => {
                let fresh = Box::into_raw(Box::new(Slot {
                    value: (self.ctor)(),
                    links: UnsafeCell::new(Links {
                        prev: ptr::null_mut(),
                        next: ptr::null_mut(),
                        free: false,
                    }),
                }));
                let mut st = self.lock();
                // SAFETY: `fresh` is a new, unshared slot and `st.head` (if any) is an owned
                // slot; we hold the lock, so we may edit the links.
                unsafe { link_front(&mut st, fresh) };
                st.in_use += 1;
                // SAFETY: `fresh` came from `Box::into_raw`, so it is non-null.
                unsafe { NonNull::new_unchecked(fresh) }
            }
        };
        let value = slot.cast::<T>();
        // SAFETY: the slot is alive (owned by the cache until `free` + `shrink`) and `T` is
        // `Sync`, so a shared reference may coexist with stale readers' references.
        init(unsafe { value.as_ref() });
        value
    }

    /// Return an object to the cache; it may be handed out again by the next `alloc`.
    ///
    /// # Safety
    ///
    /// `ptr` came from `alloc` on this cache and was not freed since. After this call the
    /// caller treats the object like any stale reader does (reader protocol).
    pub unsafe fn free(&self, ptr: NonNull<T>) {
        let slot = ptr.cast::<Slot<T>>();
        let mut st = self.lock();
        // SAFETY: by the caller's contract `slot` is an owned, live slot; we hold the lock.
        let was_free = unsafe { slot.as_ref() }.links.with_mut(|l| {
            // SAFETY: as above.
            unsafe { core::mem::replace(&mut (*l).free, true) }
        });
        debug_assert!(!was_free, "TypeStableCache::free: double free");
        if was_free {
            return;
        }
        st.in_use -= 1;
        st.free.push(slot);
    }

    /// Hand every free object's memory back to the allocator after a grace period of the
    /// cache's domain (objects are dropped then). Returns how many were released.
    pub fn shrink(&self) -> usize {
        let taken = {
            let mut st = self.lock();
            let taken = core::mem::take(&mut st.free);
            for &slot in &taken {
                // SAFETY: free-list slots are owned and linked; we hold the lock.
                unsafe { unlink(&mut st, slot.as_ptr()) };
            }
            st.released += taken.len();
            taken
        };
        for slot in &taken {
            // SAFETY: the slot is no longer reachable from the cache (unlinked, off the free
            // list) and was free, so no one publishes it any more; stale readers are inside
            // guards of `self.domain`, which the grace period waits for. It came from
            // `Box::into_raw` and is retired once.
            unsafe { self.domain.retire::<Slot<T>, DropBox>(slot.as_ptr()) };
        }
        taken.len()
    }

    /// Objects handed out and not freed.
    pub fn len(&self) -> usize {
        self.lock().in_use
    }

    /// `true` if no object is handed out.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Objects whose memory the cache owns (in use + free).
    pub fn capacity(&self) -> usize {
        let st = self.lock();
        st.in_use + st.free.len()
    }

    /// Current statistics.
    pub fn stats(&self) -> CacheStats {
        let st = self.lock();
        CacheStats {
            in_use: st.in_use,
            free: st.free.len(),
            released: st.released,
        }
    }
}

/// Push `slot` at the front of the all-slots list.
///
/// # Safety
///
/// Cache lock held (`st`); `slot` is live and not linked; `st.head` is null or live.
unsafe fn link_front<T>(st: &mut State<T>, slot: *mut Slot<T>) {
    let head = st.head;
    // SAFETY: `slot` is live and we hold the lock.
    unsafe { &*slot }.links.with_mut(|l| {
        // SAFETY: as above.
        unsafe {
            (*l).prev = ptr::null_mut();
            (*l).next = head;
        }
    });
    if !head.is_null() {
        // SAFETY: `head` is live and we hold the lock.
        unsafe { &*head }.links.with_mut(|l| {
            // SAFETY: as above.
            unsafe { (*l).prev = slot }
        });
    }
    st.head = slot;
}

/// Remove `slot` from the all-slots list.
///
/// # Safety
///
/// Cache lock held (`st`); `slot` is live and linked.
unsafe fn unlink<T>(st: &mut State<T>, slot: *mut Slot<T>) {
    // SAFETY: `slot` is live and we hold the lock.
    let (prev, next) = unsafe { &*slot }.links.with(|l| {
        // SAFETY: as above.
        unsafe { ((*l).prev, (*l).next) }
    });
    if prev.is_null() {
        st.head = next;
    } else {
        // SAFETY: linked neighbours are live; lock held.
        unsafe { &*prev }.links.with_mut(|l| {
            // SAFETY: as above.
            unsafe { (*l).next = next }
        });
    }
    if !next.is_null() {
        // SAFETY: linked neighbours are live; lock held.
        unsafe { &*next }.links.with_mut(|l| {
            // SAFETY: as above.
            unsafe { (*l).prev = prev }
        });
    }
}

impl<T, D: Domain> Drop for TypeStableCache<T, D> {
    fn drop(&mut self) {
        // `&mut self`: no guard of our domain exists, so no reader can hold any object;
        // drop every object we own, in use or free. (The domain, dropped next, runs the
        // objects already retired by `shrink`.)
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut cur = st.head;
        st.head = ptr::null_mut();
        st.free.clear();
        while !cur.is_null() {
            // SAFETY: linked slots are live and owned; we have exclusive access.
            let next = unsafe { &*cur }.links.with(|l| {
                // SAFETY: as above.
                unsafe { (*l).next }
            });
            // SAFETY: every slot came from `Box::into_raw` and is freed once here (it is
            // unlinked from our list as we go).
            drop(unsafe { Box::from_raw(cur) });
            cur = next;
        }
    }
}

impl<T, D: Domain> fmt::Debug for TypeStableCache<T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("TypeStableCache")
            .field("type", &core::any::type_name::<T>())
            .field("in_use", &st.in_use)
            .field("free", &st.free.len())
            .field("released", &st.released)
            .field("domain", &self.domain)
            .finish()
    }
}
