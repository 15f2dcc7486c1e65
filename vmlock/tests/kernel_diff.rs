//! Differential test against the real kernel of this machine.
//!
//! # The two windows
//!
//! Two windows of the test process's address space are set aside and each filled with one
//! `PROT_NONE` private anonymous `MAP_NORESERVE` mapping (a "reserve"), with a free page
//! below and a fence page (a shared mapping of a file used nowhere else) above, so nothing
//! outside merges with them or grows into them:
//!
//! - **A** far below every other mapping: inside the kernel's top-down area (below its
//!   `mmap_base`);
//! - **B** a little below the stack: *above* the kernel's `mmap_base`, where only the
//!   kernel's bottom-up fallback places anything. Above B's fence an **overflow** area of
//!   [`OV`] pages is kept free.
//!
//! The same reserves and fences are mapped into a [`Model`] and an [`Mm`] configured with
//! `min_addr` = A's start, `mmap_base` = B's start and the kernel's `TASK_SIZE`, plus (in
//! the model and `Mm` only) one "filler" mapping from A's fence up to B. So `Mm`'s top-down
//! area holds exactly A's gaps, and its bottom-up fallback finds B's gaps and then the
//! overflow area, in that order, as the kernel's does once everything else is full.
//!
//! Random operations then run on all three: raw `mmap`/`munmap`/`mprotect`/`mremap`/
//! `madvise(MADV_DONTFORK/MADV_DOFORK)` system calls (anonymous private memory with
//! `MAP_NORESERVE` or not, shared anonymous memory, shared and private mappings of memfds;
//! `mremap` with `old_len == 0` on shared and private mappings) and the same calls on the
//! model and on `Mm`. After every operation the return values must agree, and the windows'
//! part of `/proc/self/smaps` (ranges, protection, offsets, and the `VmFlags` that decide
//! merging and forking: `sh nr ac dc`) must equal both listings. `Mm`'s lock-free listing
//! must equal its locked one.
//!
//! # Bad input
//!
//! Every entry point also gets unaligned, zero, wrapping, beyond-`TASK_SIZE` and
//! `usize::MAX`-edge arguments, with the errno compared. Each is one the kernel refuses
//! without touching anything outside the windows (or, inside them, a valid oddity such as
//! `PROT_SEM` or a zero length).
//!
//! # Placement without `MAP_FIXED`, in this process
//!
//! The kernel places such mappings top-down below *its* `mmap_base`, far above A, so its
//! address cannot be compared directly here. `Mm` is asked first:
//! - if `Mm` honoured the hint (which always lies inside a window or is invalid), the kernel
//!   must honour it too: the real call is made with the same hint and must return the same
//!   address;
//! - otherwise `Mm`'s address must be where the kernel's algorithm goes once only the
//!   windows are free, computed independently from the kernel's own listing: the highest
//!   fitting gap of A, else the lowest of B, else the overflow area; the kernel must accept
//!   the mapping there with `MAP_FIXED_NOREPLACE`. A mapping in the overflow area is then
//!   unmapped again everywhere.
//!
//! `mremap(MAYMOVE)` works the same way: if `Mm` moved the mapping, the kernel must refuse
//! to grow it in place (same call without `MAYMOVE` → `ENOMEM`), `Mm`'s target must be the
//! expected placement, and the kernel then moves it there with `MREMAP_FIXED`.
//!
//! # Fork, and placement with the top-down area full
//!
//! Now and then the test forks. The child process, which may no longer allocate (the parent
//! is multi-threaded), reads its `/proc/self/maps` into a buffer prepared before the fork
//! and sends it back: the windows must equal `Mm::fork`'s (and the model's) layout, i.e. the
//! parent's without its `MADV_DONTFORK` VMAs. The child then maps a `PROT_NONE` filler into
//! every gap of its address space except the windows and the overflow area, so that its
//! whole top-down area is full but for A; runs one operation (mostly a placement: `mmap`
//! without `MAP_FIXED`, with or without a hint, or `mremap(MAYMOVE)`); and sends back the
//! result and its maps again. The same operation runs on the forked `Mm` and model. So the
//! kernel's own choice, top-down into A or its bottom-up fallback into B or the overflow
//! area, is compared directly, in a process the parent never sees full. Before the first
//! run two probe children check that the setup means what it should: with only A free, a
//! one-page mapping goes to A's top page (top-down); with only B free, to B's first page
//! (B lies above the kernel's `mmap_base`, so only the fallback reaches it).
//!
//! `VMLOCK_SEED` picks a seed; `VMLOCK_STRESS=n` multiplies the number of operations
//! ([`OPS_PER_SEED`] per seed, four seeds).
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fmt::Write as _;

use vmlock::model::Model;
use vmlock::{
    Advice, Backing, Errno, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, RemapFlags, VmFlags,
    VmaInfo,
};

const PAGE: usize = 4096;
const TASK_SIZE: usize = 0x7fff_ffff_f000;
/// Pages in window A.
const NP_A: usize = 96;
/// Pages in window B.
const NP_B: usize = 48;
/// Pages in the overflow area above B's fence.
const OV: usize = 32;
/// Largest length (pages) of a placement the generator asks for; must fit the overflow area.
const MAX_PLACE: usize = 20;
/// Operations per seed at `VMLOCK_STRESS=1`.
const OPS_PER_SEED: usize = 700;

const PROT_SEM: u32 = 0x8;
const PROT_GROWSDOWN: u32 = 0x0100_0000;
const PROT_GROWSUP: u32 = 0x0200_0000;

