//! Ports of the kernel's store/insert/erase scenarios (lib/test_maple_tree.c and
//! tools/testing/radix-tree/maple.c) with the kernel's own numbers, through our API.
//!
//! Every scenario runs on a tree and the `common::Oracle` side by side (`common::Pair`):
//! `validate()` runs after each write, loads are checked as the kernel checks them, and the
//! full contents are compared with the oracle at the kernel's checkpoints. Kernel pointers
//! become `Value`s; where the kernel looks at node internals the observable equivalent is
//! asserted instead (noted at each place).

mod common;

use common::{xv, Pair};
use maple::{InsertErrorKind, MapleTree, Value};

/// `check_store_range`: store and check every index of the range.
fn store_checked(p: &mut Pair, first: usize, last: usize, v: usize) {
    p.store(first, last, v);
    for i in first..=last {
        assert_eq!(p.load(i), Some(v), "after store {first}..={last}");
    }
}

/// `check_store_range(.., NULL, ..)`.
fn punch_checked(p: &mut Pair, first: usize, last: usize) {
    p.punch(first, last);
    for i in first..=last {
        assert_eq!(p.load(i), None, "after punch {first}..={last}");
    }
}

/// Ports `check_ranges` (lib/test_maple_tree.c), without the tree-height expectations,
/// which are in `check_ranges_heights` below.
#[test]
fn check_ranges() {
    let r: [usize; 14] = [10, 15, 20, 25, 17, 22, 9, 1000, 100, 200, 45, 168, 118, 128];
    let mut p = Pair::new();
    assert!(p.tree.is_empty());
    assert!(p.insert(r[0], r[1], r[0]));
    assert!(p.insert(r[2], r[3], r[2]));
    assert!(!p.insert(r[4], r[5], r[4]), "17..=22 overlaps: -EEXIST");
    assert!(p.tree.height() > 0);
    store_checked(&mut p, r[4], r[5], r[4]);
    store_checked(&mut p, r[6], r[7], r[6]);
    store_checked(&mut p, r[8], r[9], r[8]);
    assert!(p.tree.height() > 0);
    p.check("first stores");
    p.destroy();
    assert_eq!(p.tree.height(), 0);

    p.check_seq(50);
    store_checked(&mut p, 5, 47, 47);
    assert!(p.tree.height() > 0);
    p.check("seq 50 + 5..=47");
    p.destroy();

    // Tree of 0-100, store 45-168.
    p.check_seq(100);
    store_checked(&mut p, r[10], r[11], r[10]);
    assert!(p.tree.height() > 0);
    p.check("seq 100 + 45..=168");
    p.destroy();

    // Tree of 0-200, store 45-168.
    p.check_seq(200);
    store_checked(&mut p, r[10], r[11], r[10]);
    assert!(p.tree.height() > 0);
    p.check("seq 200 + 45..=168");
    p.destroy();

    p.check_seq(30);
    store_checked(&mut p, 6, 18, 6);
    assert!(p.tree.height() > 0);
    p.check("seq 30 + 6..=18");
    p.destroy();

    // Overwrite across multiple levels: tree of 0-400, store 118-128, erase around it.
    p.check_seq(400);
    store_checked(&mut p, r[12], r[13], r[12]);
    for i in [140, 141, 142, 143, 130, 131, 132, 133, 134, 135] {
        assert_eq!(p.erase(i), Some(i));
    }
    assert_eq!(p.load(r[12]), Some(r[12]));
    assert_eq!(p.load(r[13]), Some(r[12]));
    assert_eq!(p.load(r[13] - 1), Some(r[12]));
    assert_eq!(p.load(r[13] + 1), Some(r[13] + 1));
    assert_eq!(p.load(135), None);
    assert_eq!(p.load(140), None);
    assert!(p.tree.height() > 0);
    p.check("seq 400, 118..=128, erases");
    p.destroy();

    // Overwrite multiple levels at the end of the tree (slot 7).
    p.check_seq(400);
    store_checked(&mut p, 353, 361, 353);
    store_checked(&mut p, 347, 352, 347);
    assert_eq!(p.load(346), Some(346));
    for i in 347..=352 {
        assert_eq!(p.load(i), Some(347));
    }
    for i in 353..=361 {
        assert_eq!(p.load(i), Some(353));
    }
    assert_eq!(p.load(362), Some(362));
    assert!(p.tree.height() > 0);
    p.check("seq 400, 353..=361, 347..=352");
    p.destroy();

    p.check_seq(400);
    punch_checked(&mut p, 352, 364);
    store_checked(&mut p, 351, 363, 352);
    assert_eq!(p.load(350), Some(350));
    assert_eq!(p.load(351), Some(352));
    for i in 352..=363 {
        assert_eq!(p.load(i), Some(352));
    }
    assert_eq!(p.load(364), None);
    assert_eq!(p.load(365), Some(365));
    assert!(p.tree.height() > 0);
    p.check("seq 400, punch 352..=364, 351..=363");
    p.destroy();

    p.check_seq(400);
    punch_checked(&mut p, 352, 364);
    store_checked(&mut p, 351, 364, 352);
    assert_eq!(p.load(350), Some(350));
    assert_eq!(p.load(351), Some(352));
    for i in 352..=364 {
        assert_eq!(p.load(i), Some(352));
    }
    assert_eq!(p.load(365), Some(365));
    assert!(p.tree.height() > 0);
    p.check("seq 400, punch 352..=364, 351..=364");
    p.destroy();

    p.check_seq(400);
    store_checked(&mut p, 362, 367, 362);
    store_checked(&mut p, 353, 361, 353);
    assert!(p.tree.height() > 0);
    p.check("seq 400, 362..=367, 353..=361");
    p.destroy();

    // Overlapping 5-wide stores, then stores that split / overwrite starts and ends.
    for i in 0..=500 {
        store_checked(&mut p, i * 5, (i + 1) * 5, i * 5);
    }
    store_checked(&mut p, 2400, 2400, 2400);
    store_checked(&mut p, 2411, 2411, 2411);
    store_checked(&mut p, 2412, 2412, 2412);
    store_checked(&mut p, 2396, 2400, 4052020);
    store_checked(&mut p, 2402, 2402, 2402);
    p.check("5-wide stores, part 1");
    p.destroy();

    for i in 0..=500 {
        store_checked(&mut p, i * 5, (i + 1) * 5, i * 5);
    }
    store_checked(&mut p, 2422, 2422, 2422);
    store_checked(&mut p, 2424, 2424, 2424);
    store_checked(&mut p, 2425, 2425, 2);
    punch_checked(&mut p, 2460, 2470);
    store_checked(&mut p, 2435, 2460, 2435);
    store_checked(&mut p, 2461, 2470, 2461);
    assert!(p.tree.height() > 0);
    p.check("5-wide stores, part 2");
    p.destroy();

    // Check in-place modifications (alloc tree).
    let mut p = Pair::new_alloc();
    let mut val2 = 0;
    let mut val;
    for i in 0..=500 {
        val = i * 5 + 1;
        val2 = val + 4;
        store_checked(&mut p, val, val2, val);
    }
    // Append to the last range without touching any boundaries.
    for _ in 0..10 {
        val = val2 + 5;
        val2 = val + 4;
        store_checked(&mut p, val, val2, val);
    }
    // Append to the end of last range.
    val = val2;
    for _ in 0..10 {
        val += 5;
        p.store(val, usize::MAX, val);
    }
    // Overwriting the range and over a part of the next range.
    for i in (10..30).step_by(2) {
        val = i * 5 + 1;
        val2 = val + 5;
        store_checked(&mut p, val, val2, val);
    }
    // Overwriting a part of the range and over the next range.
    for i in (50..70).step_by(2) {
        val2 = i * 5;
        val = val2 - 5;
        store_checked(&mut p, val, val2, val);
    }
    // Expand the range, only partially overwriting the previous and next ranges (the
    // kernel repeats this in RCU mode; ours is always RCU-safe).
    for i in (100..130).step_by(3).chain((150..180).step_by(3)) {
        val = i * 5 - 5;
        val2 = i * 5 + 1;
        store_checked(&mut p, val, val2, val);
    }
    assert!(p.tree.height() > 0);
    p.check("in-place modifications");

    // Test rebalance gaps.
    let mut p = Pair::new_alloc();
    for i in 0..=50 {
        store_checked(&mut p, i * 10, (i + 1) * 10, i * 10);
    }
    store_checked(&mut p, 161, 161, 161);
    store_checked(&mut p, 162, 162, 162);
    store_checked(&mut p, 163, 163, 163);
    punch_checked(&mut p, 240, 249);
    for i in [200, 210, 220, 230] {
        assert_eq!(p.erase(i), Some(i));
    }
    assert!(p.tree.height() > 0);
    p.check("rebalance gaps");

    let mut p = Pair::new_alloc();
    for i in 0..=500 {
        store_checked(&mut p, i * 10, (i + 1) * 10, i * 10);
    }
    store_checked(&mut p, 4600, 4959, 1);
    assert!(p.tree.height() > 0);
    p.check("4600..=4959");

    let mut p = Pair::new_alloc();
    for i in 0..=500 {
        store_checked(&mut p, i * 10, (i + 1) * 10, i * 10);
    }
    store_checked(&mut p, 4811, 4811, 4811);
    store_checked(&mut p, 4812, 4812, 4812);
    store_checked(&mut p, 4861, 4861, 4861);
    store_checked(&mut p, 4862, 4862, 4862);
    punch_checked(&mut p, 4842, 4849);
    assert!(p.tree.height() > 0);
    p.check("punch 4842..=4849");
}

