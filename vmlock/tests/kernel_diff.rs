//! Differential test against the real kernel of this machine.
//!
//! A window of the test process's address space is set aside far below every other mapping
//! and filled with one `PROT_NONE` private anonymous `MAP_NORESERVE` mapping (the
//! "reserve"). The same reserve is mapped into a [`Model`] and an [`Mm`] configured with
//! `min_addr` = window start, `mmap_base` = window end and the kernel's real `TASK_SIZE`.
//! Random operations then run on all three: raw `mmap`/`munmap`/`mprotect`/`mremap` system
//! calls (anonymous private memory with `MAP_NORESERVE` or not, shared anonymous memory,
//! shared and private mappings of memfds) and the same calls on the model and on `Mm`.
//! After every operation the return values must agree and the window's part of
//! `/proc/self/maps` must equal both listings (the kernel merges adjacent compatible VMAs;
//! so must we).
//!
//! # Placement without `MAP_FIXED`
//!
//! The kernel places such mappings top-down below *its* `mmap_base`, far above the window,
//! so its address cannot be compared directly. Instead `Mm` is asked first:
//! - if `Mm` honoured the hint (which always lies inside the window), the kernel must honour
//!   it too: the real call is made with the same hint and must return the same address;
//! - otherwise `Mm`'s address must be the highest gap of the window (computed independently
//!   from `/proc/self/maps`) that fits, the hint must be occupied in the kernel's layout,
//!   and the kernel must accept the mapping there with `MAP_FIXED_NOREPLACE`;
//! - `ENOMEM` from `Mm` requires that no gap of the window fits; the kernel's mapping
//!   (outside the window) is then unmapped again.
//!
//! `mremap(MAYMOVE)` works the same way: if `Mm` moved the mapping, the kernel must refuse
//! to grow it in place (same call without `MAYMOVE` → `ENOMEM`), `Mm`'s target must be the
//! highest fitting gap, and the kernel then moves it there with `MREMAP_FIXED`.
//!
//! Bad inputs use lengths beyond `TASK_SIZE` or that wrap, so the kernel refuses them
//! without touching anything outside the window.
//!
//! `VMLOCK_SEED` picks a seed; `VMLOCK_STRESS=n` multiplies the number of operations.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fmt::Write as _;

use vmlock::model::Model;
use vmlock::{
    Backing, Errno, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, RemapFlags, VmaInfo,
};

const PAGE: usize = 4096;
const TASK_SIZE: usize = 0x7fff_ffff_f000;
/// Pages in the window.
const NP: usize = 96;

/// What every implementation under test offers.
trait Space {
    fn name(&self) -> &'static str;
    fn mmap(&mut self, r: &MapRequest) -> Result<usize, Errno>;
    fn munmap(&mut self, a: usize, l: usize) -> Result<(), Errno>;
    fn mprotect(&mut self, a: usize, l: usize, p: Prot) -> Result<(), Errno>;
    fn mremap(
        &mut self,
        a: usize,
        ol: usize,
        nl: usize,
        f: RemapFlags,
        na: Option<usize>,
    ) -> Result<usize, Errno>;
    fn vmas(&self) -> Vec<VmaInfo>;
    /// Internal consistency (tree invariants for `Mm`).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Space for Model {
    fn name(&self) -> &'static str {
        "model"
    }
    fn mmap(&mut self, r: &MapRequest) -> Result<usize, Errno> {
        Model::mmap(self, r)
    }
    fn munmap(&mut self, a: usize, l: usize) -> Result<(), Errno> {
        Model::munmap(self, a, l)
    }
    fn mprotect(&mut self, a: usize, l: usize, p: Prot) -> Result<(), Errno> {
        Model::mprotect(self, a, l, p)
    }
    fn mremap(
        &mut self,
        a: usize,
        ol: usize,
        nl: usize,
        f: RemapFlags,
        na: Option<usize>,
    ) -> Result<usize, Errno> {
        Model::mremap(self, a, ol, nl, f, na)
    }
    fn vmas(&self) -> Vec<VmaInfo> {
        Model::vmas(self)
    }
}