/// One operation, as every implementation under test takes it.
#[derive(Debug, Clone)]
enum Op {
    Mmap(MapRequest),
    Munmap(usize, usize),
    Mprotect(usize, usize, Prot),
    Mremap(usize, usize, usize, RemapFlags, Option<usize>),
    Madvise(usize, usize, Advice),
    /// Fork; in the child, fill the address space but for the windows and run the operation.
    Fork(Box<Op>),
}

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
    fn madvise(&mut self, a: usize, l: usize, adv: Advice) -> Result<(), Errno>;
    fn fork(&self) -> Box<dyn Space>;
    fn smaps(&self) -> Vec<(VmaInfo, VmFlags)>;
    /// Internal consistency (tree invariants and the lock-free listing for `Mm`).
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Apply a (non-fork) operation; every result as `Result<usize, Errno>`.
fn apply(sp: &mut dyn Space, op: &Op) -> Result<usize, Errno> {
    match *op {
        Op::Mmap(ref r) => sp.mmap(r),
        Op::Munmap(a, l) => sp.munmap(a, l).map(|()| 0),
        Op::Mprotect(a, l, p) => sp.mprotect(a, l, p).map(|()| 0),
        Op::Mremap(a, ol, nl, f, na) => sp.mremap(a, ol, nl, f, na),
        Op::Madvise(a, l, adv) => sp.madvise(a, l, adv).map(|()| 0),
        Op::Fork(_) => unreachable!("fork is run by the harness"),
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
    fn madvise(&mut self, a: usize, l: usize, adv: Advice) -> Result<(), Errno> {
        Model::madvise(self, a, l, adv)
    }
    fn fork(&self) -> Box<dyn Space> {
        Box::new(Model::fork(self))
    }
    fn smaps(&self) -> Vec<(VmaInfo, VmFlags)> {
        Model::smaps(self)
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
    fn madvise(&mut self, a: usize, l: usize, adv: Advice) -> Result<(), Errno> {
        Mm::madvise(self, a, l, adv)
    }
    fn fork(&self) -> Box<dyn Space> {
        Box::new(Mm::fork(self))
    }
    fn smaps(&self) -> Vec<(VmaInfo, VmFlags)> {
        Mm::smaps(self)
    }
    fn check(&self) -> Result<(), String> {
        self.validate()?;
        let (locked, rcu) = (Mm::vmas(self), self.vmas_rcu());
        if locked != rcu {
            return Err(format!(
                "vmas_rcu differs from vmas:\n{rcu:#x?}\n{locked:#x?}"
            ));
        }
        Ok(())
    }
}

/// The real kernel, through raw system calls (no libc wrapper checks).
mod kernel {
    use super::*;

    pub fn ret(r: libc::c_long) -> Result<usize, Errno> {
        if r == -1 {
            Err(Errno(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ))
        } else {
            Ok(r as usize)
        }
    }

    /// The system call number and arguments of `op`.
    pub fn raw(op: &Op, fds: &HashMap<FileId, i32>) -> (libc::c_long, [usize; 6]) {
        match *op {
            Op::Mmap(ref r) => {
                let (fd, off, anon) = match r.backing {
                    Backing::Anonymous => (-1, 0usize, libc::MAP_ANONYMOUS as u32),
                    Backing::File { file, pgoff } => {
                        (fds[&file], (pgoff as usize).wrapping_mul(PAGE), 0)
                    }
                };
                let args = [
                    r.addr.unwrap_or(0),
                    r.len,
                    r.prot.bits() as usize,
                    (r.flags.bits() | anon) as usize,
                    fd as usize,
                    off,
                ];
                (libc::SYS_mmap, args)
            }
            Op::Munmap(a, l) => (libc::SYS_munmap, [a, l, 0, 0, 0, 0]),
            Op::Mprotect(a, l, p) => (libc::SYS_mprotect, [a, l, p.bits() as usize, 0, 0, 0]),
            Op::Mremap(a, ol, nl, f, na) => (
                libc::SYS_mremap,
                [a, ol, nl, f.bits() as usize, na.unwrap_or(0), 0],
            ),
            Op::Madvise(a, l, adv) => (libc::SYS_madvise, [a, l, adv.raw() as usize, 0, 0, 0]),
            Op::Fork(_) => unreachable!("fork is run by the harness"),
        }
    }

    /// Make the system call of `op`.
    pub fn call(op: &Op, fds: &HashMap<FileId, i32>) -> Result<usize, Errno> {
        let (nr, a) = raw(op, fds);
        // SAFETY: every operation the test makes stays inside the windows it owns, is
        // non-fixed (the kernel picks free space), or is one the kernel refuses.
        ret(unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) })
    }

    pub fn mmap(r: &MapRequest, fds: &HashMap<FileId, i32>) -> Result<usize, Errno> {
        call(&Op::Mmap(*r), fds)
    }

    pub fn munmap(a: usize, l: usize) -> Result<(), Errno> {
        call(&Op::Munmap(a, l), &HashMap::new()).map(drop)
    }

    /// The VMAs of `/proc/<pid>/maps` text overlapping any of `regions` (with `VmFlags`
    /// when the text is smaps).
    pub fn parse(
        text: &str,
        regions: &[(usize, usize)],
        files: &HashMap<u64, FileId>,
    ) -> Vec<(VmaInfo, VmFlags)> {
        let mut out: Vec<(VmaInfo, VmFlags)> = Vec::new();
        let mut keep = false;
        for line in text.split('\n') {
            // Cheap dispatch on the first byte (the test runs unoptimised): VMA headers
            // start with a lowercase hex digit, smaps fields with a capital letter.
            match line.as_bytes().first() {
                Some(b'V') if keep => {
                    if let Some(flags) = line.strip_prefix("VmFlags:") {
                        let last = out.last_mut().expect("VmFlags before a header");
                        for f in flags.split(' ') {
                            last.1 |= match f {
                                "rd" => VmFlags::READ,
                                "wr" => VmFlags::WRITE,
                                "ex" => VmFlags::EXEC,
                                "sh" => VmFlags::SHARED,
                                "nr" => VmFlags::NORESERVE,
                                "ac" => VmFlags::ACCOUNT,
                                "dc" => VmFlags::DONTCOPY,
                                _ => VmFlags::empty(),
                            };
                        }
                    }
                    continue;
                }
                Some(b'0'..=b'9' | b'a'..=b'f') => {}
                _ => continue,
            }
            let Some((range, rest)) = line.split_once(' ') else {
                continue;
            };
            let Some((s, e)) = range.split_once('-') else {
                continue;
            };
            let (Ok(s), Ok(e)) = (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16))
            else {
                continue;
            };
            keep = regions.iter().any(|&(lo, hi)| e > lo && s < hi);
            if !keep {
                continue;
            }
            let mut it = rest.split_whitespace();
            let perms = it.next().unwrap().as_bytes();
            let off = usize::from_str_radix(it.next().unwrap(), 16).unwrap();
            let _dev = it.next();
            let ino: u64 = it.next().unwrap().parse().unwrap();
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
            let info = VmaInfo {
                start: s,
                end: e,
                prot,
                shared: perms[3] == b's',
                backing,
            };
            out.push((info, VmFlags::empty()));
        }
        out
    }

    /// The regions' part of `/proc/self/smaps`.
    pub fn smaps(
        regions: &[(usize, usize)],
        files: &HashMap<u64, FileId>,
    ) -> Vec<(VmaInfo, VmFlags)> {
        let text = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
        parse(&text, regions, files)
    }

    /// The stack's start and `vm.mmap_min_addr`.
    pub fn stack_and_min_addr() -> (usize, usize) {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
        let line = maps
            .lines()
            .find(|l| l.ends_with("[stack]"))
            .expect("no [stack] in /proc/self/maps");
        let start = usize::from_str_radix(line.split('-').next().unwrap(), 16).unwrap();
        let min = std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65536);
        (start, min)
    }
}

/// A forked child that only makes raw system calls into memory prepared before the fork
/// (the parent is multi-threaded, so the child must not allocate or take locks).
mod child {
    use super::*;

