//! Ports of the kernel's search and iteration scenarios (lib/test_maple_tree.c) with the
//! kernel's own numbers.
//!
//! Our API has no cursor (`ma_state`); the kernel's cursor moves are written with the
//! stateless calls they stand for:
//! * `mas_find(max)` from a position = `find(pos..=max)`;
//! * `mas_next(max)` after a range `[s, e]` = `find(e + 1..=max)`;
//! * `mas_prev(min)` before a range `[s, e]` = `find_rev(min..=s - 1)`;
//! * `mas_find_rev(min)` from index `i` = `find_rev(min..=i)`;
//! * `mas_walk` at `i` = `walk(i)`, `mas_for_each` = a `find` loop (and `range`).
//!
//! The kernel's `XA_ZERO_ENTRY` (a reserved entry that `mt_for_each` skips) has no
//! equivalent: we store an ordinary value there and expect to see it.

mod common;

use common::{xv, xv_index, Pair};
use std::ops::RangeInclusive;

type Hit = Option<(RangeInclusive<usize>, usize)>;

/// `mas_next(limit)` from the range `cur`.
fn next(p: &Pair, cur: &RangeInclusive<usize>, limit: usize) -> Hit {
    let from = cur.end().checked_add(1)?;
    if from > limit {
        return None;
    }
    p.find(from, limit)
}

/// `mas_prev(min)` from the range `cur`.
fn prev(p: &Pair, cur: &RangeInclusive<usize>, min: usize) -> Hit {
    let to = cur.start().checked_sub(1)?;
    if to < min {
        return None;
    }
    p.find_rev(min, to)
}

/// `mas_for_each(from, limit)`: every range overlapping `[from, limit]`, by repeated
/// `find`; also checked against `range()` in both directions.
fn for_each(p: &Pair, from: usize, limit: usize) -> Vec<(RangeInclusive<usize>, usize)> {
    let mut out = Vec::new();
    let mut pos = Some(from);
    while let Some(at) = pos.filter(|&a| a <= limit) {
        let Some((r, v)) = p.find(at, limit) else {
            break;
        };
        pos = r.end().checked_add(1);
        out.push((r, v));
    }
    let r = p.tree.read();
    let fwd: Vec<_> = r.range(from..=limit).map(|(r, v)| (r, v.get())).collect();
    assert_eq!(fwd, out, "range({from}..={limit}) vs find loop");
    let mut bwd: Vec<_> = r
        .range(from..=limit)
        .rev()
        .map(|(r, v)| (r, v.get()))
        .collect();
    bwd.reverse();
    assert_eq!(bwd, out, "range({from}..={limit}).rev()");
    out
}

