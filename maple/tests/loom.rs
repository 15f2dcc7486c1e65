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

/// Node recycling: the leaf replaced in one write section goes to the domain in a batch
/// when the section ends, comes back to the tree's node pool after a grace period
/// (`synchronize`), moves to the writer's stash at the start of the next write, and that
/// write builds its new leaf in the recycled memory while a reader walks the tree. The
/// reader sees the old or the new contents, and loom checks that the recycled node's
/// (re)initialisation is published to it by the root's Release store. (The stores start
/// at the leaf's empty tail: a store inside it would append in place and replace nothing.)
#[test]
fn recycled_node_reuse() {
    loom::model(|| {
        let t = Arc::new(MapleTree::<Value>::new());
        t.lock().store_range(10..=19, v(1)).unwrap();
        let replaced = leaf_address(&t);
        // Replaces the first leaf; it is retired (batched) when the section ends.
        t.lock().store_range(20..=29, v(2)).unwrap();
        assert_eq!(t.last_store_kind(), Some(StoreKind::NodeStore));
        // Its grace period passes: the batch hands the node to the pool.
        rcu::Domain::synchronize(t.domain());
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            (r.load(15).map(Value::get), r.load(25).map(Value::get))
        });
        // Takes the pool's node and builds the new leaf in it, racing the reader.
        t.lock().store_range(12..=23, v(3)).unwrap();
        assert_eq!(t.last_store_kind(), Some(StoreKind::NodeStore));
        let seen = reader.join().unwrap();
        assert!(
            seen == (Some(1), Some(2)) || seen == (Some(3), Some(2)),
            "reader saw {seen:?}"
        );
        t.validate().unwrap();
        let r = t.read();
        assert_eq!(r.load(15).map(Value::get), Some(3));
        assert_eq!(r.load(25).map(Value::get), Some(2));
        drop(r);
        let reused = leaf_address(&t);
        assert!(
            replaced.is_some() && reused == replaced,
            "the new leaf was not built in the recycled node ({reused:?}, {replaced:?})"
        );
    });
}

