//! Whole-tree operations: bulk build (sequential and parallel), clone, into_iter, drop
//! accounting of shared owned values.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcu::Domain;

use crate::raw::build::PARALLEL_THRESHOLD;
use crate::{MapleTree, StoreKind, Value};

#[test]
fn bulk_build_parallel_and_clone() {
    // Enough ranges (plus holes) to take the parallel leaf-building path.
    let n = PARALLEL_THRESHOLD / 2 + 1000;
    let t: MapleTree<Value> = (0..n)
        .map(|i| (i * 3..=i * 3 + 1, Value::new(i).unwrap()))
        .collect();
    t.validate().unwrap();
    assert_eq!(t.len(), n);
    let r = t.read();
    assert_eq!(r.load(3 * 777 + 1).map(Value::get), Some(777));
    assert_eq!(r.walk(3 * 777 + 2), (3 * 777 + 2..=3 * 777 + 2, None));
    drop(r);
    let c = t.clone();
    c.validate().unwrap();
    assert!(c.read().iter().eq(t.read().iter()));
    // The clone is independent.
    c.lock().punch(0..=1000).unwrap();
    assert_eq!(t.read().load(4).map(Value::get), Some(1));
    assert_eq!(c.read().load(4), None);
}

#[test]
fn unsorted_input_falls_back_to_stores() {
    let (a, b) = (5, 4);
    let t: MapleTree<Value> = [(10..=19, 1usize), (0..=14, 2), (30..=30, 3), (a..=b, 9)]
        .into_iter()
        .map(|(r, v)| (r, Value::new(v).unwrap()))
        .collect();
    t.validate().unwrap();
    let got: Vec<_> = t.read().iter().map(|(r, v)| (r, v.get())).collect();
    assert_eq!(got, [(0..=14, 2), (15..=19, 1), (30..=30, 3)]);
}

/// Counts drops of its values.
#[derive(Debug)]
struct Counted(#[allow(dead_code)] usize, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted(self.0, self.1.clone())
    }
}

#[test]
fn shared_values_drop_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mk = |v| Box::new(Counted(v, drops.clone()));
    let t: MapleTree<Box<Counted>> = MapleTree::new();
    {
        let w = t.lock();
        w.store_range(0..=99, mk(1)).unwrap();
        w.punch(10..=19).unwrap(); // value 1 now in two ranges
        w.store_range(50..=50, mk(2)).unwrap(); // and three
        assert_eq!(w.iter().count(), 4);
        w.punch(0..=9).unwrap(); // one piece goes: still shared
        w.erase(60); // [51, 99] goes: one piece left
    }
    t.domain().synchronize();
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    t.lock().store_range(20..=49, mk(3)).unwrap(); // exact fit over the last piece
    assert_eq!(t.last_store_kind(), Some(StoreKind::ExactFit));
    t.domain().synchronize();
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    t.validate().unwrap();
    // Clone duplicates every slot's value; into_iter hands each owned value back once.
    t.lock().punch(30..=31).unwrap(); // value 3 shared by two ranges
    let c = t.clone();
    let owned: Vec<_> = c.into_iter().collect();
    assert_eq!(owned.len(), 3, "a clone owns one copy per range: {owned:?}");
    drop(owned);
    assert_eq!(drops.load(Ordering::Relaxed), 1 + 3);
    let owned: Vec<_> = t.into_iter().collect();
    assert_eq!(owned.len(), 2, "a shared value is yielded once: {owned:?}");
    assert_eq!(owned[0].0, 32..=49, "at its last range");
    drop(owned);
    assert_eq!(drops.load(Ordering::Relaxed), 1 + 3 + 2);
}

#[test]
fn exclusive_paths_free_directly() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut t: MapleTree<Box<Counted>> = MapleTree::new_alloc();
    t.extend((0..100usize).map(|i| (i * 10..=i * 10 + 5, Box::new(Counted(i, drops.clone())))));
    t.validate().unwrap();
    // Overwrite through `&mut`: freed at once, no grace period.
    t.extend((0..100usize).map(|i| (i * 10..=i * 10 + 5, Box::new(Counted(i, drops.clone())))));
    assert_eq!(drops.load(Ordering::Relaxed), 100);
    assert_eq!(t.domain().pending(), 0);
    t.validate().unwrap();
    drop(t);
    assert_eq!(drops.load(Ordering::Relaxed), 200);
}