/// The part of `check_ranges` that builds 3-child splits all the way up an allocation tree,
/// with the kernel's contents checks. The kernel's height expectations for these trees are
/// asserted separately in `check_ranges_heights`.
fn triple_split_trees(check_heights: bool) {
    let mut p = Pair::new_alloc();
    p.validate_each = false; // validated at the checkpoints below (O(n) each)
    for i in 0..=1300 {
        store_checked(&mut p, i * 10, (i + 1) * 10, i * 10);
        if check_heights {
            assert!(
                p.tree.height() < 4,
                "kernel: height < 4 while storing {i} (got {})",
                p.tree.height()
            );
        }
    }
    p.check("1301 ranges");
    // Cause a 3 child split all the way up the tree.
    for i in (5..215).step_by(10) {
        punch_checked(&mut p, 11450 + i, 11450 + i + 1);
    }
    for i in (5..65).step_by(10) {
        punch_checked(&mut p, 11770 + i, 11770 + i + 1);
    }
    if check_heights {
        assert!(
            p.tree.height() < 4,
            "kernel: height < 4 before the triple split (got {})",
            p.tree.height()
        );
    }
    for i in (5..45).step_by(10) {
        punch_checked(&mut p, 11700 + i, 11700 + i + 1);
    }
    if check_heights {
        assert!(
            p.tree.height() >= 4,
            "kernel: height >= 4 after the triple split (got {})",
            p.tree.height()
        );
    }
    p.check("3 child split");

    let mut p = Pair::new_alloc();
    p.validate_each = false;
    for i in 0..=1200 {
        store_checked(&mut p, i * 10, (i + 1) * 10, i * 10);
        if check_heights {
            assert!(
                p.tree.height() < 4,
                "kernel: height < 4 while storing {i} (got {})",
                p.tree.height()
            );
        }
    }
    // Fill parents and leaves before split.
    for i in (5..455).step_by(10) {
        punch_checked(&mut p, 7800 + i, 7800 + i + 1);
    }
    for i in 1..16 {
        store_checked(&mut p, 8185 + i, 8185 + i + 1, 8185 + i);
    }
    if check_heights {
        assert!(
            p.tree.height() < 4,
            "kernel: height < 4 before the triple split (got {})",
            p.tree.height()
        );
    }
    p.check("before triple split across levels");
    // Triple split across multiple levels.
    store_checked(&mut p, 8184, 8184, 8184);
    if check_heights {
        assert_eq!(
            p.tree.height(),
            4,
            "kernel: height 4 after the triple split"
        );
    }
    p.check("triple split across levels");
}

