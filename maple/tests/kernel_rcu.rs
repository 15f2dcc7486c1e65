//! Port of `check_rcu_simulated` (tools/testing/radix-tree/maple.c): a reader inside a read
//! section sees each kind of overwrite of the entry it sits on — the whole entry, half of
//! it, the other half, more than the entry, more than its node, the whole tree — without
//! leaving the section, with the writer running on the same thread.

mod common;

use common::{xv, Oracle};
use maple::{MapleTree, Value};
use std::ops::RangeInclusive;

/// 450 under Miri: still past TARGET + 400, a few hundred stores instead of a thousand.
const NR_ENTRIES: usize = if cfg!(miri) { 450 } else { 1000 };
const TARGET: usize = 4320;
const VAL: usize = 0xDEAD;

fn fill(t: &MapleTree<Value>) {
    let w = t.lock();
    for i in 0..=NR_ENTRIES {
        w.store_range(i * 10..=i * 10 + 5, xv(i)).unwrap();
    }
}

/// One overwrite while a reader holds a section open: the reader sees `before` at TARGET
/// first, then `after` at TARGET once the store is done; then the value is restored.
fn overwrite_seen(t: &MapleTree<Value>, range: RangeInclusive<usize>, after: usize) {
    let r = t.read();
    assert_eq!(r.load(TARGET).map(Value::get), Some(TARGET / 10));
    t.lock().store_range(range.clone(), xv(VAL)).unwrap();
    assert_eq!(
        r.load(TARGET).map(Value::get),
        Some(after),
        "reader after overwriting {range:?}"
    );
    assert_eq!(r.walk(TARGET).1.map(Value::get), Some(after));
    drop(r);
    t.validate().unwrap();
    // Restore value.
    t.lock().store_range(range, xv(TARGET / 10)).unwrap();
    t.validate().unwrap();
}

#[test]
fn check_rcu_simulated() {
    let t: MapleTree<Value> = MapleTree::new();
    fill(&t);
    // Overwrite one entry with a new value.
    overwrite_seen(&t, TARGET..=TARGET + 5, VAL);
    // Overwrite 1/2 the entry.
    overwrite_seen(&t, TARGET..=TARGET + 2, VAL);
    // Overwrite last 1/2 the entry: the reader's index keeps its value.
    overwrite_seen(&t, TARGET + 2..=TARGET + 5, TARGET / 10);
    // Overwrite more than the entry.
    overwrite_seen(&t, TARGET - 5..=TARGET + 15, VAL);
    // Overwrite more than the node.
    overwrite_seen(&t, TARGET - 400..=TARGET + 400, VAL);

    // Overwrite the tree.
    {
        let r = t.read();
        assert_eq!(r.load(TARGET).map(Value::get), Some(TARGET / 10));
        t.lock().store_range(.., xv(VAL)).unwrap();
        assert_eq!(r.load(TARGET).map(Value::get), Some(VAL));
        assert_eq!(r.walk(TARGET), (0..=usize::MAX, Some(xv(VAL))));
    }
    assert_eq!(t.len(), 1);
    t.validate().unwrap();

    // Clear out the tree and recreate it.
    t.lock().punch(..).unwrap();
    assert!(t.is_empty());
    fill(&t);
    let mut o = Oracle::new();
    for i in 0..=NR_ENTRIES {
        o.store(i * 10..=i * 10 + 5, i);
    }
    common::assert_matches(&t, &o, "recreated");

    // "next" check: a reader that stepped back to the previous entry steps forward onto the
    // new value.
    {
        let r = t.read();
        assert_eq!(r.walk(TARGET).1.map(Value::get), Some(TARGET / 10));
        let (before, _) = r.find_rev(..TARGET).unwrap();
        t.lock().store_range(TARGET..=TARGET + 5, xv(VAL)).unwrap();
        let (span, v) = r.find(before.end() + 1..).unwrap();
        assert_eq!((span, v.get()), (TARGET..=TARGET + 5, VAL));
    }
    t.lock()
        .store_range(TARGET..=TARGET + 5, xv(TARGET / 10))
        .unwrap();

    // "prev" check: a reader that stepped to the next entry steps back onto the new value.
    {
        let r = t.read();
        assert_eq!(r.walk(TARGET).1.map(Value::get), Some(TARGET / 10));
        let (after, _) = r.find(TARGET + 6..).unwrap();
        t.lock().store_range(TARGET..=TARGET + 5, xv(VAL)).unwrap();
        let (span, v) = r.find_rev(..after.start() - 1).unwrap();
        assert_eq!((span, v.get()), (TARGET..=TARGET + 5, VAL));
    }
    t.validate().unwrap();
}

/// The same sequence while a second, long-lived section and an iterator over the old
/// contents are held: an iterator created before a write may show the old or the new tree
/// but every item must be a range the tree held at some point with its value.
#[test]
fn reader_sections_survive_writes() {
    let t: MapleTree<Value> = MapleTree::new();
    fill(&t);
    let r = t.read();
    let mut it = r.iter();
    let first = it.next().map(|(s, v)| (s, v.get()));
    assert_eq!(first, Some((0..=5, 0)));
    for k in 0..50 {
        let base = k * 80;
        t.lock().store_range(base..=base + 75, xv(VAL + k)).unwrap();
    }
    t.lock().punch(4000..=9000).unwrap();
    // Whatever the iterator still yields must be in order and well formed.
    let mut last_end = 5usize;
    for (span, v) in it {
        assert!(
            *span.start() > last_end,
            "out of order: {span:?} after {last_end}"
        );
        last_end = *span.end();
        let v = v.get();
        assert!(
            v <= NR_ENTRIES || (VAL..VAL + 50).contains(&v),
            "value {v:#x} was never stored"
        );
    }
    drop(r);
    t.validate().unwrap();
}
