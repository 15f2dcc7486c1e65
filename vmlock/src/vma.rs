//! The VMA object: cache-line laid out, every reader-visible field atomic.
//!
//! ```text
//!  line 0 (64 B, read by tree walkers and speculative readers without a reference)
//!  +-------+-----+-------+--------+-------+----+-------------+--------+
//!  | start | end | flags | obj_id | pgoff | mm | vm_lock_seq | (pad)  |
//!  +-------+-----+-------+--------+-------+----+-------------+--------+
//!  line 1 (64 B): vm_refcnt alone, so readers bumping it do not evict line 0 elsewhere
//! ```
//!
//! VMAs live in a process-wide [`TypeStableCache`](rcu::TypeStableCache): a freed VMA can
//! be handed out again at once, for this or another address space, while stale readers
//! still look at it. That is why every field is an atomic (a racing re-initialisation is
//! then a race on atomics, not undefined behaviour) and why readers re-validate the owner
//! (`mm`), the write lock and the range after taking a reference.
//!
//! Build with the `vma-align-128` feature to put each line in its own 128-byte pair
//! (the adjacent-line prefetcher pairs 64-byte lines); the default is 64.

use crate::layout::{Desc, Obj, Seg};
use crate::refcount::VmRefcnt;
use crate::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use crate::types::{FileId, Prot, VmaInfo};

/// The first cache line: everything a walker or a speculative reader reads.
#[cfg_attr(not(feature = "vma-align-128"), repr(C, align(64)))] // one cache line
#[cfg_attr(feature = "vma-align-128", repr(C, align(128)))] // one adjacent-line pair
#[derive(Debug)]
struct Hot {
    start: AtomicUsize,
    end: AtomicUsize,
    /// Packed [`Desc`] without the object id; see `pack`.
    flags: AtomicUsize,
    /// File id or shmem id (meaning given by the kind bits in `flags`).
    obj_id: AtomicU64,
    /// Page offset of `start`.
    pgoff: AtomicU64,
    /// Owner identity: the id of the `Mm` this VMA belongs to (0 = none).
    mm: AtomicUsize,
    /// Write-locked while equal to the owner's `mm_lock_seq`.
    vm_lock_seq: AtomicUsize,
}

/// The reference count in a line of its own.
#[cfg_attr(not(feature = "vma-align-128"), repr(C, align(64)))] // its own cache line
#[cfg_attr(feature = "vma-align-128", repr(C, align(128)))] // its own line pair
#[derive(Debug)]
struct Cold {
    refcnt: VmRefcnt,
}

/// One virtual memory area.
///
/// # Invariants
///
/// - Fields change only while the owner's `mmap_lock` is write-held and the VMA is
///   write-locked (or detached and unpublished).
/// - While attached (`refcnt >= 1`) the VMA is stored in exactly one tree, over
///   `[start, end - 1]`, and `mm` names that tree's owner.
#[repr(C)]
#[derive(Debug)]
pub struct Vma {
    hot: Hot,
    cold: Cold,
}

#[cfg(not(feature = "vma-align-128"))]
const _: () = assert!(core::mem::size_of::<Vma>() == 128 && core::mem::align_of::<Vma>() == 64);
#[cfg(feature = "vma-align-128")]
const _: () = assert!(core::mem::size_of::<Vma>() == 256 && core::mem::align_of::<Vma>() == 128);
// The hot fields fit in the first line.
const _: () = assert!(core::mem::size_of::<AtomicUsize>() * 7 <= 64);

// `flags` layout: bits 0-2 protection, then the flag bits below, then the object kind.
const SHARED: usize = 1 << 3;
const NORESERVE: usize = 1 << 4;
const ACCOUNT: usize = 1 << 5;
const DONTCOPY: usize = 1 << 6;
const KIND_SHIFT: u32 = 8;

fn pack(d: &Desc) -> (usize, u64) {
    let (kind, id) = match d.obj {
        Obj::Anon => (0usize, 0u64),
        Obj::Shmem(id) => (1, id),
        Obj::File(f) => (2, f.0),
    };
    let mut f = d.prot.bits() as usize | kind << KIND_SHIFT;
    if d.shared {
        f |= SHARED;
    }
    if d.noreserve {
        f |= NORESERVE;
    }
    if d.account {
        f |= ACCOUNT;
    }
    if d.dontcopy {
        f |= DONTCOPY;
    }
    (f, id)
}

