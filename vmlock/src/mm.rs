//! [`Mm`]: the address space, its locks and its read paths.
//!
//! # Locks
//!
//! - `mmap_lock` is a [`std::sync::RwLock`]. On Linux it is futex based and prefers
//!   writers (a waiting writer stops new readers), which matches the kernel's `rwsem`
//!   behaviour the fallback paths are measured against, and it needs no extra dependency.
//!   The fast paths never touch it.
//! - `mm_lock_seq` is a [`SeqCount`], odd exactly while `mmap_lock` is write-held (the
//!   write guard bumps it after locking and before unlocking, also on unwind).
//! - Per-VMA locks: see [`Vma`] and [`crate::raw::VmRefcnt`]. A VMA is write-locked when its
//!   `vm_lock_seq` equals the current (odd) `mm_lock_seq`; ending the write section
//!   releases all of them at once.
//!
//! # Tree entries
//!
//! The alloc maple tree maps `[vma.start, vma.end - 1]` to the VMA's address stored as a
//! `maple::Value` (the address itself: user-space pointers are far below `Value::MAX`, and
//! 64-byte aligned, so no information is lost). VMAs come from one process-wide
//! [`TypeStableCache`], so a stale pointer always points at *some* VMA.
//!
//! # Writer order
//!
//! Every operation is planned first (`layout`, with nothing changed), then applied under
//! the mmap write lock change by change: write-lock every VMA in the window (draining
//! readers), build the new VMAs write-locked and attached, store each with one tree store
//! (a store over existing VMAs replaces them in that one store, so readers never see a
//! hole that the final layout does not have), punch the holes the layout does have, and
//! only then detach the VMAs that left the tree and give them back to the cache.
//!
//! One deviation from the kernel: a VMA whose range or attributes change (split, shrink,
//! merge, mprotect) is *replaced* by a new VMA object rather than edited in place; an
//! unchanged VMA keeps its object. Published VMAs are therefore immutable, which makes the
//! reader side simpler to reason about, at the cost of one cache allocation per changed
//! VMA (cheap: freed VMAs are reused from the cache's free list).

use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rcu::SeqCount;

use crate::layout::{self, Change, Plan, Seg, View};
use crate::refcount::Refused;
use crate::stats::{Counter, Stats};
use crate::tree::{Entry, OwnedVma, VmaRead, VmaRef, VmaTree, VmaWrite};
use crate::types::{
    Access, Advice, Errno, FaultPath, LockStats, MapRequest, MmConfig, Prot, RemapFlags,
    Speculation, VmFlags, VmaInfo,
};
use crate::vma::Vma;

/// Source of `Mm` identities (never 0) and of shared-memory object ids.
static IDS: Mutex<(usize, u64)> = Mutex::new((0, 0));

fn next_mm_id() -> usize {
    let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
    ids.0 += 1;
    ids.0
}

fn next_shmem_id() -> u64 {
    let mut ids = IDS.lock().unwrap_or_else(|e| e.into_inner());
    ids.1 += 1;
    ids.1
}

/// Hand the memory of every free VMA in the process-wide cache back to the allocator
/// (after a grace period of the cache's domain). Returns how many were released.
pub fn shrink_vma_cache() -> usize {
    crate::tree::shrink_cache()
}

/// A user-space address space: VMAs in an alloc maple tree, `mmap_lock`, `mm_lock_seq`,
/// per-VMA read locks and store-free speculation.
///
/// ```
/// use vmlock::{Access, Backing, FaultPath, MapFlags, MapRequest, Mm, MmConfig, Prot};
/// let mm = Mm::new(MmConfig::default());
/// let req = MapRequest { addr: None, len: 4 * 4096, prot: Prot::READ, flags: MapFlags::PRIVATE, backing: Backing::Anonymous };
/// let a = mm.mmap(&req).unwrap();
/// assert_eq!(mm.fault(a + 5, Access::Read), Ok(FaultPath::VmaLock));
/// assert!(mm.fault(a, Access::Write).is_err());
/// assert_eq!(mm.lookup(a + 4096).map(|v| v.start), Some(a));
/// mm.munmap(a, 4 * 4096).unwrap();
/// assert!(mm.lookup(a).is_none());
/// ```
///
/// # Aborts
///
/// A panic while a change is being applied to the tree (after planning), or while `fork`
/// builds the child's tree, aborts the process instead of unwinding: the address space
/// would be half-changed, with VMAs readers could still reach. Only a broken internal
/// invariant can panic there.
pub struct Mm {
    id: usize,
    cfg: MmConfig,
    tree: VmaTree,
    mmap_lock: RwLock<()>,
    seq: SeqCount,
    stats: Stats,
}

impl std::fmt::Debug for Mm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mm")
            .field("id", &self.id)
            .field("config", &self.cfg)
            .field("vmas", &self.tree.len())
            .field("mm_lock_seq", &self.seq.raw())
            .finish()
    }
}