impl Space for Mm {
    fn name(&self) -> &'static str {
        "Mm"
    }
    fn mmap(&mut self, r: &MapRequest) -> Result<usize, Errno> {
        Mm::mmap(self, r)
    }
    fn munmap(&mut self, a: usize, l: usize) -> Result<(), Errno> {
        Mm::munmap(self, a, l)
    }
    fn mprotect(&mut self, a: usize, l: usize, p: Prot) -> Result<(), Errno> {
        Mm::mprotect(self, a, l, p)
    }
    fn mremap(
        &mut self,
        a: usize,
        ol: usize,
        nl: usize,
        f: RemapFlags,
        na: Option<usize>,
    ) -> Result<usize, Errno> {
        Mm::mremap(self, a, ol, nl, f, na)
    }
    fn vmas(&self) -> Vec<VmaInfo> {
        Mm::vmas(self)
    }
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}

/// The real kernel, through raw system calls (no libc wrapper checks).
mod kernel {
    use super::*;

    fn ret(r: libc::c_long) -> Result<usize, Errno> {
        if r == -1 {
            Err(Errno(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ))
        } else {
            Ok(r as usize)
        }
    }

    pub fn mmap(r: &MapRequest, fds: &HashMap<FileId, i32>) -> Result<usize, Errno> {
        let (fd, off, anon) = match r.backing {
            Backing::Anonymous => (-1, 0usize, libc::MAP_ANONYMOUS as u32),
            Backing::File { file, pgoff } => (fds[&file], (pgoff as usize).wrapping_mul(PAGE), 0),
        };
        // SAFETY: every address the test passes lies in the window it owns, or the call is
        // non-fixed (the kernel picks free space) or invalid (the kernel refuses it).
        let v = unsafe {
            libc::syscall(
                libc::SYS_mmap,
                r.addr.unwrap_or(0),
                r.len,
                r.prot.bits() as libc::c_long,
                (r.flags.bits() | anon) as libc::c_long,
                fd as libc::c_long,
                off,
            )
        };
        ret(v)
    }

    pub fn munmap(a: usize, l: usize) -> Result<(), Errno> {
        // SAFETY: only addresses inside the test's own window (or invalid arguments).
        ret(unsafe { libc::syscall(libc::SYS_munmap, a, l) }).map(drop)
    }

    pub fn mprotect(a: usize, l: usize, p: Prot) -> Result<(), Errno> {
        // SAFETY: only addresses inside the test's own window (or invalid arguments).
        ret(unsafe { libc::syscall(libc::SYS_mprotect, a, l, p.bits() as libc::c_long) }).map(drop)
    }

    pub fn mremap(
        a: usize,
        ol: usize,
        nl: usize,
        f: RemapFlags,
        na: Option<usize>,
    ) -> Result<usize, Errno> {
        // SAFETY: only addresses inside the test's own window (or invalid arguments).
        ret(unsafe {
            libc::syscall(
                libc::SYS_mremap,
                a,
                ol,
                nl,
                f.bits() as libc::c_long,
                na.unwrap_or(0),
            )
        })
    }