#[test]
fn check_ranges_triple_splits() {
    triple_split_trees(false);
}

/// The kernel's height expectations in `check_ranges` (64-bit): 1301 ascending ranges fit
/// in an allocation tree of height 3, and the crafted stores raise it to exactly 4. A
/// failure here means a different node fill policy (looser packing), not wrong contents.
#[test]
fn check_ranges_heights() {
    triple_split_trees(true);
}

/// Ports `check_store_null` (lib/test_maple_tree.c): storing NULL (our `punch`) over
/// parts of small trees. The kernel's `mtree_empty()` is our `is_empty()`, and an empty
/// tree has height 0.
#[test]
fn check_store_null() {
    let empty = |p: &Pair| {
        p.check("store_null");
        assert!(p.tree.is_empty());
        assert_eq!(p.tree.height(), 0, "an empty tree has no nodes");
    };
    // NULL over [0, ULONG_MAX] of an empty tree: still empty.
    let mut p = Pair::new_alloc();
    p.tree.lock().punch(..).unwrap();
    assert!(p.o.punch(..));
    empty(&p);

    // NULL over any range of an empty tree: still empty.
    let mut p = Pair::new_alloc();
    p.punch(3, 10);
    empty(&p);

    // NULL over [0, ULONG_MAX] of a single-entry tree: empty.
    let mut p = Pair::new_alloc();
    p.store(0, 0, 1);
    p.punch(0, usize::MAX);
    empty(&p);

    // NULL over [0, n] of a single-entry tree: empty.
    let mut p = Pair::new_alloc();
    p.store(0, 0, 1);
    p.punch(0, 5);
    empty(&p);

    // NULL over [m, n], m > 0, of a single-entry tree: still that entry.
    let mut p = Pair::new_alloc();
    p.store(0, 0, 1);
    p.punch(2, 5);
    assert!(!p.tree.is_empty());
    assert_eq!(p.walk(0), (0..=0, Some(1)));
    p.check("single entry survives");

    // NULL over [0, ULONG_MAX] of a tree with a node: empty.
    let mut p = Pair::new_alloc();
    p.store(1, 3, 1);
    assert!(p.tree.height() > 0);
    p.punch(0, usize::MAX);
    empty(&p);
}

/// Ports `check_root_expand` (lib/test_maple_tree.c): the first entries of a tree and the
/// ranges `mas_walk` reports around them. The kernel also stores pointers with low tag
/// bits set; our equivalent is the same scenario with boxed entries.
#[test]
fn check_root_expand() {
    let mut p = Pair::new_alloc();
    assert_eq!(p.walk(3), (0..=usize::MAX, None));
    p.store(1, 1, 7);
    assert_eq!(p.walk(0), (0..=0, None));
    assert_eq!(p.walk(1), (1..=1, Some(7)));
    assert_eq!(p.walk(2), (2..=usize::MAX, None));

    let mut p = Pair::new();
    p.store(0, 0, 7);
    assert_eq!(p.walk(5), (1..=usize::MAX, None));
    // mas_set_range(0, 100) + mas_walk: the walk is at index 0 and reports last = 0.
    assert_eq!(p.walk(0), (0..=0, Some(7)));
    assert_eq!(p.find(0, 100), Some((0..=0, 7)));

    for tag in [1u8, 2] {
        let t: MapleTree<Box<u8>> = MapleTree::new();
        t.lock().store_range(0..=0, Box::new(tag)).unwrap();
        t.validate().unwrap();
        let r = t.read();
        // mas_next from 0: nothing after, the cursor sits on 1..=MAX.
        assert!(r.find(1..).is_none());
        assert_eq!(r.walk(1).0, 1..=usize::MAX);
        assert!(r.walk(1).1.is_none());
        // mas_prev from 1: the entry at 0.
        let (span, v) = r.find_rev(..=0).expect("entry at 0");
        assert_eq!((span, *v), (0..=0, tag));
    }
}

