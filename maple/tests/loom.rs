//! Loom models of the reader/writer protocol on small trees.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p maple-tree --test loom`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use maple::{MapleTree, StoreKind, Value};

fn v(x: usize) -> Value {
    Value::new(x).unwrap()
}

/// A reader racing a rewrite of its leaf: the writer publishes a new leaf with one store
/// and marks the old one dead; a reader that already reached the old leaf notices the mark
/// and restarts from the root. Either way it sees the old or the new value, never a mix.
#[test]
fn dead_leaf_restart() {
    loom::model(|| {
        let t = Arc::new(MapleTree::<Value>::new());
        {
            let w = t.lock();
            w.store_range(10..=19, v(1)).unwrap();
            w.store_range(30..=39, v(2)).unwrap();
        }
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            let (range, x) = r.walk(15);
            (range, x.map(Value::get))
        });
        {
            let w = t.lock();
            w.store_range(12..=33, v(3)).unwrap();
        }
        assert_eq!(t.last_store_kind(), Some(StoreKind::NodeStore));
        let seen = reader.join().unwrap();
        assert!(
            seen == (10..=19, Some(1)) || seen == (12..=33, Some(3)),
            "reader saw {seen:?}"
        );
        t.validate().unwrap();
    });
}

/// A reader racing an exact-fit overwrite (one slot word stored in place): it sees the old
/// value or the new one with the same range.
#[test]
fn exact_fit_in_place() {
    loom::model(|| {
        // Values are std Arcs (the Entry impl is for std's Arc; its count is not part of
        // the model).
        let t = Arc::new(MapleTree::<std::sync::Arc<usize>>::new());
        t.lock().store_range(5..=9, std::sync::Arc::new(1)).unwrap();
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            let (range, x) = r.walk(7);
            (range, x.copied())
        });
        t.lock().store_range(5..=9, std::sync::Arc::new(2)).unwrap();
        assert_eq!(t.last_store_kind(), Some(StoreKind::ExactFit));
        let seen = reader.join().unwrap();
        assert!(
            seen == (5..=9, Some(1)) || seen == (5..=9, Some(2)),
            "reader saw {seen:?}"
        );
    });
}

/// A reader racing a root split (a new root above two fresh leaves): the point it reads
/// keeps its value throughout.
#[test]
fn root_split_keeps_points() {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(|| {
        let t = Arc::new(MapleTree::<Value>::new());
        {
            let w = t.lock();
            for i in 0..8usize {
                w.store_range(i * 10..=i * 10 + 4, v(i)).unwrap();
            }
        }
        assert_eq!(t.height(), 1);
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            (r.load(22).map(Value::get), r.load(77).map(Value::get))
        });
        t.lock().store_range(81..=82, v(99)).unwrap();
        assert_eq!(t.last_store_kind(), Some(StoreKind::Split));
        assert_eq!(t.height(), 2);
        assert_eq!(reader.join().unwrap(), (Some(2), None));
        t.validate().unwrap();
    });
}

/// A reader racing a spanning store across leaves of a two-level tree: each point shows the
/// old or the new value, and once the reader has seen the new tree it never sees the old
/// one again (the whole rewrite is published by one store).
#[test]
fn spanning_store_is_atomic() {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(|| {
        let t: Arc<MapleTree<Value>> =
            Arc::new((0..20usize).map(|i| (i * 10..=i * 10 + 4, v(i))).collect());
        assert_eq!(t.height(), 2);
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            let a = r.load(53).map(Value::get);
            let b = r.load(153).map(Value::get);
            (a, b)
        });
        t.lock().store_range(52..=157, v(99)).unwrap();
        assert_eq!(t.last_store_kind(), Some(StoreKind::Spanning));
        let (a, b) = reader.join().unwrap();
        assert!(a == Some(5) || a == Some(99), "{a:?}");
        assert!(b == Some(15) || b == Some(99), "{b:?}");
        assert!(
            !(a == Some(99) && b == Some(15)),
            "saw the new tree, then the old one"
        );
        t.validate().unwrap();
    });
}

/// Node recycling: the leaf replaced in one write section goes to the domain in a batch,
/// comes back to the tree's node pool after a grace period (`synchronize`), moves to the
/// writer's stash at the end of the next section, and a later section builds its new leaf
/// in that recycled memory while a reader walks the tree. The reader sees the old or the
/// new contents, and loom checks that the recycled node's (re)initialisation is published
/// to it by the root's Release store.
#[test]
fn recycled_node_reuse() {
    loom::model(|| {
        let t = Arc::new(MapleTree::<Value>::new());
        t.lock().store_range(10..=19, v(1)).unwrap();
        // Replaces the first leaf; it is retired (batched) when the section ends.
        t.lock().store_range(30..=39, v(2)).unwrap();
        // Its grace period passes: the batch hands the node to the pool.
        rcu::Domain::synchronize(t.domain());
        // This section retires another leaf and refills the writer's stash from the pool.
        t.lock().store_range(50..=59, v(4)).unwrap();
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            (r.load(15).map(Value::get), r.load(35).map(Value::get))
        });
        // Built in recycled memory, racing the reader.
        t.lock().store_range(12..=33, v(3)).unwrap();
        let seen = reader.join().unwrap();
        assert!(
            seen == (Some(1), Some(2)) || seen == (Some(3), Some(2)),
            "reader saw {seen:?}"
        );
        t.validate().unwrap();
        let r = t.read();
        assert_eq!(r.load(15).map(Value::get), Some(3));
        assert_eq!(r.load(55).map(Value::get), Some(4));
    });
}
