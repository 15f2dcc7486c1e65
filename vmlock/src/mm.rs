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
use crate::tree::{Entry, OwnedVma, VmaRef, VmaTree, VmaWrite};
use crate::types::{
    Access, Errno, FaultPath, LockStats, MapRequest, MmConfig, Prot, RemapFlags, Speculation,
    VmaInfo,
};

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
}

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
        Mm {
            id: next_mm_id(),
            cfg: config,
            tree: VmaTree::new(),
            mmap_lock: RwLock::new(()),
            seq: SeqCount::new(),
            stats: Stats::default(),
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

    /// Resize and/or move a mapping (Linux `mremap`); returns the new address.
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
    /// fresh copies of the VMAs.
    pub fn fork(&self) -> Mm {
        let session = self.write_session();
        let parent = self.tree.read();
        for v in parent.iter() {
            v.start_write(session.seq);
        }
        // From the duplicate until every child entry names its own VMA, dropping the child
        // (on a panic) would free the parent's VMAs: abort instead.
        let armed = AbortOnUnwind;
        let child = Mm {
            id: next_mm_id(),
            cfg: self.cfg,
            tree: self.tree.duplicate(),
            mmap_lock: RwLock::new(()),
            seq: SeqCount::new(),
            stats: Stats::default(),
        };
        let cg = child.tree.write();
        for v in parent.iter() {
            // The child is not shared yet: its VMAs start unlocked. Each store is an exact
            // fit over the duplicated entry.
            cg.store(OwnedVma::new(&v.snapshot(), child.id, usize::MAX));
        }
        drop(cg);
        armed.disarm();
        drop(parent);
        child
    }

    /// A consistent listing in address order, like `/proc/self/maps`.
    pub fn vmas(&self) -> Vec<VmaInfo> {
        self.mmap_read_lock().vmas()
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
            // `v` may have been freed and reused since the walk (type-stable memory): it is
            // a valid VMA, but maybe not ours; everything below re-validates.
            if v.is_write_locked(self.seq.raw()) {
                self.stats.add(Counter::Abort);
                return None;
            }
            match r.get_ref(v) {
                Ok(held) => break held,
                Err(Refused::Detached) if !retried => {
                    self.stats.add(Counter::Miss);
                    self.stats.add(Counter::Retry);
                    retried = true;
                }
                Err(Refused::Detached) => {
                    self.stats.add(Counter::Miss);
                    self.stats.add(Counter::Abort);
                    return None;
                }
                Err(Refused::Excluded) => {
                    self.stats.add(Counter::Abort);
                    return None;
                }
            }
        };
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
        // cannot change the VMA between this check and the guard's drop.
        if vma.mm_id() != self.id || vma.is_write_locked(self.seq.raw()) {
            self.stats.add(Counter::Abort);
            return None;
        }
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

    /// Store-free speculative lookup: no lock, no atomic read-modify-write, no store to
    /// shared memory (other than entering the RCU sections). `Retry` if a writer was
    /// active or finished meanwhile.
    pub fn lookup_speculative(&self, addr: usize) -> Speculation {
        let Some(start) = self.seq.try_read_begin() else {
            return Speculation::Retry;
        };
        // A valid (maybe reused) VMA; the sequence check below rejects anything a writer
        // touched meanwhile.
        let found = self.tree.read().load(addr).map(|v| v.snapshot());
        if self.seq.read_retry(start) {
            return Speculation::Retry;
        }
        match found {
            None => Speculation::Unmapped,
            Some(s) if s.start <= addr && addr < s.end => Speculation::Found(s.info()),
            // Cannot happen with a valid sequence; refuse rather than guess.
            Some(_) => Speculation::Retry,
        }
    }

    /// Speculation first, then the `mmap_lock` (what a uprobe-style reader does).
    pub fn lookup(&self, addr: usize) -> Option<VmaInfo> {
        match self.lookup_speculative(addr) {
            Speculation::Found(v) => {
                self.stats.add(Counter::SpecOk);
                Some(v)
            }
            Speculation::Unmapped => {
                self.stats.add(Counter::SpecOk);
                None
            }
            Speculation::Retry => {
                self.stats.add(Counter::SpecFailed);
                self.stats.add(Counter::Fallback);
                self.mmap_read_lock().vma_lookup(addr)
            }
        }
    }

    /// A simulated page fault at `addr`: the per-VMA lock first, the `mmap_lock` if that
    /// gives up. `EFAULT` if nothing is mapped there, `EACCES` if the protection does not
    /// allow `access` (no implied permissions: each access needs its own bit).
    pub fn fault(&self, addr: usize, access: Access) -> Result<FaultPath, Errno> {
        let check = |info: VmaInfo| {
            if info.prot.contains(access.needs()) {
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