/// `check_lb_not_empty`: insert powers-of-two-halving indices from 4e9 down to 4096 and
/// check every inserted index and its neighbours after each insert.
fn lb_not_empty(p: &mut Pair) {
    let huge: usize = 4000 * 1000 * 1000;
    let mut i = huge;
    while i > 4096 {
        assert!(p.insert(i, i, i));
        let mut j = huge;
        while j >= i {
            assert_eq!(p.load(j - 1), None);
            assert_eq!(p.load(j), Some(j));
            assert_eq!(p.load(j + 1), None);
            j /= 2;
        }
        i /= 2;
    }
    p.check("lb_not_empty");
}

/// Ports `check_lower_bound_split`.
#[test]
fn check_lower_bound_split() {
    let mut p = Pair::new();
    assert!(p.tree.is_empty());
    lb_not_empty(&mut p);
}

/// Ports `check_upper_bound_split` (the kernel's inner check loop never runs; we check
/// what it meant to: every inserted index and its empty neighbours).
#[test]
fn check_upper_bound_split() {
    let mut p = Pair::new();
    let huge: usize = 4000 * 1000 * 1000;
    let mut i = 4096;
    while i < huge {
        assert!(p.insert(i, i, i));
        let mut j = 4096;
        while j <= i {
            assert_eq!(p.load(j - 1), None);
            assert_eq!(p.load(j), Some(j));
            assert_eq!(p.load(j + 1), None);
            j *= 2;
        }
        i *= 2;
    }
    p.check("upper bound split");
}

/// Ports `check_mid_split`.
#[test]
fn check_mid_split() {
    let mut p = Pair::new();
    let huge: usize = 8000 * 1000 * 1000;
    assert!(p.insert(huge, huge, huge));
    assert!(p.insert(0, 0, 0));
    lb_not_empty(&mut p);
}

/// Ports the insert/load sequences of `maple_tree_seed` (lib/test_maple_tree.c), including
/// the duplicate insert (-EEXIST) and inserting into a NULL hole.
#[test]
#[allow(clippy::needless_range_loop)] // indexes mirror the kernel's set[] loops
fn seed_inserts() {
    let set: [usize; 12] = [
        5015, 5014, 5017, 25, 1000, 1001, 1002, 1003, 1005, 0, 5003, 5002,
    ];
    let (a, b) = (1usize, 2usize); // the kernel's `&tree` and `ptr`
    let mut p = Pair::new();
    assert_eq!(p.load(set[0]), None);
    assert!(p.insert(set[9], set[9], a));
    assert_eq!(p.load(set[9]), Some(a));
    assert_eq!(p.load(set[0]), None);
    assert!(p.insert(set[10], set[10], b));
    assert_eq!(p.load(set[9]), Some(a));
    assert_eq!(p.load(set[11]), None);
    assert_eq!(p.load(set[10]), Some(b));
    p.check("seed 1");

    let mut p = Pair::new();
    assert!(p.insert(set[0], set[0], a));
    assert!(!p.insert(set[0], set[0], a), "duplicate insert");
    assert_eq!(p.load(set[0]), Some(a));
    assert_eq!(p.load(set[1]), None);
    assert!(p.insert(set[1], set[1], b));
    assert_eq!(p.load(set[1]), Some(b));
    assert_eq!(p.load(set[0]), Some(a));
    assert!(p.insert(set[6], set[6], b));
    assert!(p.insert(set[7], set[7], a));
    for (i, v) in [(0, a), (1, b), (6, b), (7, a)] {
        assert_eq!(p.load(set[i]), Some(v));
    }
    p.check("seed 2");

    // Inserting into a NULL hole.
    let mut p = Pair::new();
    assert!(p.insert(set[5], set[5], b));
    assert!(p.insert(set[7], set[7], a));
    assert!(p.insert(set[6], set[6], b));
    for (i, v) in [(5, b), (6, b), (7, a)] {
        assert_eq!(p.load(set[i]), Some(v));
    }
    p.check("seed 3");

    let mut p = Pair::new();
    let want = |i: usize| if i % 2 == 0 { b } else { a };
    for k in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
        assert!(p.insert(set[k], set[k], want(k)));
        for j in 0..=k {
            assert_eq!(p.load(set[j]), Some(want(j)), "after inserting set[{k}]");
        }
    }
    p.check("seed 4");

    p.destroy();
    p.check_seq(16);
    p.destroy();
    p.check_seq(1000);
}

