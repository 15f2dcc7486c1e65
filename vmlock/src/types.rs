//! The plain data types of the public API: errors, flags, requests and listings.

use core::fmt;

/// The size of a page in bytes; every address and length is counted in these.
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

/// A Linux error number (`errno`), so results compare one to one with the real kernel.
///
/// ```
/// use vmlock::Errno;
/// assert_eq!(Errno::EINVAL.0, 22);
/// assert_eq!(Errno::ENOMEM.to_string(), "ENOMEM (12)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

impl Errno {
    /// Operation not permitted (a fixed mapping below `min_addr`).
    pub const EPERM: Errno = Errno(1);
    /// Try again.
    pub const EAGAIN: Errno = Errno(11);
    /// Out of memory: no room for a mapping, or a range that is not mapped.
    pub const ENOMEM: Errno = Errno(12);
    /// Permission denied.
    pub const EACCES: Errno = Errno(13);
    /// Bad address: `mremap` of a range that is not inside one mapping.
    pub const EFAULT: Errno = Errno(14);
    /// File exists: `MAP_FIXED_NOREPLACE` over a mapping.
    pub const EEXIST: Errno = Errno(17);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
    /// Value too large: a file offset plus length that overflows.
    pub const EOVERFLOW: Errno = Errno(75);
    /// Operation not supported: a flag `MAP_SHARED_VALIDATE` does not know.
    pub const EOPNOTSUPP: Errno = Errno(95);

    /// The symbolic name, if this is one of the constants above.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "EPERM",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            17 => "EEXIST",
            22 => "EINVAL",
            75 => "EOVERFLOW",
            95 => "EOPNOTSUPP",
            _ => return None,
        })
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "Errno::{n}"),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

bitflags::bitflags! {
    /// Page protection, as `PROT_*`.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct Prot: u32 {
        /// No access (`PROT_NONE`, the empty set).
        const NONE = 0;
        /// `PROT_READ`.
        const READ = 1;
        /// `PROT_WRITE`.
        const WRITE = 2;
        /// `PROT_EXEC`.
        const EXEC = 4;
    }
}

bitflags::bitflags! {
    /// `mmap` flags, with the Linux bit values.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct MapFlags: u32 {
        /// `MAP_SHARED`: changes are visible to every mapping of the object.
        const SHARED = 0x01;
        /// `MAP_PRIVATE`: copy on write.
        const PRIVATE = 0x02;
        /// `MAP_FIXED`: place exactly at `addr`, replacing what is there.
        const FIXED = 0x10;
        /// `MAP_NORESERVE`: no commit charge (kept as a VMA flag, like `VM_NORESERVE`).
        const NORESERVE = 0x4000;
        /// `MAP_FIXED_NOREPLACE`: place exactly at `addr`, fail with `EEXIST` if anything is there.
        const FIXED_NOREPLACE = 0x10_0000;
    }
}

bitflags::bitflags! {
    /// `mremap` flags, with the Linux bit values.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct RemapFlags: u32 {
        /// `MREMAP_MAYMOVE`: the mapping may move if it cannot grow in place.
        const MAYMOVE = 1;
        /// `MREMAP_FIXED`: move to the given address (needs `MAYMOVE`).
        const FIXED = 2;
    }
}

/// Identifies a file that mappings refer to (an inode, for comparison purposes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct FileId(pub u64);

/// What a mapping shows: anonymous memory or a file at a page offset.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Backing {
    /// Anonymous memory.
    Anonymous,
    /// A file; `pgoff` is the file offset in pages of the mapping's first byte.
    File {
        /// The file.
        file: FileId,
        /// Offset in pages (the kernel's `vm_pgoff`).
        pgoff: u64,
    },
}

/// The arguments of an `mmap` call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapRequest {
    /// Placement: a hint, or the exact address with `FIXED`/`FIXED_NOREPLACE`.
    pub addr: Option<usize>,
    /// Length in bytes, rounded up to pages.
    pub len: usize,
    /// Protection.
    pub prot: Prot,
    /// Flags; exactly one of `SHARED`/`PRIVATE` is expected (both = `MAP_SHARED_VALIDATE`).
    pub flags: MapFlags,
    /// What is mapped.
    pub backing: Backing,
}