/// The mmap write lock plus the odd `mm_lock_seq` section; dropping ends both.
struct WriteSession<'a> {
    mm: &'a Mm,
    _lock: RwLockWriteGuard<'a, ()>,
    /// The odd sequence value of this section: VMAs locked now carry it.
    seq: usize,
}

impl Drop for WriteSession<'_> {
    fn drop(&mut self) {
        // Releases every VMA write lock of this section at once.
        self.mm.seq.write_end();
    }
}

/// Armed around the part of a write section that leaves the tree and the VMAs inconsistent
/// until it completes; if it is dropped, i.e. a panic unwinds out of that part, the process
/// aborts. The normal path ends it with [`disarm`](Self::disarm).
///
/// Why abort rather than unwind: a change being applied has attached VMAs that are not yet
/// stored (a stale reader could lock them), old VMAs that are write-locked and partly
/// replaced, and during `fork` a child tree whose entries still name the *parent's* VMAs
/// (dropping that child would free them). Rolling any of this back would need an undo log
/// for every step, and the only panics possible there are broken internal invariants
/// (allocation failure already aborts), so, like the kernel's `BUG()`, stop the process
/// instead of letting readers run into a half-applied state. Planning runs before the
/// guard is armed: a panic there has changed nothing and unwinds normally (the
/// `WriteSession` drop still ends the section).
///
/// The guard aborts on *any* drop instead of testing [`std::thread::panicking`] so that a
/// write section run by a destructor during an unrelated unwind does not abort.
struct AbortOnUnwind;

impl AbortOnUnwind {
    /// The section completed: drop the guard without aborting.
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        // Only reached when unwinding out of an armed section (see the type docs).
        eprintln!("vmlock: panic while applying an address-space change; aborting");
        std::process::abort();
    }
}

/// A VMA read-locked without the `mmap_lock` (see [`Mm::lock_vma_under_rcu`]).
///
/// While it lives, no writer can change or remove the VMA (a writer waits for it), so the
/// thread holding it must not modify the same address space before dropping it.
pub struct VmaReadGuard<'a> {
    _vma: VmaRef<'a>,
    info: VmaInfo,
}

impl VmaReadGuard<'_> {
    /// The locked VMA.
    pub fn info(&self) -> VmaInfo {
        self.info
    }
}

impl std::fmt::Debug for VmaReadGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmaReadGuard")
            .field("info", &self.info)
            .finish()
    }
}

/// `mmap_lock` held for reading: the layout cannot change while it lives (so the thread
/// holding it must not modify the same address space before dropping it).
pub struct MmapReadGuard<'a> {
    mm: &'a Mm,
    _lock: RwLockReadGuard<'a, ()>,
}

impl std::fmt::Debug for MmapReadGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapReadGuard")
            .field("mm", &self.mm.id)
            .finish()
    }
}

impl MmapReadGuard<'_> {
    /// The first VMA that ends above `addr` (Linux `find_vma`), if any.
    pub fn find_vma(&self, addr: usize) -> Option<VmaInfo> {
        // The read lock keeps every VMA of the tree attached and unchanged.
        self.mm
            .tree
            .read()
            .find_from(addr)
            .map(|v| v.snapshot().info())
    }

    /// The VMA containing `addr` (Linux `vma_lookup`), if any.
    pub fn vma_lookup(&self, addr: usize) -> Option<VmaInfo> {
        self.find_vma(addr).filter(|v| v.start <= addr)
    }

    /// Every VMA in address order.
    pub fn vmas(&self) -> Vec<VmaInfo> {
        self.mm
            .tree
            .read()
            .iter()
            .into_iter()
            .map(|v| v.snapshot().info())
            .collect()
    }

    /// Every VMA in address order with its flags (see [`Mm::smaps`]).
    pub fn smaps(&self) -> Vec<(VmaInfo, VmFlags)> {
        self.mm
            .tree
            .read()
            .iter()
            .into_iter()
            .map(|v| {
                let s = v.snapshot();
                (s.info(), s.flags())
            })
            .collect()
    }
}

/// The layout as the planner sees it, read through the writer's tree guard.
struct TreeView<'a, 'g> {
    g: &'a VmaWrite<'g>,
}

impl View for TreeView<'_, '_> {
    fn overlapping(&self, start: usize, end: usize) -> Vec<Seg> {
        if start >= end {
            return Vec::new();
        }
        self.g
            .range(start..=end - 1)
            .into_iter()
            .map(|(_, v)| v.snapshot())
            .collect()
    }

    fn gap_rev(&self, lo: usize, hi: usize, size: usize) -> Option<usize> {
        if size == 0 || hi <= lo || hi - lo < size {
            return None;
        }
        self.g.empty_area_rev(lo..=hi - 1, size)
    }

