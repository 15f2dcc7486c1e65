//! The Linux VMA semantics, as pure page-granular planning.
//!
//! Every address-space operation is split in two: this module decides *what* the layout
//! becomes (argument checks in the kernel's order, placement, splits, merges), and the
//! caller applies the resulting [`Plan`] to its own storage. [`crate::model::Model`] applies
//! plans to a `BTreeMap` (the reference used by tests); [`crate::Mm`] applies them to the
//! maple tree with the locking order of DESIGN.md. The decisions were checked against the
//! machine's kernel by `tests/kernel_diff.rs`.
//!
//! A plan is a sequence of [`Change`]s. A change names a window `[start, end)` that contains
//! every old VMA it touches *in full* and lists the VMAs that cover the window afterwards;
//! whatever the list does not cover becomes unmapped. Changes are applied in order (a
//! later change was planned against the layout left by the earlier ones).
//!
//! Modelling choices (documented differences to a full kernel):
//! - Anonymous private memory is never faulted in here, so it never gets an `anon_vma`; the
//!   kernel then resets its page offset to `address >> 12` whenever it moves, which makes
//!   every anonymous VMA's offset equal to its start page.
//! - `VM_ACCOUNT` follows the kernel's rules (private + writable + not `NORESERVE` at map
//!   time; gained by `mprotect` to writable; dropped by `mprotect` to read-only on
//!   anonymous memory, since it is never populated) because it decides merges.
//! - Placement without `MAP_FIXED` is top-down below `mmap_base`, then bottom-up from
//!   `min_addr` (the kernel falls back from `mmap_legacy_base`; see [`MmConfig::mmap_base`]
//!   for why the two agree). Stack guard gaps and huge-page alignment are not modelled
//!   (no VMA grows down, and no request is aligned to 2 MiB by the kernel unless it is an
//!   anonymous mapping of a multiple of 2 MiB without a hint).
//! - Only the x86-64 protection bits exist: `PROT_SEM` is accepted and ignored, other
//!   unknown bits are `EINVAL` in `mprotect` and ignored by `mmap`; `PROT_GROWSDOWN` and
//!   `PROT_GROWSUP` are refused as on a VMA that does not grow.
//! - A file offset beyond the kernel's `MAX_LFS_FILESIZE` (2^63 - 1 bytes) is `EOVERFLOW`
//!   for every file, as for the regular files and memfds the kernel test maps.

use std::collections::BTreeMap;

use crate::types::{
    aligned, page_align, Advice, Backing, Errno, MapFlags, MapRequest, MmConfig, Prot, RemapFlags,
    VmFlags, VmaInfo, PAGE_SHIFT, PAGE_SIZE,
};

/// `PROT_SEM`: accepted by `mprotect` and ignored on x86-64.
const PROT_SEM: u32 = 0x8;
/// `PROT_GROWSDOWN`: extend an `mprotect` down to the start of a growing-down VMA.
const PROT_GROWSDOWN: u32 = 0x0100_0000;
/// `PROT_GROWSUP`: extend an `mprotect` up to the end of a growing-up VMA.
const PROT_GROWSUP: u32 = 0x0200_0000;
/// The kernel's `MAX_LFS_FILESIZE` on 64-bit: the largest file offset a mapping may reach.
const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

/// What a VMA maps (the kernel's `vm_file`, with anonymous shared memory as its own object).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Obj {
    /// Private anonymous memory.
    Anon,
    /// Shared anonymous memory: one hidden shmem object per `mmap` call.
    Shmem(u64),
    /// A file.
    File(crate::types::FileId),
}

/// The attributes two VMAs must share to merge (the kernel compares `vm_flags` and file).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Desc {
    pub prot: Prot,
    pub shared: bool,
    pub noreserve: bool,
    pub account: bool,
    /// `VM_DONTCOPY` (`MADV_DONTFORK`): left out of a forked child.
    pub dontcopy: bool,
    pub obj: Obj,
}