/// One line of the listing: a VMA as `/proc/self/maps` shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VmaInfo {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// Protection.
    pub prot: Prot,
    /// A shared mapping (`s` in `/proc/self/maps`), else private (`p`).
    pub shared: bool,
    /// The backing; for a file, the page offset at `start`. Anonymous offsets are not shown.
    pub backing: Backing,
}

impl VmaInfo {
    /// Whether `addr` lies inside `[start, end)`.
    pub fn contains(&self, addr: usize) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Result of [`Mm::lookup_speculative`](crate::Mm::lookup_speculative).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Speculation {
    /// A VMA contained the address and no writer interfered while it was read.
    Found(VmaInfo),
    /// No VMA contained the address and no writer interfered.
    Unmapped,
    /// A writer was active or finished meanwhile; the caller must take a lock.
    Retry,
}

/// The kind of access a simulated page fault makes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Exec,
}

impl Access {
    /// The protection bit that grants this access on its own (`READ`, `WRITE`, `EXEC`).
    /// On x86-64 a load is also allowed by the other two bits; see [`allowed_by`](Self::allowed_by).
    pub fn needs(self) -> Prot {
        match self {
            Access::Read => Prot::READ,
            Access::Write => Prot::WRITE,
            Access::Exec => Prot::EXEC,
        }
    }

    /// Whether a mapping with protection `prot` allows this access, as on x86-64 Linux:
    /// a store needs `WRITE`; an instruction fetch needs `EXEC` (NX); a load is allowed by
    /// any of `READ`, `WRITE` or `EXEC` (the page tables have no write-only or
    /// execute-only pages). `tests/kernel_fault.rs` checks every combination against the
    /// machine's kernel.
    ///
    /// (A CPU with protection keys lets the kernel make `PROT_EXEC`-only mappings
    /// execute-only, so loads fault there; that variant is not modelled.)
    ///
    /// ```
    /// use vmlock::{Access, Prot};
    /// assert!(Access::Read.allowed_by(Prot::WRITE));
    /// assert!(Access::Read.allowed_by(Prot::EXEC));
    /// assert!(!Access::Exec.allowed_by(Prot::READ | Prot::WRITE));
    /// assert!(!Access::Write.allowed_by(Prot::READ | Prot::EXEC));
    /// assert!(!Access::Read.allowed_by(Prot::NONE));
    /// ```
    pub fn allowed_by(self, prot: Prot) -> bool {
        match self {
            Access::Read => prot.intersects(Prot::READ | Prot::WRITE | Prot::EXEC),
            Access::Write => prot.contains(Prot::WRITE),
            Access::Exec => prot.contains(Prot::EXEC),
        }
    }
}

/// Advice for [`Mm::madvise`](crate::Mm::madvise): the fork-related `MADV_*` values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Advice {
    /// `MADV_DONTFORK`: the range is not copied into a child by [`Mm::fork`](crate::Mm::fork)
    /// (the kernel's `VM_DONTCOPY`; `dc` in `/proc/self/smaps`).
    DontFork,
    /// `MADV_DOFORK`: undo `DontFork`.
    DoFork,
}

impl Advice {
    /// The Linux `MADV_*` number (`MADV_DONTFORK` = 10, `MADV_DOFORK` = 11).
    pub fn raw(self) -> i32 {
        match self {
            Advice::DontFork => 10,
            Advice::DoFork => 11,
        }
    }
}

bitflags::bitflags! {
    /// The VMA flags that decide merging and forking, as the `VmFlags` line of
    /// `/proc/self/smaps` names them (see [`Mm::smaps`](crate::Mm::smaps)).
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
    pub struct VmFlags: u32 {
        /// `rd`: readable.
        const READ = 1;
        /// `wr`: writable.
        const WRITE = 2;
        /// `ex`: executable.
        const EXEC = 4;
        /// `sh`: shared (`VM_SHARED`).
        const SHARED = 1 << 3;
        /// `nr`: no swap space reserved (`VM_NORESERVE`).
        const NORESERVE = 1 << 4;
        /// `ac`: accountable (`VM_ACCOUNT`: private, writable, charged).
        const ACCOUNT = 1 << 5;
        /// `dc`: not copied on fork (`VM_DONTCOPY`, set by `MADV_DONTFORK`).
        const DONTCOPY = 1 << 6;
    }
}