    fn gap_fwd(&self, lo: usize, hi: usize, size: usize) -> Option<usize> {
        if size == 0 || hi <= lo || hi - lo < size {
            return None;
        }
        self.g.empty_area(lo..=hi - 1, size)
    }
}

/// Why a VMA found under RCU could not be read-locked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Refusal {
    /// Write-locked by the current write section.
    WriteLocked,
    /// Detached (removed from the tree; maybe freed and not yet reused).
    Detached,
    /// A writer or detacher is draining readers, or the reader limit is reached.
    Excluded,
    /// Reused by another address space since the walk found it.
    Reused,
}

/// One step of [`Mm::vmas_rcu`]: what comes first at or after the step's address.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// This VMA, as it was at some moment of the step, with the addresses between the
    /// step's address and its start unmapped at that moment.
    Vma(Seg),
    /// Nothing is mapped at or after the step's address (at some moment of the step).
    End,
    /// The lock-free attempts could not be sure; take the `mmap_lock`.
    Unsure,
}

/// Per-VMA-lock attempts of a listing step before it falls back to the `mmap_lock`.
const LIST_ATTEMPTS: usize = 64;
/// How long (spins) a listing step waits for the write section in progress to end before
/// it looks again; a write section takes about a microsecond.
const LIST_WAIT_SPINS: u32 = 1 << 12;
/// Rewinds (listed VMAs dropped because a writer merged them onward) before a listing
/// takes the `mmap_lock` for the rest of its run.
const LIST_REWINDS: usize = 8;
/// VMAs a listing reads in one speculative batch (one read section, one sequence check).
const LIST_BATCH: usize = 32;

impl Mm {
    /// An empty address space.
    ///
    /// # Panics
    ///
    /// If `config` is not a usable shape: `mmap_base` and `task_size` must be page-aligned
    /// and `min_addr <= mmap_base <= task_size <= 2^63` (the bound keeps every sum of an
    /// in-range address and length from overflowing). A configuration is fixed by the
    /// program, not runtime input, so a wrong one is a bug to report at once rather than an
    /// error every later call would have to carry. [`MmConfig::default`] is valid.
    ///
    /// ```should_panic
    /// use vmlock::{Mm, MmConfig};
    /// // Not page-aligned.
    /// let _ = Mm::new(MmConfig { task_size: usize::MAX, ..MmConfig::default() });
    /// ```
    pub fn new(config: MmConfig) -> Mm {
        config.assert_valid();
        let id = next_mm_id();
        Mm {
            id,
            cfg: config,
            tree: VmaTree::new(),
            mmap_lock: RwLock::new(()),
            seq: SeqCount::new(),
            stats: Stats::new(id),
        }
    }

    /// The configuration.
    pub fn config(&self) -> MmConfig {
        self.cfg
    }

    /// Number of VMAs.
    pub fn vma_count(&self) -> usize {
        self.tree.len()
    }

    /// The current `mm_lock_seq` (odd while the mmap write lock is held).
    pub fn lock_seq(&self) -> usize {
        self.seq.raw()
    }

