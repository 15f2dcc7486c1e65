//! The VMA tree: an alloc maple tree whose entries are VMAs of the process-wide
//! type-stable cache, with the raw pointer handling kept in this one place.
//!
//! # Invariants
//!
//! - Every entry of a [`VmaTree`] is a [`Value`] holding the address of a [`Vma`] allocated
//!   from [`VMA_CACHE`] (only [`VmaWrite::store`] inserts, and it takes an [`OwnedVma`]).
//!   User-space addresses are below `2^63`, i.e. at most `Value::MAX`, so the address is
//!   stored unchanged.
//! - Cache memory is handed back to the allocator only after a grace period of the
//!   cache's domain ([`TypeStableCache::shrink`]). The cache and every tree reclaim through
//!   the same process-wide domain ([`VmDomain`]), so the tree guard that every accessor
//!   below holds is also a guard of the cache's domain: a `&Vma` obtained through it points
//!   at a live `Vma` for the guard's lifetime, although possibly one that was freed and
//!   reused meanwhile (readers validate).
//! - A VMA is given back to the cache only after it left its tree and was detached
//!   (refcount 0, which also means no [`VmaRef`] to it exists).

use std::marker::PhantomData;
use std::ops::{Deref, RangeInclusive};
use std::ptr::NonNull;
use std::sync::LazyLock;

use maple::{MapleTree, Value};
use rcu::TypeStableCache;

use crate::domain::VmDomain;
use crate::layout::Seg;
use crate::refcount::Refused;
use crate::vma::Vma;

/// The process-wide VMA cache (the kernel's `vm_area_cachep`), reclaiming through the same
/// domain as the trees.
static VMA_CACHE: LazyLock<TypeStableCache<Vma, VmDomain>> =
    LazyLock::new(|| TypeStableCache::with_domain(Vma::new, VmDomain));

/// Hand the memory of every free VMA back to the allocator after a grace period.
pub(crate) fn shrink_cache() -> usize {
    VMA_CACHE.shrink()
}

/// A freshly allocated, attached VMA not yet stored in a tree.
pub(crate) struct OwnedVma(NonNull<Vma>);

impl OwnedVma {
    /// Allocate a VMA for `seg` in address space `mm`, write-locked at `seq`, and attach it.
    pub(crate) fn new(seg: &Seg, mm: usize, seq: usize) -> OwnedVma {
        let p = VMA_CACHE.alloc(|v| v.init(seg, mm, seq));
        // SAFETY: just allocated from the cache; alive until freed (which needs a detach).
        unsafe { p.as_ref() }.refcnt().attach();
        OwnedVma(p)
    }
}

impl Deref for OwnedVma {
    type Target = Vma;
    fn deref(&self) -> &Vma {
        // SAFETY: allocated and attached by `new`; it is freed only after a tree stored it
        // and later retired it, which consumes this handle first.
        unsafe { self.0.as_ref() }
    }
}

/// A reference-counted hold on a VMA (a per-VMA read lock), valid without any RCU guard:
/// writers wait for it before changing or freeing the VMA.
pub(crate) struct VmaRef<'t> {
    ptr: NonNull<Vma>,
    _tree: PhantomData<&'t VmaTree>,
}

impl Deref for VmaRef<'_> {
    type Target = Vma;
    fn deref(&self) -> &Vma {
        // SAFETY: we hold a reference count; a VMA is freed only after detaching, which
        // waits until the count has no readers, so the object is alive while we exist.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for VmaRef<'_> {
    fn drop(&mut self) {
        self.refcnt().put();
    }
}

// SAFETY: the count may be dropped from any thread, and `Vma` is `Sync` (all atomics).
unsafe impl Send for VmaRef<'_> {}
// SAFETY: only `&Vma` is handed out, and `Vma` is `Sync`.
unsafe impl Sync for VmaRef<'_> {}

/// The tree of one address space.
pub(crate) struct VmaTree {
    tree: MapleTree<Value, VmDomain>,
}

/// A read section over the tree and (same domain) the VMA cache: one section.
pub(crate) struct VmaRead<'t> {
    g: maple::ReadGuard<'t, Value, VmDomain>,
}

/// The tree's writer (also a read section of the tree's and the cache's domain).
pub(crate) struct VmaWrite<'t> {
    g: maple::WriteGuard<'t, Value, VmDomain>,
}

