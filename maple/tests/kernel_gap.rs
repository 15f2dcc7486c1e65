//! Ports of the kernel's gap-search and allocation scenarios (lib/test_maple_tree.c) with
//! the kernel's own numbers: `check_empty_area_window`, `check_alloc_range`,
//! `check_alloc_rev_range` (the `/proc/self/maps` page table), `check_gap_combining`,
//! `check_empty_area_fill` and `alloc_cyclic_testing`.
//!
//! Every kernel expectation is asserted against the tree, and the oracle's linear scan is
//! asserted to agree, so the ported numbers double as a check of the oracle.
//! `mas_empty_area(min, max, size)` is `empty_area(min..=max, size)` and sets
//! `mas.index = start, mas.last = start + size - 1`.

mod common;

use common::{xv, Gap, Pair};
use maple::{AllocErrorKind, GapError, MapleTree, Value};

/// The kernel's `MTREE_ALLOC_MAX`: everything from here up is reserved in the alloc tests.
const MTREE_ALLOC_MAX: usize = 0x2000000000000;
/// Value standing in for the kernel's `XA_ZERO_ENTRY` reservation.
const RESERVED: usize = 0x7eee;

fn gap(e: GapError) -> Gap {
    match e {
        GapError::Busy => Gap::Busy,
        GapError::Invalid => Gap::Invalid,
    }
}

/// `mas_empty_area`, checked against the oracle and against the same search from inside
/// the writer.
fn area(p: &Pair, min: usize, max: usize, size: usize) -> Result<usize, Gap> {
    let got = p.tree.read().empty_area(min..=max, size).map_err(gap);
    assert_eq!(
        got,
        p.o.empty_area(min..=max, size),
        "oracle: empty_area({min}..={max}, {size})"
    );
    let in_writer = p.tree.lock().empty_area(min..=max, size).map_err(gap);
    assert_eq!(got, in_writer, "empty_area from the writer");
    got
}

/// `mas_empty_area_rev`, checked the same way.
fn area_rev(p: &Pair, min: usize, max: usize, size: usize) -> Result<usize, Gap> {
    let got = p.tree.read().empty_area_rev(min..=max, size).map_err(gap);
    assert_eq!(
        got,
        p.o.empty_area_rev(min..=max, size),
        "oracle: empty_area_rev({min}..={max}, {size})"
    );
    let in_writer = p.tree.lock().empty_area_rev(min..=max, size).map_err(gap);
    assert_eq!(got, in_writer, "empty_area_rev from the writer");
    got
}

/// Ports `check_empty_area_window`.
#[test]
fn check_empty_area_window() {
    let mut p = Pair::new_alloc();
    for i in 1..=20 {
        p.store(i * 10, i * 10 + 9, i);
    }
    // Another hole besides the one at 0.
    p.punch(160, 169);

    // Lower bounds that don't fit.
    assert_eq!(area_rev(&p, 5, 90, 10), Err(Gap::Busy));
    assert_eq!(area_rev(&p, 6, 90, 5), Err(Gap::Busy));
    // Lower bound that does fit: 5..=9.
    assert_eq!(area_rev(&p, 5, 90, 5), Ok(5));
    // One gap that doesn't fit and one that does: 161..=169.
    assert_eq!(area_rev(&p, 5, 217, 9), Ok(161));
    // One gap that does fit above the min: 216..=218.
    assert_eq!(area_rev(&p, 100, 218, 3), Ok(216));
    // Size that doesn't fit any gap.
    assert_eq!(area_rev(&p, 100, 218, 16), Err(Gap::Busy));
    // Size that doesn't fit the lower end of the window but does fit the gap.
    assert_eq!(area_rev(&p, 167, 200, 4), Err(Gap::Busy));
    // Size that doesn't fit the upper end of the window but does fit the gap.
    assert_eq!(area_rev(&p, 100, 162, 4), Err(Gap::Busy));

    // Forward: 0..=8 and 0..=3.
    assert_eq!(area(&p, 0, 100, 9), Ok(0));
    assert_eq!(area(&p, 0, 100, 4), Ok(0));
    assert_eq!(area(&p, 0, 100, 11), Err(Gap::Busy));
    assert_eq!(area(&p, 5, 100, 6), Err(Gap::Busy));
    // A window narrower than the size is -EINVAL (current kernels; it was -EBUSY once).
    assert_eq!(area(&p, 0, 8, 10), Err(Gap::Invalid));
    // The kernel ignores this result; it is 100's neighbourhood hole at 160.
    assert_eq!(area(&p, 100, 165, 3), Ok(160));
    assert_eq!(area(&p, 100, 163, 6), Err(Gap::Busy));

    // Size 0 and empty windows are invalid too (API contract).
    assert_eq!(area(&p, 0, 100, 0), Err(Gap::Invalid));
    assert_eq!(area_rev(&p, 0, 100, 0), Err(Gap::Invalid));
    #[allow(clippy::reversed_empty_ranges)]
    {
        assert_eq!(p.tree.read().empty_area(10..10, 1), Err(GapError::Invalid));
        assert_eq!(
            p.tree.read().empty_area_rev(9..=8, 1),
            Err(GapError::Invalid)
        );
    }
    p.check("empty_area_window");
}