/// One VMA as the planner sees it: `[start, end)` plus attributes and page offset.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Seg {
    pub start: usize,
    pub end: usize,
    /// Page offset of `start` in the mapped object.
    pub pgoff: u64,
    pub desc: Desc,
}

impl Seg {
    fn pages(&self) -> u64 {
        ((self.end - self.start) >> PAGE_SHIFT) as u64
    }

    /// The part `[s, e)` of this VMA (which must lie inside it), offsets adjusted.
    fn clip(&self, s: usize, e: usize) -> Seg {
        debug_assert!(self.start <= s && s < e && e <= self.end);
        Seg {
            start: s,
            end: e,
            pgoff: self.pgoff + ((s - self.start) >> PAGE_SHIFT) as u64,
            desc: self.desc,
        }
    }

    /// Whether `next` can be merged onto the end of `self`.
    fn merges_with(&self, next: &Seg) -> bool {
        self.end == next.start
            && self.desc == next.desc
            && self.pgoff.checked_add(self.pages()) == Some(next.pgoff)
    }

    /// The flags `/proc/self/smaps` shows for this VMA.
    pub fn flags(&self) -> VmFlags {
        let d = &self.desc;
        let mut f = VmFlags::from_bits_truncate(d.prot.bits());
        f.set(VmFlags::SHARED, d.shared);
        f.set(VmFlags::NORESERVE, d.noreserve);
        f.set(VmFlags::ACCOUNT, d.account);
        f.set(VmFlags::DONTCOPY, d.dontcopy);
        f
    }

    /// Whether a fork copies this VMA into the child.
    pub fn copied_on_fork(&self) -> bool {
        !self.desc.dontcopy
    }

    /// The public view of this VMA.
    pub fn info(&self) -> VmaInfo {
        let backing = match self.desc.obj {
            Obj::Anon | Obj::Shmem(_) => Backing::Anonymous,
            Obj::File(file) => Backing::File {
                file,
                pgoff: self.pgoff,
            },
        };
        VmaInfo {
            start: self.start,
            end: self.end,
            prot: self.desc.prot,
            shared: self.desc.shared,
            backing,
        }
    }
}

/// The new contents of a window; see the module docs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Change {
    pub start: usize,
    pub end: usize,
    /// The VMAs covering parts of the window afterwards, sorted, inside the window.
    pub segs: Vec<Seg>,
}

/// The outcome of planning one operation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct Plan {
    /// Applied in order, even when `result` is an error (mprotect up to a hole).
    pub changes: Vec<Change>,
    /// The system call's return value.
    pub result: Result<usize, Errno>,
}

impl Plan {
    fn err(e: Errno) -> Plan {
        Plan {
            changes: Vec::new(),
            result: Err(e),
        }
    }
}

/// Read access to the current layout (called with the writer's lock held).
pub(crate) trait View {
    /// Every VMA with `vma.start < end && vma.end > start`, sorted by address.
    fn overlapping(&self, start: usize, end: usize) -> Vec<Seg>;
    /// The highest `s` with `[s, s + size)` unmapped and inside `[lo, hi)`.
    fn gap_rev(&self, lo: usize, hi: usize, size: usize) -> Option<usize>;
    /// The lowest `s` with `[s, s + size)` unmapped and inside `[lo, hi)`.
    fn gap_fwd(&self, lo: usize, hi: usize, size: usize) -> Option<usize>;
}

/// The base layout plus the changes planned so far.
struct Overlay<'a, V: View> {
    base: &'a V,
    /// Windows replaced by earlier changes (base VMAs inside them are gone).
    replaced: Vec<(usize, usize)>,
    /// VMAs added by earlier changes, by start.
    added: BTreeMap<usize, Seg>,
    changes: Vec<Change>,
}