    fn write_session(&self) -> WriteSession<'_> {
        let lock = self.mmap_lock.write().unwrap_or_else(|e| e.into_inner());
        self.seq.write_begin();
        WriteSession {
            mm: self,
            _lock: lock,
            seq: self.seq.raw(),
        }
    }

    /// Take the mmap lock for reading (the fallback of the lock-free paths).
    pub fn mmap_read_lock(&self) -> MmapReadGuard<'_> {
        MmapReadGuard {
            mm: self,
            _lock: self.mmap_lock.read().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Plan with `plan` against the current layout and apply the result.
    fn modify(&self, plan: impl FnOnce(&TreeView<'_, '_>) -> Plan) -> Result<usize, Errno> {
        let session = self.write_session();
        let g = self.tree.write();
        let plan = plan(&TreeView { g: &g });
        // A panic from here on would leave a half-applied change: abort instead.
        let armed = AbortOnUnwind;
        for change in &plan.changes {
            self.apply(&g, change, session.seq);
        }
        armed.disarm();
        plan.result
    }

    /// Apply one change (see the module docs for the order).
    fn apply(&self, g: &VmaWrite<'_>, c: &Change, seq: usize) {
        let old: Vec<(Entry<'_>, Seg)> = g
            .range(c.start..=c.end - 1)
            .into_iter()
            .map(|(_, v)| (v, v.snapshot()))
            .collect();
        for (v, _) in &old {
            v.start_write(seq);
        }
        let mut kept = vec![false; old.len()];
        let mut fresh = Vec::new();
        for seg in &c.segs {
            if let Some(i) = old.iter().position(|(_, s)| s == seg) {
                kept[i] = true;
                continue;
            }
            fresh.push(OwnedVma::new(seg, self.id, seq));
        }
        for v in fresh {
            g.store(v);
        }
        // Punch what the new layout leaves empty where an old VMA was.
        let mut holes = Vec::new();
        let mut gap = |gs: usize, ge: usize| {
            if ge > gs && old.iter().any(|(_, s)| s.start < ge && s.end > gs) {
                holes.push(gs..=ge - 1);
            }
        };
        let mut at = c.start;
        for seg in &c.segs {
            gap(at, seg.start);
            at = seg.end;
        }
        gap(at, c.end);
        for h in holes {
            g.punch(h);
        }
        for (i, (v, _)) in old.iter().enumerate() {
            if !kept[i] {
                // SAFETY: `v` was an entry of this tree; every index it covered was just
                // overwritten or punched, so no entry names it; it is retired once here.
                unsafe { g.retire(*v) };
            }
        }
    }

    /// Map memory (Linux `mmap`); returns the address.
    pub fn mmap(&self, req: &MapRequest) -> Result<usize, Errno> {
        let shmem = next_shmem_id();
        self.modify(|v| layout::mmap(v, &self.cfg, req, shmem))
    }

    /// Unmap `[addr, addr + len)` (Linux `munmap`); unmapped parts are fine.
    pub fn munmap(&self, addr: usize, len: usize) -> Result<(), Errno> {
        self.modify(|v| layout::munmap(v, &self.cfg, addr, len))
            .map(drop)
    }

    /// Change protection (Linux `mprotect`). A hole in the range gives `ENOMEM` after the
    /// VMAs before it were changed.
    pub fn mprotect(&self, addr: usize, len: usize, prot: Prot) -> Result<(), Errno> {
        self.modify(|v| layout::mprotect(v, addr, len, prot))
            .map(drop)
    }

    /// Give advice about a range (Linux `madvise`), for the fork advices: `DontFork` marks
    /// every mapped page of the range so that [`fork`](Self::fork) leaves it out of the
    /// child (`VM_DONTCOPY`), `DoFork` clears the mark. The flag splits VMAs at the range's
    /// edges and merges them again like a protection change; a hole anywhere in the range
    /// is `ENOMEM`, after the mapped parts were changed.
    ///
    /// ```
    /// use vmlock::{Advice, Backing, MapFlags, MapRequest, Mm, MmConfig, Prot, VmFlags};
    /// let mm = Mm::new(MmConfig::default());
    /// let a = mm.mmap(&MapRequest { addr: None, len: 4 * 4096, prot: Prot::READ,
    ///                               flags: MapFlags::PRIVATE, backing: Backing::Anonymous }).unwrap();
    /// mm.madvise(a + 4096, 4096, Advice::DontFork).unwrap();
    /// assert_eq!(mm.vmas().len(), 3);
    /// assert!(mm.smaps()[1].1.contains(VmFlags::DONTCOPY));
    /// assert_eq!(mm.fork().vmas().len(), 2); // the middle page is not copied
    /// mm.madvise(a, 4 * 4096, Advice::DoFork).unwrap();
    /// assert_eq!(mm.vmas().len(), 1);
    /// ```
    pub fn madvise(&self, addr: usize, len: usize, advice: Advice) -> Result<(), Errno> {
        self.modify(|v| layout::madvise(v, addr, len, advice))
            .map(drop)
    }

    /// Resize and/or move a mapping (Linux `mremap`); returns the new address.
    ///
    /// With `old_len == 0` on a shared mapping, the source stays and `new_len` bytes of the
    /// same object, from `old_addr`'s offset on, are mapped a second time (at a new address
    /// with `MAYMOVE`, or at `new_addr` with `FIXED`); on a private mapping that is `EINVAL`.
    pub fn mremap(
        &self,
        old_addr: usize,
        old_len: usize,
        new_len: usize,
        flags: RemapFlags,
        new_addr: Option<usize>,
    ) -> Result<usize, Errno> {
        self.modify(|v| layout::mremap(v, &self.cfg, old_addr, old_len, new_len, flags, new_addr))
    }

    /// A copy of this address space with its own VMAs (Linux `fork`): every parent VMA is
    /// write-locked, the tree is duplicated node by node and its entries are pointed at
    /// fresh copies of the VMAs. VMAs marked with [`Advice::DontFork`] are left out (their
    /// ranges are unmapped in the child).
    pub fn fork(&self) -> Mm {
        let session = self.write_session();
        let parent = self.tree.read();
        for v in parent.iter() {
            v.start_write(session.seq);
        }
        // From the duplicate until every child entry names its own VMA, dropping the child
        // (on a panic) would free the parent's VMAs: abort instead.
        let armed = AbortOnUnwind;
        let id = next_mm_id();
        let child = Mm {
            id,
            cfg: self.cfg,
            tree: self.tree.duplicate(),
            mmap_lock: RwLock::new(()),
            seq: SeqCount::new(),
            stats: Stats::new(id),
        };
        let cg = child.tree.write();
        for v in parent.iter() {
            let seg = v.snapshot();
            if seg.copied_on_fork() {
                // The child is not shared yet: its VMAs start unlocked. Each store is an
                // exact fit over the duplicated entry.
                cg.store(OwnedVma::new(&seg, child.id, usize::MAX));
            } else {
                // VM_DONTCOPY: the child's entry (still naming the parent's VMA) goes.
                cg.punch(seg.start..=seg.end - 1);
            }
        }
        drop(cg);
        armed.disarm();
        drop(parent);
        child
    }

    /// A consistent listing in address order, like `/proc/self/maps` before Linux 6.17:
    /// under `mmap_read_lock`, so it waits for a writer and every writer waits for it. See
    /// [`vmas_rcu`](Self::vmas_rcu) for the listing that does neither.
    pub fn vmas(&self) -> Vec<VmaInfo> {
        self.mmap_read_lock().vmas()
    }

    /// [`vmas`](Self::vmas) with each VMA's flags, like the `VmFlags` lines of
    /// `/proc/self/smaps` (the flags that decide merging and forking but that the listing
    /// does not show, such as [`VmFlags::DONTCOPY`]).
    pub fn smaps(&self) -> Vec<(VmaInfo, VmFlags)> {
        self.mmap_read_lock().smaps()
    }

    /// A listing in address order without the `mmap_lock`, as Linux reads
    /// `/proc/pid/maps` since 6.17: writers are not blocked by it, and it does not wait for
    /// them (except, briefly, where it cannot be sure; see below).
    ///
    /// While no writer is active it reads up to 32 VMAs per read section, validated as a
    /// whole by `mm_lock_seq`. Otherwise it goes one VMA at a time, each step in one read
    /// section: find the first VMA at or after where the last one ended, then make sure of
    /// it:
    /// - if no writer was active or finished during the step (`mm_lock_seq` unchanged, no
    ///   store at all), the tree was still and the answer is exact;
    /// - otherwise the VMA is read-locked (its reference count, as in
    ///   [`lock_vma_under_rcu`](Self::lock_vma_under_rcu)), so it cannot change while it is
    ///   read, and a point walk confirms that the addresses before it, back to where the last
    ///   one ended, are unmapped at that moment (a `find` that crossed a concurrent store may
    ///   have skipped a VMA; a walk of one address cannot);
    /// - an attempt that fails (the VMA write-locked by a writer in progress, detached, or
    ///   the gap not confirmed) waits, spinning, for the write section in progress to end
    ///   and looks again; after a few such attempts the step takes `mmap_read_lock`.
    ///
    /// A VMA that starts before where the last one ended (a writer merged listed VMAs with
    /// what follows) makes the listing drop the VMAs it overlaps and continue from the end
    /// of what is left; after a few such rewinds it finishes under `mmap_read_lock`.
    ///
    /// # Guarantees
    ///
    /// The result is sorted and has no overlaps; every entry is a VMA exactly as some
    /// completed operation left it (never a half-updated or write-locked one, never another
    /// address space's); every address that stays mapped throughout the call is covered
    /// (a writer that only splits, merges, re-protects or replaces mappings never makes a
    /// hole appear). It is not a snapshot: entries may come from different moments.
    ///
    /// ```
    /// use vmlock::{Backing, MapFlags, MapRequest, Mm, MmConfig, Prot};
    /// let mm = Mm::new(MmConfig::default());
    /// for i in 0..3 {
    ///     let req = MapRequest { addr: Some(0x10_0000 + 2 * i * 4096), len: 4096, prot: Prot::READ,
    ///                            flags: MapFlags::PRIVATE | MapFlags::FIXED, backing: Backing::Anonymous };
    ///     mm.mmap(&req).unwrap();
    /// }
    /// assert_eq!(mm.vmas_rcu(), mm.vmas());
    /// ```
    pub fn vmas_rcu(&self) -> Vec<VmaInfo> {
        let mut out: Vec<VmaInfo> = Vec::new();
        // Everything below `from` is settled: listed, or seen unmapped.
        let mut from = 0usize;
        let mut rewinds = 0;
        let mut locked: Option<MmapReadGuard<'_>> = None;
        loop {
            if locked.is_none() {
                // Fast path: a batch read while no writer is active, exact as a whole.
                if let Some((batch, end)) = self.list_batch_speculative(from) {
                    // A first VMA that starts before `from` overlaps what was listed: the
                    // step path below rewinds for it.
                    if batch.first().is_none_or(|s| s.start >= from) {
                        for seg in &batch {
                            self.stats.add(Counter::ListStep);
                            out.push(seg.info());
                        }
                        if end {
                            break;
                        }
                        from = batch.last().map_or(from, |s| s.end);
                        continue;
                    }
                }
            }
            self.stats.add(Counter::ListStep);
            let step = match locked {
                Some(_) => self.list_step_locked(from),
                None => match self.list_step_rcu(from) {
                    Step::Unsure => {
                        self.stats.add(Counter::ListFallback);
                        let _g = self.mmap_read_lock();
                        self.list_step_locked(from)
                    }
                    step => step,
                },
            };
            let seg = match step {
                Step::Vma(seg) => seg,
                Step::End | Step::Unsure => break,
            };
            if seg.start < from {
                // A writer merged what we listed with what follows: drop the listed VMAs it
                // overlaps and list again from the end of what is left.
                self.stats.add(Counter::ListRewind);
                while out.last().is_some_and(|l| l.end > seg.start) {
                    out.pop();
                }
                from = out.last().map_or(0, |l| l.end);
                rewinds += 1;
                if rewinds >= LIST_REWINDS && locked.is_none() {
                    // Under the lock nothing changes any more, so this converges: each
                    // further rewind only drops stale entries from before the lock.
                    self.stats.add(Counter::ListFallback);
                    locked = Some(self.mmap_read_lock());
                }
                continue;
            }
            from = seg.end;
            out.push(seg.info());
        }
        drop(locked);
        out
    }

    /// Up to [`LIST_BATCH`] VMAs from `from` on, read in one section with one sequence
    /// check: `None` unless no write section overlapped the read (then the tree was still
    /// and the batch is exact, whatever the iterator does under concurrent stores).
    /// `Some((batch, true))` if the batch reaches the end of the tree.
    fn list_batch_speculative(&self, from: usize) -> Option<(Vec<Seg>, bool)> {
        let start = self.seq.try_read_begin()?;
        let batch: Vec<Seg> = self
            .tree
            .read()
            .scan(from, LIST_BATCH)
            .into_iter()
            .map(|v| v.snapshot())
            .collect();
        if self.seq.read_retry(start) {
            self.stats.add(Counter::ListRetry);
            return None;
        }
        // Sanity of a still tree: sorted, disjoint, past `from`. Anything else means the
        // sequence check was wrong; refuse rather than guess.
        let sorted = batch.windows(2).all(|w| w[0].end <= w[1].start);
        if !sorted || batch.first().is_some_and(|s| s.end <= from) {
            return None;
        }
        let end = batch.len() < LIST_BATCH;
        Some((batch, end))
    }

    /// A listing step under `mmap_read_lock` (held by the caller): exact.
    fn list_step_locked(&self, from: usize) -> Step {
        // The read lock keeps every VMA of the tree attached and unchanged.
        match self.tree.read().find_from(from) {
            Some(v) => Step::Vma(v.snapshot()),
            None => Step::End,
        }
    }

    /// A listing step without the `mmap_lock`; see [`vmas_rcu`](Self::vmas_rcu).
    fn list_step_rcu(&self, from: usize) -> Step {
        // 1. Speculation: if `mm_lock_seq` is even and unchanged across the step, no write
        //    section overlapped it and the tree was still: the answer is exact.
        if let Some(start) = self.seq.try_read_begin() {
            let found = self.tree.read().find_from(from).map(|v| v.snapshot());
            if !self.seq.read_retry(start) {
                match found {
                    None => return Step::End,
                    Some(s) if s.end > from => return Step::Vma(s),
                    // Cannot happen with a valid sequence; take the checked path.
                    Some(_) => {}
                }
            }
            self.stats.add(Counter::ListRetry);
        }
        // 2. Read-lock what `find` gives and confirm the gap before it with a point walk.
        for attempt in 0..LIST_ATTEMPTS {
            if attempt > 0 {
                self.stats.add(Counter::ListRetry);
                self.wait_out_write_section();
            }
            let r = self.tree.read();
            let Some(v) = r.find_from(from) else {
                // End of the tree? Only if `from` lies in an empty range reaching the top.
                let (range, w) = r.walk(from);
                if w.is_none() && *range.end() == usize::MAX {
                    return Step::End;
                }
                continue;
            };
            let Ok(held) = self.try_read_lock(&r, v) else {
                continue;
            };
            // Held and not write-locked: attached to this tree over exactly its range, and
            // no writer changes it (or its entry) until we drop it.
            let seg = held.snapshot();
            if seg.end <= from {
                // `find` raced with a store and returned something behind us.
                continue;
            }
            if seg.start <= from {
                return Step::Vma(seg);
            }
            // The VMA sits in the tree at `seg.start`, so the empty range around `from`
            // reaches exactly up to it iff nothing is mapped in between right now.
            let (range, w) = r.walk(from);
            if w.is_none() && *range.end() == seg.start - 1 {
                return Step::Vma(seg);
            }
        }
        Step::Unsure
    }

    /// If a write section is in progress, spin (bounded) until it ends: what made a
    /// listing step unsure (a write-locked VMA, a store between its `find` and its walk) is
    /// over then. Spinning rather than taking `mmap_read_lock`: a writer that runs sections
    /// back to back would re-take the lock before a sleeping reader wakes up, while every
    /// section ends within microseconds.
    fn wait_out_write_section(&self) {
        let s = self.seq.raw();
        let mut spins = 0;
        while s & 1 == 1 && self.seq.raw() == s && spins < LIST_WAIT_SPINS {
            crate::sync::spin_loop();
            spins += 1;
        }
    }

    /// Read-lock `vma`, found through the read section `r`: the checks of
    /// [`lock_vma_under_rcu`](Self::lock_vma_under_rcu) without its counters.
    fn try_read_lock<'t>(&'t self, r: &VmaRead<'t>, vma: &Vma) -> Result<VmaRef<'t>, Refusal> {
        // `vma` may have been freed and reused since the walk (type-stable memory): it is a
        // valid VMA, but maybe not ours; everything below re-validates.
        if vma.is_write_locked(self.seq.raw()) {
            return Err(Refusal::WriteLocked);
        }
        let held = r.get_ref(vma).map_err(|e| match e {
            Refused::Detached => Refusal::Detached,
            Refused::Excluded => Refusal::Excluded,
        })?;
        // Holding a reference: the VMA cannot be freed or changed under us now (writers
        // wait for it), but it may have been reused before we got it: re-validate.
        //
        // `self.seq.raw()` is a Relaxed load, and that suffices. Say a writer's current
        // section S write-locked this VMA. Its `write_begin` (mm_lock_seq = S) is sequenced
        // before its store of `vm_lock_seq = S` and before the Release operation on the
        // count that followed (`unexclude` after `start_write`; `attach` for a VMA it built
        // locked; the AcqRel decrement of `detach`). Our successful Acquire CAS in
        // `try_get` read that value or a later one of its release sequence (every later
        // write to an attached count is a read-modify-write), so it synchronises with it:
        // `write_begin` happens-before this load, which by coherence returns S or later,
        // and `lock_seq()` returns S. Seeing S, we report "locked" and give up; seeing a
        // later value means section S has ended, which released the lock. A writer that
        // starts locking after our CAS waits for our reference (`exclude_and_wait`), so it
        // cannot change the VMA between this check and the reference's drop.
        if held.mm_id() != self.id {
            return Err(Refusal::Reused);
        }
        if held.is_write_locked(self.seq.raw()) {
            return Err(Refusal::WriteLocked);
        }
        Ok(held)
    }

    /// Read-lock the VMA containing `addr` without the `mmap_lock` (Linux
    /// `lock_vma_under_rcu`). `None` means "fall back to [`mmap_read_lock`](Self::mmap_read_lock)":
    /// nothing mapped there, the VMA is write-locked, or a race was detected.
    pub fn lock_vma_under_rcu(&self, addr: usize) -> Option<VmaReadGuard<'_>> {
        let r = self.tree.read();
        let mut retried = false;
        let vma = loop {
            let Some(v) = r.load(addr) else {
                self.stats.add(Counter::Abort);
                return None;
            };
            match self.try_read_lock(&r, v) {
                Ok(held) => break held,
                Err(Refusal::Detached) if !retried => {
                    self.stats.add(Counter::Miss);
                    self.stats.add(Counter::Retry);
                    retried = true;
                }
                Err(Refusal::Detached) => {
                    self.stats.add(Counter::Miss);
                    self.stats.add(Counter::Abort);
                    return None;
                }
                Err(Refusal::WriteLocked | Refusal::Excluded | Refusal::Reused) => {
                    self.stats.add(Counter::Abort);
                    return None;
                }
            }
        };
        drop(r);
        let seg = vma.snapshot();
        if !(seg.start <= addr && addr < seg.end) {
            self.stats.add(Counter::Abort);
            return None;
        }
        self.stats.add(Counter::Success);
        Some(VmaReadGuard {
            _vma: vma,
            info: seg.info(),
        })
    }

    /// Store-free speculative lookup: no lock, no counter, no store to shared memory. It
    /// enters one read section (of the domain the tree and the VMA cache share), which is
    /// its only write to memory: the thread's own reservation slot of the RCU backend.
    /// `Retry` if a writer was active or finished meanwhile.
    pub fn lookup_speculative(&self, addr: usize) -> Speculation {
        match self.speculate(addr) {
            Some(Some(v)) => Speculation::Found(v),
            Some(None) => Speculation::Unmapped,
            None => Speculation::Retry,
        }
    }

    /// The body of [`lookup_speculative`](Self::lookup_speculative): `None` for "retry",
    /// else the answer. Inlined into both public lookups, so that [`lookup`](Self::lookup)
    /// returns the answer directly instead of converting a [`Speculation`].
    #[inline(always)]
    fn speculate(&self, addr: usize) -> Option<Option<VmaInfo>> {
        let start = self.seq.try_read_begin()?;
        // A valid (maybe reused) VMA; the sequence check below rejects anything a writer
        // touched meanwhile. One section covers the walk and the VMA's memory.
        let found = self.tree.read().load(addr).map(|v| v.snapshot());
        if self.seq.read_retry(start) {
            return None;
        }
        match found {
            None => Some(None),
            Some(s) if s.start <= addr && addr < s.end => Some(Some(s.info())),
            // Cannot happen with a valid sequence; refuse rather than guess.
            Some(_) => None,
        }
    }

    /// Speculation first, then the `mmap_lock` (what a uprobe-style reader does).
    ///
    /// Counts its outcome in [`stats`](Self::stats) without a shared store: the counters
    /// are per thread (a load and a store on a line only this thread writes; summed when
    /// read), so on the store-free path `lookup` writes nothing that another thread reads
    /// besides what [`lookup_speculative`](Self::lookup_speculative) writes.
    pub fn lookup(&self, addr: usize) -> Option<VmaInfo> {
        if let Some(answer) = self.speculate(addr) {
            self.stats.add(Counter::SpecOk);
            return answer;
        }
        self.stats.add(Counter::SpecFailed);
        self.stats.add(Counter::Fallback);
        self.mmap_read_lock().vma_lookup(addr)
    }

    /// A simulated page fault at `addr`: the per-VMA lock first, the `mmap_lock` if that
    /// gives up. `EFAULT` if nothing is mapped there, `EACCES` if the protection does not
    /// allow `access` as on x86-64 ([`Access::allowed_by`]: a load is allowed by any of
    /// read, write or exec; a store needs write; an instruction fetch needs exec).
    pub fn fault(&self, addr: usize, access: Access) -> Result<FaultPath, Errno> {
        let check = |info: VmaInfo| {
            if access.allowed_by(info.prot) {
                Ok(())
            } else {
                Err(Errno::EACCES)
            }
        };
        if let Some(g) = self.lock_vma_under_rcu(addr) {
            return check(g.info()).map(|()| FaultPath::VmaLock);
        }
        self.stats.add(Counter::Fallback);
        let r = self.mmap_read_lock();
        match r.vma_lookup(addr) {
            Some(info) => check(info).map(|()| FaultPath::MmapLock),
            None => Err(Errno::EFAULT),
        }
    }

    /// The read-path counters.
    pub fn stats(&self) -> LockStats {
        self.stats.snapshot()
    }

    /// Check the tree's invariants and that every entry is an attached VMA of this address
    /// space covering exactly its range (for tests).
    pub fn validate(&self) -> Result<(), String> {
        let _r = self.mmap_read_lock();
        self.tree.validate()?;
        let g = self.tree.read();
        for (r, vma) in g.range(0..=usize::MAX) {
            let s = vma.snapshot();
            if s.start != *r.start() || s.end - 1 != *r.end() {
                return Err(format!(
                    "entry {r:x?} holds a VMA of {:#x}..{:#x}",
                    s.start, s.end
                ));
            }
            if vma.mm_id() != self.id {
                return Err(format!("entry {r:x?} belongs to mm {}", vma.mm_id()));
            }
            if vma.refcnt().raw() == 0 {
                return Err(format!("entry {r:x?} is detached"));
            }
        }
        Ok(())
    }
}