    /// Everything the child needs, allocated by the parent.
    pub struct Plan {
        /// Fill every gap of `[min_addr, TASK_SIZE)` outside `keep` before the operation.
        pub fill: bool,
        pub keep: Vec<(usize, usize)>,
        pub min_addr: usize,
        /// The file the fillers map (shared, so they never merge with anything).
        pub filler_fd: i32,
        /// The system call to make after filling, if any.
        pub call: Option<(libc::c_long, [usize; 6])>,
        /// Scratch for maps text and the parsed ranges.
        pub buf: Vec<u8>,
        pub ranges: Vec<(usize, usize)>,
    }

    /// What the child sends back.
    #[derive(Debug)]
    pub struct Report {
        /// `/proc/self/maps` right after the fork.
        pub forked: String,
        /// The operation's result.
        pub result: Result<usize, Errno>,
        /// `/proc/self/maps` after filling and the operation.
        pub after: String,
        /// Fillers mapped.
        pub fillers: usize,
    }

    impl Plan {
        pub fn new(keep: Vec<(usize, usize)>, min_addr: usize, filler_fd: i32) -> Plan {
            Plan {
                fill: true,
                keep,
                min_addr,
                filler_fd,
                call: None,
                buf: vec![0; 4 << 20],
                ranges: vec![(0, 0); 1 << 16],
            }
        }
    }

    /// Fork, run `plan` in the child, collect its report.
    pub fn run(plan: &mut Plan) -> Report {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a writable array of two descriptors.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (rd, wr) = (fds[0], fds[1]);
        // SAFETY: the child runs only `child_main`, which makes raw system calls on memory
        // allocated before the fork and never returns (it ends with `_exit`).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: we are the child; see above.
            unsafe { child_main(plan, wr) }
        }
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(wr) };
        let mut data = Vec::new();
        let mut chunk = [0u8; 1 << 16];
        loop {
            // SAFETY: reading into a local buffer of the given size.
            let n = unsafe { libc::read(rd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            assert!(n >= 0, "read from the child failed");
            if n == 0 {
                break;
            }
            data.extend_from_slice(&chunk[..n as usize]);
        }
        // SAFETY: closing our read end; reaping our own child.
        unsafe { libc::close(rd) };
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is writable.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: status {status:#x}"
        );
        let mut msgs = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let n = u64::from_ne_bytes(data[at..at + 8].try_into().unwrap()) as usize;
            msgs.push(&data[at + 8..at + 8 + n]);
            at += 8 + n;
        }
        assert_eq!(msgs.len(), 4, "the child sent {} messages", msgs.len());
        let word = |m: &[u8]| i64::from_ne_bytes(m.try_into().unwrap());
        let r = word(msgs[1]);
        Report {
            forked: String::from_utf8(msgs[0].to_vec()).unwrap(),
            result: if r < 0 {
                Err(Errno(-r as i32))
            } else {
                Ok(r as usize)
            },
            after: String::from_utf8(msgs[2].to_vec()).unwrap(),
            fillers: word(msgs[3]) as usize,
        }
    }

    /// Leave the child with `code` (no destructors, no atexit handlers).
    fn quit(code: i32) -> ! {
        // SAFETY: `_exit` is async-signal-safe and ends the process.
        unsafe { libc::_exit(code) }
    }

    /// Write all of `bytes` to `fd`, length-prefixed.
    fn send(fd: i32, bytes: &[u8]) {
        let len = (bytes.len() as u64).to_ne_bytes();
        for part in [&len[..], bytes] {
            let mut at = 0;
            while at < part.len() {
                // SAFETY: writing from a live slice.
                let n = unsafe { libc::write(fd, part[at..].as_ptr().cast(), part.len() - at) };
                if n <= 0 {
                    quit(3);
                }
                at += n as usize;
            }
        }
    }

    /// Read `/proc/self/maps` into `buf`; returns its length.
    fn read_maps(buf: &mut [u8]) -> usize {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            quit(4);
        }
        let mut len = 0;
        loop {
            if len == buf.len() {
                quit(5);
            }
            // SAFETY: reading into the unused tail of `buf`.
            let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
            if n < 0 {
                quit(6);
            }
            if n == 0 {
                break;
            }
            len += n as usize;
        }
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        len
    }

    /// Parse the ranges of maps text into `out`; returns how many.
    fn parse_ranges(text: &[u8], out: &mut [(usize, usize)]) -> usize {
        let mut n = 0;
        for line in text.split(|&b| b == b'\n') {
            let mut v = [0usize; 2];
            let mut i = 0;
            for &b in line {
                let d = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    b'-' if i == 0 => {
                        i = 1;
                        continue;
                    }
                    _ => break,
                };
                v[i] = (v[i] << 4) | d as usize;
            }
            if i == 1 {
                if n == out.len() {
                    quit(7);
                }
                out[n] = (v[0], v[1]);
                n += 1;
            }
        }
        n
    }

    /// Map a filler over `[s, e)` unless it is empty; counts in `fillers`.
    fn fill(plan: &Plan, s: usize, e: usize, fillers: &mut i64) {
        if s >= e {
            return;
        }
        let flags = libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE | libc::MAP_NORESERVE;
        // SAFETY: a new mapping over a range that /proc/self/maps showed free (and
        // FIXED_NOREPLACE refuses anything else) in this throwaway child.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mmap,
                s,
                e - s,
                libc::PROT_NONE,
                flags,
                plan.filler_fd,
                0usize,
            )
        };
        if r as usize != s {
            quit(8);
        }
        *fillers += 1;
    }

    /// The child: report the forked layout, fill, run the call, report again, exit.
    ///
    /// # Safety
    ///
    /// Only in the child of `run`'s fork, with `wr` the pipe's write end.
    unsafe fn child_main(plan: &mut Plan, wr: i32) -> ! {
        let n = read_maps(&mut plan.buf);
        send(wr, &plan.buf[..n]);
        let mut fillers = 0i64;
        if plan.fill {
            let count = parse_ranges(&plan.buf[..n], &mut plan.ranges);
            let mut free_from = plan.min_addr;
            for k in 0..=count {
                let (vs, ve) = if k < count {
                    plan.ranges[k]
                } else {
                    (TASK_SIZE, TASK_SIZE)
                };
                let (gs, ge) = (free_from, vs.min(TASK_SIZE));
                free_from = free_from.max(ve);
                if gs >= ge {
                    continue;
                }
                // The gap minus the kept regions (sorted, disjoint).
                let mut at = gs;
                for &(ks, ke) in &plan.keep {
                    if ke <= at || ks >= ge {
                        continue;
                    }
                    fill(plan, at, ks.min(ge), &mut fillers);
                    at = at.max(ke);
                }
                fill(plan, at, ge, &mut fillers);
            }
        }
        let r: i64 = match plan.call {
            // SAFETY: the call was prepared by the parent for this child.
            Some((nr, a)) => match unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
            {
                -1 => -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64),
                v => v,
            },
            None => 0,
        };
        send(wr, &r.to_ne_bytes());
        let n = read_maps(&mut plan.buf);
        send(wr, &plan.buf[..n]);
        send(wr, &fillers.to_ne_bytes());
        quit(0)
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
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// The highest start in `[lo, hi)` where `len` bytes are free in `layout` (sorted).
fn highest_gap(layout: &[VmaInfo], lo: usize, hi: usize, len: usize) -> Option<usize> {
    let mut top = hi;
    for v in layout.iter().rev().filter(|v| v.start < hi) {
        let gs = v.end.max(lo);
        if top.saturating_sub(gs) >= len {
            return Some(top - len);
        }
        top = top.min(v.start);
    }
    (top.saturating_sub(lo) >= len).then(|| top - len)
}

