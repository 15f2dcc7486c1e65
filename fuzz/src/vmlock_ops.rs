//! `vmlock_ops`: `mmap`/`munmap`/`mprotect`/`mremap`/`madvise`/`fork` on [`Mm`] against a
//! page-granular model of the address space.
//!
//! The model ([`PageModel`]) stores runs of pages with their attributes and never merges
//! them itself: the VMA listing is *derived* by joining neighbouring pages that agree on
//! every attribute the kernel compares (protection, shared, `VM_NORESERVE`, `VM_ACCOUNT`,
//! `VM_DONTCOPY`, the mapped object) and whose page offsets are contiguous. So a layout that `Mm` failed
//! to merge, merged wrongly, split in the wrong place or lost a page of shows up as a
//! difference in `vmas()`.
//!
//! The system-call rules (argument checks in the kernel's order, top-down placement below
//! `mmap_base` with the bottom-up fallback from `min_addr`, `mprotect` stopping at the
//! first hole with `ENOMEM` while `madvise` changes every mapped part and then reports it,
//! `mremap` shrink, grow in place, move, and duplicating a shared mapping with
//! `old_len == 0`; `fork` leaving out `MADV_DONTFORK` pages; the protection bits the kernel
//! accepts, ignores or refuses; a fixed address in the top 4095 bytes read as an error code;
//! file offsets past `MAX_LFS_FILESIZE`) are written out here from the Linux semantics
//! described in DESIGN.md and `vmlock`'s documented modelling choices (private anonymous
//! memory is never faulted, so its page offset is its address).
//!
//! Every read path is checked after every operation: `lookup`, `lookup_speculative`,
//! `lock_vma_under_rcu`, `mmap_read_lock` + `find_vma`/`vma_lookup`, `fault` (with the
//! x86-64 permission rules), and the listings `vmas`, `vmas_rcu` and `smaps` (flags).

use std::collections::BTreeMap;

use vmlock::{
    Access, Advice, Backing, Errno, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, RemapFlags,
    Speculation, VmFlags, VmaInfo,
};

use crate::avoid;
use crate::input::Input;

const PAGE: usize = 4096;
/// `PROT_SEM`: accepted by `mprotect`, no effect on x86-64.
const PROT_SEM: u32 = 0x8;
/// `PROT_GROWSDOWN` / `PROT_GROWSUP`: `mprotect` modifiers for growing VMAs (none here).
const PROT_GROWSDOWN: u32 = 0x0100_0000;
const PROT_GROWSUP: u32 = 0x0200_0000;
/// Linux's `MAX_LFS_FILESIZE` (64-bit): no file mapping may reach past it.
const MAX_LFS_FILESIZE: u64 = (1 << 63) - 1;

fn aligned(x: usize) -> bool {
    x % PAGE == 0
}

fn page_align(len: usize) -> Option<usize> {
    len.checked_add(PAGE - 1).map(|l| l & !(PAGE - 1))
}

/// The object a page maps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Obj {
    /// Private anonymous memory (page offset = address / 4096).
    Anon,
    /// Shared anonymous memory: one object per successful `mmap`.
    Shmem(u64),
    /// A file.
    File(FileId),
}

/// What two neighbouring pages must agree on to be one VMA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Attr {
    /// Protection.
    pub prot: Prot,
    /// `MAP_SHARED`.
    pub shared: bool,
    /// `VM_NORESERVE`.
    pub noreserve: bool,
    /// `VM_ACCOUNT` (private writable memory that is charged).
    pub account: bool,
    /// `VM_DONTCOPY` (`MADV_DONTFORK`).
    pub dontcopy: bool,
    /// The mapped object.
    pub obj: Obj,
}

/// A run of pages `[start, end)` with one attribute set; `pgoff` is the offset of `start`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Run {
    start: usize,
    end: usize,
    pgoff: u64,
    attr: Attr,
}

impl Run {
    fn clip(&self, s: usize, e: usize) -> Run {
        Run {
            start: s,
            end: e,
            pgoff: self.pgoff + ((s - self.start) / PAGE) as u64,
            attr: self.attr,
        }
    }

    fn joins(&self, next: &Run) -> bool {
        self.end == next.start
            && self.attr == next.attr
            && self
                .pgoff
                .checked_add(((self.end - self.start) / PAGE) as u64)
                == Some(next.pgoff)
    }