/// The `/proc/self/maps` snapshot shared by `check_alloc_range` and
/// `check_alloc_rev_range`: (inclusive start, exclusive end) in bytes.
const MAPS: [(usize, usize); 24] = [
    (0x565234af2000, 0x565234af4000),
    (0x565234af4000, 0x565234af9000),
    (0x565234af9000, 0x565234afb000),
    (0x565234afc000, 0x565234afd000),
    (0x565234afd000, 0x565234afe000),
    (0x565235def000, 0x565235e10000),
    (0x7f36d4bfd000, 0x7f36d4ee2000),
    (0x7f36d4ee2000, 0x7f36d4f04000),
    (0x7f36d4f04000, 0x7f36d504c000),
    (0x7f36d504c000, 0x7f36d5098000),
    (0x7f36d5098000, 0x7f36d5099000),
    (0x7f36d5099000, 0x7f36d509d000),
    (0x7f36d509d000, 0x7f36d509f000),
    (0x7f36d509f000, 0x7f36d50a5000),
    (0x7f36d50b9000, 0x7f36d50db000),
    (0x7f36d50db000, 0x7f36d50dc000),
    (0x7f36d50dc000, 0x7f36d50fa000),
    (0x7f36d50fa000, 0x7f36d5102000),
    (0x7f36d5102000, 0x7f36d5103000),
    (0x7f36d5103000, 0x7f36d5104000),
    (0x7f36d5104000, 0x7f36d5105000),
    (0x7fff5876b000, 0x7fff5878d000),
    (0x7fff5878e000, 0x7fff58791000),
    (0x7fff58791000, 0x7fff58793000),
];

/// The holes in `MAPS` below the last mapping: (start, exclusive end, size), in bytes.
const HOLES: [(usize, usize, usize); 3] = [
    (0x565234afb000, 0x565234afc000, 0x1000),
    (0x565234afe000, 0x565235def000, 0x12F1000),
    (0x565235e10000, 0x7f36d4bfd000, 0x28E49EDED000),
];

/// An alloc tree with everything from `MTREE_ALLOC_MAX` up reserved and the `MAPS` pages
/// inserted (page numbers, value = first page).
fn maps_tree() -> Pair {
    let mut p = Pair::new_alloc();
    p.store(MTREE_ALLOC_MAX, usize::MAX, RESERVED);
    for (start, end) in MAPS {
        assert!(
            p.insert(start >> 12, (end >> 12) - 1, start >> 12),
            "insert {start:#x}"
        );
    }
    p.check("maps tree");
    p
}