/// The lowest start in `[lo, hi)` where `len` bytes are free in `layout` (sorted).
fn lowest_gap(layout: &[VmaInfo], lo: usize, hi: usize, len: usize) -> Option<usize> {
    let mut bottom = lo;
    for v in layout.iter().filter(|v| v.end > lo) {
        if v.start.min(hi).saturating_sub(bottom) >= len {
            return Some(bottom);
        }
        bottom = bottom.max(v.end);
    }
    (hi.saturating_sub(bottom) >= len).then_some(bottom)
}

fn free_in(layout: &[VmaInfo], a: usize, len: usize) -> bool {
    layout.iter().all(|v| v.end <= a || v.start >= a + len)
}

/// How often each kind of case came up (printed at the end, and some are required).
#[derive(Default, Debug)]
struct Tally {
    ops: usize,
    bad: usize,
    forks: usize,
    dontfork_dropped: usize,
    child_top_down: usize,
    child_bottom_up: usize,
    child_overflow: usize,
    parent_bottom_up: usize,
    dup_shared: usize,
    madvise: usize,
}

struct Harness {
    /// Window A `[lo, hi)` (top-down area), window B and the overflow area above B's fence.
    a: (usize, usize),
    b: (usize, usize),
    o: (usize, usize),
    min_addr: usize,
    fds: HashMap<FileId, i32>,
    inodes: HashMap<u64, FileId>,
    filler_fd: i32,
    spaces: Vec<Box<dyn Space>>,
    history: Vec<String>,
    tally: Tally,
}

impl Harness {
    /// The compared parts of the address space: A with its fence; B with its fence and the
    /// overflow area.
    fn regions(&self) -> [(usize, usize); 2] {
        [(self.a.0, self.a.1 + PAGE), (self.b.0, self.o.1)]
    }

    fn in_regions(&self, v: &VmaInfo) -> bool {
        self.regions()
            .iter()
            .any(|&(lo, hi)| v.end > lo && v.start < hi)
    }

    fn fail(&self, msg: &str) -> ! {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{msg}\nwindows A {:#x}..{:#x}, B {:#x}..{:#x}, overflow {:#x}..{:#x}\nlast ops:",
            self.a.0, self.a.1, self.b.0, self.b.1, self.o.0, self.o.1
        );
        for h in self.history.iter().rev().take(12).rev() {
            let _ = writeln!(s, "  {h}");
        }
        let _ = writeln!(s, "kernel:");
        for v in self.ksmaps() {
            let _ = writeln!(s, "  {v:x?}");
        }
        for sp in &self.spaces {
            let _ = writeln!(s, "{}:", sp.name());
            for v in sp.smaps().into_iter().filter(|v| self.in_regions(&v.0)) {
                let _ = writeln!(s, "  {v:x?}");
            }
        }
        panic!("{s}");
    }

    fn ksmaps(&self) -> Vec<(VmaInfo, VmFlags)> {
        kernel::smaps(&self.regions(), &self.inodes)
    }

    fn klayout(&self) -> Vec<VmaInfo> {
        self.ksmaps().into_iter().map(|(v, _)| v).collect()
    }

    fn ours(&self, sp: &dyn Space) -> Vec<(VmaInfo, VmFlags)> {
        sp.smaps()
            .into_iter()
            .filter(|v| self.in_regions(&v.0))
            .collect()
    }

    fn check_layout(&self) {
        let k = self.ksmaps();
        for sp in &self.spaces {
            if let Err(e) = sp.check() {
                self.fail(&format!("{} is inconsistent: {e}", sp.name()));
            }
            if self.ours(sp.as_ref()) != k {
                self.fail(&format!("layout of {} differs from the kernel", sp.name()));
            }
        }
    }

    /// Run `f` on every space; all must agree.
    fn all(&mut self, what: &str, op: &Op) -> Result<usize, Errno> {
        let results: Vec<_> = self
            .spaces
            .iter_mut()
            .map(|s| apply(s.as_mut(), op))
            .collect();
        for (i, r) in results.iter().enumerate().skip(1) {
            if *r != results[0] {
                let n0 = self.spaces[0].name();
                let ni = self.spaces[i].name();
                self.fail(&format!(
                    "{what}: {n0} -> {:x?} but {ni} -> {r:x?}",
                    results[0]
                ));
            }
        }
        results[0]
    }

    /// Where a placement of `len` bytes goes once only the windows are free: the highest
    /// fit in A (top-down), else the lowest in B, else the overflow area (bottom-up).
    fn expected_place(&self, before: &[VmaInfo], len: usize) -> Option<usize> {
        highest_gap(before, self.a.0, self.a.1, len)
            .or_else(|| lowest_gap(before, self.b.0, self.b.1, len))
            .or_else(|| lowest_gap(before, self.o.0, self.o.1, len))
    }

    /// Unmap a mapping that landed in the overflow area, everywhere (keeps it free).
    fn clear_overflow(&mut self, a: usize, len: usize) {
        if a >= self.o.0 && a < self.o.1 {
            let op = Op::Munmap(a, len);
            self.history.push(format!("(cleanup) {op:x?}"));
            let ours = self.all("cleanup munmap", &op);
            let k = kernel::call(&op, &self.fds);
            assert_eq!((ours, k), (Ok(0), Ok(0)), "cleanup of the overflow area");
        }
    }