    /// The window's part of /proc/self/maps, as listings.
    pub fn layout(lo: usize, hi: usize, files: &HashMap<u64, FileId>) -> Vec<VmaInfo> {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        let mut out = Vec::new();
        for line in maps.lines() {
            let mut it = line.split_whitespace();
            let range = it.next().unwrap();
            let perms = it.next().unwrap().as_bytes();
            let off = usize::from_str_radix(it.next().unwrap(), 16).unwrap();
            let _dev = it.next();
            let ino: u64 = it.next().unwrap().parse().unwrap();
            let (s, e) = range.split_once('-').unwrap();
            let s = usize::from_str_radix(s, 16).unwrap();
            let e = usize::from_str_radix(e, 16).unwrap();
            if e <= lo || s >= hi {
                continue;
            }
            let mut prot = Prot::NONE;
            if perms[0] == b'r' {
                prot |= Prot::READ;
            }
            if perms[1] == b'w' {
                prot |= Prot::WRITE;
            }
            if perms[2] == b'x' {
                prot |= Prot::EXEC;
            }
            let backing = match files.get(&ino) {
                Some(&file) => Backing::File {
                    file,
                    pgoff: (off / PAGE) as u64,
                },
                None => Backing::Anonymous,
            };
            out.push(VmaInfo {
                start: s,
                end: e,
                prot,
                shared: perms[3] == b's',
                backing,
            });
        }
        out
    }
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
}

/// The highest start in `[lo, hi)` where `len` bytes are free in `layout` (sorted).
fn highest_gap(layout: &[VmaInfo], lo: usize, hi: usize, len: usize) -> Option<usize> {
    let mut top = hi;
    for v in layout.iter().rev() {
        let gs = v.end.max(lo);
        if top.saturating_sub(gs) >= len {
            return Some(top - len);
        }
        top = top.min(v.start);
    }
    (top.saturating_sub(lo) >= len).then(|| top - len)
}

fn free_in(layout: &[VmaInfo], a: usize, len: usize) -> bool {
    layout.iter().all(|v| v.end <= a || v.start >= a + len)
}

#[derive(Debug, Clone)]
enum Op {
    Mmap(MapRequest),
    Munmap(usize, usize),
    Mprotect(usize, usize, Prot),
    Mremap(usize, usize, usize, RemapFlags, Option<usize>),
}

struct Harness {
    lo: usize,
    hi: usize,
    fds: HashMap<FileId, i32>,
    inodes: HashMap<u64, FileId>,
    spaces: Vec<Box<dyn Space>>,
    history: Vec<String>,
}

impl Harness {
    fn fail(&self, msg: &str) -> ! {
        let mut s = String::new();
        let _ = writeln!(s, "{msg}\nwindow {:#x}..{:#x}\nlast ops:", self.lo, self.hi);
        for h in self.history.iter().rev().take(12).rev() {
            let _ = writeln!(s, "  {h}");
        }
        let _ = writeln!(s, "kernel:");
        for v in kernel::layout(self.lo, self.hi, &self.inodes) {
            let _ = writeln!(s, "  {v:x?}");
        }
        for sp in &self.spaces {
            let _ = writeln!(s, "{}:", sp.name());
            for v in sp.vmas() {
                let _ = writeln!(s, "  {v:x?}");
            }
        }
        panic!("{s}");
    }

    fn klayout(&self) -> Vec<VmaInfo> {
        kernel::layout(self.lo, self.hi, &self.inodes)
    }

    fn check_layout(&self) {
        let k = self.klayout();
        for sp in &self.spaces {
            if let Err(e) = sp.check() {
                self.fail(&format!("{} is inconsistent: {e}", sp.name()));
            }
            let ours: Vec<VmaInfo> = sp
                .vmas()
                .into_iter()
                .filter(|v| v.end > self.lo && v.start < self.hi)
                .collect();
            if ours != k {
                self.fail(&format!("layout of {} differs from the kernel", sp.name()));
            }
        }
    }