/// Ports `check_rev_seq(mt, 1000)`: singletons inserted from the top down into an
/// allocation tree.
#[test]
fn check_rev_seq() {
    let mut p = Pair::new_alloc();
    let max = 1000;
    for i in (1..=max).rev() {
        assert!(p.insert(i, i, i));
        if i % 97 == 0 || i < 20 {
            for j in i..=max {
                assert_eq!(p.load(j), Some(j));
            }
        }
        assert_eq!(p.load(i - 1), None);
        assert!(p.tree.height() > 0);
    }
    assert_eq!(p.load(max + 1), None);
    p.check("rev seq");
}

/// Ports `check_erase_testset` (tools/testing/radix-tree/maple.c): inserts and erases that
/// exercise append, coalescing of neighbouring nodes and a shrinking tree. The kernel's
/// two pointers `ptr` and `mt` become two values; `erase` must hand back the right one.
#[test]
#[allow(clippy::needless_range_loop)] // indexes mirror the kernel's set[] loops
fn check_erase_testset() {
    let set: [usize; 60] = [
        5015, 5014, 5017, 25, 1000, 1001, 1002, 1003, 1005, 0, 6003, 6002, 6008, 6012, 6015, 7003,
        7002, 7008, 7012, 7015, 8003, 8002, 8008, 8012, 8015, 9003, 9002, 9008, 9012, 9015, 10003,
        10002, 10008, 10012, 10015, 11003, 11002, 11008, 11012, 11015, 12003, 12002, 12008, 12012,
        12015, 13003, 13002, 13008, 13012, 13015, 14003, 14002, 14008, 14012, 14015, 15003, 15002,
        15008, 15012, 15015,
    ];
    let entry = [0xa, 0xb];
    let mut p = Pair::new();
    let ins =
        |p: &mut Pair, i: usize| assert!(p.insert(set[i], set[i], entry[i % 2]), "insert set[{i}]");
    let ld = |p: &Pair, i: usize| assert_eq!(p.load(set[i]), Some(entry[i % 2]), "load set[{i}]");
    let er =
        |p: &mut Pair, i: usize| assert_eq!(p.erase(set[i]), Some(entry[i % 2]), "erase set[{i}]");
    let none = |p: &Pair, i: usize| assert_eq!(p.load(i), None, "load {i}");

    for i in 0..4 {
        ins(&mut p, i);
    }
    for i in 0..4 {
        ld(&p, i);
    }
    er(&mut p, 1);
    ld(&p, 0);
    none(&p, set[1]);
    for i in 2..4 {
        ld(&p, i);
    }
    er(&mut p, 2);
    ld(&p, 0);
    none(&p, set[1]);
    none(&p, set[2]);
    ins(&mut p, 1);
    ins(&mut p, 2);
    for i in 0..4 {
        ld(&p, i);
    }
    // Erase and load without an allocation.
    ld(&p, 3);
    er(&mut p, 1);
    ld(&p, 0);
    none(&p, set[1]);
    for i in 2..4 {
        ld(&p, i);
    }
    ins(&mut p, 1);
    ld(&p, 0);
    none(&p, 5016);
    ld(&p, 1);
    none(&p, 5013);
    ld(&p, 2);
    none(&p, 5018);
    ld(&p, 3);

    er(&mut p, 2); // erase 5017 to check append
    ld(&p, 0);
    none(&p, 5016);
    ld(&p, 1);
    none(&p, 5013);
    none(&p, set[2]);
    none(&p, 5018);
    ld(&p, 3);

    ins(&mut p, 2);
    ld(&p, 0);
    none(&p, 5016);
    ld(&p, 1);
    none(&p, 5013);
    ld(&p, 2);
    none(&p, 5018);
    ld(&p, 3);

    er(&mut p, 2); // erase 5017 to check append
    ld(&p, 0);
    none(&p, 5016);
    none(&p, set[2]);
    er(&mut p, 0); // erase 5015 to check append
    none(&p, set[0]);
    none(&p, 5016);
    ins(&mut p, 4); // 1000 < should not split
    none(&p, set[0]);
    none(&p, 5016);
    ld(&p, 1);
    none(&p, 5013);
    none(&p, set[2]);
    none(&p, 5018);
    ld(&p, 4);
    none(&p, 999);
    none(&p, 1001);
    ld(&p, 4);
    // The kernel checks the root is still a single leaf: height 1.
    assert_eq!(p.tree.height(), 1, "should not have split");
    p.check("before coalesce");

    // Coalesce testing.
    ins(&mut p, 0);
    ins(&mut p, 2);
    for i in 5..25 {
        ins(&mut p, i);
        for j in (0..=i).rev() {
            ld(&p, j);
        }
    }
    let check_all = |p: &Pair, gone: &dyn Fn(usize) -> bool| {
        for i in 0..25 {
            if gone(i) {
                none(p, set[i]);
            } else {
                ld(p, i);
            }
        }
    };
    er(&mut p, 14); // 6015
    check_all(&p, &|i| i == 14);
    er(&mut p, 16); // 7002
    check_all(&p, &|i| i == 16 || i == 14);
    er(&mut p, 13); // 6012
    check_all(&p, &|i| i == 16 || i == 14 || i == 13);
    er(&mut p, 15); // 7003
    check_all(&p, &|i| (13..=16).contains(&i));
    er(&mut p, 17); // 7008 *should* cause coalesce
    check_all(&p, &|i| (13..=17).contains(&i));
    er(&mut p, 18); // 7012
    check_all(&p, &|i| (13..=18).contains(&i));
    er(&mut p, 19); // 7015
    check_all(&p, &|i| (13..=19).contains(&i));
    er(&mut p, 20); // 8003
    check_all(&p, &|i| (13..=20).contains(&i));
    er(&mut p, 21); // 8002
    check_all(&p, &|i| (13..=21).contains(&i));
    er(&mut p, 22); // 8008
    check_all(&p, &|i| (13..=22).contains(&i));
    for i in 23..25 {
        er(&mut p, i);
    }
    check_all(&p, &|i| (13..=25).contains(&i));
    p.check("after coalesce");

    // Shrinking tree test.
    for i in 13..set.len() {
        ins(&mut p, i);
    }
    for i in 18..set.len() {
        er(&mut p, i);
        for j in 0..set.len() {
            if j < 18 || j > i {
                ld(&p, j);
            } else {
                none(&p, set[j]);
            }
        }
    }
    for i in 0..18 {
        er(&mut p, i);
        for j in 0..set.len() {
            if j < 18 && j > i {
                ld(&p, j);
            } else {
                none(&p, set[j]);
            }
        }
    }
    ins(&mut p, 8);
    ins(&mut p, 9);
    er(&mut p, 8);
    p.check("shrinking tree");
}