impl<'a, V: View> Overlay<'a, V> {
    fn new(base: &'a V) -> Self {
        Overlay {
            base,
            replaced: Vec::new(),
            added: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    fn overlapping(&self, start: usize, end: usize) -> Vec<Seg> {
        let mut out: Vec<Seg> = self
            .base
            .overlapping(start, end)
            .into_iter()
            .filter(|s| {
                !self
                    .replaced
                    .iter()
                    .any(|&(ws, we)| s.start < we && s.end > ws)
            })
            .collect();
        out.extend(
            self.added
                .values()
                .filter(|s| s.start < end && s.end > start)
                .copied(),
        );
        out.sort_by_key(|s| s.start);
        out
    }

    fn vma_at(&self, addr: usize) -> Option<Seg> {
        self.overlapping(addr, addr.saturating_add(1))
            .into_iter()
            .next()
    }

    /// Replace `[start, end)` by `f(the pieces of VMAs inside it)`, then merge at the edges.
    /// Does nothing if no VMA intersects the range and `f` adds nothing.
    fn rewrite(&mut self, start: usize, end: usize, f: impl FnOnce(Vec<Seg>) -> Vec<Seg>) {
        debug_assert!(start < end && aligned(start) && aligned(end));
        let around = self.overlapping(start.saturating_sub(1), end.saturating_add(1));
        let mut left = Vec::new();
        let mut inside = Vec::new();
        let mut right = Vec::new();
        for s in &around {
            if s.start < start {
                left.push(s.clip(s.start, s.end.min(start)));
            }
            if s.end > start && s.start < end {
                inside.push(s.clip(s.start.max(start), s.end.min(end)));
            }
            if s.end > end {
                right.push(s.clip(s.start.max(end), s.end));
            }
        }
        let touched = !inside.is_empty();
        let new = f(inside);
        if !touched && new.is_empty() {
            return;
        }
        debug_assert!(new
            .iter()
            .all(|s| s.start >= start && s.end <= end && s.start < s.end));
        let mut all: Vec<Seg> = Vec::with_capacity(left.len() + new.len() + right.len());
        all.extend(left);
        all.extend(new);
        all.extend(right);
        let mut merged: Vec<Seg> = Vec::with_capacity(all.len());
        for s in all {
            match merged.last_mut() {
                Some(last) if last.merges_with(&s) => last.end = s.end,
                _ => merged.push(s),
            }
        }
        let ws = around.first().map_or(start, |s| s.start.min(start));
        let we = around.last().map_or(end, |s| s.end.max(end));
        self.added.retain(|_, s| !(s.start < we && s.end > ws));
        self.replaced.push((ws, we));
        for s in &merged {
            self.added.insert(s.start, *s);
        }
        self.changes.push(Change {
            start: ws,
            end: we,
            segs: merged,
        });
    }

    fn finish(self, result: Result<usize, Errno>) -> Plan {
        Plan {
            changes: self.changes,
            result,
        }
    }
}

/// Lowest address placement may use.
fn low_limit(cfg: &MmConfig) -> usize {
    cfg.min_addr.max(PAGE_SIZE)
}

/// Whether `[addr, addr + len)` is free and usable as a hint.
fn hint_ok<V: View>(v: &V, cfg: &MmConfig, addr: usize, len: usize) -> bool {
    addr != 0
        && cfg.task_size - len >= addr
        && addr >= cfg.min_addr
        && v.overlapping(addr, addr + len).is_empty()
}

/// Placement of `len` bytes without a usable hint, like x86-64's
/// `arch_get_unmapped_area_topdown`: the highest gap below `mmap_base`; if none fits, the
/// kernel's bottom-up fallback (`arch_get_unmapped_area`): the lowest gap anywhere below
/// `task_size`. `None` (`ENOMEM`) only if neither fits.
fn place<V: View>(v: &V, cfg: &MmConfig, len: usize) -> Option<usize> {
    let lo = low_limit(cfg);
    let fits = |hi: usize| hi > lo && hi - lo >= len;
    let top = cfg.mmap_base.min(cfg.task_size);
    if fits(top) {
        if let Some(a) = v.gap_rev(lo, top, len) {
            return Some(a);
        }
    }
    if fits(cfg.task_size) {
        return v.gap_fwd(lo, cfg.task_size, len);
    }
    None
}

/// Plan `mmap`. `shmem_id` names the hidden object if this is a shared anonymous mapping.
pub(crate) fn mmap<V: View>(v: &V, cfg: &MmConfig, req: &MapRequest, shmem_id: u64) -> Plan {
    if req.len == 0 {
        return Plan::err(Errno::EINVAL);
    }
    let mut flags = req.flags;
    if flags.contains(MapFlags::FIXED_NOREPLACE) {
        flags |= MapFlags::FIXED;
    }
    let fixed = flags.contains(MapFlags::FIXED);
    let mut addr = req.addr.unwrap_or(0);
    if !fixed {
        // Like round_hint_to_min: drop the page offset; a hint below min_addr moves up.
        addr &= !(PAGE_SIZE - 1);
        if addr != 0 && addr < cfg.min_addr {
            match page_align(cfg.min_addr) {
                Some(a) => addr = a,
                None => return Plan::err(Errno::ENOMEM),
            }
        }
    }
    let Some(len) = page_align(req.len) else {
        return Plan::err(Errno::ENOMEM);
    };
    let file_pgoff = match req.backing {
        Backing::File { pgoff, .. } => pgoff,
        Backing::Anonymous => 0,
    };
    if file_pgoff.checked_add((len >> PAGE_SHIFT) as u64).is_none() {
        return Plan::err(Errno::EOVERFLOW);
    }
    if len > cfg.task_size {
        return Plan::err(Errno::ENOMEM);
    }
    // The kernel passes addresses and negative error codes through one word: a fixed
    // address in the top 4095 bytes reads as the error `-addr` (`IS_ERR_VALUE`), so
    // `usize::MAX` is `EPERM`.
    if fixed && addr > usize::MAX - 4095 {
        return Plan::err(Errno(addr.wrapping_neg() as i32));
    }
    let a = if fixed || hint_ok(v, cfg, addr, len) {
        addr
    } else {
        match place(v, cfg, len) {
            Some(a) => a,
            None => return Plan::err(Errno::ENOMEM),
        }
    };
    if a > cfg.task_size - len {
        return Plan::err(Errno::ENOMEM);
    }
    if !aligned(a) {
        return Plan::err(Errno::EINVAL);
    }
    if fixed && a < cfg.min_addr {
        return Plan::err(Errno::EPERM);
    }
    if flags.contains(MapFlags::FIXED_NOREPLACE) && !v.overlapping(a, a + len).is_empty() {
        return Plan::err(Errno::EEXIST);
    }
    // The file's own limit (`file_mmap_ok`): the mapping may not reach past
    // `MAX_LFS_FILESIZE`. `len <= task_size <= 2^63`, so the subtraction cannot wrap.
    if matches!(req.backing, Backing::File { .. })
        && file_pgoff > (MAX_LFS_FILESIZE - len as u64) >> PAGE_SHIFT
    {
        return Plan::err(Errno::EOVERFLOW);
    }
    let anon = req.backing == Backing::Anonymous;
    let shared = match (
        flags.contains(MapFlags::SHARED),
        flags.contains(MapFlags::PRIVATE),
    ) {
        // MAP_SHARED_VALIDATE: files only; anonymous memory knows just SHARED or PRIVATE.
        (true, true) if anon => return Plan::err(Errno::EINVAL),
        // ... and it refuses flags outside the legacy set, like MAP_FIXED_NOREPLACE.
        (true, true) if req.flags.contains(MapFlags::FIXED_NOREPLACE) => {
            return Plan::err(Errno::EOPNOTSUPP)
        }
        (true, _) => true,
        (false, true) => false,
        (false, false) => return Plan::err(Errno::EINVAL),
    };
    let (obj, pgoff) = match req.backing {
        Backing::File { file, pgoff } => (Obj::File(file), pgoff),
        Backing::Anonymous if shared => (Obj::Shmem(shmem_id), 0),
        Backing::Anonymous => (Obj::Anon, (a >> PAGE_SHIFT) as u64),
    };
    let noreserve = flags.contains(MapFlags::NORESERVE);
    // Bits beyond read/write/exec mean nothing to the VMA (`calc_vm_prot_bits`).
    let prot = req.prot & Prot::all();
    let account = !shared && !noreserve && prot.contains(Prot::WRITE);
    let seg = Seg {
        start: a,
        end: a + len,
        pgoff,
        desc: Desc {
            prot,
            shared,
            noreserve,
            account,
            dontcopy: false,
            obj,
        },
    };
    let mut o = Overlay::new(v);
    o.rewrite(a, a + len, |_| vec![seg]);
    o.finish(Ok(a))
}

/// Plan `munmap`.
pub(crate) fn munmap<V: View>(v: &V, cfg: &MmConfig, addr: usize, len: usize) -> Plan {
    if !aligned(addr) || addr > cfg.task_size || len > cfg.task_size - addr {
        return Plan::err(Errno::EINVAL);
    }
    let len = match page_align(len) {
        Some(l) if l != 0 => l,
        _ => return Plan::err(Errno::EINVAL),
    };
    // With a valid config (page-aligned `task_size`, see `MmConfig::check`) the rounded
    // length still ends at or below `task_size`; checked anyway so that a bad config gives
    // an error, not an overflow.
    let Some(end) = addr.checked_add(len) else {
        return Plan::err(Errno::EINVAL);
    };
    let mut o = Overlay::new(v);
    o.rewrite(addr, end, |_| Vec::new());
    o.finish(Ok(0))
}

/// Plan `mprotect`: applied up to the first hole, then `ENOMEM`.
pub(crate) fn mprotect<V: View>(v: &V, addr: usize, len: usize, prot: Prot) -> Plan {
    let grows = prot.bits() & (PROT_GROWSDOWN | PROT_GROWSUP);
    if grows == PROT_GROWSDOWN | PROT_GROWSUP {
        return Plan::err(Errno::EINVAL);
    }
    if !aligned(addr) {
        return Plan::err(Errno::EINVAL);
    }
    if len == 0 {
        return Plan {
            changes: Vec::new(),
            result: Ok(0),
        };
    }
    let end = match page_align(len).and_then(|l| addr.checked_add(l)) {
        Some(e) if e > addr => e,
        _ => return Plan::err(Errno::ENOMEM),
    };
    // `arch_validate_prot`: read, write, exec and the ignored PROT_SEM.
    let bits = prot.bits() & !grows;
    if bits & !(Prot::all().bits() | PROT_SEM) != 0 {
        return Plan::err(Errno::EINVAL);
    }
    let prot = Prot::from_bits_truncate(bits);
    let segs = v.overlapping(addr, end);
    let Some(first) = segs.first() else {
        return Plan::err(Errno::ENOMEM);
    };
    // No VMA grows down (or up): PROT_GROWSDOWN refuses whatever it finds, PROT_GROWSUP
    // refuses once the range starts inside a VMA.
    if grows == PROT_GROWSDOWN {
        return Plan::err(Errno::EINVAL);
    }
    if first.start > addr {
        return Plan::err(Errno::ENOMEM);
    }
    if grows == PROT_GROWSUP {
        return Plan::err(Errno::EINVAL);
    }
    let mut tmp = addr;
    let mut result = Ok(0);
    for s in &segs {
        if s.start > tmp {
            result = Err(Errno::ENOMEM);
            break;
        }
        tmp = s.end;
    }
    let done = tmp.min(end);
    if result.is_ok() && tmp < end {
        result = Err(Errno::ENOMEM);
    }
    let mut o = Overlay::new(v);
    o.rewrite(addr, done, |pieces| {
        pieces
            .into_iter()
            .map(|mut s| {
                let old = s.desc;
                if prot.contains(Prot::WRITE) {
                    if !(old.account
                        || old.prot.contains(Prot::WRITE)
                        || old.shared
                        || old.noreserve)
                    {
                        s.desc.account = true;
                    }
                } else if old.account && old.obj == Obj::Anon {
                    s.desc.account = false;
                }
                s.desc.prot = prot;
                s
            })
            .collect()
    });
    o.finish(result)
}

/// Plan `madvise` with a fork advice: every mapped part of the range gets (or loses)
/// `VM_DONTCOPY`, splitting and merging like `mprotect`; a hole anywhere in the range is
/// `ENOMEM` *after* the mapped parts were changed (unlike `mprotect`, which stops at it).
pub(crate) fn madvise<V: View>(v: &V, addr: usize, len: usize, advice: Advice) -> Plan {
    if !aligned(addr) {
        return Plan::err(Errno::EINVAL);
    }
    // A length that rounds up to 0 from near usize::MAX, or an end that wraps, is EINVAL.
    let end = match page_align(len).and_then(|l| addr.checked_add(l)) {
        Some(e) => e,
        None => return Plan::err(Errno::EINVAL),
    };
    if end == addr {
        return Plan {
            changes: Vec::new(),
            result: Ok(0),
        };
    }
    let segs = v.overlapping(addr, end);
    if segs.is_empty() {
        return Plan::err(Errno::ENOMEM);
    }
    let mut covered = addr;
    let mut hole = false;
    for s in &segs {
        hole |= s.start > covered;
        covered = s.end;
    }
    hole |= covered < end;
    let dontcopy = advice == Advice::DontFork;
    let mut o = Overlay::new(v);
    o.rewrite(addr, end, |pieces| {
        pieces
            .into_iter()
            .map(|mut s| {
                s.desc.dontcopy = dontcopy;
                s
            })
            .collect()
    });
    o.finish(if hole { Err(Errno::ENOMEM) } else { Ok(0) })
}

/// Move `[src, src + old_len)` (inside the VMA `vma`) to `[dst, dst + new_len)`. With
/// `old_len == 0` (only on shared mappings) the source stays: `[dst, dst + new_len)` becomes
/// a second mapping of the same object from `src`'s offset on.
fn move_range<V: View>(
    o: &mut Overlay<'_, V>,
    vma: Seg,
    src: usize,
    old_len: usize,
    dst: usize,
    new_len: usize,
) {
    let src_pgoff = vma.pgoff + ((src - vma.start) >> PAGE_SHIFT) as u64;
    let pgoff = match vma.desc.obj {
        Obj::Anon => (dst >> PAGE_SHIFT) as u64,
        Obj::Shmem(_) | Obj::File(_) => src_pgoff,
    };
    let seg = Seg {
        start: dst,
        end: dst + new_len,
        pgoff,
        desc: vma.desc,
    };
    o.rewrite(dst, dst + new_len, |_| vec![seg]);
    if old_len != 0 {
        o.rewrite(src, src + old_len, |_| Vec::new());
    }
}

/// Plan `mremap`, in the order of Linux 6.17+: parameter checks, then either a pure move
/// (`FIXED` with equal lengths, which may span several VMAs) or a resize of one VMA.
pub(crate) fn mremap<V: View>(
    v: &V,
    cfg: &MmConfig,
    old_addr: usize,
    old_len: usize,
    new_len: usize,
    flags: RemapFlags,
    new_addr: Option<usize>,
) -> Plan {
    // Both lengths round up with wrap-around, like the kernel's PAGE_ALIGN.
    let old_len = old_len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let new_len = new_len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    if flags.bits() & !RemapFlags::all().bits() != 0 || !aligned(old_addr) {
        return Plan::err(Errno::EINVAL);
    }
    if new_len == 0 || new_len > cfg.task_size {
        return Plan::err(Errno::EINVAL);
    }
    let fixed = flags.contains(RemapFlags::FIXED);
    let maymove = flags.contains(RemapFlags::MAYMOVE);
    let new_addr = new_addr.unwrap_or(0);
    if fixed {
        if new_addr > cfg.task_size - new_len || !aligned(new_addr) || !maymove {
            return Plan::err(Errno::EINVAL);
        }
        // The ranges may not overlap.
        if new_addr < old_addr.saturating_add(old_len) && old_addr < new_addr + new_len {
            return Plan::err(Errno::EINVAL);
        }
        if old_len == new_len {
            return remap_move(v, cfg, old_addr, old_len, new_addr);
        }
    }
    let mut o = Overlay::new(v);
    let Some(vma) = o.vma_at(old_addr) else {
        return Plan::err(Errno::EFAULT);
    };
    // `old_len == 0` duplicates a shared mapping (a second mapping of the same pages, the
    // source stays); for a private one that would make unrelated memory, and Linux refuses.
    if old_len == 0 && !vma.desc.shared {
        return Plan::err(Errno::EINVAL);
    }
    // A shrink (or no-op) in place only unmaps the tail: it may span several VMAs. Otherwise
    // the part that stays mapped must lie inside this VMA.
    let in_place_shrink = !fixed && old_len >= new_len;
    if !in_place_shrink && old_len.min(new_len) > vma.end - old_addr {
        return Plan::err(Errno::EFAULT);
    }
    // Growing must not wrap the page offset of the mapped object (Linux checks this after
    // the boundary check, and on the FIXED path after the target was already cleared).
    let offset_wraps = new_len > old_len && {
        let pgoff = vma.pgoff + ((old_addr - vma.start) >> PAGE_SHIFT) as u64;
        pgoff.checked_add((new_len >> PAGE_SHIFT) as u64).is_none()
    };
    if fixed {
        o.rewrite(new_addr, new_addr + new_len, |_| Vec::new());
        if offset_wraps {
            return o.finish(Err(Errno::EINVAL));
        }
        if old_len > new_len {
            // The tail is unmapped like munmap would (which refuses a range past TASK_SIZE,
            // after the target was already cleared).
            if let Err(e) = unmap_tail(&mut o, cfg, old_addr + new_len, old_len - new_len) {
                return o.finish(Err(e));
            }
        }
        // The destination is then checked like a MAP_FIXED mmap (security_mmap_addr): an
        // unprivileged process may not map below mmap_min_addr. The target stays cleared.
        if new_addr < cfg.min_addr {
            return o.finish(Err(Errno::EPERM));
        }
        // The source is looked up again after the target was cleared. Only a duplicate
        // (`old_len == 0`) onto its own address can have lost it that way.
        let vma = match o.vma_at(old_addr) {
            Some(v) => v,
            None if old_len == 0 => return o.finish(Err(Errno::EFAULT)),
            None => vma,
        };
        move_range(
            &mut o,
            vma,
            old_addr,
            old_len.min(new_len),
            new_addr,
            new_len,
        );
        return o.finish(Ok(new_addr));
    }
    if offset_wraps {
        return Plan::err(Errno::EINVAL);
    }
    if old_len >= new_len {
        if old_len != new_len {
            // `old_addr < vma.end <= task_size` and `new_len <= task_size <= 2^63`: no overflow.
            if let Err(e) = unmap_tail(&mut o, cfg, old_addr + new_len, old_len - new_len) {
                return o.finish(Err(e));
            }
        }
        return o.finish(Ok(old_addr));
    }
    // Grow in place: the old range ends the VMA and the space after it is free.
    if old_addr + old_len == vma.end {
        let grow_end = old_addr
            .checked_add(new_len)
            .filter(|&e| e <= cfg.task_size);
        if let Some(e) = grow_end {
            if o.overlapping(vma.end, e).is_empty() {
                let ext = Seg {
                    start: vma.end,
                    end: e,
                    pgoff: vma.pgoff + vma.pages(),
                    desc: vma.desc,
                };
                o.rewrite(vma.end, e, |_| vec![ext]);
                return o.finish(Ok(old_addr));
            }
        }
    }
    if !maymove {
        return Plan::err(Errno::ENOMEM);
    }
    let Some(dst) = place(v, cfg, new_len) else {
        return Plan::err(Errno::ENOMEM);
    };
    move_range(&mut o, vma, old_addr, old_len, dst, new_len);
    o.finish(Ok(dst))
}

/// Unmap `[start, start + len)` as part of an mremap shrink, with munmap's range check.
fn unmap_tail<V: View>(
    o: &mut Overlay<'_, V>,
    cfg: &MmConfig,
    start: usize,
    len: usize,
) -> Result<(), Errno> {
    if start > cfg.task_size || len > cfg.task_size - start {
        return Err(Errno::EINVAL);
    }
    // Cannot overflow after the check above (`start + len <= task_size`); checked anyway,
    // like `munmap`.
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    o.rewrite(start, end, |_| Vec::new());
    Ok(())
}

/// `MREMAP_FIXED` without resizing: every VMA piece in `[start, start + len)` moves to the
/// same offset from `dst`. Gaps are kept (their target is left alone); a destination below
/// `min_addr` is `EPERM` (after that piece's target was cleared); a gap at the start,
/// or no VMA at all, is `EFAULT`.
fn remap_move<V: View>(v: &V, cfg: &MmConfig, start: usize, len: usize, dst: usize) -> Plan {
    let Some(end) = start.checked_add(len) else {
        return Plan::err(Errno::EFAULT);
    };
    let pieces = v.overlapping(start, end);
    match pieces.first() {
        Some(p) if p.start <= start => {}
        _ => return Plan::err(Errno::EFAULT),
    }
    let mut o = Overlay::new(v);
    for p in pieces {
        let s = p.start.max(start);
        let e = p.end.min(end);
        let target = dst + (s - start);
        let vma = o.vma_at(s).unwrap_or(p);
        o.rewrite(target, target + (e - s), |_| Vec::new());
        // Each piece's destination is checked like a MAP_FIXED mmap, after its target was
        // cleared (pieces moved before it stay moved).
        if target < cfg.min_addr {
            return o.finish(Err(Errno::EPERM));
        }
        let vma = o.vma_at(s).unwrap_or(vma);
        move_range(&mut o, vma, s, e - s, target, e - s);
    }
    o.finish(Ok(dst))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// An empty layout.
    struct Empty;

    impl View for Empty {
        fn overlapping(&self, _: usize, _: usize) -> Vec<Seg> {
            Vec::new()
        }
        fn gap_rev(&self, _: usize, _: usize, _: usize) -> Option<usize> {
            None
        }
        fn gap_fwd(&self, _: usize, _: usize, _: usize) -> Option<usize> {
            None
        }
    }

    /// Review finding F9: with a `task_size` that `MmConfig::check` refuses (unaligned, at
    /// the top of the address space), rounding the length up used to overflow `addr + len`.
    /// The planner must answer with an error instead of panicking or wrapping.
    #[test]
    fn munmap_at_the_top_of_an_unchecked_config_does_not_overflow() {
        let cfg = MmConfig {
            min_addr: PAGE_SIZE,
            mmap_base: PAGE_SIZE,
            task_size: usize::MAX,
        };
        assert!(cfg.check().is_err());
        let top = usize::MAX & !(PAGE_SIZE - 1);
        let plan = munmap(&Empty, &cfg, top, 1);
        assert_eq!(plan.result, Err(Errno::EINVAL));
        assert!(plan.changes.is_empty());
    }
}
