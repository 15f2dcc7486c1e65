//! Fault permissions against the real kernel: for every protection (none, r, w, x and their
//! combinations) and every access (load, store, instruction fetch), a child process touches
//! a page mapped with that protection and the parent sees whether it died of `SIGSEGV`.
//! [`Mm::fault`] must allow exactly what the kernel allowed.
//!
//! The page holds a `ret` instruction (x86-64 `0xc3`) at its start; the fetch calls it.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use vmlock::{Access, Backing, Errno, FaultPath, MapFlags, MapRequest, Mm, MmConfig, Prot};

const PAGE: usize = 4096;

/// Whether the CPU and kernel use protection keys (then `PROT_EXEC`-only pages are made
/// execute-only, which `vmlock` does not model).
fn pkeys_in_use() -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or_default();
    flags.split_whitespace().any(|f| f == "ospke")
}

/// Map a page holding `ret` with `prot`, let a child make `access` on it; `true` if the
/// child survived (the access was allowed), `false` if it died of `SIGSEGV`.
fn kernel_allows(prot: Prot, access: Access) -> bool {
    // SAFETY: a fresh private anonymous page, which only this function uses.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let p = p.cast::<u8>();
    // SAFETY: the page is mapped read-write; `0xc3` is `ret`.
    unsafe { p.write_volatile(0xc3) };
    // SAFETY: changing the protection of our own page.
    let r = unsafe { libc::mprotect(p.cast(), PAGE, prot.bits() as i32) };
    assert_eq!(r, 0);
    // SAFETY: the child only touches the page and leaves with `_exit` (no allocation, no
    // locks: the parent is multi-threaded).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: a mapped page (the access itself may fault, which is the experiment); the
        // fetch calls a `ret` instruction, which returns at once.
        unsafe {
            match access {
                Access::Read => {
                    std::hint::black_box(p.read_volatile());
                }
                Access::Write => p.write_volatile(0xc3),
                Access::Exec => {
                    let f: extern "C" fn() = std::mem::transmute(p);
                    f();
                }
            }
            libc::_exit(0)
        }
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    // SAFETY: unmapping the page mapped above.
    assert_eq!(unsafe { libc::munmap(p.cast(), PAGE) }, 0);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return true;
    }
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "child with {prot:?} / {access:?} ended with status {status:#x}"
    );
    false
}

#[test]
fn fault_permissions_match_the_kernel() {
    let pkeys = pkeys_in_use();
    let mm = Mm::new(MmConfig::default());
    let base = 0x1000_0000;
    let mut table = String::new();
    for bits in 0..8u32 {
        let prot = Prot::from_bits_truncate(bits);
        let at = base + bits as usize * 2 * PAGE;
        let req = MapRequest {
            addr: Some(at),
            len: PAGE,
            prot,
            flags: MapFlags::PRIVATE | MapFlags::FIXED,
            backing: Backing::Anonymous,
        };
        assert_eq!(mm.mmap(&req), Ok(at));
        for access in [Access::Read, Access::Write, Access::Exec] {
            let kernel = kernel_allows(prot, access);
            let ours = mm.fault(at, access);
            table.push_str(&format!(
                "{prot:?} {access:?}: kernel {kernel}, Mm {ours:?}\n"
            ));
            if pkeys && prot == Prot::EXEC && access == Access::Read {
                // Execute-only through a protection key: the kernel refuses the load.
                assert!(!kernel, "{table}");
                continue;
            }
            let want = if kernel {
                Ok(FaultPath::VmaLock)
            } else {
                Err(Errno::EACCES)
            };
            assert_eq!(ours, want, "{prot:?} / {access:?}\n{table}");
            assert_eq!(access.allowed_by(prot), kernel);
        }
    }
    // The x86-64 rules, as observed: a load needs any permission, a store needs write, a
    // fetch needs exec.
    assert!(table.contains("Prot(WRITE) Read: kernel true"), "{table}");
    assert!(table.contains("Prot(READ) Exec: kernel false"), "{table}");
    eprintln!("{table}");
}