    fn all<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        f: impl Fn(&mut dyn Space) -> T,
    ) -> T {
        let mut results = Vec::new();
        for sp in self.spaces.iter_mut() {
            results.push(f(sp.as_mut()));
        }
        for (i, r) in results.iter().enumerate().skip(1) {
            if *r != results[0] {
                let n0 = self.spaces[0].name();
                let ni = self.spaces[i].name();
                self.fail(&format!(
                    "{what}: {n0} -> {:?} but {ni} -> {r:?}",
                    results[0]
                ));
            }
        }
        results.swap_remove(0)
    }

    fn run(&mut self, op: &Op) {
        self.history.push(format!("{op:x?}"));
        let before = self.klayout();
        match *op {
            Op::Mmap(ref r) => {
                let fixed = r
                    .flags
                    .intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE);
                let ours = self.all("mmap", |s| s.mmap(r));
                if fixed || ours.is_err() && ours != Err(Errno::ENOMEM) {
                    let k = kernel::mmap(r, &self.fds);
                    if k != ours {
                        if let Ok(a) = k {
                            if !fixed && (a < self.lo || a >= self.hi) {
                                let _ = kernel::munmap(a, r.len);
                            }
                        }
                        self.fail(&format!("mmap: kernel {k:x?}, ours {ours:x?}"));
                    }
                } else {
                    let len = r.len.checked_next_multiple_of(PAGE).unwrap_or(usize::MAX);
                    let hint = r.addr.map(|a| a & !(PAGE - 1)).filter(|&a| a != 0);
                    match ours {
                        Ok(a) if Some(a) == hint => {
                            let k = kernel::mmap(r, &self.fds);
                            if k != Ok(a) {
                                self.fail(&format!("mmap hint: kernel {k:x?}, ours {a:#x}"));
                            }
                        }
                        Ok(a) => {
                            if let Some(h) = hint {
                                if h >= self.lo && free_in(&before, h, len) && h + len <= TASK_SIZE
                                {
                                    self.fail("mmap: ours ignored a free hint");
                                }
                            }
                            if highest_gap(&before, self.lo, self.hi, len) != Some(a) {
                                self.fail(&format!("mmap placed at {a:#x}, not the highest gap"));
                            }
                            let mut fixed = *r;
                            fixed.addr = Some(a);
                            fixed.flags |= MapFlags::FIXED_NOREPLACE;
                            let k = kernel::mmap(&fixed, &self.fds);
                            if k != Ok(a) {
                                self.fail(&format!("kernel refused our placement {a:#x}: {k:x?}"));
                            }
                        }
                        Err(_) => {
                            if highest_gap(&before, self.lo, self.hi, len).is_some() {
                                self.fail("mmap ENOMEM although a gap fits");
                            }
                            match kernel::mmap(r, &self.fds) {
                                // Placed outside the window: fine, the window is full.
                                Ok(a) => {
                                    assert!(a < self.lo || a >= self.hi);
                                    kernel::munmap(a, len).unwrap();
                                }
                                Err(e) if Err(e) != ours => {
                                    self.fail(&format!("mmap: kernel {e:?}, ours {ours:x?}"))
                                }
                                Err(_) => {}
                            }
                        }
                    }
                }
            }
            Op::Munmap(a, l) => {
                let ours = self.all("munmap", |s| s.munmap(a, l));
                let k = kernel::munmap(a, l);
                if k != ours {
                    self.fail(&format!("munmap: kernel {k:?}, ours {ours:?}"));
                }
            }
            Op::Mprotect(a, l, p) => {
                let ours = self.all("mprotect", |s| s.mprotect(a, l, p));
                let k = kernel::mprotect(a, l, p);
                if k != ours {
                    self.fail(&format!("mprotect: kernel {k:?}, ours {ours:?}"));
                }
            }
            Op::Mremap(a, ol, nl, f, na) => {
                let ours = self.all("mremap", |s| s.mremap(a, ol, nl, f, na));
                let moved = matches!(ours, Ok(d) if d != a) && !f.contains(RemapFlags::FIXED);
                let no_room = ours == Err(Errno::ENOMEM) && f == RemapFlags::MAYMOVE;
                if no_room {
                    // The kernel would move it outside the window: check it cannot grow in
                    // place and that no gap of the window fits.
                    let k = kernel::mremap(a, ol, nl, RemapFlags::empty(), None);
                    if k != Err(Errno::ENOMEM) {
                        self.fail(&format!("ours ENOMEM, kernel without MAYMOVE: {k:x?}"));
                    }
                    if highest_gap(&before, self.lo, self.hi, nl.next_multiple_of(PAGE)).is_some() {
                        self.fail("mremap ENOMEM although a gap fits");
                    }
                } else if !moved {
                    let k = kernel::mremap(a, ol, nl, f, na);
                    if k != ours {
                        self.fail(&format!("mremap: kernel {k:x?}, ours {ours:x?}"));
                    }
                } else {
                    let d = ours.unwrap();
                    let k = kernel::mremap(a, ol, nl, RemapFlags::empty(), None);
                    if k != Err(Errno::ENOMEM) {
                        self.fail(&format!(
                            "ours moved to {d:#x}, kernel grew in place: {k:x?}"
                        ));
                    }
                    let nlp = nl.next_multiple_of(PAGE);
                    if highest_gap(&before, self.lo, self.hi, nlp) != Some(d) {
                        self.fail(&format!("mremap moved to {d:#x}, not the highest gap"));
                    }
                    let k =
                        kernel::mremap(a, ol, nl, RemapFlags::MAYMOVE | RemapFlags::FIXED, Some(d));
                    if k != Ok(d) {
                        self.fail(&format!("kernel refused our move target {d:#x}: {k:x?}"));
                    }
                }
            }
        }
        self.check_layout();
    }
}