/// `check_mtree_alloc_range` / `check_mtree_alloc_rrange`: run the allocation and check the
/// result (`Ok(start)` or the kernel's error) with the oracle.
fn alloc(
    p: &mut Pair,
    rev: bool,
    min: usize,
    max: usize,
    size: usize,
    v: usize,
) -> Result<usize, AllocErrorKind> {
    let got = {
        let w = p.tree.lock();
        if rev {
            w.alloc_rrange(size, xv(v), min..=max)
        } else {
            w.alloc_range(size, xv(v), min..=max)
        }
        .map_err(|e| e.kind)
    };
    let want = if rev {
        p.o.alloc_rrange(size, v, min..=max)
    } else {
        p.o.alloc_range(size, v, min..=max)
    };
    let want = want.map_err(|k| match k {
        common::Alloc::Busy => AllocErrorKind::Busy,
        common::Alloc::Invalid => AllocErrorKind::Invalid,
        common::Alloc::NotAllocTree => AllocErrorKind::NotAllocTree,
    });
    assert_eq!(
        got, want,
        "oracle: alloc (rev {rev}) {min:#x}..={max:#x} size {size:#x}"
    );
    p.tree.validate().unwrap();
    if let Ok(s) = got {
        assert_eq!(p.walk(s), (s..=s + (size - 1), Some(v)));
    }
    got
}

/// Ports `check_alloc_range`.
#[test]
fn check_alloc_range() {
    let mut p = maps_tree();
    // Holes, searched forward from the end of the previous one.
    let mut min = 0x565234af2000usize;
    for (start, end, size) in HOLES {
        assert_eq!(
            area(&p, min >> 12, end >> 12, size >> 12),
            Ok(start >> 12),
            "hole at {start:#x}"
        );
        min = end;
    }

    // (min, max, size, expected, expected error), as the kernel lists them (bytes).
    let busy = Some(AllocErrorKind::Busy);
    let reqs: [(usize, usize, usize, usize, Option<AllocErrorKind>); 7] = [
        // First hole of size 0x1000.
        (0x565234af9000, 0x7fff58791000, 0x1000, 0x565234afb000, None),
        // First hole of size 0x1F00 (one page once shifted).
        (0x0, 0x7fff58791000, 0x1F00, 0x0, None),
        // Ascend.
        (
            34148797436 << 12,
            0x7fff587af000,
            0x3000,
            34148798629 << 12,
            None,
        ),
        // Failing.
        (34148798623 << 12, 34148798683 << 12, 0x15000, 0, busy),
        // Filling an entire gap.
        (
            34148798623 << 12,
            0x7fff587af000,
            0x10000,
            34148798632 << 12,
            None,
        ),
        // Walking off the end of root.
        (0, usize::MAX, usize::MAX, 0, busy),
        // Too large a hole across the entire range.
        (
            0,
            usize::MAX,
            4503599618982063 << 12,
            34359052178 << 12,
            busy,
        ),
    ];
    for (i, (min, max, size, expect, err)) in reqs.into_iter().enumerate() {
        let got = alloc(&mut p, false, min >> 12, max >> 12, size >> 12, min >> 12);
        match err {
            None => assert_eq!(got, Ok(expect >> 12), "request {i}"),
            Some(e) => assert_eq!(got, Err(e), "request {i}"),
        }
    }
    p.check("check_alloc_range");
}

