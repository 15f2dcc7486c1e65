//! Tree heights against the kernel's: after spanning stores, erases and random writes the
//! tree must grow and shrink exactly where the kernel's `lib/maple_tree.c` (Linux 6.12)
//! does, on plain and allocation trees.
//!
//! Each scenario is a deterministic sequence of operations; `h` marks a point where the
//! height is compared. The expected heights were recorded by running the very same
//! sequences through the kernel's own code (a small user-space driver built like
//! `/work/shared/kernel-baseline/`'s, reading the lines [`print_scripts`] writes:
//! `new a|p 1` (allocation or plain tree, RCU mode), `store FIRST LAST VALUE`,
//! `punch FIRST LAST` (store NULL), `erase INDEX`, `h` (print `mt_height`)). They are stored
//! run-length encoded: `(height, how many consecutive checks)`.
//!
//! To regenerate: `MAPLE_HEIGHT_SCRIPTS=dir cargo test -p maple-tree --test kernel_heights --
//! --ignored print_scripts`, run each `dir/NAME.txt` through the driver, and encode its
//! output with [`rle`].
//!
//! What made the heights match: a write that leaves a non-root node with at most 6 slots
//! (4 for arange nodes) rebalances it with a neighbour, the right-most node of a level
//! included, as the kernel's `mas_wr_store_type`/`mas_rebalance` do.

mod common;

use common::SplitMix64;
use maple::{MapleTree, Value};

/// One step of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Store(usize, usize, usize),
    Punch(usize, usize),
    Erase(usize),
    /// Compare the height here.
    Height,
}

/// A scenario: on an allocation tree or a plain one, its operations.
struct Scenario {
    name: &'static str,
    alloc: bool,
    ops: Vec<Op>,
}

/// `i*10 ..= i*10+5` for `i` in `from..=to` (the kernel tests' favourite tree).
fn base(ops: &mut Vec<Op>, from: usize, to: usize) {
    for i in from..=to {
        ops.push(Op::Store(i * 10, i * 10 + 5, i + 1));
    }
    ops.push(Op::Height);
}

/// The spanning stores of `check_spanning_write` (tools/testing/radix-tree/maple.c), each
/// on a fresh tree of 5001 ranges.
fn spanning(alloc: bool) -> Scenario {
    let cases: [(usize, usize); 9] = [
        (0, 12900),
        (0, 300),
        (0, 12865),
        (90, 13665),
        (46805, 49995),
        (32395, 49995),
        (38875, 43190),
        (43200, 49999),
        (1200, 2380),
    ];
    let scripts = cases.iter().map(|&(a, b)| {
        let mut ops = Vec::new();
        base(&mut ops, 0, 5000);
        ops.push(Op::Punch(a, b));
        ops.push(Op::Height);
        ops
    });
    Scenario {
        name: if alloc { "spanning-a" } else { "spanning-p" },
        alloc,
        // One tree per case: scenarios are run tree by tree (see `trees`).
        ops: scripts.flatten().collect(),
    }
}