/// Ports `check_find`.
#[test]
fn check_find() {
    let mut p = Pair::new();
    let mut val: usize = 0;
    assert!(p.insert(val, val, val));
    val += 1;
    let top: usize = 4398046511104;
    let count = 20;
    let mut inserted = vec![0usize];
    for _ in 0..=count {
        // The kernel stores XA_ZERO_ENTRY at 64; we store a plain value.
        assert!(p.insert(val, val, val));
        inserted.push(val);
        val <<= 2;
    }
    assert_eq!(val, top);

    // mas_find up to 268435456.
    let got: Vec<usize> = for_each(&p, 0, 268435456)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let want: Vec<usize> = inserted
        .iter()
        .copied()
        .filter(|&v| v <= 268435456)
        .collect();
    assert_eq!(got, want);
    // mas_for_each to ULONG_MAX.
    let got: Vec<usize> = for_each(&p, 0, usize::MAX)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got, inserted);
    for (r, v) in for_each(&p, 0, usize::MAX) {
        assert_eq!(r, v..=v);
    }
    // mt_for_each up to 300 (the kernel skips the zero entry at 64; we see it).
    let got: Vec<usize> = for_each(&p, 0, 300).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, vec![0, 1, 4, 16, 64, 256]);

    // Insert ULONG_MAX (value LONG_MAX, as mtree_insert_index stores it).
    p.tree
        .lock()
        .insert_range(usize::MAX..=usize::MAX, xv_index(usize::MAX))
        .unwrap();
    assert!(p
        .o
        .insert(usize::MAX..=usize::MAX, xv_index(usize::MAX).get())
        .is_ok());
    let all = for_each(&p, 0, usize::MAX);
    assert!(all.len() <= 25);
    assert_eq!(
        all.last(),
        Some(&(usize::MAX..=usize::MAX, xv_index(usize::MAX).get()))
    );
    assert_eq!(p.erase(usize::MAX), Some(xv_index(usize::MAX).get()));
    assert_eq!(p.load(usize::MAX), None);

    // mt_find(17, 512) -> 256 in the kernel, which skips its zero entry at 64; we stored a
    // real value there, so we find 64 first and 256 right after it.
    assert_eq!(p.find(17, 512), Some((64..=64, 64)));
    assert_eq!(p.find(65, 512), Some((256..=256, 256)));
    // mt_find(17, 20) -> nothing.
    assert_eq!(p.find(17, 20), None);

    // Range check: insert ULONG_MAX again and walk everything.
    p.tree
        .lock()
        .insert_range(usize::MAX..=usize::MAX, xv_index(usize::MAX))
        .unwrap();
    assert!(p
        .o
        .insert(usize::MAX..=usize::MAX, xv_index(usize::MAX).get())
        .is_ok());
    let got: Vec<usize> = for_each(&p, 0, usize::MAX)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut want = inserted.clone();
    want.push(xv_index(usize::MAX).get());
    assert_eq!(got, want);

    // mas_find(1048576) at 1048576.
    assert!(p.find(1048576, 1048576).is_some());

    // Find the last value: the entry before the one at ULONG_MAX...
    let last = p.find_rev(0, usize::MAX).expect("entry at ULONG_MAX");
    assert_eq!(last.0, usize::MAX..=usize::MAX);
    let before = prev(&p, &last.0, 0).expect("entry before ULONG_MAX");
    // ... is what a reverse search finds once the end entry is erased.
    assert!(p.erase(usize::MAX).is_some());
    let again = p.find_rev(0, usize::MAX).expect("last entry");
    assert_eq!(again, before);
    assert_eq!(before, (top / 4..=top / 4, top / 4));
    p.check("check_find");
}

/// Ports `check_find_2`: iteration after every insert and after every erase.
#[test]
fn check_find_2() {
    let mut p = Pair::new();
    assert!(for_each(&p, 0, usize::MAX).is_empty());
    for i in 0..256 {
        assert!(p.insert(i, i, i));
        let got: Vec<usize> = for_each(&p, 0, usize::MAX)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, (0..=i).collect::<Vec<_>>());
    }
    for i in 0..256 {
        assert_eq!(p.erase(i), Some(i));
        assert_eq!(p.load(i), None);
        let got: Vec<usize> = for_each(&p, 0, usize::MAX)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, (i + 1..256).collect::<Vec<_>>());
    }
    assert!(p.tree.is_empty());
    p.check("check_find_2");
}

/// Ports `check_next_entry`.
#[test]
fn check_next_entry() {
    let mut p = Pair::new();
    let limit = 30;
    p.check_seq(limit);
    let (mut cur, v) = p.walk(0);
    assert_eq!(v, Some(0));
    for i in 1..=limit + 1 {
        match next(&p, &cur, limit) {
            Some((r, v)) => {
                assert!(i <= limit);
                assert_eq!(v, i);
                cur = r;
            }
            None => assert!(i > limit),
        }
    }
}

/// Ports `check_prev_entry`.
#[test]
fn check_prev_entry() {
    let index = 16;
    let mut p = Pair::new();
    p.check_seq(30);
    let (r, v) = p.find(index, usize::MAX).unwrap();
    assert_eq!(v, index);
    assert_eq!(prev(&p, &r, 0).map(|(_, v)| v), Some(index - 1));

    // Limits on prev.
    let mut p = Pair::new_alloc();
    for i in 0..=index {
        p.store(i * 10, i * 10 + 5, i);
    }
    let (r, v) = p.walk(20);
    assert_eq!(v, Some(2));
    assert_eq!(prev(&p, &r, 19), None);
    let (r, v) = p.walk(80);
    assert_eq!(v, Some(8));
    assert_eq!(prev(&p, &r, 76), None);
    p.check("check_prev_entry");
}