fn gen_op(rng: &mut Rng, h: &Harness, files: &[FileId]) -> Op {
    let lo = h.lo;
    let page = |p: usize| lo + p * PAGE;
    let rand_range = |rng: &mut Rng| {
        let p = rng.below(NP);
        let n = 1 + rng.below((NP - p).min(24));
        (p, n)
    };
    let rand_prot = |rng: &mut Rng| Prot::from_bits_truncate(rng.below(8) as u32);
    // Lengths: usually whole pages, sometimes a partial last page.
    let rand_len = |rng: &mut Rng, n: usize| {
        if rng.chance(15) {
            n * PAGE - rng.below(PAGE - 1)
        } else {
            n * PAGE
        }
    };
    let bad_len = |rng: &mut Rng| match rng.below(4) {
        0 => 0,
        1 => usize::MAX - rng.below(PAGE * 2),
        2 => 1usize << (58 + rng.below(5)),
        _ => usize::MAX / 2 + rng.below(PAGE),
    };
    let layout = h.klayout();
    let pick = rng.below(100);
    if pick < 30 {
        let (p, n) = rand_range(rng);
        let mut flags = if rng.chance(85) {
            MapFlags::FIXED
        } else {
            MapFlags::FIXED_NOREPLACE
        };
        let backing = match rng.below(10) {
            0..=5 => Backing::Anonymous,
            _ => {
                let file = files[rng.below(files.len())];
                let pgoff = if rng.chance(70) {
                    p as u64
                } else {
                    rng.below(40) as u64
                };
                Backing::File { file, pgoff }
            }
        };
        let shared = rng.chance(if matches!(backing, Backing::File { .. }) {
            60
        } else {
            8
        });
        flags |= if shared {
            MapFlags::SHARED
        } else {
            MapFlags::PRIVATE
        };
        if rng.chance(80) {
            flags |= MapFlags::NORESERVE;
        }
        let mut len = rand_len(rng, n);
        let mut addr = page(p);
        if rng.chance(4) {
            addr += 1 + rng.below(PAGE - 1);
        }
        if rng.chance(4) {
            len = bad_len(rng);
        }
        if rng.chance(2) {
            flags.remove(MapFlags::SHARED | MapFlags::PRIVATE);
        } else if rng.chance(3) {
            // MAP_SHARED_VALIDATE.
            flags |= MapFlags::SHARED | MapFlags::PRIVATE;
        }
        return Op::Mmap(MapRequest {
            addr: Some(addr),
            len,
            prot: rand_prot(rng),
            flags,
            backing,
        });
    }
    if pick < 40 {
        // Without FIXED: a hint inside the window or none.
        let n = 1 + rng.below(16);
        let addr = if rng.chance(70) {
            Some(page(rng.below(NP - n + 1)) + if rng.chance(10) { 17 } else { 0 })
        } else {
            None
        };
        let mut flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
        let mut backing = Backing::Anonymous;
        if rng.chance(25) {
            flags = MapFlags::SHARED;
            backing = Backing::File {
                file: files[rng.below(files.len())],
                pgoff: rng.below(NP) as u64,
            };
        }
        let len = if rng.chance(5) {
            bad_len(rng)
        } else {
            rand_len(rng, n)
        };
        return Op::Mmap(MapRequest {
            addr,
            len,
            prot: rand_prot(rng),
            flags,
            backing,
        });
    }
    if pick < 55 {
        let (p, n) = rand_range(rng);
        let mut a = page(p);
        let mut l = rand_len(rng, n);
        if rng.chance(5) {
            a += 1 + rng.below(PAGE - 1);
        }
        if rng.chance(6) {
            l = match rng.below(2) {
                0 => 0,
                _ => usize::MAX - rng.below(PAGE * 2),
            };
        }
        return Op::Munmap(a, l);
    }
    if pick < 75 {
        let (p, n) = rand_range(rng);
        let mut a = page(p);
        let mut l = rand_len(rng, n);
        if rng.chance(5) {
            a += 1 + rng.below(PAGE - 1);
        }
        if rng.chance(5) {
            l = match rng.below(2) {
                0 => 0,
                _ => usize::MAX - rng.below(PAGE * 2),
            };
        }
        return Op::Mprotect(a, l, rand_prot(rng));
    }
    // mremap: usually a range inside an existing VMA.
    let (mut a, mut ol) = if !layout.is_empty() && rng.chance(80) {
        let v = layout[rng.below(layout.len())];
        let pages = (v.end - v.start) / PAGE;
        let s = if rng.chance(60) { 0 } else { rng.below(pages) };
        let n = if rng.chance(60) {
            pages - s
        } else {
            1 + rng.below(pages - s)
        };
        let n = if rng.chance(10) {
            n + 1 + rng.below(4)
        } else {
            n
        };
        (v.start + s * PAGE, n * PAGE)
    } else {
        let (p, n) = rand_range(rng);
        (page(p), n * PAGE)
    };
    // Never reach past the window into the fence.
    ol = ol.min(h.hi.saturating_sub(a)).max(PAGE);
    let mut nl = (1 + rng.below(20)) * PAGE;
    if rng.chance(10) {
        nl -= rng.below(PAGE - 1);
    }
    let flags = match rng.below(10) {
        0..=2 => RemapFlags::empty(),
        3..=6 => RemapFlags::MAYMOVE,
        7..=8 => RemapFlags::MAYMOVE | RemapFlags::FIXED,
        _ => RemapFlags::FIXED,
    };
    let mut na = None;
    if flags.contains(RemapFlags::FIXED) {
        let n = nl.div_ceil(PAGE);
        if n > NP {
            nl = NP * PAGE;
        }
        let n = nl.div_ceil(PAGE);
        na = Some(page(rng.below(NP - n + 1)));
        if rng.chance(4) {
            na = na.map(|x| x + 8);
        }
    }
    // old_len 0 (also after rounding) duplicates a shared mapping in the kernel, which
    // vmlock does not support: only ask for it on private mappings.
    let shared_at_a = layout.iter().any(|v| v.start <= a && a < v.end && v.shared);
    match rng.below(30) {
        0 => a += 12,
        1 if !shared_at_a => ol = 0,
        2 => nl = 0,
        3 => nl = usize::MAX - 5,
        4 if !shared_at_a => ol = usize::MAX - 5,
        5 => ol = 1 << 60,
        _ => {}
    }
    Op::Mremap(a, ol, nl, flags, na)
}

