//! Behaviour of the read paths and of fork, through the public API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vmlock::{
    Access, Backing, Errno, FaultPath, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot,
    RemapFlags, Speculation,
};

const PAGE: usize = 4096;

fn anon(addr: usize, pages: usize, prot: Prot) -> MapRequest {
    MapRequest {
        addr: Some(addr),
        len: pages * PAGE,
        prot,
        flags: MapFlags::PRIVATE | MapFlags::FIXED,
        backing: Backing::Anonymous,
    }
}

#[test]
fn read_lock_blocks_writer_of_that_vma() {
    let mm = Arc::new(Mm::new(MmConfig::default()));
    let a = 0x1000_0000;
    mm.mmap(&anon(a, 4, Prot::READ)).unwrap();
    let g = mm.lock_vma_under_rcu(a + PAGE).unwrap();
    assert_eq!((g.info().start, g.info().end), (a, a + 4 * PAGE));
    let done = Arc::new(AtomicBool::new(false));
    let t = {
        let (mm, done) = (mm.clone(), done.clone());
        std::thread::spawn(move || {
            mm.munmap(a, PAGE).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !done.load(Ordering::SeqCst),
        "the writer changed a read-locked VMA"
    );
    // While the writer waits (mmap write lock held, sequence odd), speculation refuses.
    assert_eq!(mm.lookup_speculative(a + PAGE), Speculation::Retry);
    drop(g);
    t.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert_eq!(mm.lookup(a), None);
    assert_eq!(mm.lookup(a + PAGE).map(|v| v.start), Some(a + PAGE));
    mm.validate().unwrap();
}

#[test]
fn unrelated_vma_stays_readable_during_write() {
    let mm = Arc::new(Mm::new(MmConfig::default()));
    let (a, b) = (0x1000_0000, 0x2000_0000);
    mm.mmap(&anon(a, 1, Prot::READ)).unwrap();
    mm.mmap(&anon(b, 1, Prot::READ)).unwrap();
    // Hold a reader on `a` so that a munmap of `a` blocks inside its write section.
    let g = mm.lock_vma_under_rcu(a).unwrap();
    let t = {
        let mm = mm.clone();
        std::thread::spawn(move || mm.munmap(a, PAGE).unwrap())
    };
    std::thread::sleep(Duration::from_millis(30));
    // `b` is not write-locked: the per-VMA path still works without the mmap lock.
    let gb = mm
        .lock_vma_under_rcu(b)
        .expect("per-VMA lock of an untouched VMA");
    assert_eq!(gb.info().start, b);
    drop(gb);
    drop(g);
    t.join().unwrap();
}

#[test]
fn fault_paths_and_stats() {
    let mm = Mm::new(MmConfig::default());
    let a = 0x3000_0000;
    mm.mmap(&anon(a, 2, Prot::READ | Prot::WRITE)).unwrap();
    assert_eq!(mm.fault(a, Access::Write), Ok(FaultPath::VmaLock));
    assert_eq!(mm.fault(a, Access::Exec), Err(Errno::EACCES));
    assert_eq!(mm.fault(a + 2 * PAGE, Access::Read), Err(Errno::EFAULT));
    let st = mm.stats();
    assert_eq!(st.success, 2);
    assert_eq!(st.abort, 1);
    assert_eq!(st.fallback, 1);
    assert_eq!(mm.lookup(a), mm.mmap_read_lock().vma_lookup(a));
    assert_eq!(mm.stats().spec_ok, 1);
    let r = mm.mmap_read_lock();
    assert_eq!(r.find_vma(0).map(|v| v.start), Some(a));
    assert_eq!(r.vma_lookup(a - 1), None);
}

#[test]
fn fork_copies_and_is_independent() {
    let mm = Mm::new(MmConfig::default());
    for i in 0..200 {
        let prot = if i % 2 == 0 { Prot::READ } else { Prot::WRITE };
        mm.mmap(&anon(0x4000_0000 + i * 2 * PAGE, 1, prot)).unwrap();
    }
    let file = MapRequest {
        addr: Some(0x5000_0000),
        len: 3 * PAGE,
        prot: Prot::READ,
        flags: MapFlags::SHARED | MapFlags::FIXED,
        backing: Backing::File {
            file: FileId(3),
            pgoff: 9,
        },
    };
    mm.mmap(&file).unwrap();
    let child = mm.fork();
    assert_eq!(child.vmas(), mm.vmas());
    child.validate().unwrap();
    mm.validate().unwrap();
    // Parent VMAs are unlocked again after fork.
    assert!(mm.lock_vma_under_rcu(0x4000_0000).is_some());
    assert!(child.lock_vma_under_rcu(0x4000_0000).is_some());
    child.munmap(0x4000_0000, 100 * PAGE).unwrap();
    assert_eq!(mm.vmas().len(), 201);
    assert_eq!(child.vmas().len(), 201 - 50);
    drop(mm);
    child.validate().unwrap();
    assert_eq!(
        child.lookup(0x5000_0000 + PAGE).map(|v| v.backing),
        Some(Backing::File {
            file: FileId(3),
            pgoff: 9
        })
    );
}

#[test]
fn placement_is_top_down_below_mmap_base() {
    let cfg = MmConfig {
        min_addr: 0x10_0000,
        mmap_base: 0x20_0000,
        task_size: MmConfig::default().task_size,
    };
    let mm = Mm::new(cfg);
    let req = MapRequest {
        addr: None,
        len: 16 * PAGE,
        prot: Prot::READ,
        flags: MapFlags::PRIVATE,
        backing: Backing::Anonymous,
    };
    assert_eq!(mm.mmap(&req), Ok(0x20_0000 - 16 * PAGE));
    // Adjacent and compatible: merges with the first.
    assert_eq!(mm.mmap(&req), Ok(0x20_0000 - 32 * PAGE));
    assert_eq!(mm.vmas().len(), 1);
    // A free hint is honoured.
    let hint = MapRequest {
        addr: Some(0x10_0000),
        ..req
    };
    assert_eq!(mm.mmap(&hint), Ok(0x10_0000));
    // No room of that size below mmap_base: the kernel's bottom-up fallback, from the
    // bottom of the space upward, finds the lowest fit (here right at mmap_base).
    let big = MapRequest {
        len: 0x10_0000,
        ..req
    };
    assert_eq!(mm.mmap(&big), Ok(0x20_0000));
    // A gap that straddles mmap_base is not top-down territory but is bottom-up's.
    let fresh = Mm::new(cfg);
    let below = 0x20_0000 - 4 * PAGE - 0x10_0000;
    fresh
        .mmap(&anon(0x10_0000, below / PAGE, Prot::READ))
        .unwrap();
    let straddle = MapRequest {
        len: 8 * PAGE,
        ..req
    };
    assert_eq!(fresh.mmap(&straddle), Ok(0x20_0000 - 4 * PAGE));
    // A hint that does not fit falls back the same way.
    let hinted = MapRequest {
        addr: Some(0x10_0000),
        ..straddle
    };
    assert_eq!(fresh.mmap(&hinted), Ok(0x20_0000 + 4 * PAGE));
    fresh.validate().unwrap();
    // Only a request that fits nowhere below task_size is ENOMEM.
    let huge = MapRequest {
        len: cfg.task_size - 0x10_0000,
        ..req
    };
    assert_eq!(mm.mmap(&huge), Err(Errno::ENOMEM));
    assert_eq!(Errno::ENOMEM.to_string(), "ENOMEM (12)");
    mm.validate().unwrap();
}

/// Extreme arguments never panic and `Mm` agrees with the model on every one of them.
#[test]
fn extreme_inputs_agree_with_model_and_never_panic() {
    use vmlock::model::Model;
    use vmlock::RemapFlags;
    let cfg = MmConfig::default();
    let mm = Mm::new(cfg);
    let mut model = Model::new(cfg);
    let base = 0x7000_0000usize;
    let req = anon(base, 8, Prot::READ);
    assert_eq!(mm.mmap(&req), model.mmap(&req));
    let vals = [
        0,
        1,
        PAGE - 1,
        PAGE,
        base,
        base + PAGE,
        base + 3,
        cfg.task_size - PAGE,
        cfg.task_size,
        cfg.task_size + PAGE,
        usize::MAX / 2,
        usize::MAX - PAGE,
        usize::MAX - 5,
        usize::MAX,
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut pick = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        vals[(state % vals.len() as u64) as usize]
    };
    for i in 0..3000 {
        let (a, b, c) = (pick(), pick(), pick());
        match i % 5 {
            0 => {
                let flags = [
                    MapFlags::PRIVATE | MapFlags::FIXED,
                    MapFlags::PRIVATE,
                    MapFlags::SHARED | MapFlags::FIXED_NOREPLACE,
                ][i % 3];
                let r = MapRequest {
                    addr: Some(a),
                    len: b,
                    prot: Prot::READ,
                    flags,
                    backing: Backing::File {
                        file: FileId(1),
                        pgoff: c as u64,
                    },
                };
                assert_eq!(mm.mmap(&r), model.mmap(&r), "mmap {r:x?}");
            }
            1 => assert_eq!(mm.munmap(a, b), model.munmap(a, b), "munmap {a:#x} {b:#x}"),
            2 => assert_eq!(
                mm.mprotect(a, b, Prot::WRITE),
                model.mprotect(a, b, Prot::WRITE),
                "mprotect {a:#x} {b:#x}"
            ),
            _ => {
                let flags = [
                    RemapFlags::empty(),
                    RemapFlags::MAYMOVE,
                    RemapFlags::MAYMOVE | RemapFlags::FIXED,
                ][i % 3];
                let d = pick();
                assert_eq!(
                    mm.mremap(a, b, c, flags, Some(d)),
                    model.mremap(a, b, c, flags, Some(d)),
                    "mremap {a:#x} {b:#x} {c:#x} {d:#x}"
                );
            }
        }
        assert_eq!(mm.vmas(), model.vmas());
        if i % 100 == 0 {
            mm.validate().unwrap();
        }
        if mm.vmas().is_empty() {
            assert_eq!(mm.mmap(&req), model.mmap(&req));
        }
    }
    mm.validate().unwrap();
}

/// Fuzz finding V1, revisited: a file mapping whose page offset would wrap `u64::MAX` used
/// to be accepted (and then growing it was `EINVAL`). Linux refuses any file mapping that
/// reaches past `MAX_LFS_FILESIZE` (2^63 - 1 bytes) with `EOVERFLOW` (`file_mmap_ok`), so
/// such a mapping cannot exist; the last page below the limit can be mapped, and `mremap`
/// (which only checks for wrap-around) may grow it past the limit.
#[test]
fn file_offsets_past_max_lfs_filesize_are_eoverflow() {
    let mm = Mm::new(MmConfig {
        min_addr: 0x10000,
        mmap_base: 0x100000,
        task_size: 0x140000,
    });
    let at = |pgoff: u64, len: usize| MapRequest {
        addr: Some(0x10000),
        len,
        prot: Prot::READ,
        flags: MapFlags::PRIVATE | MapFlags::FIXED,
        backing: Backing::File {
            file: FileId(1),
            pgoff,
        },
    };
    let last = (1u64 << 51) - 1; // the page ending at 2^63 bytes, one byte past the limit
    assert_eq!(mm.mmap(&at(u64::MAX - 1, 4096)), Err(Errno::EOVERFLOW));
    assert_eq!(mm.mmap(&at(last, 4096)), Err(Errno::EOVERFLOW));
    assert_eq!(mm.mmap(&at(last - 1, 2 * 4096)), Err(Errno::EOVERFLOW));
    assert!(mm.vmas().is_empty());
    assert_eq!(mm.mmap(&at(last - 1, 4096)), Ok(0x10000));
    assert_eq!(
        mm.mremap(0x10000, 4096, 3 * 4096, RemapFlags::empty(), None),
        Ok(0x10000)
    );
    assert_eq!(mm.vmas()[0].end, 0x10000 + 3 * 4096);
    assert_eq!(mm.munmap(0x10000, 3 * 4096), Ok(()));
    assert!(mm.vmas().is_empty());
}

/// Review finding F6: write sections are guarded against unwinding by an abort guard that
/// fires only when the section itself unwinds, not when a destructor runs a whole write
/// section while the thread unwinds from an unrelated panic.
#[test]
fn write_sections_run_inside_an_unwinding_destructor() {
    struct UnmapOnDrop<'a>(&'a Mm, usize);
    impl Drop for UnmapOnDrop<'_> {
        fn drop(&mut self) {
            self.0.munmap(self.1, PAGE).unwrap();
            drop(self.0.fork());
        }
    }
    let mm = Mm::new(MmConfig::default());
    let a = mm.mmap(&anon(0x10_0000, 4, Prot::READ)).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = UnmapOnDrop(&mm, a + PAGE);
        panic!("unrelated panic");
    }));
    assert!(r.is_err());
    assert_eq!(mm.vmas().len(), 2);
    assert!(mm.lookup(a + PAGE).is_none());
    mm.validate().unwrap();
}

