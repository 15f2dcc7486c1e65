//! A quick lookup timing against `BTreeMap` on the DESIGN.md layout. Not a benchmark
//! (benches/ has those): run by hand with
//! `cargo test --release -p maple-tree --lib perf -- --ignored --nocapture`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::basic::Rng;
use crate::{MapleTree, Value};

fn layout(n: usize) -> Vec<(usize, usize)> {
    let mut rng = Rng(1);
    let mut at = 0x1000_0000usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        at += (rng.next() % 4) as usize * 4096;
        let len = (1 + rng.next() % 32) as usize * 4096;
        out.push((at, at + len - 1));
        at += len;
    }
    out
}

#[test]
#[ignore]
fn perf_lookup() {
    for n in [1_000usize, 100_000, 1_000_000] {
        let ranges = layout(n);
        let span = ranges[n - 1].1 - ranges[0].0;
        let t: MapleTree<Value> = MapleTree::new();
        let t0 = Instant::now();
        {
            let w = t.lock();
            for (i, &(a, b)) in ranges.iter().enumerate() {
                w.store_range(a..=b, Value::new(i).unwrap()).unwrap();
            }
        }
        let build = t0.elapsed();
        let bt: BTreeMap<usize, (usize, usize)> = ranges
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| (a, (b, i)))
            .collect();
        let q = 2_000_000usize;
        let mut rng = Rng(2);
        let pts: Vec<usize> = (0..q)
            .map(|_| ranges[0].0 + (rng.next() as usize) % span)
            .collect();
        let t0 = Instant::now();
        let mut hits = 0usize;
        for &p in &pts {
            let r = t.read();
            hits += r.load(p).map(|v| v.get()).unwrap_or(0);
        }
        let tm = t0.elapsed();
        let t0 = Instant::now();
        let mut hits2 = 0usize;
        for &p in &pts {
            if let Some((_, &(e, v))) = bt.range(..=p).next_back() {
                if e >= p {
                    hits2 += v;
                }
            }
        }
        let tb = t0.elapsed();
        assert_eq!(hits, hits2);
        let t0 = Instant::now();
        let mut hits3 = 0usize;
        {
            let r = t.read();
            for &p in &pts {
                hits3 += r.load(p).map(|v| v.get()).unwrap_or(0);
            }
        }
        let t1 = t0.elapsed();
        assert_eq!(hits, hits3);
        let t0 = Instant::now();
        for _ in 0..q {
            drop(std::hint::black_box(t.read()));
        }
        let tg = t0.elapsed();
        println!(
            "   one guard {:.1} ns/lookup; enter+leave alone {:.1} ns",
            t1.as_nanos() as f64 / q as f64,
            tg.as_nanos() as f64 / q as f64
        );
        let dump = t.dump();
        let nodes = dump.matches("_64 0x").count();
        println!(
            "n={n}: maple {:.1} ns/lookup, btree {:.1} ns/lookup, ratio {:.2}; build {:.0} ns/insert; height {}; {} nodes = {:.1} B/range",
            tm.as_nanos() as f64 / q as f64,
            tb.as_nanos() as f64 / q as f64,
            tm.as_secs_f64() / tb.as_secs_f64(),
            build.as_nanos() as f64 / n as f64,
            t.height(),
            nodes,
            (nodes * 256) as f64 / n as f64
        );
    }
}

#[test]
#[ignore]
fn perf_build() {
    let n = 100_000usize;
    let ranges = layout(n);
    let t: MapleTree<Value> = MapleTree::new();
    let t0 = Instant::now();
    {
        let w = t.lock();
        for (i, &(a, b)) in ranges.iter().enumerate() {
            w.store_range(a..=b, Value::new(i).unwrap()).unwrap();
        }
    }
    println!(
        "build {:.0} ns/insert",
        t0.elapsed().as_nanos() as f64 / n as f64
    );
    let t0 = Instant::now();
    let bt = btree_build(&ranges);
    println!(
        "btree {:.0} ns/insert ({} keys)",
        t0.elapsed().as_nanos() as f64 / n as f64,
        bt.len()
    );
}