/// Ports `check_rev_find`.
#[test]
fn check_rev_find() {
    let mut p = Pair::new_alloc();
    for i in 0..=200 {
        p.store(i * 10, i * 10 + 5, i);
    }
    // mas_set(1000); mas_find_rev(1000) twice.
    let hit = p.find_rev(1000, 1000).unwrap();
    assert_eq!(hit.1, 100);
    assert_eq!(prev(&p, &hit.0, 1000), None);
    // mas_set(999); mas_find_rev(997).
    assert_eq!(p.find_rev(997, 999), None);
    // mas_set(1000); mas_find_rev(900) twice.
    let hit = p.find_rev(900, 1000).unwrap();
    assert_eq!(hit.1, 100);
    assert_eq!(prev(&p, &hit.0, 900).map(|(_, v)| v), Some(99));
    // mas_set(20); mas_find_rev(0) four times.
    let mut cur = p.find_rev(0, 20).unwrap();
    assert_eq!(cur.1, 2);
    for want in [Some(1), Some(0), None] {
        let hit = prev(&p, &cur.0, 0);
        assert_eq!(hit.as_ref().map(|h| h.1), want);
        if let Some(h) = hit {
            cur = h;
        }
    }
}

/// Ports `next_prev_test` (64-bit values: 200 entries, level2 = 707, 1000, 710, 715, 720,
/// 725). The kernel's "are we in another node" checks have no observable equivalent.
#[test]
fn next_prev_test() {
    let nr_entries = 200;
    let level2: [usize; 6] = [707, 1000, 710, 715, 720, 725];
    let mut p = Pair::new_alloc();
    for i in 0..=nr_entries {
        p.store(i * 10, i * 10 + 5, i);
    }
    assert_eq!(for_each(&p, 0, 1000).len(), 101);

    // 680-685 = 68, 686-689 = NULL, 690-695 = 69: simple next/prev.
    let (cur, v) = p.walk(686);
    assert_eq!((cur.clone(), v), (686..=689, None));
    let n = next(&p, &cur, 1000).unwrap();
    assert_eq!(n, (690..=695, 690 / 10));
    let pr = prev(&p, &n.0, 0).unwrap();
    assert_eq!(pr, (680..=685, 680 / 10));
    let n = next(&p, &pr.0, 1000).unwrap();
    assert_eq!(n, (690..=695, 690 / 10));
    let n = next(&p, &n.0, 1000).unwrap();
    assert_eq!(n, (700..=705, 700 / 10));

    // Across node boundaries.
    let (cur, v) = p.walk(70);
    assert_eq!((cur.clone(), v), (70..=75, Some(70 / 10)));
    let n = next(&p, &cur, 1000).unwrap();
    assert_eq!(n, (80..=85, 80 / 10));
    let pr = prev(&p, &n.0, 70).unwrap();
    assert_eq!(pr, (70..=75, 70 / 10));

    // Across two levels of the tree.
    let (cur, v) = p.walk(level2[0]);
    assert_eq!(v, None);
    let n = next(&p, &cur, level2[1]).unwrap();
    assert_eq!(n, (level2[2]..=level2[3], level2[2] / 10));
    let n2 = next(&p, &n.0, level2[1]).unwrap();
    assert_eq!(n2, (level2[4]..=level2[5], level2[4] / 10));
    let pr = prev(&p, &n2.0, 0).unwrap();
    assert_eq!(pr, (level2[2]..=level2[3], level2[2] / 10));

    // Running off the end and back on.
    let (cur, v) = p.walk(nr_entries * 10);
    assert_eq!(
        (cur.clone(), v),
        (nr_entries * 10..=nr_entries * 10 + 5, Some(nr_entries))
    );
    assert_eq!(next(&p, &cur, usize::MAX), None);
    assert_eq!(p.walk(usize::MAX), (nr_entries * 10 + 6..=usize::MAX, None));
    let pr = p.find_rev(0, usize::MAX).unwrap();
    assert_eq!(pr, (nr_entries * 10..=nr_entries * 10 + 5, nr_entries));

    // Running off the start and back on.
    let (cur, v) = p.walk(10);
    assert_eq!((cur.clone(), v), (10..=15, Some(1)));
    let pr = prev(&p, &cur, 0).unwrap();
    assert_eq!(pr, (0..=5, 0));
    assert_eq!(prev(&p, &pr.0, 0), None);

    p.punch(0, 5);
    let (cur, _) = p.walk(10);
    assert_eq!(prev(&p, &cur, 0), None);
    assert_eq!(p.walk(0), (0..=9, None));
    p.check("next_prev_test");

    let mut p = Pair::new();
    p.store(0, 0, 0);
    p.store(5, 5, 5);
    // mas_set(5); mas_prev(4): the entry at 0 is below the limit.
    assert_eq!(p.find_rev(4, 4), None);
    assert_eq!(prev(&p, &(5..=5), 4), None);
    assert_eq!(prev(&p, &(5..=5), 0), Some((0..=0, 0)));
}