/// Review finding F9: configurations `Mm::new` refuses, each with a clear message.
#[test]
fn bad_configs_panic_with_a_message() {
    let ok = MmConfig::default();
    let bad = [
        (
            MmConfig {
                task_size: usize::MAX,
                ..ok
            },
            "page-aligned",
        ),
        (
            MmConfig {
                mmap_base: ok.mmap_base + 1,
                ..ok
            },
            "page-aligned",
        ),
        (
            MmConfig {
                task_size: usize::MAX & !(PAGE - 1),
                mmap_base: 1 << 40,
                ..ok
            },
            "exceeds",
        ),
        (
            MmConfig {
                min_addr: ok.mmap_base + PAGE,
                ..ok
            },
            "min_addr",
        ),
        (
            MmConfig {
                mmap_base: ok.task_size + PAGE,
                ..ok
            },
            "mmap_base",
        ),
    ];
    for (cfg, why) in bad {
        let msg = std::panic::catch_unwind(|| Mm::new(cfg)).expect_err("accepted a bad config");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("invalid MmConfig") && msg.contains(why),
            "{cfg:x?}: {msg}"
        );
        assert!(std::panic::catch_unwind(|| vmlock::model::Model::new(cfg)).is_err());
    }
}

/// Review finding F9: the largest accepted `task_size` (2^63) with mappings at the very top;
/// ranges that reach past it are refused without any overflow.
#[test]
fn largest_config_works_at_the_top() {
    let top = 1usize << 63;
    let mm = Mm::new(MmConfig {
        min_addr: PAGE,
        mmap_base: top,
        task_size: top,
    });
    let a = mm.mmap(&anon(top - 4 * PAGE, 4, Prot::READ)).unwrap();
    assert_eq!(a, top - 4 * PAGE);
    assert_eq!(mm.munmap(top, 1), Err(Errno::EINVAL));
    assert_eq!(mm.munmap(top - PAGE, PAGE + 1), Err(Errno::EINVAL));
    assert_eq!(mm.munmap(usize::MAX & !(PAGE - 1), 1), Err(Errno::EINVAL));
    mm.munmap(top - PAGE, 1).unwrap();
    assert_eq!(
        mm.mremap(a, 3 * PAGE, PAGE, RemapFlags::empty(), None),
        Ok(a)
    );
    let placed = mm
        .mmap(&MapRequest {
            addr: None,
            flags: MapFlags::PRIVATE,
            ..anon(0, 2, Prot::READ)
        })
        .unwrap();
    assert_eq!(placed, top - 2 * PAGE);
    mm.validate().unwrap();
}

