use super::model::Model;
use crate::{MapleTree, StoreKind, Value};

fn v(x: usize) -> Value {
    Value::new(x).unwrap()
}

/// Compare the whole tree with the model; panic with a dump on mismatch.
fn check(t: &MapleTree<Value>, m: &Model, ctx: &str) {
    if let Err(e) = t.validate() {
        panic!("{ctx}: validate failed: {e}\n{}", t.dump());
    }
    let r = t.read();
    let got: Vec<(usize, usize, usize)> = r
        .iter()
        .map(|(k, x)| (*k.start(), *k.end(), x.get()))
        .collect();
    let want = m.entries();
    if got != want {
        panic!(
            "{ctx}: contents differ\n got {got:?}\nwant {want:?}\n{}",
            t.dump()
        );
    }
    let back: Vec<(usize, usize, usize)> = r
        .iter()
        .rev()
        .map(|(k, x)| (*k.start(), *k.end(), x.get()))
        .collect();
    assert!(
        back.iter().rev().eq(want.iter()),
        "{ctx}: reverse iteration differs"
    );
    assert_eq!(t.len(), want.len(), "{ctx}: len");
}

/// A small deterministic PRNG (SplitMix64).
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_ops(alloc: bool, seed: u64, ops: usize, span: u64) {
    let ops = if cfg!(miri) {
        ops / 16 // Miri: a few dozen operations per tree
    } else if std::env::var_os("MAPLE_STRESS").is_some() {
        ops * 5
    } else {
        ops
    };
    let t: MapleTree<Value> = if alloc {
        MapleTree::new_alloc()
    } else {
        MapleTree::new()
    };
    let mut m = Model::default();
    let mut rng = Rng(seed);
    for step in 0..ops {
        let a = rng.below(span) as usize;
        let len = match rng.below(4) {
            0 => 1,
            1 => rng.below(8) as usize + 1,
            2 => rng.below(64) as usize + 1,
            _ => rng.below(span / 4 + 1) as usize + 1,
        };
        let b = a + len - 1;
        let op = rng.below(10);
        let w = t.lock();
        let ctx;
        if op < 6 {
            let x = step + 1;
            ctx = format!("step {step}: store {a}..={b} = {x}");
            w.store_range(a..=b, v(x)).unwrap();
            m.store(a, b, x);
        } else if op < 8 {
            ctx = format!("step {step}: punch {a}..={b}");
            w.punch(a..=b).unwrap();
            m.store(a, b, 0);
        } else {
            ctx = format!("step {step}: erase {a}");
            let got = w.erase(a).map(|(r, x)| (*r.start(), *r.end(), x.get()));
            let (s, e, val) = m.walk(a);
            let want = val.map(|x| (s, e, x));
            assert_eq!(got, want, "{ctx}");
            if want.is_some() {
                m.store(s, e, 0);
            }
        }
        // Point checks.
        for _ in 0..4 {
            let i = rng.below(span + 10) as usize;
            assert_eq!(w.load(i).map(Value::get), m.load(i), "{ctx}: load({i})");
            let (r, x) = w.walk(i);
            let (s, e, val) = m.walk(i);
            assert_eq!(
                (*r.start(), *r.end(), x.map(Value::get)),
                (s, e, val),
                "{ctx}: walk({i})"
            );
            if alloc {
                let size = rng.below(16) as usize + 1;
                let lo = rng.below(span) as usize;
                let hi = lo + rng.below(span) as usize;
                for rev in [false, true] {
                    let got = if rev {
                        w.empty_area_rev(lo..=hi, size)
                    } else {
                        w.empty_area(lo..=hi, size)
                    };
                    let want = if hi - lo < size - 1 {
                        Err(crate::GapError::Invalid)
                    } else {
                        m.empty_area(lo, hi, size, rev).ok_or(crate::GapError::Busy)
                    };
                    assert_eq!(
                        got, want,
                        "{ctx}: empty_area({lo}..={hi}, {size}, rev={rev})"
                    );
                }
            }
        }
        drop(w);
        check(&t, &m, &ctx);
    }
}