/// Ports `check_alloc_rev_range`.
#[test]
fn check_alloc_rev_range() {
    let mut p = maps_tree();
    // Holes, searched backwards in [previous hole end, this hole end].
    let mut min = 0usize;
    for (_, end, size) in HOLES {
        let s = area_rev(&p, min, end >> 12, size >> 12).expect("hole");
        assert_eq!(
            s + (size >> 12) - 1 + 1,
            end >> 12,
            "the hole ends where the mapping starts"
        );
        assert_eq!(s, (end >> 12) - (size >> 12));
        min = end >> 12;
    }

    // (min, max, size, expected, expected error); the kernel searches [min, max - 1].
    let reqs: [(usize, usize, usize, usize, Option<AllocErrorKind>); 6] = [
        // First reverse hole of size 0x1000.
        (
            0x565234af9000,
            0x7fff58791000,
            0x1000,
            0x7fff5878d << 12,
            None,
        ),
        // max - 3.
        (0x0, 0x565234AF1 << 12, 0x3000, 0x565234AEE << 12, None),
        // First reverse hole of size 0x1000 below the reservation.
        (0x0, usize::MAX, 0x1000, 562949953421311 << 12, None),
        // First reverse hole of size 0x4000.
        (0x0, 0x7F36D510A << 12, 0x4000, 0x7F36D5106 << 12, None),
        // Ascend.
        (0x0, 34148798629 << 12, 19 << 12, 34148797418 << 12, None),
        // Too big.
        (
            0x0,
            18446744073709551615,
            562915594369134 << 12,
            0x0,
            Some(AllocErrorKind::Busy),
        ),
    ];
    for (i, (min, max, size, expect, err)) in reqs.into_iter().enumerate() {
        let got = alloc(
            &mut p,
            true,
            min >> 12,
            (max >> 12) - 1,
            size >> 12,
            min >> 12,
        );
        match err {
            None => assert_eq!(got, Ok(expect >> 12), "request {i}"),
            Some(e) => assert_eq!(got, Err(e), "request {i}"),
        }
    }

    // Create a deleted range, then allocate into it from the top.
    p.erase(34148798727);
    let got = alloc(&mut p, true, 0, 34359052173 - 1, 210253414, 0);
    assert_eq!(got, Ok(34148798725));
    p.check("check_alloc_rev_range");
}

/// Ports `check_gap_combining` (64-bit sequence): erased neighbours merge into one gap,
/// including across leaves and over two levels.
#[test]
fn check_gap_combining() {
    let seq100: [usize; 21] = [
        74, 75, 76, 50, 100, 2, 44, 45, 46, 43, 20, 50, 3, 80, 81, 82, 76, 2, 79, 85, 4,
    ];
    let seq2000: [usize; 5] = [1152, 1151, 1100, 1200, 2];
    let seq400: [usize; 12] = [286, 318, 256, 260, 266, 270, 275, 280, 290, 398, 286, 310];

    let mut p = Pair::new_alloc();
    let index = seq100[0];
    p.check_seq(100); // 100 singletons
    assert_eq!(p.erase(seq100[2]), Some(seq100[2]));
    assert_eq!(p.load(seq100[2]), None);
    assert_eq!(p.erase(seq100[1]), Some(seq100[1]));
    assert_eq!(p.load(seq100[1]), None);
    let (r, v) = p.find(index, usize::MAX).unwrap();
    assert_eq!((r.clone(), v), (index..=index, index));
    assert_eq!(
        p.find(r.end() + 1, usize::MAX).map(|h| h.1),
        Some(index + 3)
    );
    // A gap of 2 at index + 1 between seq100[3] and seq100[4].
    assert_eq!(area_rev(&p, seq100[3], seq100[4], seq100[5]), Ok(index + 1));

    assert_eq!(p.erase(seq100[6]), Some(seq100[6]));
    assert_eq!(p.load(seq100[6]), None);
    assert_eq!(p.erase(seq100[7]), Some(seq100[7]));
    assert_eq!(p.load(seq100[7]), None);
    assert_eq!(p.erase(seq100[8]), Some(seq100[8]));
    let index = seq100[9];
    let (r, v) = p.find(index, usize::MAX).unwrap();
    assert_eq!(v, index);
    assert_eq!(
        p.find(r.end() + 1, usize::MAX).map(|h| h.1),
        Some(index + 4)
    );
    // A gap of 3 at seq100[6]: search 20 - 50 for size 3.
    assert_eq!(
        area_rev(&p, seq100[10], seq100[11], seq100[12]),
        Ok(seq100[6])
    );

    p.punch(seq100[13], seq100[13]);
    assert_eq!(p.load(seq100[13]), None);
    assert_eq!(p.load(seq100[14]), Some(seq100[14]));
    p.punch(seq100[14], seq100[14]);
    assert_eq!(p.load(seq100[13]), None);
    assert_eq!(p.load(seq100[14]), None);
    assert_eq!(
        area_rev(&p, seq100[16], seq100[15], seq100[17]),
        Ok(seq100[13])
    );
    p.check("seq100 part 1");

    p.punch(seq100[18], seq100[14]);
    assert_eq!(p.erase(seq100[15]), Some(seq100[15]));
    assert_eq!(
        area_rev(&p, seq100[16], seq100[19], seq100[20]),
        Ok(seq100[18])
    );
    p.check("seq100 part 2");

    // seq2000: multi-level tree gaps.
    let mut p = Pair::new_alloc();
    p.check_seq(2000);
    assert_eq!(p.erase(seq2000[0]), Some(seq2000[0]));
    assert_eq!(p.erase(seq2000[1]), Some(seq2000[1]));
    assert_eq!(
        area_rev(&p, seq2000[2], seq2000[3], seq2000[4]),
        Ok(seq2000[1])
    );
    p.check("seq2000");

    // seq400: rebalancing over two levels.
    let mut p = Pair::new_alloc();
    p.check_seq(400);
    p.punch(seq400[0], seq400[1]);
    p.check("seq400 punch");

    let mut p = Pair::new_alloc();
    p.check_seq(400);
    for k in [2, 3, 4, 5, 0, 6, 7, 8] {
        p.store(seq400[k], seq400[9], seq400[k]);
    }
    p.store(seq400[10], seq400[11], seq400[10]);
    p.check("seq400 stores");
    for size in [1, 2, 3, 10, 100, 1000] {
        area(&p, 0, 1000, size).ok();
        area_rev(&p, 0, 1000, size).ok();
    }
}