/// The tree `check_spanning_write` starts from: `i*10 ..= i*10+5` for `i` in `from..=5000`,
/// all holding the same entry (the kernel stores `&i` everywhere).
fn spanning_base(alloc: bool, from: usize, max: usize) -> Pair {
    let mut p = if alloc {
        Pair::new_alloc()
    } else {
        Pair::new()
    };
    p.validate_each = false;
    for i in from..=max {
        p.store(i * 10, i * 10 + 5, 1);
    }
    p.validate_each = true;
    p.check("spanning base");
    p
}

/// Ports `check_spanning_write` (tools/testing/radix-tree/maple.c): NULL stores that span
/// nodes and levels and need sibling/cousin rebalancing on either side.
#[test]
fn check_spanning_write() {
    let max = 5000;
    let mut p = spanning_base(false, 0, max);
    p.punch(1200, 2380);
    assert_eq!(p.walk(1205).1, None);
    p.check("1200..=2380");

    // 9..=50006 covers everything: the NULL widens to the whole tree.
    let mut p = spanning_base(false, 1, max);
    p.punch(9, 50006);
    assert_eq!(p.walk(1205), (0..=usize::MAX, None));
    assert!(p.tree.is_empty());
    p.check("9..=50006");

    let cases: [(bool, usize, usize, usize); 8] = [
        (true, 0, 12900, 1205), // right cousin rebalance, spans more than 2 levels
        (false, 0, 300, 15),    // non-alloc tree spanning store
        (true, 0, 12865, 15),   // right sibling rebalance
        (true, 90, 13665, 95),  // left sibling rebalance
        (true, 46805, 49995, 46815), // left cousin rebalance
        (true, 32395, 49995, 46815), // left cousin rebalance all the way to the root
        (true, 38875, 43190, 38900), // right cousin rebalance all the way to the root
        (true, 43200, 49999, 43200), // many levels of no siblings
    ];
    for (alloc, first, last, probe) in cases {
        let mut p = spanning_base(alloc, 0, max);
        p.punch(first, last);
        assert_eq!(
            p.walk(probe).1,
            None,
            "walk({probe}) after punch {first}..={last}"
        );
        p.check(&format!("punch {first}..={last}"));
    }

    // Spanning store ending at a full node (depth 2). The kernel also checks that the
    // parent is full, which our API cannot see.
    let mut p = spanning_base(true, 0, max);
    for i in 47606..=47609 {
        p.store(i, i, 2);
    }
    p.punch(11516, 48940);
    p.check("ending at a full node");

    let mut p = spanning_base(true, 0, 100);
    p.punch(76, 875);
    p.check("76..=875");
}

/// Ports `check_spanning_relatives` (lib/test_maple_tree.c).
#[test]
fn check_spanning_relatives() {
    let mut p = Pair::new_alloc();
    p.validate_each = false;
    for i in 0..=1000 {
        p.store(i * 10, i * 10 + 5, i);
    }
    p.validate_each = true;
    p.punch(9365, 9955);
    p.check("spanning relatives");
}

/// Ports `check_node_overwrite` (lib/test_maple_tree.c).
#[test]
fn check_node_overwrite() {
    let mut p = Pair::new_alloc();
    p.validate_each = false;
    for i in 0..4000 {
        p.store(i * 100, i * 100 + 50, i * 100);
    }
    p.validate_each = true;
    p.punch(319951, 367950);
    p.check("node overwrite");
}