    fn run(&mut self, op: &Op) {
        self.history.push(format!("{op:x?}"));
        self.tally.ops += 1;
        let before = self.klayout();
        match *op {
            Op::Mmap(ref r) => {
                let fixed = r
                    .flags
                    .intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE);
                let ours = self.all("mmap", op);
                if fixed || ours.is_err() && ours != Err(Errno::ENOMEM) {
                    let k = kernel::mmap(r, &self.fds);
                    if k != ours {
                        if let Ok(a) = k {
                            if !fixed && !self.regions().iter().any(|&(lo, hi)| a >= lo && a < hi) {
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
                                if h >= self.a.0
                                    && h.checked_add(len).is_some_and(|e| e <= TASK_SIZE)
                                    && free_in(&before, h, len)
                                {
                                    self.fail("mmap: ours ignored a free hint");
                                }
                            }
                            if self.expected_place(&before, len) != Some(a) {
                                self.fail(&format!(
                                    "mmap placed at {a:#x}, not where the kernel would"
                                ));
                            }
                            if a >= self.b.0 {
                                self.tally.parent_bottom_up += 1;
                            }
                            let mut fixed = *r;
                            fixed.addr = Some(a);
                            fixed.flags |= MapFlags::FIXED_NOREPLACE;
                            let k = kernel::mmap(&fixed, &self.fds);
                            if k != Ok(a) {
                                self.fail(&format!("kernel refused our placement {a:#x}: {k:x?}"));
                            }
                            self.check_layout();
                            self.clear_overflow(a, len);
                        }
                        Err(_) => {
                            if len <= OV * PAGE && self.expected_place(&before, len).is_some() {
                                self.fail("mmap ENOMEM although a gap fits");
                            }
                            match kernel::mmap(r, &self.fds) {
                                // Placed outside the windows: fine, they are full.
                                Ok(a) => {
                                    assert!(!self
                                        .regions()
                                        .iter()
                                        .any(|&(lo, hi)| a < hi && a + len > lo));
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
            Op::Munmap(..) | Op::Mprotect(..) | Op::Madvise(..) => {
                if matches!(op, Op::Madvise(..)) {
                    self.tally.madvise += 1;
                }
                let ours = self.all("call", op);
                let k = kernel::call(op, &self.fds);
                if k != ours {
                    self.fail(&format!("kernel {k:x?}, ours {ours:x?}"));
                }
            }
            Op::Mremap(a, ol, nl, f, _) => {
                let ours = self.all("mremap", op);
                let shared_src = before.iter().any(|v| v.start <= a && a < v.end && v.shared);
                if ol == 0 && shared_src && ours.is_ok() {
                    self.tally.dup_shared += 1;
                }
                let moved = matches!(ours, Ok(d) if d != a) && !f.contains(RemapFlags::FIXED);
                let no_room = ours == Err(Errno::ENOMEM) && f == RemapFlags::MAYMOVE;
                if no_room {
                    // The kernel would move it outside the windows: check it cannot grow in
                    // place and that nothing fits in the windows.
                    let k =
                        kernel::call(&Op::Mremap(a, ol, nl, RemapFlags::empty(), None), &self.fds);
                    if k != Err(Errno::ENOMEM) {
                        self.fail(&format!("ours ENOMEM, kernel without MAYMOVE: {k:x?}"));
                    }
                    if self
                        .expected_place(&before, nl.next_multiple_of(PAGE))
                        .is_some()
                    {
                        self.fail("mremap ENOMEM although a gap fits");
                    }
                } else if !moved {
                    let k = kernel::call(op, &self.fds);
                    if k != ours {
                        self.fail(&format!("mremap: kernel {k:x?}, ours {ours:x?}"));
                    }
                } else {
                    let d = ours.unwrap();
                    let k =
                        kernel::call(&Op::Mremap(a, ol, nl, RemapFlags::empty(), None), &self.fds);
                    if k != Err(Errno::ENOMEM) {
                        self.fail(&format!(
                            "ours moved to {d:#x}, kernel grew in place: {k:x?}"
                        ));
                    }
                    let nlp = nl.next_multiple_of(PAGE);
                    if self.expected_place(&before, nlp) != Some(d) {
                        self.fail(&format!(
                            "mremap moved to {d:#x}, not where the kernel would"
                        ));
                    }
                    if d >= self.b.0 {
                        self.tally.parent_bottom_up += 1;
                    }
                    let flags = RemapFlags::MAYMOVE | RemapFlags::FIXED;
                    let k = kernel::call(&Op::Mremap(a, ol, nl, flags, Some(d)), &self.fds);
                    if k != Ok(d) {
                        self.fail(&format!("kernel refused our move target {d:#x}: {k:x?}"));
                    }
                    self.check_layout();
                    self.clear_overflow(d, nlp);
                }
            }
            Op::Fork(ref child_op) => self.fork(child_op),
        }
        self.check_layout();
    }

    /// Fork the kernel, `Mm` and the model; compare the children's layouts, fill the
    /// kernel child's address space but for the windows, run `op` in all children, compare.
    fn fork(&mut self, op: &Op) {
        self.tally.forks += 1;
        let mut children: Vec<Box<dyn Space>> = self.spaces.iter().map(|s| s.fork()).collect();
        let parent = self.ours(self.spaces[0].as_ref());
        let forked = self.ours(children[0].as_ref());
        let dropped = parent.len() - forked.len();
        if forked.iter().any(|v| v.1.contains(VmFlags::DONTCOPY))
            || parent
                .iter()
                .filter(|v| v.1.contains(VmFlags::DONTCOPY))
                .count()
                != dropped
        {
            self.fail(&format!(
                "fork of the model kept MADV_DONTFORK VMAs: {forked:#x?}"
            ));
        }
        self.tally.dontfork_dropped += dropped;
        let mut plan =
            child::Plan::new(vec![self.a, self.b, self.o], self.min_addr, self.filler_fd);
        plan.call = Some(kernel::raw(op, &self.fds));
        let report = child::run(&mut plan);
        let regions = self.regions();
        let kforked: Vec<VmaInfo> = kernel::parse(&report.forked, &regions, &self.inodes)
            .into_iter()
            .map(|v| v.0)
            .collect();
        let mut fail = None;
        let mut results = Vec::new();
        for child in children.iter_mut() {
            let before: Vec<VmaInfo> = self.ours(child.as_ref()).into_iter().map(|v| v.0).collect();
            if before != kforked && fail.is_none() {
                fail = Some(format!(
                    "forked child's layout differs from {}'s fork: {before:#x?}",
                    child.name()
                ));
            }
            let r = apply(child.as_mut(), op);
            if r != report.result && fail.is_none() {
                fail = Some(format!(
                    "in the forked, filled child: kernel {:x?}, {} {r:x?}",
                    report.result,
                    child.name(),
                ));
            }
            results.push(r);
        }
        let kafter: Vec<VmaInfo> = kernel::parse(&report.after, &regions, &self.inodes)
            .into_iter()
            .map(|v| v.0)
            .collect();
        for child in &children {
            if let Err(e) = child.check() {
                fail = Some(format!("forked {} is inconsistent: {e}", child.name()));
            }
            let ours: Vec<VmaInfo> = self.ours(child.as_ref()).into_iter().map(|v| v.0).collect();
            if ours != kafter && fail.is_none() {
                fail = Some(format!(
                    "forked, filled child after {op:x?}: layout of {} differs\nkernel: {kafter:#x?}\nours: {ours:#x?}",
                    child.name()
                ));
            }
        }
        if let Some(msg) = fail {
            self.fail(&format!(
                "{msg}\nkernel child after fork: {kforked:#x?}\nfillers: {}",
                report.fillers
            ));
        }
        let placed = match (op, report.result) {
            (Op::Mmap(r), Ok(a))
                if !r
                    .flags
                    .intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE) =>
            {
                Some(a)
            }
            (Op::Mremap(s, _, _, f, _), Ok(a)) if *f == RemapFlags::MAYMOVE && a != *s => Some(a),
            _ => None,
        };
        match placed {
            Some(a) if a >= self.o.0 => self.tally.child_overflow += 1,
            Some(a) if a >= self.b.0 => self.tally.child_bottom_up += 1,
            Some(_) => self.tally.child_top_down += 1,
            None => {}
        }
    }
}

/// A random placement (`mmap` without `MAP_FIXED`, or `mremap(MAYMOVE)` that may move).
fn gen_placement(rng: &mut Rng, h: &Harness, files: &[FileId]) -> Op {
    let layout = h.klayout();
    let in_window: Vec<&VmaInfo> = layout
        .iter()
        .filter(|v| v.start >= h.a.0 && v.end <= h.a.1 || v.start >= h.b.0 && v.end <= h.b.1)
        .collect();
    if rng.chance(35) && !in_window.is_empty() {
        let v = *in_window[rng.below(in_window.len())];
        let pages = (v.end - v.start) / PAGE;
        let s = rng.below(pages);
        let ol = if v.shared && rng.chance(25) {
            0
        } else {
            (1 + rng.below(pages - s)) * PAGE
        };
        let nl = (1 + rng.below(MAX_PLACE)) * PAGE;
        return Op::Mremap(v.start + s * PAGE, ol, nl, RemapFlags::MAYMOVE, None);
    }
    let n = 1 + rng.below(16);
    let addr = match rng.below(10) {
        0..=3 => None,
        4..=6 => Some(h.a.0 + rng.below(NP_A) * PAGE),
        7..=8 => Some(h.b.0 + rng.below(NP_B) * PAGE),
        _ => Some(usize::MAX & !(PAGE - 1)),
    };
    let (flags, backing) = if rng.chance(30) {
        let file = files[rng.below(files.len())];
        let flags = if rng.chance(60) {
            MapFlags::SHARED
        } else {
            MapFlags::PRIVATE
        };
        (
            flags,
            Backing::File {
                file,
                pgoff: rng.below(NP_A) as u64,
            },
        )
    } else if rng.chance(10) {
        (MapFlags::SHARED, Backing::Anonymous)
    } else {
        let nr = if rng.chance(70) {
            MapFlags::NORESERVE
        } else {
            MapFlags::empty()
        };
        (MapFlags::PRIVATE | nr, Backing::Anonymous)
    };
    Op::Mmap(MapRequest {
        addr,
        len: n * PAGE,
        prot: Prot::from_bits_truncate(rng.below(8) as u32),
        flags,
        backing,
    })
}

/// Arguments every entry point must refuse (or handle as a no-op) exactly like the kernel,
/// chosen so that the kernel never touches anything outside the windows.
fn gen_bad(rng: &mut Rng, h: &Harness, files: &[FileId]) -> Op {
    let top = usize::MAX & !(PAGE - 1);
    // A page of a window with at least 8 pages of the window from it on, so that no valid
    // range below reaches past the window.
    let in_win = |rng: &mut Rng| {
        if rng.chance(60) {
            h.a.0 + rng.below(NP_A - 8) * PAGE
        } else {
            h.b.0 + rng.below(NP_B - 8) * PAGE
        }
    };
    let unaligned = |rng: &mut Rng| {
        let a = in_win(rng);
        rng.pick(&[
            a + 1,
            a + PAGE - 1,
            a | 0x800,
            usize::MAX,
            usize::MAX - PAGE,
        ])
    };
    // Lengths that wrap when rounded up to a page or that exceed TASK_SIZE.
    let huge = |rng: &mut Rng| {
        rng.pick(&[
            usize::MAX,
            usize::MAX - 1,
            usize::MAX - (PAGE - 2),
            usize::MAX - PAGE,
            usize::MAX & !(PAGE - 1),
            TASK_SIZE + 1,
            TASK_SIZE + PAGE,
            1 << 48,
            1 << 63,
            usize::MAX / 2,
        ])
    };
    let high_addr =
        |rng: &mut Rng| rng.pick(&[TASK_SIZE, top, top - PAGE, 1 << 63, TASK_SIZE + PAGE]);
    let prot = Prot::from_bits_truncate(rng.below(8) as u32);
    match rng.below(6) {
        0 => {
            // mmap: zero length, wrapping/huge lengths, unaligned or too high fixed
            // addresses, file offsets past MAX_LFS_FILESIZE, odd protection bits.
            let file = files[rng.below(files.len())];
            let mut req = MapRequest {
                addr: Some(in_win(rng)),
                len: (1 + rng.below(4)) * PAGE,
                prot,
                flags: MapFlags::PRIVATE | MapFlags::FIXED,
                backing: Backing::Anonymous,
            };
            match rng.below(8) {
                0 => req.len = 0,
                1 => req.len = huge(rng),
                2 => req.addr = Some(unaligned(rng)),
                3 => req.addr = Some(high_addr(rng)),
                4 => {
                    // Past the file size limit: (2^63 - 1 - len) / PAGE < pgoff < 2^52.
                    let pgoff =
                        rng.pick(&[(1u64 << 51) - 1, 1 << 51, (1 << 52) - 1, (1 << 51) + 77]);
                    req.backing = Backing::File { file, pgoff };
                    req.flags = rng.pick(&[MapFlags::SHARED, MapFlags::PRIVATE])
                        | rng.pick(&[MapFlags::FIXED, MapFlags::empty()]);
                    if !req.flags.contains(MapFlags::FIXED) {
                        req.addr = None;
                    }
                }
                5 => {
                    // The last page below the file size limit maps fine.
                    req.backing = Backing::File {
                        file,
                        pgoff: (1u64 << 51) - 1 - (req.len / PAGE) as u64,
                    };
                    req.flags = MapFlags::SHARED | MapFlags::FIXED;
                }
                6 => {
                    // Protection bits beyond read/write/exec (mmap ignores them).
                    req.prot = Prot::from_bits_retain(
                        prot.bits() | rng.pick(&[PROT_SEM, 0x10, 0x80, PROT_GROWSDOWN]),
                    );
                }
                _ => {
                    // No type, or both types on anonymous memory.
                    req.flags = rng.pick(&[
                        MapFlags::FIXED,
                        MapFlags::FIXED | MapFlags::SHARED | MapFlags::PRIVATE,
                    ]);
                }
            }
            Op::Mmap(req)
        }
        1 => {
            let (a, l) = match rng.below(5) {
                0 => (unaligned(rng), PAGE),
                1 => (in_win(rng), 0),
                2 => (in_win(rng), huge(rng)),
                3 => {
                    let h = huge(rng);
                    (high_addr(rng), rng.pick(&[0, 1, PAGE, h]))
                }
                _ => (0, huge(rng)),
            };
            Op::Munmap(a, l)
        }
        2 => {
            let bits = rng.pick(&[
                PROT_GROWSDOWN | PROT_GROWSUP,
                PROT_GROWSDOWN,
                PROT_GROWSUP,
                PROT_SEM,
                0x10,
                0x100,
                1 << 31,
            ]);
            let p = Prot::from_bits_retain(prot.bits() | bits);
            let (a, l) = match rng.below(6) {
                0 => (unaligned(rng), PAGE),
                1 => (in_win(rng), 0),
                2 => (in_win(rng), usize::MAX - rng.below(2 * PAGE)),
                3 => (high_addr(rng), rng.pick(&[PAGE, 0, usize::MAX])),
                // Valid ranges inside a window with odd bits (PROT_SEM applies).
                _ => (in_win(rng), (1 + rng.below(8)) * PAGE),
            };
            let p = if rng.chance(50) { p } else { prot };
            Op::Mprotect(a, l, p)
        }
        3 => {
            let adv = rng.pick(&[Advice::DontFork, Advice::DoFork]);
            let (a, l) = match rng.below(5) {
                0 => (unaligned(rng), PAGE),
                1 => (in_win(rng), 0),
                2 => (in_win(rng), usize::MAX - rng.below(2 * PAGE)),
                3 => (high_addr(rng), rng.pick(&[PAGE, 0, 16 * PAGE, usize::MAX])),
                _ => (0, PAGE),
            };
            Op::Madvise(a, l, adv)
        }
        _ => {
            let a = in_win(rng);
            let mut op = (a, PAGE, 2 * PAGE, RemapFlags::MAYMOVE, None);
            match rng.below(9) {
                0 => op.0 = unaligned(rng),
                1 => op.0 = high_addr(rng),
                2 => op.2 = 0,
                3 => op.2 = huge(rng),
                4 => op.1 = huge(rng),
                5 => op.3 = RemapFlags::from_bits_retain(rng.pick(&[8, 16, 0x100])),
                6 => {
                    op.3 = RemapFlags::MAYMOVE | RemapFlags::FIXED;
                    let u = unaligned(rng);
                    op.4 = Some(rng.pick(&[u, top, TASK_SIZE, TASK_SIZE - PAGE]));
                }
                7 => {
                    op.3 = RemapFlags::FIXED;
                    op.4 = Some(in_win(rng));
                }
                _ => {
                    // Duplicating (old_len 0) onto itself or around itself.
                    op.1 = 0;
                    op.3 = RemapFlags::MAYMOVE | RemapFlags::FIXED;
                    op.4 = Some(rng.pick(&[a, a.saturating_sub(PAGE), a + PAGE]));
                }
            }
            Op::Mremap(op.0, op.1, op.2, op.3, op.4)
        }
    }
}

/// A random operation inside the windows.
fn gen_op(rng: &mut Rng, h: &Harness, files: &[FileId]) -> (Op, &'static str) {
    let pick = rng.below(100);
    if pick < 4 {
        let child = if rng.chance(75) {
            gen_placement(rng, h, files)
        } else {
            gen_op(rng, h, files).0
        };
        let child = match child {
            Op::Fork(c) => *c,
            c => c,
        };
        return (Op::Fork(Box::new(child)), "fork");
    }
    if pick < 11 {
        return (gen_bad(rng, h, files), "bad input");
    }
    (gen_window_op(rng, h, files, pick), "in a window")
}

/// A valid operation inside one window (`pick` in 11..100 chooses the kind).
fn gen_window_op(rng: &mut Rng, h: &Harness, files: &[FileId], pick: usize) -> Op {
    // The window for this operation.
    let (lo, np) = if rng.chance(65) {
        (h.a.0, NP_A)
    } else {
        (h.b.0, NP_B)
    };
    let hi = lo + np * PAGE;
    let page = |p: usize| lo + p * PAGE;
    let rand_range = |rng: &mut Rng| {
        let p = rng.below(np);
        let n = 1 + rng.below((np - p).min(24));
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
    let layout = h.klayout();
    if pick < 35 {
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
            12
        });
        flags |= if shared {
            MapFlags::SHARED
        } else {
            MapFlags::PRIVATE
        };
        if rng.chance(80) {
            flags |= MapFlags::NORESERVE;
        }
        if rng.chance(3) {
            // MAP_SHARED_VALIDATE.
            flags |= MapFlags::SHARED | MapFlags::PRIVATE;
        }
        return Op::Mmap(MapRequest {
            addr: Some(page(p)),
            len: rand_len(rng, n),
            prot: rand_prot(rng),
            flags,
            backing,
        });
    }
    if pick < 43 {
        return gen_placement(rng, h, files);
    }
    if pick < 55 {
        let (p, n) = rand_range(rng);
        return Op::Munmap(page(p), rand_len(rng, n));
    }
    if pick < 72 {
        let (p, n) = rand_range(rng);
        return Op::Mprotect(page(p), rand_len(rng, n), rand_prot(rng));
    }
    if pick < 80 {
        let (p, n) = rand_range(rng);
        let adv = if rng.chance(55) {
            Advice::DontFork
        } else {
            Advice::DoFork
        };
        return Op::Madvise(page(p), rand_len(rng, n), adv);
    }
    // mremap: usually a range inside an existing VMA of this window.
    let here: Vec<&VmaInfo> = layout
        .iter()
        .filter(|v| v.start >= lo && v.end <= hi)
        .collect();
    let (a, mut ol) = if !here.is_empty() && rng.chance(80) {
        let v = here[rng.below(here.len())];
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
    ol = ol.min(hi.saturating_sub(a)).max(PAGE);
    let mut nl = (1 + rng.below(MAX_PLACE)) * PAGE;
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
        // Either window.
        let (tlo, tnp) = if rng.chance(60) {
            (h.a.0, NP_A)
        } else {
            (h.b.0, NP_B)
        };
        nl = nl.min(tnp * PAGE);
        let n = nl.div_ceil(PAGE);
        na = Some(tlo + rng.below(tnp - n + 1) * PAGE);
        if rng.chance(4) {
            na = na.map(|x| x + 8);
        }
    }
    // old_len 0 duplicates a shared mapping (and is EINVAL on a private one).
    let ol = if rng.chance(8) { 0 } else { ol };
    let ol = if rng.chance(3) {
        ol - rng.below(PAGE - 1).min(ol)
    } else {
        ol
    };
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

/// Whether `[lo, hi)` is free (probed with a `MAP_FIXED_NOREPLACE` mapping, removed again).
fn is_free(lo: usize, hi: usize) -> bool {
    let r = MapRequest {
        addr: Some(lo),
        len: hi - lo,
        prot: Prot::NONE,
        flags: MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
        backing: Backing::Anonymous,
    };
    if kernel::mmap(&r, &HashMap::new()) == Ok(lo) {
        kernel::munmap(lo, hi - lo).unwrap();
        true
    } else {
        false
    }
}

/// Window A: far below everything else (top-down placement never gets there).
fn find_window_a() -> usize {
    for i in 0..64usize {
        let lo = 0x1000_0000_0000usize + i * 0x10_0000_0000;
        // Window plus one free page on either side, so nothing outside merges with it.
        if is_free(lo - PAGE, lo + (NP_A + 1) * PAGE) {
            return lo;
        }
    }
    panic!("no free window found");
}

/// Window B: 64 MiB below the stack (above the kernel's `mmap_base`, which lies at least
/// the stack's maximum size plus its guard gap below the stack), with its fence, the
/// overflow area and a free page on either side.
fn find_window_b(stack: usize) -> usize {
    let span = (NP_B + 1 + OV) * PAGE;
    for i in 0..16usize {
        let hi = (stack - (64 << 20) - i * (1 << 20)) & !(PAGE - 1);
        let lo = hi - span;
        if is_free(lo - PAGE, hi + PAGE) {
            return lo;
        }
    }
    panic!("no free window below the stack");
}

/// In a forked child with everything but `keep` filled, where does a one-page mapping
/// without a hint go?
fn probe(keep: (usize, usize), min_addr: usize, filler_fd: i32) -> Result<usize, Errno> {
    let mut plan = child::Plan::new(vec![keep], min_addr, filler_fd);
    let req = MapRequest {
        addr: None,
        len: PAGE,
        prot: Prot::NONE,
        flags: MapFlags::PRIVATE | MapFlags::NORESERVE,
        backing: Backing::Anonymous,
    };
    plan.call = Some(kernel::raw(&Op::Mmap(req), &HashMap::new()));
    child::run(&mut plan).result
}

fn run_seed(seed: u64, ops: usize) -> Tally {
    let (stack, min_addr) = kernel::stack_and_min_addr();
    let a_lo = find_window_a();
    let a = (a_lo, a_lo + NP_A * PAGE);
    let b_lo = find_window_b(stack);
    let b = (b_lo, b_lo + NP_B * PAGE);
    let o = (b.1 + PAGE, b.1 + PAGE + OV * PAGE);
    let mut fds = HashMap::new();
    let mut inodes = HashMap::new();
    let mut files = Vec::new();
    for i in 0..3 {
        let (fd, ino) = memfd(&format!("vmlock-diff-{i}"), 4 * NP_A);
        fds.insert(FileId(ino), fd);
        inodes.insert(ino, FileId(ino));
        files.push(FileId(ino));
    }
    let (filler_fd, filler_ino) = memfd("vmlock-diff-filler", 1);
    // The setup means what the test assumes: A is top-down territory, B only bottom-up's.
    let top_down = probe(a, min_addr, filler_fd);
    assert_eq!(
        top_down,
        Ok(a.1 - PAGE),
        "with only window A free, the kernel did not place top-down into it (needs the \
         default top-down mmap layout: RLIMIT_STACK not unlimited, no ADDR_COMPAT_LAYOUT)"
    );
    let bottom_up = probe(b, min_addr, filler_fd);
    assert_eq!(
        bottom_up,
        Ok(b.0),
        "with only window B free, the kernel did not fall back bottom-up into it (is B \
         below the kernel's mmap_base?)"
    );
    let cfg = MmConfig {
        min_addr: a.0,
        mmap_base: b.0,
        task_size: TASK_SIZE,
    };
    let spaces: Vec<Box<dyn Space>> = vec![Box::new(Model::new(cfg)), Box::new(Mm::new(cfg))];
    let mut h = Harness {
        a,
        b,
        o,
        min_addr,
        fds,
        inodes,
        filler_fd,
        spaces,
        history: Vec::new(),
        tally: Tally::default(),
    };
    // Reserves, and fence pages right after each window (a file used nowhere else), so
    // nothing grows out of a window in the kernel or in the models.
    let (fence_fd, fence_ino) = memfd("vmlock-diff-fence", 4);
    h.fds.insert(FileId(fence_ino), fence_fd);
    h.inodes.insert(fence_ino, FileId(fence_ino));
    for (i, w) in [a, b].into_iter().enumerate() {
        let reserve = MapRequest {
            addr: Some(w.0),
            len: w.1 - w.0,
            prot: Prot::NONE,
            flags: MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE,
            backing: Backing::Anonymous,
        };
        h.run(&Op::Mmap(reserve));
        let fence = MapRequest {
            addr: Some(w.1),
            len: PAGE,
            prot: Prot::NONE,
            flags: MapFlags::SHARED | MapFlags::FIXED_NOREPLACE,
            backing: Backing::File {
                file: FileId(fence_ino),
                pgoff: 2 * i as u64,
            },
        };
        h.run(&Op::Mmap(fence));
    }
    // The model's and Mm's stand-in for everything between the windows, which the
    // filled children have full: top-down placement then sees only A's gaps.
    let filler = MapRequest {
        addr: Some(a.1 + PAGE),
        len: b.0 - (a.1 + PAGE),
        prot: Prot::NONE,
        flags: MapFlags::SHARED | MapFlags::FIXED_NOREPLACE,
        backing: Backing::File {
            file: FileId(filler_ino),
            pgoff: 0,
        },
    };
    for sp in h.spaces.iter_mut() {
        assert_eq!(sp.mmap(&filler), Ok(filler.addr.unwrap()));
    }
    h.check_layout();
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for _ in 0..ops {
        let (op, kind) = gen_op(&mut rng, &h, &files);
        if kind == "bad input" {
            h.tally.bad += 1;
        }
        h.run(&op);
    }
    kernel::munmap(a.0, (NP_A + 1) * PAGE).unwrap();
    kernel::munmap(b.0, o.1 - b.0).unwrap();
    for fd in h.fds.values().chain([&filler_fd]) {
        // SAFETY: closing descriptors this test opened.
        unsafe { libc::close(*fd) };
    }
    h.tally
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
    let mut total = Tally::default();
    for seed in seeds {
        let t = run_seed(seed, OPS_PER_SEED * scale());
        total.ops += t.ops;
        total.bad += t.bad;
        total.forks += t.forks;
        total.dontfork_dropped += t.dontfork_dropped;
        total.child_top_down += t.child_top_down;
        total.child_bottom_up += t.child_bottom_up;
        total.child_overflow += t.child_overflow;
        total.parent_bottom_up += t.parent_bottom_up;
        total.dup_shared += t.dup_shared;
        total.madvise += t.madvise;
    }
    eprintln!("{total:?}");
    if total.ops < 2500 {
        // A single short seed (VMLOCK_SEED) may not reach every kind of case.
        return;
    }
    // Every new kind of case was compared at least once.
    assert!(total.forks > 0 && total.dontfork_dropped > 0, "{total:?}");
    assert!(
        total.child_top_down > 0 && total.child_bottom_up > 0,
        "{total:?}"
    );
    assert!(
        total.parent_bottom_up > 0 && total.dup_shared > 0,
        "{total:?}"
    );
    assert!(total.madvise > 0, "{total:?}");
}