/// Seeds to run: a handful by default, many more with MAPLE_STRESS=1.
fn seeds(base: u64, n: u64) -> std::ops::Range<u64> {
    if cfg!(miri) {
        return base..base + 1; // Miri: one seed
    }
    let scale = if std::env::var_os("MAPLE_STRESS").is_some() {
        50
    } else {
        1
    };
    base..base + n * scale
}

#[test]
fn random_plain_clustered() {
    for seed in seeds(0, 6) {
        random_ops(false, seed, 400, 2000);
    }
}

#[test]
fn random_alloc_clustered() {
    for seed in seeds(100, 6) {
        random_ops(true, seed, 400, 2000);
    }
}

#[test]
fn random_plain_sparse() {
    for seed in seeds(200, 3) {
        random_ops(false, seed, 300, 1 << 40);
    }
}

#[test]
fn random_alloc_sparse() {
    for seed in seeds(300, 3) {
        random_ops(true, seed, 300, 1 << 40);
    }
}

#[test]
fn ascending_and_kinds() {
    let t: MapleTree<Value> = MapleTree::new();
    let mut m = Model::default();
    for i in 0..500usize {
        t.lock().store_range(i * 10..=i * 10 + 5, v(i + 1)).unwrap();
        m.store(i * 10, i * 10 + 5, i + 1);
    }
    check(&t, &m, "ascending");
    assert!(t.height() >= 3, "height {}", t.height());
    let c = t.store_kind_counts();
    assert!(c[StoreKind::Root as usize] == 1);
    assert!(c[StoreKind::Split as usize] > 0);
    for i in (0..500usize).rev() {
        t.lock().erase(i * 10 + 1).unwrap();
        m.store(i * 10, i * 10 + 5, 0);
        if i % 50 == 0 {
            check(&t, &m, "descending erase");
        }
    }
    check(&t, &m, "all erased");
    assert_eq!(t.height(), 0);
}

/// The `&mut self` paths (in-place slot stores and appends, direct frees, in-place gap
/// fixes) against the model.
fn random_ops_mut(alloc: bool, seed: u64, ops: usize, span: u64) {
    let mut t: MapleTree<Value> = if alloc {
        MapleTree::new_alloc()
    } else {
        MapleTree::new()
    };
    let mut m = Model::default();
    let mut rng = Rng(seed);
    for step in 0..ops {
        // Mostly ascending, short ranges: the append / slot-store shapes.
        let a = if rng.below(3) == 0 {
            rng.below(span) as usize
        } else {
            (step * span as usize / ops).min(span as usize)
        };
        let b = a + rng.below(12) as usize;
        let ctx;
        if rng.below(5) < 4 {
            ctx = format!("step {step}: store_mut {a}..={b}");
            t.store_range_mut(a..=b, v(step + 1)).unwrap();
            m.store(a, b, step + 1);
        } else {
            ctx = format!("step {step}: punch_mut {a}..={b}");
            t.punch_mut(a..=b).unwrap();
            m.store(a, b, 0);
        }
        if alloc {
            let size = rng.below(8) as usize + 1;
            let got = t.read().empty_area(0..=span as usize, size);
            let want = m
                .empty_area(0, span as usize, size, false)
                .ok_or(crate::GapError::Busy);
            assert_eq!(got, want, "{ctx}: empty_area");
        }
        check(&t, &m, &ctx);
    }
    let c = t.store_kind_counts();
    assert!(c[StoreKind::Append as usize] > 0, "{c:?}");
    assert!(c[StoreKind::SlotStore as usize] > 0, "{c:?}");
}

#[test]
fn random_mut_plain() {
    for seed in seeds(400, 3) {
        random_ops_mut(false, seed, 400, 3000);
    }
}

#[test]
fn random_mut_alloc() {
    for seed in seeds(500, 3) {
        random_ops_mut(true, seed, 400, 3000);
    }
}