#[inline(never)]
fn btree_build(ranges: &[(usize, usize)]) -> BTreeMap<usize, (usize, usize)> {
    let mut bt = BTreeMap::new();
    for (i, &(a, b)) in ranges.iter().enumerate() {
        bt.insert(a, (b, i));
    }
    bt
}

#[inline(never)]
fn maple_lookups(t: &MapleTree<Value>, pts: &[usize]) -> usize {
    let mut hits = 0;
    for &p in pts {
        let r = t.read();
        hits += r.load(p).map(|v| v.get()).unwrap_or(0);
    }
    hits
}

#[inline(never)]
fn maple_lookups_one_guard(t: &MapleTree<Value>, pts: &[usize]) -> usize {
    let r = t.read();
    pts.iter()
        .map(|&p| r.load(p).map(|v| v.get()).unwrap_or(0))
        .sum()
}

#[inline(never)]
fn btree_lookups(bt: &BTreeMap<usize, (usize, usize)>, pts: &[usize]) -> usize {
    let mut hits = 0;
    for &p in pts {
        if let Some((_, &(e, v))) = bt.range(..=p).next_back() {
            if e >= p {
                hits += v;
            }
        }
    }
    hits
}

/// Instruction-count comparison (run under callgrind): 10^5 ranges, 200k lookups.
#[test]
#[ignore]
fn perf_lookup_counts() {
    let n = 100_000usize;
    let ranges = layout(n);
    let span = ranges[n - 1].1 - ranges[0].0;
    let t: MapleTree<Value> = ranges
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| (a..=b, Value::new(i).unwrap()))
        .collect();
    let bt: BTreeMap<usize, (usize, usize)> = ranges
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| (a, (b, i)))
        .collect();
    let mut rng = Rng(2);
    let pts: Vec<usize> = (0..200_000)
        .map(|_| ranges[0].0 + (rng.next() as usize) % span)
        .collect();
    let a = maple_lookups(&t, &pts);
    let b = btree_lookups(&bt, &pts);
    let c = maple_lookups_one_guard(&t, &pts);
    assert_eq!((a, c), (b, b));
    println!("height {}", t.height());
}

/// Alternating small batches, best of many: robust against a noisy shared machine.
#[test]
#[ignore]
fn perf_lookup_interleaved() {
    for n in [1_000usize, 100_000, 1_000_000] {
        let ranges = layout(n);
        let span = ranges[n - 1].1 - ranges[0].0;
        let t: MapleTree<Value> = MapleTree::new();
        {
            let w = t.lock();
            for (i, &(a, b)) in ranges.iter().enumerate() {
                w.store_range(a..=b, Value::new(i).unwrap()).unwrap();
            }
        }
        let bt: BTreeMap<usize, (usize, usize)> = ranges
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| (a, (b, i)))
            .collect();
        let mut rng = Rng(2);
        let pts: Vec<usize> = (0..20_000)
            .map(|_| ranges[0].0 + (rng.next() as usize) % span)
            .collect();
        let (mut bm, mut bb, mut b1) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..60 {
            let t0 = Instant::now();
            let a = maple_lookups(&t, &pts);
            bm = bm.min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let c = maple_lookups_one_guard(&t, &pts);
            b1 = b1.min(t0.elapsed().as_secs_f64());
            assert_eq!(a, c);
            let t0 = Instant::now();
            let b = btree_lookups(&bt, &pts);
            bb = bb.min(t0.elapsed().as_secs_f64());
            assert_eq!(a, b);
        }
        println!(
            "n={n}: maple {:.1} ns (one guard {:.1}), btree {:.1} ns, ratio {:.2}",
            bm * 1e9 / pts.len() as f64,
            b1 * 1e9 / pts.len() as f64,
            bb * 1e9 / pts.len() as f64,
            bm / bb
        );
    }
}