/// The address of the root leaf, from the dump (its `leaf_64 0x...` line).
fn leaf_address(t: &MapleTree<Value>) -> Option<String> {
    t.dump()
        .lines()
        .find_map(|l| l.trim().strip_prefix("leaf_64 "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// A reader racing an in-place append (a plain tree's leaf cut in its last slot, under
/// readers): the writer prepares the words past the leaf's end, then publishes with one
/// Release store of the last used pivot. Every walk sees the old leaf or the new one (a
/// walk past the new range may see the new bounds of the trailing empty range early:
/// that range is empty before and after), and once the reader has seen the new range it
/// keeps seeing it.
#[test]
fn in_place_append() {
    loom::model(|| {
        let t = Arc::new(MapleTree::<Value>::new());
        t.lock().store_range(10..=19, v(1)).unwrap();
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            let w = |i| {
                let (range, x) = r.walk(i);
                (range, x.map(Value::get))
            };
            (w(35), w(45), w(35), w(25))
        });
        t.lock().store_range(30..=39, v(2)).unwrap();
        assert_eq!(t.last_store_kind(), Some(StoreKind::Append));
        let (a, b, c, d) = reader.join().unwrap();
        let old = (20..=usize::MAX, None);
        let new35 = (30..=39, Some(2));
        assert!(a == old || a == new35, "walk(35) saw {a:?}");
        assert!(
            b == old || b == (40..=usize::MAX, None),
            "walk(45) saw {b:?}"
        );
        assert!(c == old || c == new35, "walk(35) saw {c:?}");
        assert!(
            !(a == new35 && c == old),
            "saw the new range, then the old one"
        );
        assert!(d == old || d == (20..=29, None), "walk(25) saw {d:?}");
        t.validate().unwrap();
    });
}

/// A gap search on a plain tree racing an in-place append: it answers for the old leaf or
/// the new one (it reads pivots with Acquire, like every reader).
#[test]
fn gap_search_during_append() {
    loom::model(|| {
        let t = Arc::new(MapleTree::<Value>::new());
        t.lock().store_range(10..=19, v(1)).unwrap();
        let t2 = t.clone();
        let reader = thread::spawn(move || t2.read().empty_area(30..=60, 15));
        t.lock().store_range(30..=39, v(2)).unwrap();
        assert_eq!(t.last_store_kind(), Some(StoreKind::Append));
        let got = reader.join().unwrap();
        assert!(got == Ok(30) || got == Ok(40), "empty_area saw {got:?}");
    });
}

/// An iterator driven from both ends racing a re-split of the region it walks (constant
/// coverage: `0..=9`, `10..=19`, `20..=29` become `0..=4`, `5..=12`, `13..=29`). Whatever
/// the interleaving with the cursors' cached leaf, the dead mark and the rewalk, the items
/// tile `0..=29` exactly once, in order, each clipped only to what was already yielded,
/// and each one's value stored over it in the old or the new tree.
#[test]
fn iteration_tiles_under_resplit() {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(|| {
        let t = Arc::new(MapleTree::<Value>::new());
        {
            let w = t.lock();
            for i in 0..3usize {
                w.store_range(i * 10..=i * 10 + 9, v(i)).unwrap();
            }
        }
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            let mut it = r.range(0..=29);
            let mut front = Vec::new();
            let mut back = Vec::new();
            loop {
                match it.next() {
                    Some((k, x)) => front.push((k, x.get())),
                    None => break,
                }
                match it.next_back() {
                    Some((k, x)) => back.push((k, x.get())),
                    None => break,
                }
            }
            front.extend(back.into_iter().rev());
            front
        });
        {
            let w = t.lock();
            w.store_range(5..=12, v(3)).unwrap();
            w.store_range(13..=29, v(4)).unwrap();
            w.store_range(0..=4, v(5)).unwrap();
        }
        let items = reader.join().unwrap();
        let mut next = 0;
        for (k, x) in &items {
            assert_eq!(*k.start(), next, "gap or overlap: {items:?}");
            // Where each value lives in some state of the tree during the writes.
            let stored = match x {
                0 => 0..=9,
                1 => 10..=19,
                2 => 20..=29,
                3 => 5..=12,
                4 => 13..=29,
                5 => 0..=4,
                _ => unreachable!(),
            };
            assert!(
                stored.start() <= k.start() && k.end() <= stored.end(),
                "item {k:?} = {x} outside {stored:?}: {items:?}"
            );
            next = k.end() + 1;
        }
        assert_eq!(next, 30, "items stop early: {items:?}");
        t.validate().unwrap();
    });
}

/// Gap search (issue 12) racing a store that closes the lowest fit: the search reads the
/// leaf's words in place and checks its dead mark before answering, so it answers as the
/// tree was before the store (the fit at 0) or after it (the next one, at 20), never from
/// a mix; the exact removal that reopens the fit races a second search the same way.
#[test]
fn gap_search_before_or_after() {
    loom::model(|| {
        let t = Arc::new(MapleTree::<Value>::new_alloc());
        {
            let w = t.lock();
            w.store_range(10..=19, v(1)).unwrap();
            w.store_range(30..=39, v(2)).unwrap();
        }
        let t2 = t.clone();
        let reader = thread::spawn(move || {
            let r = t2.read();
            (
                r.empty_area(0..=45, 10),
                r.empty_area_rev_aligned(0..=45, 4, 4, 0),
            )
        });
        t.lock().store_range(0..=5, v(3)).unwrap();
        let (fwd, rev) = reader.join().unwrap();
        assert!(fwd == Ok(0) || fwd == Ok(20), "empty_area saw {fwd:?}");
        assert_eq!(rev, Ok(40), "the top fit is untouched by the store");
        let t3 = t.clone();
        let reader = thread::spawn(move || t3.read().empty_area(0..=45, 10));
        assert_eq!(t.lock().remove_exact(0..=5).map(Value::get), Ok(3));
        let fwd = reader.join().unwrap();
        assert!(fwd == Ok(0) || fwd == Ok(20), "empty_area saw {fwd:?}");
        t.validate().unwrap();
    });
}