    fn flags(&self) -> VmFlags {
        let a = &self.attr;
        let mut f = VmFlags::from_bits_truncate(a.prot.bits());
        for (on, flag) in [
            (a.shared, VmFlags::SHARED),
            (a.noreserve, VmFlags::NORESERVE),
            (a.account, VmFlags::ACCOUNT),
            (a.dontcopy, VmFlags::DONTCOPY),
        ] {
            if on {
                f |= flag;
            }
        }
        f
    }

    fn info(&self) -> VmaInfo {
        VmaInfo {
            start: self.start,
            end: self.end,
            prot: self.attr.prot,
            shared: self.attr.shared,
            backing: match self.attr.obj {
                Obj::Anon | Obj::Shmem(_) => Backing::Anonymous,
                Obj::File(file) => Backing::File {
                    file,
                    pgoff: self.pgoff,
                },
            },
        }
    }
}

/// The reference address space: runs of pages, merged only when listed.
#[derive(Clone, Debug)]
pub struct PageModel {
    cfg: MmConfig,
    runs: BTreeMap<usize, Run>,
    next_shmem: u64,
}

impl PageModel {
    /// An empty address space of shape `cfg`.
    pub fn new(cfg: MmConfig) -> Self {
        PageModel {
            cfg,
            runs: BTreeMap::new(),
            next_shmem: 0,
        }
    }

    /// Runs intersecting `[s, e)`, in order.
    fn overlapping(&self, s: usize, e: usize) -> Vec<Run> {
        let mut out = Vec::new();
        if let Some((_, r)) = self.runs.range(..s).next_back() {
            if r.end > s {
                out.push(*r);
            }
        }
        out.extend(self.runs.range(s..e).map(|(_, r)| *r));
        out
    }

    fn is_free(&self, s: usize, e: usize) -> bool {
        self.overlapping(s, e).is_empty()
    }

    /// Unmap `[s, e)`, splitting runs at the edges.
    fn clear(&mut self, s: usize, e: usize) {
        for r in self.overlapping(s, e) {
            self.runs.remove(&r.start);
            if r.start < s {
                self.runs.insert(r.start, r.clip(r.start, s));
            }
            if r.end > e {
                self.runs.insert(e, r.clip(e, r.end));
            }
        }
    }

    fn put(&mut self, run: Run) {
        self.clear(run.start, run.end);
        self.runs.insert(run.start, run);
    }

    /// The VMA listing: runs joined wherever the kernel would have merged them.
    pub fn vmas(&self) -> Vec<VmaInfo> {
        self.merged().iter().map(Run::info).collect()
    }

    /// The listing with flags (what `Mm::smaps` shows).
    pub fn smaps(&self) -> Vec<(VmaInfo, VmFlags)> {
        self.merged()
            .iter()
            .map(|r| (r.info(), r.flags()))
            .collect()
    }

    /// The child's address space after `fork`: every page but the `MADV_DONTFORK` ones.
    pub fn fork(&self) -> Self {
        PageModel {
            cfg: self.cfg,
            runs: self
                .runs
                .iter()
                .filter(|(_, r)| !r.attr.dontcopy)
                .map(|(&k, r)| (k, *r))
                .collect(),
            next_shmem: self.next_shmem,
        }
    }

    fn merged(&self) -> Vec<Run> {
        let mut out: Vec<Run> = Vec::new();
        for r in self.runs.values() {
            match out.last_mut() {
                Some(last) if last.joins(r) => last.end = r.end,
                _ => out.push(*r),
            }
        }
        out
    }

    /// The (merged) VMA containing `addr`.
    fn vma_at(&self, addr: usize) -> Option<Run> {
        self.merged()
            .into_iter()
            .find(|r| r.start <= addr && addr < r.end)
    }

    /// The first VMA ending above `addr`.
    fn vma_after(&self, addr: usize) -> Option<Run> {
        self.merged().into_iter().find(|r| r.end > addr)
    }

    /// Highest `s` with `[s, s + len)` free inside `[lo, hi)`.
    fn gap_rev(&self, lo: usize, hi: usize, len: usize) -> Option<usize> {
        let mut top = hi;
        for r in self.runs.range(..hi).rev().map(|(_, r)| r) {
            let bottom = r.end.max(lo);
            if top >= bottom && top - bottom >= len {
                return Some(top - len);
            }
            top = top.min(r.start);
            if top <= lo {
                return None;
            }
        }
        (top >= lo && top - lo >= len).then(|| top - len)
    }