impl VmFlags {
    /// The flags as `/proc/self/smaps` spells them, in its order (`rd wr ex sh ... nr ... ac dc`).
    ///
    /// ```
    /// use vmlock::VmFlags;
    /// assert_eq!((VmFlags::READ | VmFlags::DONTCOPY | VmFlags::ACCOUNT).smaps_names(), ["rd", "ac", "dc"]);
    /// ```
    pub fn smaps_names(self) -> Vec<&'static str> {
        [
            (VmFlags::READ, "rd"),
            (VmFlags::WRITE, "wr"),
            (VmFlags::EXEC, "ex"),
            (VmFlags::SHARED, "sh"),
            (VmFlags::NORESERVE, "nr"),
            (VmFlags::ACCOUNT, "ac"),
            (VmFlags::DONTCOPY, "dc"),
        ]
        .into_iter()
        .filter(|(f, _)| self.contains(*f))
        .map(|(_, n)| n)
        .collect()
    }
}

/// How a simulated fault found its VMA.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FaultPath {
    /// Through the per-VMA read lock, without the `mmap_lock`.
    VmaLock,
    /// Through `mmap_read_lock` after the per-VMA path gave up.
    MmapLock,
}

/// Counters of the read paths: monotonic, kept per thread and summed when read (a snapshot
/// is not atomic as a whole; counts of threads still running may be a little behind).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct LockStats {
    /// `lock_vma_under_rcu` returned a locked VMA.
    pub success: u64,
    /// `lock_vma_under_rcu` gave up (write-locked, reused object, moved range, no VMA, limit).
    pub abort: u64,
    /// The VMA found was detached (refcount 0) when the reader tried to take it.
    pub miss: u64,
    /// The walk was repeated after a miss.
    pub retry: u64,
    /// A caller fell back to the `mmap_lock`.
    pub fallback: u64,
    /// Store-free speculation answered (`Found` or `Unmapped`).
    pub spec_ok: u64,
    /// Store-free speculation returned `Retry`.
    pub spec_failed: u64,
    /// Steps of [`Mm::vmas_rcu`](crate::Mm::vmas_rcu) listings (one per VMA listed, plus
    /// one for the end), however they were taken.
    pub list_steps: u64,
    /// Listing attempts that were not sure of their answer (a writer was active, the VMA
    /// was write-locked or detached, or the gap before it could not be confirmed) and
    /// looked again.
    pub list_retry: u64,
    /// Listing steps that fell back to the `mmap_lock`.
    pub list_fallback: u64,
    /// Times a listing dropped VMAs it had already listed because a writer had merged them
    /// with what came next.
    pub list_rewind: u64,
}

impl core::ops::Sub for LockStats {
    type Output = LockStats;

    /// Counter differences, `self - earlier` (saturating at 0, since snapshots of running
    /// threads are not atomic as a whole).
    ///
    /// ```
    /// use vmlock::LockStats;
    /// let a = LockStats { spec_ok: 5, ..LockStats::default() };
    /// let b = LockStats { spec_ok: 7, list_steps: 2, ..LockStats::default() };
    /// assert_eq!((b - a).spec_ok, 2);
    /// assert_eq!((b - a).list_steps, 2);
    /// ```
    fn sub(self, earlier: LockStats) -> LockStats {
        LockStats {
            success: self.success.saturating_sub(earlier.success),
            abort: self.abort.saturating_sub(earlier.abort),
            miss: self.miss.saturating_sub(earlier.miss),
            retry: self.retry.saturating_sub(earlier.retry),
            fallback: self.fallback.saturating_sub(earlier.fallback),
            spec_ok: self.spec_ok.saturating_sub(earlier.spec_ok),
            spec_failed: self.spec_failed.saturating_sub(earlier.spec_failed),
            list_steps: self.list_steps.saturating_sub(earlier.list_steps),
            list_retry: self.list_retry.saturating_sub(earlier.list_retry),
            list_fallback: self.list_fallback.saturating_sub(earlier.list_fallback),
            list_rewind: self.list_rewind.saturating_sub(earlier.list_rewind),
        }
    }
}