impl Drop for Mm {
    fn drop(&mut self) {
        // `&mut self`: no reader of this address space exists. Recycle every VMA.
        self.tree.clear();
    }
}

#[cfg(all(test, unix, not(loom)))]
mod tests {
    use super::AbortOnUnwind;

    /// Set in the child process of `abort_guard_aborts_on_unwind`.
    const CHILD: &str = "VMLOCK_ABORT_GUARD_CHILD";

    /// Review finding F6: unwinding out of an armed section kills the process with SIGABRT
    /// (checked in a child process running this same test).
    #[test]
    fn abort_guard_aborts_on_unwind() {
        if std::env::var_os(CHILD).is_some() {
            let _armed = AbortOnUnwind;
            panic!("injected panic inside an armed section");
        }
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "mm::tests::abort_guard_aborts_on_unwind",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
        assert!(stderr.contains("aborting"), "{stderr}");
    }

    /// A disarmed guard does nothing, also while the thread is already unwinding.
    #[test]
    fn disarmed_guard_is_inert_during_unwind() {
        struct ArmInDrop;
        impl Drop for ArmInDrop {
            fn drop(&mut self) {
                AbortOnUnwind.disarm();
            }
        }
        let r = std::panic::catch_unwind(|| {
            let _d = ArmInDrop;
            panic!("unrelated panic");
        });
        assert!(r.is_err());
    }
}