/// 1000 ranges, then every one erased in the given order, height after each erase.
fn erase(order: &'static str, alloc: bool) -> Scenario {
    let n = 1000;
    let mut ops = Vec::new();
    base(&mut ops, 0, n - 1);
    let mut idx: Vec<usize> = (0..n).collect();
    match order {
        "desc" => idx.reverse(),
        "rand" => {
            let mut rng = SplitMix64(7);
            for i in (1..n).rev() {
                idx.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        _ => {}
    }
    for i in idx {
        ops.push(Op::Erase(i * 10 + 1));
        ops.push(Op::Height);
    }
    let name = match (order, alloc) {
        ("asc", false) => "erase-asc-p",
        ("asc", true) => "erase-asc-a",
        ("desc", false) => "erase-desc-p",
        ("desc", true) => "erase-desc-a",
        (_, false) => "erase-rand-p",
        (_, true) => "erase-rand-a",
    };
    Scenario { name, alloc, ops }
}

/// 3000 random stores (60%), punches (20%) and erases (20%) over `0..span`, height after
/// each.
fn random(seed: u64, alloc: bool, span: usize) -> Scenario {
    let mut rng = SplitMix64(seed);
    let mut ops = Vec::new();
    for step in 0..3000 {
        let a = rng.below(span as u64) as usize;
        let len = match rng.below(4) {
            0 => 1,
            1 => 1 + rng.below(8) as usize,
            2 => 1 + rng.below(64) as usize,
            _ => 1 + rng.below(span as u64 / 4) as usize,
        };
        let op = rng.below(10);
        ops.push(if op < 6 {
            Op::Store(a, a + len - 1, step + 1)
        } else if op < 8 {
            Op::Punch(a, a + len - 1)
        } else {
            Op::Erase(a)
        });
        ops.push(Op::Height);
    }
    let name = match (seed, alloc) {
        (1, false) => "random-1-p",
        (2, true) => "random-2-a",
        (3, false) => "random-3-p",
        (4, true) => "random-4-a",
        _ => "random",
    };
    Scenario { name, alloc, ops }
}

/// The two trees of `check_ranges` (lib/test_maple_tree.c) whose heights the kernel test
/// asserts (`< 4` while building, `>= 4` / `== 4` after the "triple split" stores), with the
/// height compared after every step, on allocation trees (as there) and plain ones.
fn ranges(alloc: bool) -> Scenario {
    let mut ops = Vec::new();
    let h = |ops: &mut Vec<Op>, op| {
        ops.push(op);
        ops.push(Op::Height);
    };
    for i in 0..=1300 {
        h(&mut ops, Op::Store(i * 10, (i + 1) * 10, i * 10));
    }
    for i in (5..215).step_by(10) {
        h(&mut ops, Op::Punch(11450 + i, 11450 + i + 1));
    }
    for i in (5..65).step_by(10) {
        h(&mut ops, Op::Punch(11770 + i, 11770 + i + 1));
    }
    for i in (5..45).step_by(10) {
        h(&mut ops, Op::Punch(11700 + i, 11700 + i + 1));
    }
    // The second tree (a fresh one, see `trees`).
    for i in 0..=1200 {
        h(&mut ops, Op::Store(i * 10, (i + 1) * 10, i * 10 + 1));
    }
    for i in (5..455).step_by(10) {
        h(&mut ops, Op::Punch(7800 + i, 7800 + i + 1));
    }
    for i in 1..16 {
        h(&mut ops, Op::Store(8185 + i, 8185 + i + 1, 8185 + i));
    }
    h(&mut ops, Op::Store(8184, 8184, 8184));
    Scenario {
        name: if alloc { "ranges-a" } else { "ranges-p" },
        alloc,
        ops,
    }
}

fn scenarios() -> Vec<Scenario> {
    let mut v = vec![spanning(false), spanning(true), ranges(true), ranges(false)];
    for order in ["asc", "desc", "rand"] {
        for alloc in [false, true] {
            v.push(erase(order, alloc));
        }
    }
    v.push(random(1, false, 20_000));
    v.push(random(2, true, 20_000));
    v.push(random(3, false, 2_000));
    v.push(random(4, true, 2_000));
    v
}

/// The scenario's trees: `spanning` and `ranges` scenarios start a fresh tree at every
/// store at index 0 after the first operation, the others use one tree.
fn trees(s: &Scenario) -> Vec<&[Op]> {
    if !s.name.starts_with("spanning") && !s.name.starts_with("ranges") {
        return vec![&s.ops];
    }
    let mut out = Vec::new();
    let mut start = 0;
    for (i, op) in s.ops.iter().enumerate() {
        if i > start && matches!(op, Op::Store(0, ..)) {
            out.push(&s.ops[start..i]);
            start = i;
        }
    }
    out.push(&s.ops[start..]);
    out
}

/// Heights of the tree at every [`Op::Height`], with `validate()` after every operation.
/// (The trees of one scenario that start with the same operations go through the same
/// states there: that common prefix is validated on the first of them only.)
fn maple_heights(s: &Scenario) -> Vec<usize> {
    let mut heights = Vec::new();
    let trees = trees(s);
    for (k, ops) in trees.iter().enumerate() {
        let shared = if k == 0 {
            0
        } else {
            ops.iter()
                .zip(trees[0].iter())
                .take_while(|(a, b)| a == b)
                .count()
        };
        let t: MapleTree<Value> = if s.alloc {
            MapleTree::new_alloc()
        } else {
            MapleTree::new()
        };
        for (i, op) in ops.iter().enumerate() {
            let w = t.lock();
            match *op {
                Op::Store(a, b, v) => w.store_range(a..=b, Value::new(v).unwrap()).unwrap(),
                Op::Punch(a, b) => w.punch(a..=b).unwrap(),
                Op::Erase(a) => {
                    w.erase(a);
                }
                Op::Height => {
                    drop(w);
                    heights.push(t.height());
                    continue;
                }
            }
            drop(w);
            if i >= shared {
                t.validate()
                    .unwrap_or_else(|e| panic!("{}: step {i} ({op:?}): {e}", s.name));
            }
        }
    }
    heights
}

/// Run-length encode heights.
fn rle(h: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &x in h {
        match out.last_mut() {
            Some((v, n)) if *v == x => *n += 1,
            _ => out.push((x, 1)),
        }
    }
    out
}

/// The kernel's heights for each scenario (run-length encoded), recorded as described in
/// the module docs.
fn kernel(name: &str) -> &'static [(usize, usize)] {
    KERNEL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
        .unwrap_or_else(|| panic!("no kernel heights recorded for {name}"))
}

include!("kernel_heights/data.rs");

#[test]
fn heights_match_the_kernel() {
    for s in scenarios() {
        let got = rle(&maple_heights(&s));
        let want = kernel(s.name);
        assert_eq!(
            got, want,
            "{}: heights differ from the kernel's (run-length encoded)",
            s.name
        );
    }
}

/// Write every scenario as a script for the kernel driver (see the module docs).
#[test]
#[ignore]
fn print_scripts() {
    let Some(dir) = std::env::var_os("MAPLE_HEIGHT_SCRIPTS") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    for s in scenarios() {
        let mut out = String::new();
        for ops in trees(&s) {
            out.push_str(if s.alloc { "new a 1\n" } else { "new p 1\n" });
            for op in ops {
                out.push_str(&match *op {
                    Op::Store(a, b, v) => format!("store {a} {b} {v}\n"),
                    Op::Punch(a, b) => format!("punch {a} {b}\n"),
                    Op::Erase(a) => format!("erase {a}\n"),
                    Op::Height => "h\n".to_string(),
                });
            }
        }
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{}.txt", s.name)),
            out,
        )
        .unwrap();
    }
}