/// Ports `check_bnode_min_spanning` (lib/test_maple_tree.c): descending stores, then a
/// NULL store spanning many of them.
#[test]
fn check_bnode_min_spanning() {
    let mut p = Pair::new_alloc();
    for i in (0..=50).rev() {
        p.store(i * 10, i * 10 + 9, 1);
    }
    p.punch(240, 509);
    p.check("bnode min spanning");
}

/// Ports the first sequences of `check_fuzzer` (lib/test_maple_tree.c): operation
/// sequences found by a fuzzer that once broke spanning rebalances.
#[test]
fn check_fuzzer_first_cases() {
    // 1. A spanning rebalance of a single root node.
    let mut p = Pair::new();
    for (i, v) in [
        (88, 0xb1),
        (84, 0xa9),
        (2, 0x5),
        (4, 0x9),
        (14, 0x1d),
        (7, 0xf),
        (12, 0x19),
        (18, 0x25),
    ] {
        p.insert(i, i, v);
    }
    p.store(8, 18, 0x11);
    p.check("fuzzer 1");

    // 2. A spanning rebalance of two nodes in root.
    let mut p = Pair::new();
    p.store(87, 87, 0xaf);
    p.store(0, 0, 0x1);
    p.load(4);
    p.insert(4, 4, 0x9);
    p.store(8, 8, 0x11);
    p.store(44, 44, 0x59);
    p.store(68, 68, 0x89);
    p.store(2, 2, 0x5);
    p.insert(43, 43, 0x57);
    p.insert(24, 24, 0x31);
    p.insert(844, 844, 0x699);
    p.store(84, 84, 0xa9);
    p.store(4, 4, 0x9);
    p.erase(4);
    p.load(5);
    p.erase(0);
    p.check("fuzzer 2");

    // 3. A node overflow on copy.
    let mut p = Pair::new();
    p.store(0, usize::MAX, 0x1);
    p.store(4, 4, 0x9);
    p.erase(5);
    p.erase(0);
    p.erase(4);
    p.store(5, 5, 0xb);
    p.erase(5);
    p.store(5, 5, 0xb);
    p.erase(5);
    p.erase(4);
    p.store(4, 4, 0x9);
    p.store(444, 444, 0x379);
    p.store(0, 0, 0x1);
    p.load(0);
    p.store(5, 5, 0xb);
    p.erase(0);
    p.check("fuzzer 3");

    // 4. A spanning store writing the wrong pivot in the last slot.
    let mut p = Pair::new();
    p.insert(261, 261, 0x20b);
    p.store(516, 516, 0x409);
    p.store(6, 6, 0xd);
    p.insert(5, 5, 0xb);
    p.insert(1256, 1256, 0x9d1);
    p.store(4, 4, 0x9);
    p.erase(1);
    p.store(56, 56, 0x71);
    p.insert(1, 1, 0x3);
    p.store(24, 24, 0x31);
    p.erase(1);
    p.insert(2263, 2263, 0x11af);
    p.insert(446, 446, 0x37d);
    p.store(6, 45, 0xd);
    p.store(3, 446, 0x7);
    p.check("fuzzer 4");

    // 5. Extending a NULL may overflow slots.
    let mut p = Pair::new();
    p.store(48, 48, 0x61);
    p.store(3, 3, 0x7);
    p.load(0);
    p.store(88, 88, 0xb1);
    p.store(81, 81, 0xa3);
    for (i, v) in [(0, 0x1), (8, 0x11), (4, 0x9), (2480, 0x1361)] {
        p.insert(i, i, v);
    }
    p.insert(usize::MAX, usize::MAX, Value::MAX);
    p.erase(usize::MAX);
    p.check("fuzzer 5");
}

/// `insert_range` must refuse every empty or inverted range form with `InvalidRange`
/// (API contract), and the kernel's inverted `mtree_insert_range(mt, 26, 1, ..)` is such a
/// case.
#[test]
fn invalid_ranges_are_errors() {
    let t: MapleTree<Value> = MapleTree::new();
    let w = t.lock();
    #[allow(clippy::reversed_empty_ranges)]
    {
        assert_eq!(
            w.insert_range(26..=1, xv(0x35)).unwrap_err().kind,
            InsertErrorKind::InvalidRange
        );
        assert_eq!(
            w.insert_range(7..7, xv(1)).unwrap_err().kind,
            InsertErrorKind::InvalidRange
        );
        assert!(w.store_range(5..=0, xv(1)).is_err());
        assert!(w.store_range(0..0, xv(1)).is_err());
        assert!(w.punch(9..=8).is_err());
        assert!(w.store_range(..0, xv(1)).is_err());
        assert_eq!(
            w.store_range(5..=0, xv(3)).unwrap_err().value,
            xv(3),
            "the value is handed back"
        );
    }
    drop(w);
    assert!(t.is_empty());
    t.validate().unwrap();
}