/// Ports `check_empty_area_fill`: fill 0..=0x25D78000 with 5000 blocks of each size from
/// 4 KiB to 64 KiB, lowest fit first, until nothing of a page is left; then carve holes
/// near the top and search from just after one of them.
#[test]
fn check_empty_area_fill() {
    let max: usize = 0x25D78000;
    let mut p = Pair::new_alloc();
    p.validate_each = false;
    for shift in 12..=16 {
        let size = 1usize << shift;
        for _ in 0..5000 {
            let s = p.tree.read().empty_area(0..=max, size).expect("room left");
            p.store(s, s + size - 1, size);
        }
        p.check(&format!("after the {size:#x} blocks"));
    }
    // No space left.
    assert_eq!(area(&p, 0, max, 0x1000), Err(Gap::Busy));
    // The last index of the window is all that is left.
    assert_eq!(area(&p, 0, max, 1), Ok(max));

    // Fill a depth 3 node to the maximum.
    let mut i = 629440511;
    while i <= 629440800 {
        p.store(i, i + 5, i);
        i += 6;
    }
    // Make space in the second-last and the last depth 4 nodes.
    assert!(p.erase(631668735).is_some());
    assert!(p.erase(629506047).is_some());
    p.check("holes made");
    // Search from just after the gap in the second-last depth 4 node.
    assert!(area(&p, 629506048, 690000000, 0x5000).is_ok());
}

/// `mtree_alloc_cyclic` through our API, checked against the oracle; returns
/// `(index, wrapped)` and updates `next` like the kernel.
fn cyclic(
    p: &mut Pair,
    lo: usize,
    hi: usize,
    next: &mut usize,
    v: usize,
) -> Result<(usize, bool), AllocErrorKind> {
    let mut n_oracle = *next;
    let got = p
        .tree
        .lock()
        .alloc_cyclic(lo..=hi, next, xv(v))
        .map_err(|e| e.kind);
    let want =
        p.o.alloc_cyclic(lo..=hi, &mut n_oracle, v)
            .map_err(|k| match k {
                common::Alloc::Busy => AllocErrorKind::Busy,
                common::Alloc::Invalid => AllocErrorKind::Invalid,
                common::Alloc::NotAllocTree => AllocErrorKind::NotAllocTree,
            });
    assert_eq!(got, want, "oracle: alloc_cyclic({lo}..={hi})");
    assert_eq!(*next, n_oracle, "oracle: next");
    got
}