/// The pointer a tree entry stands for.
///
/// Provenance: [`VmaWrite::store`] turned the cache's own pointer (the one
/// [`TypeStableCache::alloc`] returned, whose provenance covers the whole cache slot) into
/// the entry with a pointer-to-integer `as` cast, which *exposes* that provenance. The
/// integer-to-pointer `as` cast here picks it up again, so the result may be handed back to
/// [`TypeStableCache::free`], which touches the slot beyond the `Vma`. A pointer re-derived
/// from a `&Vma` could not be: its provenance ends with the `Vma` (Stacked Borrows).
/// (`as` rather than `with_exposed_provenance_mut`: the workspace's MSRV predates it; the
/// semantics are the same.)
fn entry_ptr(v: Value) -> NonNull<Vma> {
    let p = v.get() as *mut Vma;
    // SAFETY: by the module invariants `v` is the address of a cache VMA, never 0.
    unsafe { NonNull::new_unchecked(p) }
}

/// Turn an entry into the VMA it names, for as long as the section `_s` lives.
fn entry<S>(v: Value, _s: &S) -> &Vma {
    // SAFETY: by the module invariants `v` is the address of a cache VMA, and the caller's
    // section is a guard of the cache's domain, so the memory is a live `Vma` while that
    // borrow lasts.
    unsafe { entry_ptr(v).as_ref() }
}

/// A VMA named by an entry of a tree being written, kept as the raw pointer recovered from
/// the entry (see [`entry_ptr`]) so that it can be given back to the cache with
/// [`VmaWrite::retire`] without ever round-tripping through a reference. Dereferences to
/// the VMA while the writer's section `'s` lives.
#[derive(Clone, Copy)]
pub(crate) struct Entry<'s> {
    ptr: NonNull<Vma>,
    _section: PhantomData<&'s Vma>,
}

impl Deref for Entry<'_> {
    type Target = Vma;
    fn deref(&self) -> &Vma {
        // SAFETY: a cache VMA named by a tree entry, and the section `'s` that found it is a
        // guard of the cache's domain, so the memory is a live `Vma` while `'s` lasts.
        unsafe { self.ptr.as_ref() }
    }
}

impl VmaTree {
    pub(crate) fn new() -> VmaTree {
        VmaTree {
            tree: MapleTree::alloc_with_domain(VmDomain),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }

    /// Enter one read section (of the tree's domain, which is also the cache's).
    #[inline]
    pub(crate) fn read(&self) -> VmaRead<'_> {
        VmaRead {
            g: self.tree.read(),
        }
    }

    pub(crate) fn write(&self) -> VmaWrite<'_> {
        VmaWrite {
            g: self.tree.lock(),
        }
    }

    /// The tree's structural invariants.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.tree.validate().map_err(|e| e.to_string())
    }

    /// A node-by-node copy whose entries still name this tree's VMAs; the caller must
    /// re-point every entry (see [`VmaWrite::store`]) before anything else uses it.
    pub(crate) fn duplicate(&self) -> VmaTree {
        VmaTree {
            tree: self.tree.clone(),
        }
    }

    /// Detach and recycle every VMA (the tree is being dropped by its only user).
    pub(crate) fn clear(&mut self) {
        let r = self.read();
        // The pointers straight from the entries (not via `&Vma`): see `entry_ptr`.
        let all: Vec<NonNull<Vma>> = r.g.iter().map(|(_, v)| entry_ptr(v)).collect();
        drop(r);
        for p in all {
            // SAFETY: `&mut self`: no reader of this tree exists and the tree is dropped
            // right after, so nothing reaches these VMAs again; each is freed once.
            unsafe { free_detached(p) };
        }
    }
}

/// Detach `p` (waiting for temporary readers), forget its owner, give it back to the cache.
///
/// # Safety
///
/// `p` is a cache VMA that no tree names any more and that is freed only here, once, and it
/// carries the cache pointer's provenance (it came from [`entry_ptr`], not from a `&Vma`).
unsafe fn free_detached(p: NonNull<Vma>) {
    // SAFETY: alive until the free below (caller contract).
    let vma = unsafe { p.as_ref() };
    vma.refcnt().detach();
    vma.clear_owner();
    // SAFETY: from VMA_CACHE.alloc, detached, unreachable from any tree, freed once.
    unsafe { VMA_CACHE.free(p) };
}

impl<'t> VmaRead<'t> {
    /// The VMA whose entry contains `addr`.
    pub(crate) fn load(&self, addr: usize) -> Option<&Vma> {
        self.g.load(addr).map(|v| entry(v, self))
    }