/// Ports `check_iteration`: stores while iterating, and what the next search returns
/// afterwards.
#[test]
fn check_iteration() {
    let nr_entries = 125;
    let mut p = Pair::new_alloc();
    for i in 0..=nr_entries {
        p.store(i * 10, i * 10 + 9, i);
    }

    // Overwrite the end of entry 92 while iterating up to 925.
    let mut i = 0;
    let mut pos = Some(0usize);
    let mut cursor = 0..=0;
    while let Some((r, v)) = pos.and_then(|a| if a <= 925 { p.find(a, 925) } else { None }) {
        assert_eq!(r, i * 10..=i * 10 + 9);
        cursor = r;
        if i == 92 {
            p.store(925, 929, v);
            cursor = 925..=929;
        }
        pos = cursor.end().checked_add(1);
        i += 1;
    }
    assert_eq!(i, 93);
    // The next find gets the next value.
    assert_eq!(next(&p, &cursor, usize::MAX).map(|h| h.1), Some(i));
    assert_eq!(p.walk(924), (920..=924, Some(92)));
    assert_eq!(
        p.walk(925),
        (925..=929, Some(92)),
        "a store of the same value is its own range"
    );

    // Overwrite the start of entry 78 while iterating up to 785.
    let mut i = 0;
    let mut pos = Some(0usize);
    while let Some((r, v)) = pos.and_then(|a| if a <= 785 { p.find(a, 785) } else { None }) {
        assert_eq!(r, i * 10..=i * 10 + 9);
        cursor = r;
        if i == 78 {
            p.store(780, 785, v);
            cursor = 780..=785;
        } else {
            i += 1;
        }
        pos = cursor.end().checked_add(1);
    }
    assert_eq!(i, 78);
    assert_eq!(
        next(&p, &cursor, usize::MAX),
        Some((786..=789, xv(i).get()))
    );

    // Overwrite the end of entry 76 while iterating up to 765, then step to the rest of it.
    let mut i = 0;
    let mut pos = Some(0usize);
    while let Some((r, v)) = pos.and_then(|a| if a <= 765 { p.find(a, 765) } else { None }) {
        assert_eq!(r, i * 10..=i * 10 + 9);
        cursor = r;
        if i == 76 {
            p.store(760, 765, v);
            cursor = next(&p, &(760..=765), usize::MAX).unwrap().0;
        }
        pos = cursor.end().checked_add(1);
        i += 1;
    }
    // The kernel's next mas_find returns the piece after 765 (766-769, value 76) that
    // mas_next stepped onto.
    assert_eq!(cursor, 766..=769);
    assert_eq!(p.find(766, usize::MAX), Some((766..=769, 76)));
    p.check("check_iteration");
}