/// Ports `alloc_cyclic_testing`.
#[test]
fn alloc_cyclic_testing() {
    let mut p = Pair::new_alloc();
    let mut next = 0;
    for i in 0..100 {
        let (location, wrapped) = cyclic(&mut p, 2, usize::MAX, &mut next, 1).unwrap();
        assert!(!wrapped);
        assert_eq!(location, i + 2);
        assert_eq!(next, i + 3);
        assert_eq!(p.load(location), Some(1));
    }
    p.check("cyclic 100");

    // Exhaust the area and force the search to wrap (the kernel needed mas_reset() here).
    let mut p = Pair::new_alloc();
    let mut next = 0;
    for i in 0..1023 {
        let (location, _) = cyclic(&mut p, 2, 1024, &mut next, 1).unwrap();
        assert_eq!(location, i + 2);
        assert_eq!(next, i + 3);
        assert_eq!(p.load(location), Some(1));
    }
    assert_eq!(p.erase(123), Some(1));
    assert_eq!(p.load(123), None);
    let (location, wrapped) = cyclic(&mut p, 2, 1024, &mut next, 1).unwrap();
    assert_eq!((location, next, wrapped), (123, 124, true));
    assert_eq!(p.load(location), Some(1));
    assert_eq!(p.erase(100), Some(1));
    let (location, wrapped) = cyclic(&mut p, 2, 1024, &mut next, 1).unwrap();
    assert_eq!((location, next, wrapped), (100, 101, true));
    assert_eq!(p.load(location), Some(1));
    // Full: nothing left anywhere in the window.
    assert_eq!(
        cyclic(&mut p, 2, 1024, &mut next, 1),
        Err(AllocErrorKind::Busy)
    );
    assert_eq!(next, 101, "next is unchanged on failure");
    p.check("cyclic 1024");

    // Overflow: handing out ULONG_MAX wraps next to 0, and the following allocation
    // reports the wrap (ret 0, 0, then 1).
    let mut p = Pair::new_alloc();
    let mut next = usize::MAX - 1;
    assert_eq!(
        cyclic(&mut p, 2, usize::MAX, &mut next, 1),
        Ok((usize::MAX - 1, false))
    );
    assert_eq!(
        cyclic(&mut p, 2, usize::MAX, &mut next, 1),
        Ok((usize::MAX, false))
    );
    assert_eq!(next, 0);
    assert_eq!(cyclic(&mut p, 2, usize::MAX, &mut next, 1), Ok((2, true)));
    assert_eq!(cyclic(&mut p, 2, usize::MAX, &mut next, 1), Ok((3, false)));
    p.check("cyclic overflow");
}

/// Allocation calls on a plain tree are refused, and every error hands the value back.
#[test]
fn alloc_on_plain_tree_is_refused() {
    let t: MapleTree<Value> = MapleTree::new();
    let w = t.lock();
    let e = w.alloc_range(1, xv(5), ..).unwrap_err();
    assert_eq!((e.kind, e.value), (AllocErrorKind::NotAllocTree, xv(5)));
    let e = w.alloc_rrange(1, xv(6), ..).unwrap_err();
    assert_eq!((e.kind, e.value), (AllocErrorKind::NotAllocTree, xv(6)));
    let mut next = 0;
    let e = w.alloc_cyclic(.., &mut next, xv(7)).unwrap_err();
    assert_eq!((e.kind, e.value), (AllocErrorKind::NotAllocTree, xv(7)));
    drop(w);
    assert!(t.is_empty());

    let a: MapleTree<Value> = MapleTree::new_alloc();
    let w = a.lock();
    let e = w.alloc_range(0, xv(8), 0..=10).unwrap_err();
    assert_eq!((e.kind, e.value), (AllocErrorKind::Invalid, xv(8)));
    let e = w.alloc_rrange(11, xv(9), 0..=9).unwrap_err();
    assert_eq!((e.kind, e.value), (AllocErrorKind::Invalid, xv(9)));
    w.store_range(0..=9, xv(1)).unwrap();
    let e = w.alloc_range(1, xv(10), 0..=9).unwrap_err();
    assert_eq!((e.kind, e.value), (AllocErrorKind::Busy, xv(10)));
    drop(w);
    assert_eq!(a.len(), 1);
    a.validate().unwrap();
}