/// The shape of an address space.
///
/// `mmap` without `FIXED` places top-down in `[min_addr, mmap_base)` and, when nothing fits
/// there, bottom-up in `[min_addr, task_size)` (the kernel's fallback); every mapping must
/// lie inside `[0, task_size)`; a fixed mapping below `min_addr` is `EPERM`.
///
/// A usable shape has `mmap_base` and `task_size` page-aligned and
/// `min_addr <= mmap_base <= task_size <= 2^63`; [`Mm::new`](crate::Mm::new) panics on
/// anything else.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MmConfig {
    /// Lowest address a mapping may use (Linux `vm.mmap_min_addr`).
    pub min_addr: usize,
    /// Top of the top-down placement area (exclusive). The bottom-up fallback searches
    /// upward from `min_addr` (the kernel starts at its `mmap_legacy_base`, a third of the
    /// way up; since it only falls back when no gap below `mmap_base` fits, both find the
    /// same address unless a request is larger than two thirds of the address space).
    pub mmap_base: usize,
    /// End of the user address space (exclusive), Linux `TASK_SIZE`.
    pub task_size: usize,
}

impl Default for MmConfig {
    /// A 47-bit x86-64 user space: `TASK_SIZE` = `0x7fff_ffff_f000`, `mmap_base` =
    /// `0x7f00_0000_0000` (below a stack gap, as a typical un-randomised layout) and
    /// `min_addr` = 4096 (this machine's `/proc/sys/vm/mmap_min_addr`; 65536 is common elsewhere).
    fn default() -> Self {
        MmConfig {
            min_addr: 0x1000,
            mmap_base: 0x7f00_0000_0000,
            task_size: 0x7fff_ffff_f000,
        }
    }
}

impl MmConfig {
    /// The largest `task_size` an address space accepts: `2^63`. Every address and length
    /// that passed a range check is then at most `task_size`, so the sum of two of them
    /// cannot overflow a `usize`. (Real user spaces end far below: `2^47` or `2^56`.)
    pub(crate) const MAX_TASK_SIZE: usize = 1 << 63;

    /// Why this configuration cannot be used, if it cannot: `mmap_base` and `task_size`
    /// page-aligned, `min_addr <= mmap_base <= task_size <= 2^63` (`min_addr` itself may be
    /// unaligned, like `vm.mmap_min_addr`; placement rounds it up).
    pub(crate) fn check(&self) -> Result<(), String> {
        if !aligned(self.task_size) || !aligned(self.mmap_base) {
            return Err(format!(
                "task_size {:#x} and mmap_base {:#x} must be page-aligned",
                self.task_size, self.mmap_base
            ));
        }
        if self.task_size > Self::MAX_TASK_SIZE {
            return Err(format!(
                "task_size {:#x} exceeds {:#x}",
                self.task_size,
                Self::MAX_TASK_SIZE
            ));
        }
        if !(self.min_addr <= self.mmap_base && self.mmap_base <= self.task_size) {
            return Err(format!(
                "need min_addr {:#x} <= mmap_base {:#x} <= task_size {:#x}",
                self.min_addr, self.mmap_base, self.task_size
            ));
        }
        Ok(())
    }

    /// [`check`](Self::check), as the panic that `Mm::new` and `Model::new` document.
    pub(crate) fn assert_valid(&self) {
        if let Err(e) = self.check() {
            panic!("invalid MmConfig: {e}");
        }
    }
}

/// Round up to a page; `None` if that wraps.
pub(crate) fn page_align(len: usize) -> Option<usize> {
    len.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1))
}

/// Whether `addr` is page aligned.
pub(crate) fn aligned(addr: usize) -> bool {
    addr & (PAGE_SIZE - 1) == 0
}