fn memfd(name: &str, pages: usize) -> (i32, u64) {
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: a valid NUL-terminated name; the descriptor is owned by the test until exit.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create failed");
    // SAFETY: fd is a valid descriptor just created.
    let r = unsafe { libc::ftruncate(fd, (pages * PAGE) as libc::off_t) };
    assert_eq!(r, 0);
    // SAFETY: st is written by fstat before it is read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is valid and st is a writable stat buffer.
    assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
    (fd, st.st_ino)
}

/// Find a free window far below everything else (top-down placement never gets there).
fn find_window() -> usize {
    let size = NP * PAGE;
    for i in 0..64usize {
        let lo = 0x1000_0000_0000usize + i * 0x10_0000_0000;
        // Window plus one free page on either side, so nothing outside merges with it.
        let r = MapRequest {
            addr: Some(lo - PAGE),
            len: size + 2 * PAGE,
            prot: Prot::NONE,
            flags: MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
            backing: Backing::Anonymous,
        };
        if kernel::mmap(&r, &HashMap::new()) == Ok(lo - PAGE) {
            kernel::munmap(lo - PAGE, size + 2 * PAGE).unwrap();
            return lo;
        }
    }
    panic!("no free window found");
}

fn run_seed(seed: u64, ops: usize) {
    let lo = find_window();
    let hi = lo + NP * PAGE;
    let mut fds = HashMap::new();
    let mut inodes = HashMap::new();
    let mut files = Vec::new();
    for i in 0..3 {
        let (fd, ino) = memfd(&format!("vmlock-diff-{i}"), 4 * NP);
        fds.insert(FileId(ino), fd);
        inodes.insert(ino, FileId(ino));
        files.push(FileId(ino));
    }
    let cfg = MmConfig {
        min_addr: lo,
        mmap_base: hi,
        task_size: TASK_SIZE,
    };
    let spaces: Vec<Box<dyn Space>> = vec![Box::new(Model::new(cfg)), Box::new(Mm::new(cfg))];
    let mut h = Harness {
        lo,
        hi,
        fds,
        inodes,
        spaces,
        history: Vec::new(),
    };
    let reserve = MapRequest {
        addr: Some(lo),
        len: NP * PAGE,
        prot: Prot::NONE,
        flags: MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
        backing: Backing::Anonymous,
    };
    h.run(&Op::Mmap(reserve));
    // A fence page right after the window (a mapping of a file used nowhere else), so
    // that nothing grows out of the window in the kernel or in the models.
    let (fence_fd, fence_ino) = memfd("vmlock-diff-fence", 1);
    h.fds.insert(FileId(fence_ino), fence_fd);
    let fence = MapRequest {
        addr: Some(hi),
        len: PAGE,
        prot: Prot::NONE,
        flags: MapFlags::SHARED | MapFlags::FIXED_NOREPLACE,
        backing: Backing::File {
            file: FileId(fence_ino),
            pgoff: 0,
        },
    };
    h.run(&Op::Mmap(fence));
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for _ in 0..ops {
        let op = gen_op(&mut rng, &h, &files);
        h.run(&op);
    }
    kernel::munmap(lo, NP * PAGE + PAGE).unwrap();
    for fd in h.fds.values() {
        // SAFETY: closing descriptors this test opened.
        unsafe { libc::close(*fd) };
    }
}

fn scale() -> usize {
    std::env::var("VMLOCK_STRESS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// One test function runs every seed in turn: the window logic assumes no other thread of
/// this process maps memory meanwhile.
#[test]
fn kernel_differential() {
    let seeds: Vec<u64> = match std::env::var("VMLOCK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(s) => vec![s],
        None => (1..=4).collect(),
    };
    for seed in seeds {
        run_seed(seed, 1000 * scale());
    }
}