/// Gap search on an allocation tree built from the DESIGN layout: `empty_area_rev` of
/// random sizes over the whole span, against a linear top-down scan of a BTreeMap.
#[test]
#[ignore]
fn perf_gap() {
    let n = 100_000usize;
    let ranges = layout(n);
    let t: MapleTree<Value> = MapleTree::new_alloc();
    {
        let w = t.lock();
        for (i, &(a, b)) in ranges.iter().enumerate() {
            w.store_range(a..=b, Value::new(i).unwrap()).unwrap();
        }
    }
    t.validate().unwrap();
    let bt: BTreeMap<usize, usize> = ranges.iter().map(|&(a, b)| (a, b)).collect();
    let top = ranges[n - 1].1;
    let mut rng = Rng(3);
    let sizes: Vec<usize> = (0..2000)
        .map(|_| 4096 * (1 + (rng.next() % 4) as usize))
        .collect();
    let t0 = Instant::now();
    let r = t.read();
    let mut acc = 0usize;
    for &s in &sizes {
        acc ^= r.empty_area_rev(..=top, s).unwrap_or(0);
    }
    let tm = t0.elapsed();
    let t0 = Instant::now();
    let mut acc2 = 0usize;
    for &s in &sizes {
        // Top-down first fit: walk ranges from the top, look at the hole below each.
        let mut hi = top;
        let mut found = 0;
        for (&a, &b) in bt.range(..=top).rev() {
            if hi > b && hi - b >= s {
                found = hi - s + 1;
                break;
            }
            hi = a.saturating_sub(1);
        }
        if found == 0 && hi + 1 >= s {
            found = hi + 1 - s;
        }
        acc2 ^= found;
    }
    let tb = t0.elapsed();
    assert_eq!(acc, acc2);
    println!(
        "gap: maple {:.1} ns, btree scan {:.1} ns, speedup {:.0}x",
        tm.as_nanos() as f64 / sizes.len() as f64,
        tb.as_nanos() as f64 / sizes.len() as f64,
        tb.as_secs_f64() / tm.as_secs_f64()
    );
}

#[inline(never)]
fn maple_build_per_op(t: &MapleTree<Value>, ranges: &[(usize, usize)]) {
    for (i, &(a, b)) in ranges.iter().enumerate() {
        t.lock().store_range(a..=b, Value::new(i).unwrap()).unwrap();
    }
}

/// Random writes as the benches issue them (one lock per operation): store_range over a
/// random short range, erase at a random point, punch a random short range.
#[inline(never)]
fn maple_random_writes(t: &MapleTree<Value>, ops: &[(usize, usize, u8)]) {
    for (i, &(a, b, k)) in ops.iter().enumerate() {
        match k {
            0 => t.lock().store_range(a..=b, Value::new(i).unwrap()).unwrap(),
            1 => {
                t.lock().erase(a);
            }
            _ => t.lock().punch(a..=b).unwrap(),
        }
    }
}

/// Instruction-count comparison for writes (run under callgrind): ascending build of 10^5
/// ranges with one write lock per store, then 10^5 random store_range/erase/punch.
#[test]
#[ignore]
fn perf_write_counts() {
    let n = 100_000usize;
    let ranges = layout(n);
    let t: MapleTree<Value> = MapleTree::new();
    maple_build_per_op(&t, &ranges);
    let bt = btree_build(&ranges);
    assert_eq!(bt.len(), t.len());
    let span = ranges[n - 1].1 - ranges[0].0;
    let mut rng = Rng(4);
    let ops: Vec<(usize, usize, u8)> = (0..n)
        .map(|_| {
            let a = ranges[0].0 + (rng.next() as usize) % span;
            let len = (1 + rng.next() % 8) as usize * 4096;
            (a, a + len - 1, (rng.next() % 3) as u8)
        })
        .collect();
    maple_random_writes(&t, &ops);
    t.validate().unwrap();
    println!("len {} height {}", t.len(), t.height());
}