    /// The first VMA ending above `addr`.
    pub(crate) fn find_from(&self, addr: usize) -> Option<&Vma> {
        self.g.find(addr..).map(|(_, v)| entry(v, self))
    }

    /// The entry range containing `addr` and its VMA, or the maximal empty range around it
    /// (one point walk, like `mas_walk`).
    pub(crate) fn walk(&self, addr: usize) -> (RangeInclusive<usize>, Option<&Vma>) {
        let (r, v) = self.g.walk(addr);
        (r, v.map(|v| entry(v, self)))
    }

    /// The VMAs whose entries overlap `r`, in order, with their entry ranges.
    pub(crate) fn range(&self, r: RangeInclusive<usize>) -> Vec<(RangeInclusive<usize>, &Vma)> {
        self.g.range(r).map(|(r, v)| (r, entry(v, self))).collect()
    }

    /// Up to `max` VMAs in order from the one containing (or first after) `from`, in one
    /// pass of the tree's iterator. Exact only if no store runs meanwhile: callers validate.
    pub(crate) fn scan(&self, from: usize, max: usize) -> Vec<&Vma> {
        self.g
            .range(from..)
            .take(max)
            .map(|(_, v)| entry(v, self))
            .collect()
    }

    /// Every VMA in order.
    pub(crate) fn iter(&self) -> Vec<&Vma> {
        self.g.iter().map(|(_, v)| entry(v, self)).collect()
    }

    /// Take a read reference on `vma` (found through this section) that outlives the
    /// section. Fails if it is detached or excluded.
    pub(crate) fn get_ref(&self, vma: &Vma) -> Result<VmaRef<'t>, Refused> {
        vma.refcnt().try_get()?;
        Ok(VmaRef {
            // Derived from `&Vma`, which is enough: a `VmaRef` only reads the `Vma` and drops
            // its count; it never hands the pointer back to the cache.
            ptr: NonNull::from(vma),
            _tree: PhantomData,
        })
    }
}

impl VmaWrite<'_> {
    /// The VMAs whose entries overlap `r`, in order, with their entry ranges.
    pub(crate) fn range(
        &self,
        r: RangeInclusive<usize>,
    ) -> Vec<(RangeInclusive<usize>, Entry<'_>)> {
        self.g
            .range(r)
            .map(|(r, v)| {
                let e = Entry {
                    ptr: entry_ptr(v),
                    _section: PhantomData,
                };
                (r, e)
            })
            .collect()
    }

    /// Lowest start of a free run of `size` inside `window`.
    pub(crate) fn empty_area(&self, window: RangeInclusive<usize>, size: usize) -> Option<usize> {
        self.g.empty_area(window, size).ok()
    }

    /// Highest start of a free run of `size` inside `window`.
    pub(crate) fn empty_area_rev(
        &self,
        window: RangeInclusive<usize>,
        size: usize,
    ) -> Option<usize> {
        self.g.empty_area_rev(window, size).ok()
    }

    /// Store `vma` over its range (replacing whatever was there in one store).
    pub(crate) fn store(&self, vma: OwnedVma) {
        let (start, end) = vma.range();
        // The pointer-to-integer `as` cast exposes the provenance of the cache's pointer, for
        // `entry_ptr` to pick up again (see there).
        let v = Value::new(vma.0.as_ptr() as usize).expect("VMA address exceeds Value::MAX");
        // INVARIANT: the entry is the address of a cache VMA (from `OwnedVma`).
        if self.g.store_range(start..=end - 1, v).is_err() {
            unreachable!("store of a valid VMA range failed");
        }
    }

    /// Empty `r` (hole punch).
    pub(crate) fn punch(&self, r: RangeInclusive<usize>) {
        if self.g.punch(r).is_err() {
            unreachable!("punch of a valid range failed");
        }
    }

    /// Give `vma` back to the cache after the caller removed it from this tree.
    ///
    /// # Safety
    ///
    /// `vma` was an entry of this tree, no entry names it any more, and it is retired once.
    pub(crate) unsafe fn retire(&self, vma: Entry<'_>) {
        // SAFETY: forwarded from the caller; this tree's entries are cache VMAs, and an
        // `Entry` carries the pointer recovered from the entry itself (`entry_ptr`).
        unsafe { free_detached(vma.ptr) };
    }
}

impl std::fmt::Debug for VmaTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmaTree")
            .field("len", &self.tree.len())
            .finish()
    }
}