fn unpack(f: usize, id: u64) -> Desc {
    let obj = match f >> KIND_SHIFT {
        0 => Obj::Anon,
        1 => Obj::Shmem(id),
        _ => Obj::File(FileId(id)),
    };
    Desc {
        prot: Prot::from_bits_truncate((f & 7) as u32),
        shared: f & SHARED != 0,
        noreserve: f & NORESERVE != 0,
        account: f & ACCOUNT != 0,
        dontcopy: f & DONTCOPY != 0,
        obj,
    }
}

impl Default for Vma {
    fn default() -> Self {
        Self::new()
    }
}

impl Vma {
    /// A detached, empty VMA (what the cache constructor builds).
    pub fn new() -> Vma {
        Vma {
            hot: Hot {
                start: AtomicUsize::new(0),
                end: AtomicUsize::new(0),
                flags: AtomicUsize::new(0),
                obj_id: AtomicU64::new(0),
                pgoff: AtomicU64::new(0),
                mm: AtomicUsize::new(0),
                vm_lock_seq: AtomicUsize::new(usize::MAX),
            },
            cold: Cold {
                refcnt: VmRefcnt::new(),
            },
        }
    }

    /// The reference count / read lock.
    pub fn refcnt(&self) -> &VmRefcnt {
        &self.cold.refcnt
    }

    /// Initialise a detached VMA for `seg` in address space `mm`, write-locked at `seq`.
    pub(crate) fn init(&self, seg: &Seg, mm: usize, seq: usize) {
        debug_assert_eq!(self.refcnt().raw(), 0);
        // Release fence (writer-only cost; a compiler barrier on x86-64): pairs with the
        // Acquire fence in a speculative reader's `read_retry`. The object may have been
        // freed by *another* address space's writer A, inside A's write section, and be
        // reused here by a writer B that does not hold A's lock. A's `write_begin`
        // happens-before this point (A freed the VMA into the cache under the cache's
        // lock, which our `alloc` took after it), but B's own `write_begin` fence may
        // predate that, and the Relaxed stores below release nothing by themselves. With
        // this fence, a stale reader of A whose Relaxed loads see any store below
        // synchronises (fence to fence) with it, so its re-load of A's `mm_lock_seq` sees
        // the odd value of A's `write_begin` or later, and it retries. Without it, the C11
        // model (and weakly ordered hardware such as POWER) lets that reader accept B's
        // fields as A's VMA with A's old, even sequence. (loom model:
        // `tests/loom.rs::speculation_vs_reuse_by_another_mm`.)
        fence(Ordering::Release);
        let (flags, id) = pack(&seg.desc);
        // Relaxed everywhere: the object is detached, so no reader can take a reference
        // until `attach`'s Release store publishes these values; speculative readers that
        // see them torn are caught by the owner's `mm_lock_seq` (the VMA they looked up
        // was freed under it; the fence above makes that sequence change visible to them).
        self.hot.vm_lock_seq.store(seq, Ordering::Relaxed);
        self.hot.mm.store(mm, Ordering::Relaxed);
        self.hot.start.store(seg.start, Ordering::Relaxed);
        self.hot.end.store(seg.end, Ordering::Relaxed);
        self.hot.flags.store(flags, Ordering::Relaxed);
        self.hot.obj_id.store(id, Ordering::Relaxed);
        self.hot.pgoff.store(seg.pgoff, Ordering::Relaxed);
    }

    /// Read the fields (`Relaxed` loads; the caller validates with a lock, a reference or
    /// a sequence count).
    pub(crate) fn snapshot(&self) -> Seg {
        // Relaxed: see the method docs; validity comes from the caller's protocol.
        let start = self.hot.start.load(Ordering::Relaxed);
        let end = self.hot.end.load(Ordering::Relaxed);
        let flags = self.hot.flags.load(Ordering::Relaxed);
        let id = self.hot.obj_id.load(Ordering::Relaxed);
        let pgoff = self.hot.pgoff.load(Ordering::Relaxed);
        Seg {
            start,
            end,
            pgoff,
            desc: unpack(flags, id),
        }
    }

