//! Every store kind is reached, with `validate()` after each write.

use crate::raw::node::NodeType;
use crate::{MapleTree, StoreKind, Value};

fn v(x: usize) -> Value {
    Value::new(x).unwrap()
}

/// Store and check the kind that ran, then validate.
fn st(t: &MapleTree<Value>, a: usize, b: usize, x: usize, kind: StoreKind) {
    t.lock().store_range(a..=b, v(x)).unwrap();
    assert_eq!(
        t.last_store_kind(),
        Some(kind),
        "store {a}..={b}\n{}",
        t.dump()
    );
    t.validate().unwrap_or_else(|e| panic!("{e}\n{}", t.dump()));
}

fn punch(t: &MapleTree<Value>, a: usize, b: usize, kind: StoreKind) {
    t.lock().punch(a..=b).unwrap();
    assert_eq!(
        t.last_store_kind(),
        Some(kind),
        "punch {a}..={b}\n{}",
        t.dump()
    );
    t.validate().unwrap_or_else(|e| panic!("{e}\n{}", t.dump()));
}

#[test]
fn every_kind_in_rcu_mode() {
    for alloc in [false, true] {
        let t: MapleTree<Value> = if alloc {
            MapleTree::new_alloc()
        } else {
            MapleTree::new()
        };
        st(&t, 10, 19, 1, StoreKind::Root);
        st(&t, 10, 19, 2, StoreKind::ExactFit);
        st(&t, 20, 29, 3, StoreKind::NodeStore);
        // Moves the pivot between [10,19] and [20,29]: one pivot, one slot.
        st(&t, 15, 29, 4, StoreKind::SlotStore);
        assert_eq!(t.read().walk(14).0, 10..=14);
        // Cutting the empty tail of a leaf: in place under readers in a plain tree (one
        // publishing pivot store); an allocation tree copies the leaf (its gaps change).
        let tail = if alloc {
            StoreKind::NodeStore
        } else {
            StoreKind::Append
        };
        st(&t, 40, 45, 5, tail);
        assert_eq!(t.read().walk(35), (30..=39, None));
        assert_eq!(t.read().walk(50), (46..=usize::MAX, None));
        // Fill the single leaf until it splits (a new root above two leaves).
        let mut i = 3;
        while t.height() == 1 {
            t.lock().store_range(i * 10..=i * 10 + 4, v(i)).unwrap();
            t.validate().unwrap();
            i += 1;
        }
        assert_eq!(t.last_store_kind(), Some(StoreKind::Split));
        // Keep going until the root has several leaves.
        while t.read().find(i * 10..).is_none() && i < 200 {
            t.lock().store_range(i * 10..=i * 10 + 4, v(i)).unwrap();
            i += 1;
        }
        t.validate().unwrap();
        assert!(t.height() >= 2);
        // Spanning: a range across several leaves.
        st(&t, 25, 555, 7, StoreKind::Spanning);
        // Rebalance: erase entries from the left until the left-most leaf underflows.
        let before = t.store_kind_counts()[StoreKind::Rebalance as usize];
        let mut k = 0;
        while t.store_kind_counts()[StoreKind::Rebalance as usize] == before && k < 100 {
            let first = t.read().find(..).map(|(r, _)| *r.start());
            if let Some(i) = first {
                t.lock().erase(i).unwrap();
                t.validate().unwrap_or_else(|e| panic!("{e}\n{}", t.dump()));
            }
            k += 1;
        }
        assert!(
            t.store_kind_counts()[StoreKind::Rebalance as usize] > before,
            "{}",
            t.dump()
        );
        // A punch that would leave a leaf ending in an empty slot is a rebalance too.
        st(&t, 0, usize::MAX, 9, StoreKind::NewRoot);
        assert_eq!((t.len(), t.height()), (1, 1));
        punch(&t, 0, usize::MAX, StoreKind::NewRoot);
        assert_eq!((t.len(), t.height()), (0, 0));
        // Punching an empty tree is a no-op store into the root.
        punch(&t, 5, 6, StoreKind::Root);
    }
}

#[test]
fn append_and_slot_store_in_place_without_readers() {
    let mut t: MapleTree<Value> = MapleTree::new_alloc();
    t.extend([(0..=9, v(1))]);
    // Ascending stores through `&mut` land in the last slot of the right-most leaf.
    t.extend([(20..=29, v(2))]);
    assert_eq!(t.last_store_kind(), Some(StoreKind::Append));
    t.extend([(40..=usize::MAX, v(3))]);
    assert_eq!(t.last_store_kind(), Some(StoreKind::Append));
    t.validate().unwrap();
    t.extend([(25..=39, v(4))]);
    assert_eq!(t.last_store_kind(), Some(StoreKind::SlotStore));
    t.validate().unwrap();
    let got: Vec<_> = t.read().iter().map(|(r, x)| (r, x.get())).collect();
    assert_eq!(
        got,
        [(0..=9, 1), (20..=24, 2), (25..=39, 4), (40..=usize::MAX, 3)]
    );
    assert_eq!(t.read().empty_area(0..=100, 10), Ok(10));
    assert_eq!(t.read().empty_area(0..=100, 11), Err(crate::GapError::Busy));
}

#[test]
fn split_pushes_into_sibling_first() {
    // Build two leaves, then overflow the left one: it pushes into its right sibling
    // instead of adding a third leaf.
    let t: MapleTree<Value> = MapleTree::new();
    let w = t.lock();
    for i in 0..20usize {
        w.store_range(i * 10..=i * 10 + 9, v(i)).unwrap();
    }
    drop(w);
    t.validate().unwrap();
    assert_eq!(t.height(), 2);
    let leaves_before = t.dump().matches(NodeType::Leaf.name()).count();
    let w = t.lock();
    for i in 0..6usize {
        w.store_range(i * 10 + 2..=i * 10 + 3, v(100 + i)).unwrap();
    }
    drop(w);
    t.validate().unwrap();
    let leaves_after = t.dump().matches(NodeType::Leaf.name()).count();
    assert!(leaves_after <= leaves_before + 1, "{}", t.dump());
}

#[test]
fn dumps() {
    let t: MapleTree<Value> = (0..40usize).map(|i| (i * 4..=i * 4 + 1, v(i))).collect();
    t.validate().unwrap();
    let text = t.dump();
    assert!(
        text.starts_with("maple tree (plain, height 2, 40 ranges)"),
        "{text}"
    );
    assert!(text.contains("range_64") && text.contains("leaf_64") && text.contains("v39"));
    let dot = t.to_dot();
    assert!(
        dot.starts_with("digraph maple {") && dot.contains("->") && dot.trim_end().ends_with('}')
    );
    let a: MapleTree<Value> = MapleTree::new_alloc();
    a.lock().store_range(5..=6, v(1)).unwrap();
    assert!(a.dump().contains("alloc"));
}