/// API contract odds and ends: the error types are real errors, `Value` rejects what does not
/// fit, and a value handed back by a failed write is the one passed in.
#[test]
fn error_types_and_value_limits() {
    fn is_error<T: std::error::Error>() {}
    is_error::<maple::InvalidRange>();
    is_error::<maple::GapError>();
    is_error::<maple::StoreError<Value>>();
    is_error::<maple::InsertError<Value>>();
    is_error::<maple::AllocError<Box<u8>>>();
    is_error::<maple::ValidateError>();
    assert!(Value::new(Value::MAX).is_some());
    assert!(Value::new(Value::MAX + 1).is_none());
    assert!(Value::new(usize::MAX).is_none());
    assert_eq!(Value::new(0).map(Value::get), Some(0));

    let t: MapleTree<Box<u32>> = MapleTree::new();
    let w = t.lock();
    w.store_range(0..=9, Box::new(1)).unwrap();
    let e = w.insert_range(5..=20, Box::new(77)).unwrap_err();
    assert_eq!((*e.value, e.kind), (77, InsertErrorKind::Occupied));
    assert!(!format!("{e}").is_empty());
    drop(w);
    assert_eq!(t.len(), 1);
    assert!(!format!("{t:?}").is_empty());
}

/// `check_dup_gaps`: `i*10 ..= (i+1)*10 - gap` for `i` from 0 (or 1) to `nr_entries`, then a
/// duplicate of the tree (our `Clone` is the kernel's `__mt_dup`, node by node) that must
/// validate, hold the same ranges and have the same shape.
fn dup_gaps(alloc: bool, nr_entries: usize, zero_start: bool, gap: usize) {
    let t: MapleTree<Value> = if alloc {
        MapleTree::new_alloc()
    } else {
        MapleTree::new()
    };
    {
        let w = t.lock();
        for i in usize::from(!zero_start)..=nr_entries {
            w.store_range(i * 10..=(i + 1) * 10 - gap, xv(i)).unwrap();
        }
    }
    let copy = t.clone();
    copy.validate()
        .unwrap_or_else(|e| panic!("dup of {nr_entries} (gap {gap}): {e}"));
    assert_eq!(copy.height(), t.height());
    assert_eq!(copy.len(), t.len());
    assert_eq!(copy.is_alloc(), alloc);
    let a: Vec<_> = t.read().iter().map(|(r, v)| (r, v.get())).collect();
    let b: Vec<_> = copy.read().iter().map(|(r, v)| (r, v.get())).collect();
    assert_eq!(a, b, "dup of {nr_entries} (gap {gap}) differs");
    // The duplicate is independent and fully writable.
    copy.lock().punch(15..=nr_entries * 5).unwrap();
    copy.validate().unwrap();
    assert_eq!(t.len(), a.len());
}

/// Ports `check_dup` (lib/test_maple_tree.c). The kernel duplicates every size in its
/// ranges; by default every 37th size is taken (all of them with `MAPLE_STRESS` >= 37).
#[test]
fn check_dup() {
    let step = (37 / common::stress() as usize).max(1);
    let big_start = 100010;
    // The unreasonably large trees cost ~1 s each in debug builds: one by default.
    let big = if common::stress() > 1 { 10 } else { 0 };
    // With a value at zero.
    for i in (10..1000).step_by(step) {
        dup_gaps(true, i, true, 5);
    }
    // With a value at zero, no gap.
    for i in (1000..2000).step_by(step) {
        dup_gaps(true, i, true, 0);
    }
    // With a value at zero and unreasonably large.
    for i in (big_start..big_start + 10).step_by(step.min(10)) {
        dup_gaps(true, i, true, 5);
    }
    // Small to medium size not starting at zero.
    for i in (200..1000).step_by(step) {
        dup_gaps(true, i, false, 5);
    }
    // Unreasonably large not starting at zero.
    for i in (big_start..big_start + big).step_by(step.min(10)) {
        dup_gaps(true, i, false, 5);
    }
    // Non-allocation tree not starting at zero.
    for i in (1500..3000).step_by(step) {
        dup_gaps(false, i, false, 5);
    }
    // Non-allocation tree starting at zero.
    for i in (200..1000).step_by(step) {
        dup_gaps(false, i, true, 5);
    }
    // Unreasonably large.
    for i in (big_start + 5..big_start + 5 + big / 2).step_by(step.min(5)) {
        dup_gaps(false, i, true, 5);
    }
}

/// Ports `check_forking` / `check_mas_store_gfp`: copying a 135-entry tree into a new
/// allocation tree by iterating and storing (the pre-`__mt_dup` fork), and by `Clone`.
#[test]
fn check_forking() {
    let t: MapleTree<Value> = MapleTree::new_alloc();
    for i in 0..=134 {
        t.lock().store_range(i * 10..=i * 10 + 5, xv(i)).unwrap();
    }
    let new: MapleTree<Value> = MapleTree::new_alloc();
    {
        let r = t.read();
        let w = new.lock();
        for (span, v) in r.iter() {
            w.store_range(span, v).unwrap();
        }
    }
    new.validate().unwrap();
    let a: Vec<_> = t.read().iter().map(|(r, v)| (r, v.get())).collect();
    let b: Vec<_> = new.read().iter().map(|(r, v)| (r, v.get())).collect();
    assert_eq!(a, b);
    let c = t.clone();
    c.validate().unwrap();
    assert_eq!(c.read().iter().count(), 135);
}