    /// `[start, end)` (`Relaxed`).
    pub fn range(&self) -> (usize, usize) {
        // Relaxed: callers validate (see `snapshot`).
        (
            self.hot.start.load(Ordering::Relaxed),
            self.hot.end.load(Ordering::Relaxed),
        )
    }

    /// The owning address space's id (`Acquire`: read after taking a reference).
    pub fn mm_id(&self) -> usize {
        // Acquire: ordered after the reference the caller took; pairs with `attach`.
        self.hot.mm.load(Ordering::Acquire)
    }

    /// The sequence this VMA was last write-locked at (`Acquire`).
    pub fn lock_seq(&self) -> usize {
        // Acquire: a reader re-checks the write lock after taking its reference; the
        // writer's store happens before its Release `unexclude`, which the reader's
        // Acquire increment synchronised with.
        self.hot.vm_lock_seq.load(Ordering::Acquire)
    }

    /// Writer: write-lock at `seq` (the owner's odd `mm_lock_seq`): drain readers, then
    /// mark. A VMA already locked at `seq` is left alone; a detached one is just marked.
    pub fn start_write(&self, seq: usize) {
        // Relaxed: only the writer (us, holding the mmap write lock) stores this field.
        if self.hot.vm_lock_seq.load(Ordering::Relaxed) == seq {
            return;
        }
        if self.refcnt().raw() == 0 {
            // Relaxed: detached and unpublished; `attach` publishes it.
            self.hot.vm_lock_seq.store(seq, Ordering::Relaxed);
            return;
        }
        self.refcnt().exclude_and_wait(1);
        // Relaxed: published to readers by `unexclude`'s Release.
        self.hot.vm_lock_seq.store(seq, Ordering::Relaxed);
        self.refcnt().unexclude();
    }

    /// Whether the VMA is write-locked for the owner whose current sequence is `mm_seq`.
    pub fn is_write_locked(&self, mm_seq: usize) -> bool {
        self.lock_seq() == mm_seq
    }

    /// Raw: initialise a detached VMA as private anonymous memory `[start, end)` owned by
    /// address space `mm`, write-locked at `seq` (for models and tests; `Mm` builds VMAs
    /// itself). Publish it with `refcnt().attach()`.
    pub fn init_anon(&self, start: usize, end: usize, prot: Prot, mm: usize, seq: usize) {
        let desc = Desc {
            prot,
            shared: false,
            noreserve: false,
            account: false,
            dontcopy: false,
            obj: Obj::Anon,
        };
        let seg = Seg {
            start,
            end,
            pgoff: (start >> crate::types::PAGE_SHIFT) as u64,
            desc,
        };
        self.init(&seg, mm, seq);
    }

    /// Raw: change an attached anonymous VMA in place (what the kernel does for a split or
    /// `mprotect`). The caller is the owner's only writer and has write-locked the VMA with
    /// [`start_write`](Self::start_write), so no reader holds it; speculative readers are
    /// caught by the owner's sequence count. (`Mm` replaces VMAs instead; models use this.)
    pub fn update_anon(&self, start: usize, end: usize, prot: Prot) {
        let (flags, _) = pack(&Desc {
            prot,
            shared: false,
            noreserve: false,
            account: false,
            dontcopy: false,
            obj: Obj::Anon,
        });
        // Relaxed: write-locked; readers validate with a reference or a sequence count.
        self.hot.start.store(start, Ordering::Relaxed);
        self.hot.end.store(end, Ordering::Relaxed);
        self.hot.flags.store(flags, Ordering::Relaxed);
        self.hot.pgoff.store(
            (start >> crate::types::PAGE_SHIFT) as u64,
            Ordering::Relaxed,
        );
    }

    /// The fields as a listing entry (`Relaxed` loads; validate as for any reader).
    pub fn info(&self) -> VmaInfo {
        self.snapshot().info()
    }

    /// Forget the owner (after detaching, before the object goes back to the cache).
    pub fn clear_owner(&self) {
        // Relaxed: detached; a stale reader that still gets here refuses on refcount 0.
        self.hot.mm.store(0, Ordering::Relaxed);
    }
}