/// Fuzz finding V2: `mremap(MREMAP_FIXED)` to a destination below `min_addr` is `EPERM`, as
/// a `MAP_FIXED` mmap there is (the kernel checks the destination like an mmap address).
#[test]
fn mremap_fixed_below_min_addr_is_eperm() {
    let mm = Mm::new(MmConfig {
        min_addr: 0x10000,
        mmap_base: 0x100000,
        task_size: 0x140000,
    });
    assert_eq!(mm.mmap(&anon(0x20000, 2, Prot::READ)), Ok(0x20000));
    assert_eq!(mm.mmap(&anon(0x8000, 1, Prot::READ)), Err(Errno::EPERM));
    let flags = RemapFlags::MAYMOVE | RemapFlags::FIXED;
    // Equal lengths (the move-only path) and a resize both refuse the low destination.
    assert_eq!(
        mm.mremap(0x20000, 2 * PAGE, 2 * PAGE, flags, Some(0x4000)),
        Err(Errno::EPERM)
    );
    assert_eq!(
        mm.mremap(0x20000, 2 * PAGE, PAGE, flags, Some(0x4000)),
        Err(Errno::EPERM)
    );
    assert_eq!(
        mm.mremap(0x20000, PAGE, PAGE, flags, Some(0x30000)),
        Ok(0x30000)
    );
}