    /// Lowest `s` with `[s, s + len)` free inside `[lo, hi)`.
    fn gap_fwd(&self, lo: usize, hi: usize, len: usize) -> Option<usize> {
        let mut bottom = lo;
        for r in self.overlapping(lo, hi) {
            if r.start >= bottom && r.start - bottom >= len {
                return Some(bottom);
            }
            bottom = bottom.max(r.end);
        }
        (hi >= bottom && hi - bottom >= len).then_some(bottom)
    }

    /// Top-down below `mmap_base`; if nothing fits there, bottom-up below `task_size`.
    fn place(&self, len: usize) -> Option<usize> {
        let lo = self.cfg.min_addr.max(PAGE);
        let top = self.cfg.mmap_base.min(self.cfg.task_size);
        if top > lo && top - lo >= len {
            if let Some(a) = self.gap_rev(lo, top, len) {
                return Some(a);
            }
        }
        let ts = self.cfg.task_size;
        if ts > lo && ts - lo >= len {
            return self.gap_fwd(lo, ts, len);
        }
        None
    }

    /// `mmap`.
    pub fn mmap(&mut self, req: &MapRequest) -> Result<usize, Errno> {
        let cfg = self.cfg;
        if req.len == 0 {
            return Err(Errno::EINVAL);
        }
        let fixed = req
            .flags
            .intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE);
        let mut addr = req.addr.unwrap_or(0);
        if !fixed {
            addr &= !(PAGE - 1);
            if addr != 0 && addr < cfg.min_addr {
                addr = page_align(cfg.min_addr).ok_or(Errno::ENOMEM)?;
            }
        }
        let len = page_align(req.len).ok_or(Errno::ENOMEM)?;
        let file_pgoff = match req.backing {
            Backing::File { pgoff, .. } => pgoff,
            Backing::Anonymous => 0,
        };
        if file_pgoff.checked_add((len / PAGE) as u64).is_none() {
            return Err(Errno::EOVERFLOW);
        }
        if len > cfg.task_size {
            return Err(Errno::ENOMEM);
        }
        // One machine word carries addresses and negative errors: a fixed address within
        // 4095 of the top is returned as the error it looks like.
        if fixed && addr >= 0usize.wrapping_sub(4095) {
            return Err(Errno(0usize.wrapping_sub(addr) as i32));
        }
        let hint_ok = addr != 0
            && addr >= cfg.min_addr
            && addr <= cfg.task_size - len
            && self.is_free(addr, addr + len);
        let a = if fixed || hint_ok {
            addr
        } else {
            self.place(len).ok_or(Errno::ENOMEM)?
        };
        if a > cfg.task_size - len {
            return Err(Errno::ENOMEM);
        }
        if !aligned(a) {
            return Err(Errno::EINVAL);
        }
        if fixed && a < cfg.min_addr {
            return Err(Errno::EPERM);
        }
        if req.flags.contains(MapFlags::FIXED_NOREPLACE) && !self.is_free(a, a + len) {
            return Err(Errno::EEXIST);
        }
        if let Backing::File { pgoff, .. } = req.backing {
            // The mapping must end at or below MAX_LFS_FILESIZE (bytes).
            let end = (pgoff as u128 + (len / PAGE) as u128) * PAGE as u128;
            if end > MAX_LFS_FILESIZE as u128 {
                return Err(Errno::EOVERFLOW);
            }
        }
        let anon = req.backing == Backing::Anonymous;
        let shared = match (
            req.flags.contains(MapFlags::SHARED),
            req.flags.contains(MapFlags::PRIVATE),
        ) {
            (true, true) if anon => return Err(Errno::EINVAL),
            (true, true) if req.flags.contains(MapFlags::FIXED_NOREPLACE) => {
                return Err(Errno::EOPNOTSUPP)
            }
            (true, _) => true,
            (false, true) => false,
            (false, false) => return Err(Errno::EINVAL),
        };
        let (obj, pgoff) = match req.backing {
            Backing::File { file, pgoff } => (Obj::File(file), pgoff),
            Backing::Anonymous if shared => {
                self.next_shmem += 1;
                (Obj::Shmem(self.next_shmem), 0)
            }
            Backing::Anonymous => (Obj::Anon, (a / PAGE) as u64),
        };
        let noreserve = req.flags.contains(MapFlags::NORESERVE);
        let prot = Prot::from_bits_truncate(req.prot.bits());
        self.put(Run {
            start: a,
            end: a + len,
            pgoff,
            attr: Attr {
                prot,
                shared,
                noreserve,
                account: !shared && !noreserve && prot.contains(Prot::WRITE),
                dontcopy: false,
                obj,
            },
        });
        Ok(a)
    }

    /// `munmap`.
    pub fn munmap(&mut self, addr: usize, len: usize) -> Result<(), Errno> {
        let ts = self.cfg.task_size;
        if !aligned(addr) || addr > ts || len > ts - addr {
            return Err(Errno::EINVAL);
        }
        let len = match page_align(len) {
            Some(l) if l != 0 => l,
            _ => return Err(Errno::EINVAL),
        };
        self.clear(addr, addr + len);
        Ok(())
    }

    /// `mprotect`: changes pages up to the first hole, then reports `ENOMEM`.
    pub fn mprotect(&mut self, addr: usize, len: usize, prot: Prot) -> Result<(), Errno> {
        let grows = prot.bits() & (PROT_GROWSDOWN | PROT_GROWSUP);
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        if !aligned(addr) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let end = match page_align(len).and_then(|l| addr.checked_add(l)) {
            Some(e) if e > addr => e,
            _ => return Err(Errno::ENOMEM),
        };
        let rest = prot.bits() & !grows;
        if rest & !(7 | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        let prot = Prot::from_bits_truncate(rest);
        let runs = self.overlapping(addr, end);
        let Some(first) = runs.first() else {
            return Err(Errno::ENOMEM);
        };
        // Nothing here grows down or up: the modifiers fail on whatever VMA they meet.
        if grows == PROT_GROWSDOWN {
            return Err(Errno::EINVAL);
        }
        if first.start > addr {
            return Err(Errno::ENOMEM);
        }
        if grows == PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        let mut done = addr;
        for r in &runs {
            if r.start > done {
                break;
            }
            done = r.end.min(end);
        }
        for r in self.overlapping(addr, done) {
            let mut piece = r.clip(r.start.max(addr), r.end.min(done));
            let old = piece.attr;
            if prot.contains(Prot::WRITE) {
                if !(old.account || old.prot.contains(Prot::WRITE) || old.shared || old.noreserve) {
                    piece.attr.account = true;
                }
            } else if old.account && old.obj == Obj::Anon {
                piece.attr.account = false;
            }
            piece.attr.prot = prot;
            self.put(piece);
        }
        if done < end {
            Err(Errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    /// `madvise(MADV_DONTFORK / MADV_DOFORK)`: every mapped page of the range changes;
    /// any unmapped page in it makes the result `ENOMEM` (after the change).
    pub fn madvise(&mut self, addr: usize, len: usize, advice: Advice) -> Result<(), Errno> {
        if !aligned(addr) {
            return Err(Errno::EINVAL);
        }
        let Some(end) = page_align(len).and_then(|l| addr.checked_add(l)) else {
            return Err(Errno::EINVAL);
        };
        if end == addr {
            return Ok(());
        }
        let runs = self.overlapping(addr, end);
        if runs.is_empty() {
            return Err(Errno::ENOMEM);
        }
        let mut mapped = 0;
        for r in runs {
            let mut piece = r.clip(r.start.max(addr), r.end.min(end));
            mapped += piece.end - piece.start;
            piece.attr.dontcopy = advice == Advice::DontFork;
            self.put(piece);
        }
        if mapped < end - addr {
            Err(Errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    /// Move the pages `[src, src + old_len)` (one VMA's attributes) to `[dst, dst + new_len)`;
    /// with `old_len == 0` the source stays (a second mapping of the same shared object).
    fn move_range(&mut self, vma: Run, src: usize, old_len: usize, dst: usize, new_len: usize) {
        let piece = vma.clip(src, src + old_len);
        let pgoff = match piece.attr.obj {
            Obj::Anon => (dst / PAGE) as u64,
            Obj::Shmem(_) | Obj::File(_) => piece.pgoff,
        };
        self.put(Run {
            start: dst,
            end: dst + new_len,
            pgoff,
            attr: piece.attr,
        });
        if old_len != 0 {
            self.clear(src, src + old_len);
        }
    }

    fn unmap_tail(&mut self, start: usize, len: usize) -> Result<(), Errno> {
        let ts = self.cfg.task_size;
        if start > ts || len > ts - start {
            return Err(Errno::EINVAL);
        }
        self.clear(start, start + len);
        Ok(())
    }

    /// `mremap`.
    pub fn mremap(
        &mut self,
        old_addr: usize,
        old_len: usize,
        new_len: usize,
        flags: RemapFlags,
        new_addr: Option<usize>,
    ) -> Result<usize, Errno> {
        let ts = self.cfg.task_size;
        let old_len = old_len.wrapping_add(PAGE - 1) & !(PAGE - 1);
        let new_len = new_len.wrapping_add(PAGE - 1) & !(PAGE - 1);
        if flags.bits() & !RemapFlags::all().bits() != 0 || !aligned(old_addr) {
            return Err(Errno::EINVAL);
        }
        if new_len == 0 || new_len > ts {
            return Err(Errno::EINVAL);
        }
        let fixed = flags.contains(RemapFlags::FIXED);
        let maymove = flags.contains(RemapFlags::MAYMOVE);
        let new_addr = new_addr.unwrap_or(0);
        if fixed {
            if new_addr > ts - new_len || !aligned(new_addr) || !maymove {
                return Err(Errno::EINVAL);
            }
            if new_addr < old_addr.saturating_add(old_len) && old_addr < new_addr + new_len {
                return Err(Errno::EINVAL);
            }
            if old_len == new_len {
                return self.move_all(old_addr, old_len, new_addr);
            }
        }
        let vma = self.vma_at(old_addr).ok_or(Errno::EFAULT)?;
        // Duplicating with `old_len == 0` only makes sense for a shared mapping.
        if old_len == 0 && !vma.attr.shared {
            return Err(Errno::EINVAL);
        }
        let shrink_in_place = !fixed && old_len >= new_len;
        if !shrink_in_place && old_len.min(new_len) > vma.end - old_addr {
            return Err(Errno::EFAULT);
        }
        // Growing must not run the page offset past the end of the object (Linux checks
        // `pgoff + new pages` for wrap-around and answers EINVAL; with MREMAP_FIXED only
        // after the target range was unmapped).
        let pgoff = vma.pgoff + ((old_addr - vma.start) / PAGE) as u64;
        let wraps = new_len > old_len && pgoff.checked_add((new_len / PAGE) as u64).is_none();
        if fixed {
            self.clear(new_addr, new_addr + new_len);
            if wraps {
                return Err(Errno::EINVAL);
            }
            if old_len > new_len {
                self.unmap_tail(old_addr + new_len, old_len - new_len)?;
            }
            // The destination is checked like a MAP_FIXED mmap (unprivileged: EPERM below
            // mmap_min_addr), after the target was cleared.
            if new_addr < self.cfg.min_addr {
                return Err(Errno::EPERM);
            }
            // Looked up again: a duplicate onto its own address has just unmapped it.
            let vma = match self.vma_at(old_addr) {
                Some(v) => v,
                None if old_len == 0 => return Err(Errno::EFAULT),
                None => vma,
            };
            self.move_range(vma, old_addr, old_len.min(new_len), new_addr, new_len);
            return Ok(new_addr);
        }
        if wraps {
            return Err(Errno::EINVAL);
        }
        if old_len >= new_len {
            if old_len != new_len {
                self.unmap_tail(old_addr + new_len, old_len - new_len)?;
            }
            return Ok(old_addr);
        }
        if old_addr + old_len == vma.end {
            if let Some(e) = old_addr.checked_add(new_len).filter(|&e| e <= ts) {
                if self.is_free(vma.end, e) {
                    let ext = vma.clip(vma.start, vma.end);
                    self.put(Run {
                        start: vma.end,
                        end: e,
                        pgoff: ext.pgoff + ((vma.end - vma.start) / PAGE) as u64,
                        attr: vma.attr,
                    });
                    return Ok(old_addr);
                }
            }
        }
        if !maymove {
            return Err(Errno::ENOMEM);
        }
        let dst = self.place(new_len).ok_or(Errno::ENOMEM)?;
        self.move_range(vma, old_addr, old_len, dst, new_len);
        Ok(dst)
    }

    /// `MREMAP_FIXED` with equal lengths: every VMA piece in the range moves by the same
    /// distance; holes stay; a hole at the start (or nothing mapped) is `EFAULT`.
    fn move_all(&mut self, start: usize, len: usize, dst: usize) -> Result<usize, Errno> {
        let end = start.checked_add(len).ok_or(Errno::EFAULT)?;
        let pieces: Vec<Run> = self
            .merged()
            .into_iter()
            .filter(|r| r.start < end && r.end > start)
            .collect();
        match pieces.first() {
            Some(p) if p.start <= start => {}
            _ => return Err(Errno::EFAULT),
        }
        for p in pieces {
            let s = p.start.max(start);
            let e = p.end.min(end);
            let target = dst + (s - start);
            self.clear(target, target + (e - s));
            if target < self.cfg.min_addr {
                return Err(Errno::EPERM);
            }
            self.move_range(p, s, e - s, target, e - s);
        }
        Ok(dst)
    }
}

/// One address space under test and its model.
struct Space {
    mm: Mm,
    model: PageModel,
}

/// A small address space where placement runs out and every boundary is close.
fn tiny_config() -> MmConfig {
    MmConfig {
        min_addr: 16 * PAGE,
        mmap_base: 256 * PAGE,
        task_size: 320 * PAGE,
    }
}

struct Driver<'a, 'b> {
    inp: &'b mut Input<'a>,
    spaces: Vec<Space>,
    log: Vec<String>,
    reported: std::cell::Cell<bool>,
}

impl Drop for Driver<'_, '_> {
    /// A panic inside `vmlock` itself (not a reported divergence) still shows the recent
    /// operations.
    fn drop(&mut self) {
        if std::thread::panicking() && !self.reported.get() {
            let from = self.log.len().saturating_sub(30);
            eprintln!(
                "--- panicked; last operations ({} in all):\n{}",
                self.log.len(),
                self.log[from..].join("\n")
            );
        }
    }
}

impl Driver<'_, '_> {
    /// Append `Mm`'s result to the last logged operation.
    fn note_result<T: std::fmt::Debug>(&mut self, r: &Result<T, Errno>) {
        if let Some(last) = self.log.last_mut() {
            last.push_str(&format!(" => {r:x?}"));
        }
    }

    #[track_caller]
    fn fail(&self, s: usize, msg: &str) -> ! {
        self.reported.set(true);
        let from = self.log.len().saturating_sub(30);
        let sp = &self.spaces[s];
        panic!(
            "{msg}\n--- last operations ({} in all):\n{}\n--- model: {:#x?}\n--- mm: {:#x?}",
            self.log.len(),
            self.log[from..].join("\n"),
            sp.model.vmas(),
            sp.mm.vmas()
        );
    }

    #[track_caller]
    fn check_eq<T: PartialEq + std::fmt::Debug>(&self, s: usize, what: &str, got: T, want: T) {
        if got != want {
            self.fail(s, &format!("{what}: Mm gave {got:?}, model wants {want:?}"));
        }
    }

    /// An address steered towards the layout's edges and the existing VMAs' boundaries.
    fn addr(&mut self, s: usize) -> usize {
        let cfg = self.spaces[s].model.cfg;
        let sel = self.inp.byte();
        let k = (self.inp.byte() % 16) as usize * PAGE;
        let base = match sel % 16 {
            0 => 0,
            1 => cfg.min_addr.wrapping_add(k),
            2 => cfg.mmap_base.wrapping_sub(k),
            3 => cfg.task_size.wrapping_sub(k),
            4..=10 => {
                let v = self.spaces[s].model.merged();
                if v.is_empty() {
                    cfg.mmap_base.wrapping_sub(k)
                } else {
                    let r = v[self.inp.byte() as usize % v.len()];
                    let edge = if sel & 0x10 == 0 { r.start } else { r.end };
                    if sel & 0x20 == 0 {
                        edge.wrapping_add(k)
                    } else {
                        edge.wrapping_sub(k)
                    }
                }
            }
            11 => cfg.task_size,
            12 | 13 => (self.inp.u16() as usize % (cfg.task_size / PAGE + 2)) * PAGE,
            14 => self.inp.index() & !(PAGE - 1),
            _ => self.inp.index(),
        };
        if sel & 0xe0 == 0xe0 {
            // Unaligned by a few bytes.
            base.wrapping_add(1 + (sel as usize & 0x7))
        } else {
            base
        }
    }

    /// A length in bytes: mostly a few pages, sometimes unaligned, zero, huge or wrapping.
    fn len(&mut self) -> usize {
        let sel = self.inp.byte();
        let pages = 1 + (sel >> 4) as usize;
        match sel % 16 {
            0 => 0,
            1..=10 => pages * PAGE,
            11 => pages * PAGE - 1 - (self.inp.byte() as usize % 100),
            12 => (self.inp.u16() as usize) * PAGE,
            13 => (1 + self.inp.byte() as usize) * PAGE,
            14 => usize::MAX - (sel >> 4) as usize * PAGE,
            _ => self.inp.index(),
        }
    }

    /// Read, write, exec, and now and then a bit the kernel accepts (`PROT_SEM`),
    /// refuses, or treats as a modifier (`PROT_GROWSDOWN`/`PROT_GROWSUP`).
    fn prot(&mut self) -> Prot {
        let b = self.inp.byte() as u32;
        let extra = match b >> 4 {
            12 => PROT_SEM,
            13 => PROT_GROWSDOWN,
            14 => PROT_GROWSUP,
            15 if b & 8 != 0 => PROT_GROWSDOWN | PROT_GROWSUP,
            15 => 0x10 << (b & 7),
            _ => 0,
        };
        Prot::from_bits_retain((b & 7) | extra)
    }

    fn check_space(&self, s: usize) {
        let sp = &self.spaces[s];
        if let Err(e) = sp.mm.validate() {
            self.fail(s, &format!("validate: {e}"));
        }
        let want = sp.model.vmas();
        self.check_eq(s, "vmas", sp.mm.vmas(), want.clone());
        self.check_eq(s, "vmas_rcu", sp.mm.vmas_rcu(), want);
        self.check_eq(s, "smaps", sp.mm.smaps(), sp.model.smaps());
    }

    /// Compare every read path at `addr`.
    fn check_reads(&self, s: usize, addr: usize) {
        let sp = &self.spaces[s];
        let want = sp.model.vma_at(addr).map(|r| r.info());
        self.check_eq(s, "lookup", sp.mm.lookup(addr), want);
        let spec = match want {
            Some(v) => Speculation::Found(v),
            None => Speculation::Unmapped,
        };
        self.check_eq(
            s,
            "lookup_speculative",
            sp.mm.lookup_speculative(addr),
            spec,
        );
        let locked = sp.mm.lock_vma_under_rcu(addr).map(|g| g.info());
        self.check_eq(s, "lock_vma_under_rcu", locked, want);
        let g = sp.mm.mmap_read_lock();
        let (lookup, find) = (g.vma_lookup(addr), g.find_vma(addr));
        drop(g);
        self.check_eq(s, "vma_lookup", lookup, want);
        let after = sp.model.vma_after(addr).map(|r| r.info());
        self.check_eq(s, "find_vma", find, after);
        for access in [Access::Read, Access::Write, Access::Exec] {
            let allowed = |p: Prot| x86_allows(access, p);
            let want = match want {
                None => Err(Errno::EFAULT),
                Some(v) if !allowed(v.prot) => Err(Errno::EACCES),
                Some(_) => Ok(()),
            };
            self.check_eq(s, "fault", sp.mm.fault(addr, access).map(|_| ()), want);
        }
    }

    fn step(&mut self) {
        let op = self.inp.byte();
        let s = (op >> 5) as usize % self.spaces.len();
        match op % 16 {
            0..=4 => {
                let fsel = self.inp.byte();
                let mut flags = if fsel & 1 == 0 {
                    MapFlags::PRIVATE
                } else {
                    MapFlags::SHARED
                };
                match (fsel >> 1) % 8 {
                    0 | 1 => flags |= MapFlags::FIXED,
                    2 => flags |= MapFlags::FIXED_NOREPLACE,
                    3 => flags |= MapFlags::NORESERVE,
                    4 if fsel & 0x80 != 0 => flags |= MapFlags::SHARED | MapFlags::PRIVATE,
                    5 if fsel & 0x80 != 0 => flags = MapFlags::empty(),
                    _ => {}
                }
                let addr = match (fsel >> 4) % 4 {
                    0 if !flags.intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE) => None,
                    _ => Some(self.addr(s)),
                };
                let len = self.len();
                let prot = self.prot();
                let backing = if fsel & 0x40 == 0 {
                    Backing::Anonymous
                } else {
                    let b = self.inp.byte();
                    let pgoff = match b % 4 {
                        0 if !avoid("v1") => u64::MAX - (b >> 2) as u64,
                        // Around the MAX_LFS_FILESIZE limit.
                        1 => (1u64 << 51) - (b >> 2) as u64,
                        _ => (b >> 2) as u64,
                    };
                    Backing::File {
                        file: FileId((b % 3) as u64),
                        pgoff,
                    }
                };
                let req = MapRequest {
                    addr,
                    len,
                    prot,
                    flags,
                    backing,
                };
                self.log.push(format!("[{s}] mmap({req:x?})"));
                let got = self.spaces[s].mm.mmap(&req);
                let want = self.spaces[s].model.mmap(&req);
                self.note_result(&got);
                self.check_eq(s, "mmap", got, want);
            }
            7 => {
                let addr = self.addr(s);
                let len = self.len();
                let advice = if self.inp.bool() {
                    Advice::DontFork
                } else {
                    Advice::DoFork
                };
                self.log
                    .push(format!("[{s}] madvise({addr:#x}, {len:#x}, {advice:?})"));
                let got = self.spaces[s].mm.madvise(addr, len, advice);
                let want = self.spaces[s].model.madvise(addr, len, advice);
                self.note_result(&got);
                self.check_eq(s, "madvise", got, want);
            }
            5..=6 => {
                let addr = self.addr(s);
                let len = self.len();
                self.log.push(format!("[{s}] munmap({addr:#x}, {len:#x})"));
                let got = self.spaces[s].mm.munmap(addr, len);
                let want = self.spaces[s].model.munmap(addr, len);
                self.note_result(&got);
                self.check_eq(s, "munmap", got, want);
            }
            8..=10 => {
                let addr = self.addr(s);
                let len = self.len();
                let prot = self.prot();
                self.log
                    .push(format!("[{s}] mprotect({addr:#x}, {len:#x}, {prot:?})"));
                let got = self.spaces[s].mm.mprotect(addr, len, prot);
                let want = self.spaces[s].model.mprotect(addr, len, prot);
                self.note_result(&got);
                self.check_eq(s, "mprotect", got, want);
            }
            11..=13 => {
                let old_addr = self.addr(s);
                let old_len = self.len();
                let new_len = self.len();
                let f = self.inp.byte();
                let flags = RemapFlags::from_bits_retain((f % 4) as u32)
                    | if f == 0xff {
                        RemapFlags::from_bits_retain(8)
                    } else {
                        RemapFlags::empty()
                    };
                let new_addr = (f & 0x10 != 0).then(|| self.addr(s));
                self.log.push(format!(
                    "[{s}] mremap({old_addr:#x}, {old_len:#x}, {new_len:#x}, {flags:?}, {new_addr:x?})"
                ));
                let got = self.spaces[s]
                    .mm
                    .mremap(old_addr, old_len, new_len, flags, new_addr);
                let want = self.spaces[s]
                    .model
                    .mremap(old_addr, old_len, new_len, flags, new_addr);
                self.note_result(&got);
                self.check_eq(s, "mremap", got, want);
            }
            14 => {
                let keep = self.inp.byte();
                self.log.push(format!("[{s}] fork (keep {keep})"));
                let child = Space {
                    mm: self.spaces[s].mm.fork(),
                    model: self.spaces[s].model.fork(),
                };
                if self.spaces.len() < 3 {
                    self.spaces.push(child);
                } else {
                    let i = keep as usize % 3;
                    self.spaces[i] = child;
                }
                let last = self.spaces.len() - 1;
                self.check_space(last);
            }
            _ => {
                let addr = self.addr(s);
                self.log.push(format!("[{s}] reads at {addr:#x}"));
                self.check_reads(s, addr);
            }
        }
        self.check_space(s);
        // A read at a VMA edge of the space just changed.
        let addr = self.addr(s);
        self.check_reads(s, addr);
    }
}

/// Run the `vmlock_ops` target on `data`. Panics on any divergence.
///
/// The first byte picks the address space shape: odd = a tiny 320-page space (placement
/// runs out, every edge is near), even = the default 47-bit layout.
pub fn run_vmlock_ops(data: &[u8]) {
    let mut inp = Input::new(data);
    let cfg = if inp.byte() & 1 == 1 {
        tiny_config()
    } else {
        MmConfig::default()
    };
    let mut d = Driver {
        inp: &mut inp,
        spaces: vec![Space {
            mm: Mm::new(cfg),
            model: PageModel::new(cfg),
        }],
        log: Vec::new(),
        reported: std::cell::Cell::new(false),
    };
    while !d.inp.is_empty() {
        crate::count_ops(1);
        d.step();
    }
    if std::env::var_os("MAPLE_FUZZ_TRACE").is_some() {
        eprintln!("{}", d.log.join("\n"));
    }
}

/// The model's fault-permission rule, as on x86-64 Linux (checked against the kernel by
/// `vmlock/tests/kernel_fault.rs`): a load is allowed by any permission, a store needs
/// write, an instruction fetch needs exec.
pub(crate) fn x86_allows(access: Access, prot: Prot) -> bool {
    match access {
        Access::Read => !prot.is_empty(),
        Access::Write => prot.contains(Prot::WRITE),
        Access::Exec => prot.contains(Prot::EXEC),
    }
}
