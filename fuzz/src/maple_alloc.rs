//! `maple_alloc`: gap search and allocation on maple trees against a linear-scan oracle.
//!
//! Mostly allocation trees (whose internal nodes track the largest gap under each child),
//! sometimes plain ones (where gap search scans and the `alloc_*` calls must refuse with
//! `NotAllocTree`). The writes of `maple_ops` shape the tree; `empty_area`,
//! `empty_area_rev`, `alloc_range`, `alloc_rrange` and `alloc_cyclic` are checked against
//! [`RangeOracle::gap_search`](crate::oracle::RangeOracle::gap_search), a scan of the
//! complement of the stored ranges. The aligned calls (`empty_area_aligned`,
//! `empty_area_rev_aligned`, `alloc_range_aligned`, `alloc_rrange_aligned`) are checked
//! against [`want_aligned`], the same scan rounding each free run in 128-bit arithmetic,
//! and `remove_exact` against the oracle's overlapping ranges.

use std::sync::Arc;

use maple::{AllocErrorKind, AreaError, GapError, MapleTree, RemoveError, Value};
use rcu::{Domain, Epoch, Seize};

use crate::avoid;
use crate::input::{Input, Span};
use crate::maple_ops::{MapleHarness, TestEntry};

/// The oracle's answer to a gap search.
fn want_gap(
    h: &MapleHarness<impl TestEntry, impl Domain>,
    window: Span,
    size: usize,
    rev: bool,
) -> Result<usize, GapError> {
    let (lo, hi) = window.inclusive().ok_or(GapError::Invalid)?;
    if size == 0 || hi - lo < size - 1 {
        return Err(GapError::Invalid);
    }
    h.oracle.gap_search(lo, hi, size, rev).ok_or(GapError::Busy)
}

/// An alignment: mostly a power of two (any of the 64), sometimes 0 or not a power of two.
fn align(inp: &mut Input<'_>) -> usize {
    let sel = inp.byte();
    match sel % 16 {
        0 => 0,
        1 => 3 << (sel >> 4),
        2..=7 => 1 << (sel >> 4),
        _ => 1 << (inp.byte() % 64),
    }
}

/// An offset: small, steered like an index, or any word.
fn offset(inp: &mut Input<'_>) -> usize {
    match inp.byte() % 4 {
        0 => 0,
        1 => inp.byte() as usize,
        2 => inp.index(),
        _ => inp.word(),
    }
}

/// The oracle's answer to an aligned gap search: the argument checks in the tree's order,
/// then the first (or, with `rev`, last) free run holding an aligned start, rounded in
/// 128-bit arithmetic.
fn want_aligned(
    oracle: &crate::oracle::RangeOracle,
    window: Span,
    size: usize,
    align: usize,
    offset: usize,
    rev: bool,
) -> Result<usize, AreaError> {
    let (lo, hi) = window.inclusive().ok_or(AreaError::EmptyWindow)?;
    if size == 0 {
        return Err(AreaError::ZeroSize);
    }
    if align == 0 || align & (align - 1) != 0 {
        return Err(AreaError::BadAlign);
    }
    if (hi - lo) as u128 + 1 < size as u128 {
        return Err(AreaError::WindowTooSmall);
    }
    let (al, off, sz) = (align as u128, (offset % align) as u128, size as u128);
    let fit = |&(x, y): &(usize, usize)| -> Option<usize> {
        let (a, b) = (x.max(lo) as u128, y.min(hi) as u128);
        if a > b || b - a + 1 < sz {
            return None;
        }
        let s = if rev {
            let top = b + 1 - sz;
            top.checked_sub((top % al + al - off) % al)?
        } else {
            a + (off + al - a % al) % al
        };
        (s >= a && s + sz - 1 <= b).then_some(s as usize)
    };
    let gaps = oracle.gaps();
    let found = if rev {
        gaps.iter().rev().find_map(fit)
    } else {
        gaps.iter().find_map(fit)
    };
    found.ok_or(AreaError::Busy)
}

fn op_gap_aligned<E: TestEntry, D: Domain>(
    h: &mut MapleHarness<E, D>,
    inp: &mut Input<'_>,
    rev: bool,
) {
    let window = inp.range();
    let size = inp.size();
    let (align, offset) = (align(inp), offset(inp));
    h.note(format!(
        "empty_area_aligned(rev={rev}, {window:?}, size {size}, align {align:#x}, offset {offset:#x})"
    ));
    let r = h.tree.read();
    let got = if rev {
        r.empty_area_rev_aligned(window.bounds(), size, align, offset)
    } else {
        r.empty_area_aligned(window.bounds(), size, align, offset)
    };
    drop(r);
    let want = want_aligned(&h.oracle, window, size, align, offset, rev);
    h.check_eq("empty_area_aligned", got, want);
    if align == 1 {
        // Alignment 1 is the unaligned search.
        let r = h.tree.read();
        let plain = if rev {
            r.empty_area_rev(window.bounds(), size)
        } else {
            r.empty_area(window.bounds(), size)
        };
        drop(r);
        h.check_eq(
            "empty_area vs aligned 1",
            plain,
            want.map_err(GapError::from),
        );
    }
}

fn op_alloc_aligned<E: TestEntry, D: Domain>(
    h: &mut MapleHarness<E, D>,
    inp: &mut Input<'_>,
    rev: bool,
) {
    let window = inp.range();
    let size = inp.size();
    let (align, offset) = (align(inp), offset(inp));
    let id = h.id();
    h.note(format!(
        "alloc_range_aligned(rev={rev}, size {size}, align {align:#x}, offset {offset:#x}, {window:?}, {id})"
    ));
    let w = h.tree.lock();
    let got = if rev {
        w.alloc_rrange_aligned(size, align, offset, E::make(id), window.bounds())
    } else {
        w.alloc_range_aligned(size, align, offset, E::make(id), window.bounds())
    };
    drop(w);
    let want = if h.tree.is_alloc() {
        want_aligned(&h.oracle, window, size, align, offset, rev)
    } else {
        Err(AreaError::NotAllocTree)
    };
    match (got, want) {
        (Ok(s), Ok(t)) if s == t => h.oracle.store(s, s + (size - 1), id),
        (Err(e), Err(k)) if e.kind == k => h.check_eq("returned value", e.value.own_id(), id),
        (got, want) => {
            let got = got.map_err(|e| e.kind);
            h.fail(&format!(
                "alloc_range_aligned: tree gave {got:?}, oracle wants {want:?}"
            ))
        }
    }
}

fn op_remove_exact<E: TestEntry, D: Domain>(
    h: &mut MapleHarness<E, D>,
    inp: &mut Input<'_>,
    pick_stored: bool,
) {
    // Either a stored range exactly (picked by position), or an arbitrary range.
    let stored = h.oracle.ranges();
    let window = if pick_stored && !stored.is_empty() {
        let (r, _) = &stored[inp.u16() as usize % stored.len()];
        let (a, b) = (*r.start(), *r.end());
        Span {
            start: std::ops::Bound::Included(a),
            end: std::ops::Bound::Included(b),
        }
    } else {
        inp.range()
    };
    h.note(format!("remove_exact({window:?})"));
    let w = h.tree.lock();
    let got = w.remove_exact(window.bounds()).map(E::id_of);
    drop(w);
    let want = match window.inclusive() {
        None => Err(RemoveError::InvalidRange),
        Some((a, b)) => match h.oracle.overlapping(a, b).first() {
            None => Err(RemoveError::Vacant),
            Some((r, id)) if (*r.start(), *r.end()) == (a, b) => Ok(*id),
            Some((r, _)) => Err(RemoveError::Mismatch { found: r.clone() }),
        },
    };
    if want.is_ok() {
        if let Some((a, b)) = window.inclusive() {
            h.oracle.clear(a, b);
        }
    }
    h.check_eq("remove_exact", got, want);
}

fn alloc_kind(e: GapError) -> AllocErrorKind {
    match e {
        GapError::Busy => AllocErrorKind::Busy,
        GapError::Invalid => AllocErrorKind::Invalid,
    }
}

/// Allocation-specific state next to the shared harness.
struct Cyclic {
    /// The caller's `next` cursor for `alloc_cyclic`.
    next: usize,
    /// The model of the tree's "next wrapped past usize::MAX" flag.
    wrapped_flag: bool,
}

fn op_gap<E: TestEntry, D: Domain>(h: &mut MapleHarness<E, D>, inp: &mut Input<'_>, rev: bool) {
    let window = inp.range();
    let size = inp.size();
    h.note(format!("empty_area(rev={rev}, {window:?}, size {size})"));
    let r = h.tree.read();
    let got = if rev {
        r.empty_area_rev(window.bounds(), size)
    } else {
        r.empty_area(window.bounds(), size)
    };
    drop(r);
    h.check_eq("empty_area", got, want_gap(h, window, size, rev));
}

fn op_alloc<E: TestEntry, D: Domain>(h: &mut MapleHarness<E, D>, inp: &mut Input<'_>, rev: bool) {
    let window = inp.range();
    let size = inp.size();
    let id = h.id();
    h.note(format!(
        "alloc_range(rev={rev}, size {size}, {window:?}, {id})"
    ));
    let w = h.tree.lock();
    let got = if rev {
        w.alloc_rrange(size, E::make(id), window.bounds())
    } else {
        w.alloc_range(size, E::make(id), window.bounds())
    };
    drop(w);
    let want = if h.tree.is_alloc() {
        want_gap(h, window, size, rev).map_err(alloc_kind)
    } else {
        Err(AllocErrorKind::NotAllocTree)
    };
    match (got, want) {
        (Ok(s), Ok(t)) if s == t => h.oracle.store(s, s + (size - 1), id),
        (Err(e), Err(k)) if e.kind == k => h.check_eq("returned value", e.value.own_id(), id),
        (got, want) => {
            let got = got.map_err(|e| e.kind);
            h.fail(&format!(
                "alloc_range: tree gave {got:?}, oracle wants {want:?}"
            ))
        }
    }
}

fn op_cyclic<E: TestEntry, D: Domain>(
    h: &mut MapleHarness<E, D>,
    c: &mut Cyclic,
    inp: &mut Input<'_>,
    set_next: bool,
) {
    if set_next {
        c.next = inp.index();
    }
    let window = inp.range();
    let id = h.id();
    h.note(format!("alloc_cyclic({window:?}, next {}, {id})", c.next));
    let mut next = c.next;
    let w = h.tree.lock();
    let got = w.alloc_cyclic(window.bounds(), &mut next, E::make(id));
    drop(w);
    // The model: search [max(lo, next), hi]; if that fails and started above lo, search
    // the whole window and report the wrap. A previous allocation of usize::MAX (next
    // wrapped to 0) is reported by the next allocation whose first search succeeds.
    let mut consumed = false;
    let want = if !h.tree.is_alloc() {
        Err(AllocErrorKind::NotAllocTree)
    } else if let Some((lo, hi)) = window.inclusive() {
        let start = lo.max(c.next);
        let first = if start > hi {
            None
        } else {
            h.oracle.gap_search(start, hi, 1, false)
        };
        match first {
            Some(s) => {
                consumed = c.wrapped_flag;
                Ok((s, consumed))
            }
            None => h
                .oracle
                .gap_search(lo, hi, 1, false)
                .map(|s| (s, start > lo))
                .ok_or(AllocErrorKind::Busy),
        }
    } else {
        Err(AllocErrorKind::Invalid)
    };
    match (got, want) {
        (Ok(g), Ok(t)) if g == t => {
            let s = g.0;
            h.oracle.store(s, s, id);
            if consumed {
                c.wrapped_flag = false;
            }
            h.check_eq("next", next, s.wrapping_add(1));
            c.next = next;
            if next == 0 {
                c.wrapped_flag = true;
            }
        }
        (Err(e), Err(k)) if e.kind == k => {
            h.check_eq("returned value", e.value.own_id(), id);
            h.check_eq("next untouched", next, c.next);
        }
        (got, want) => {
            let got = got.map_err(|e| e.kind);
            h.fail(&format!(
                "alloc_cyclic: tree gave {got:?}, oracle wants {want:?}"
            ))
        }
    }
}

/// Run the `maple_alloc` target on `data`. Panics on any divergence.
///
/// The first byte picks the tree and entry type: `% 8` = 0-3: allocation tree of `Value`
/// (`Seize`); 4: of `Value` (`Epoch`); 5: of `Arc<u64>`; 6: of `Box<u64>`; 7: a plain tree
/// of `Value`.
pub fn run_maple_alloc(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut kind = inp.byte() % 8;
    if avoid("f1") && matches!(kind, 5 | 6) {
        kind = 0;
    }
    match kind {
        0..=3 => drive::<Value, Seize>(&mut inp, MapleTree::alloc_with_domain(Seize::default())),
        4 => drive::<Value, Epoch>(&mut inp, MapleTree::alloc_with_domain(Epoch::default())),
        5 => drive::<Arc<u64>, Seize>(&mut inp, MapleTree::new_alloc()),
        6 => drive::<Box<u64>, Seize>(&mut inp, MapleTree::new_alloc()),
        _ => drive::<Value, Seize>(&mut inp, MapleTree::new()),
    }
}

fn drive<E: TestEntry, D: Domain>(inp: &mut Input<'_>, tree: MapleTree<E, D>) {
    let rebuild: fn() -> MapleTree<E, D> = if tree.is_alloc() {
        || MapleTree::alloc_with_domain(D::default())
    } else {
        MapleTree::default
    };
    let mut h = MapleHarness::new(tree);
    let mut c = Cyclic {
        next: 0,
        wrapped_flag: false,
    };
    while !inp.is_empty() {
        crate::count_ops(1);
        // Writes (0-15) shape the tree; 16-27 search and allocate; 28-33 aligned search,
        // aligned allocation and exact removal.
        match inp.byte() % 34 {
            op @ 0..=15 => {
                h.step(op, inp, rebuild);
            }
            16..=18 => op_gap(&mut h, inp, false),
            19..=21 => op_gap(&mut h, inp, true),
            22 | 23 => op_alloc(&mut h, inp, false),
            24 | 25 => op_alloc(&mut h, inp, true),
            26 => op_cyclic(&mut h, &mut c, inp, false),
            27 => op_cyclic(&mut h, &mut c, inp, true),
            28 => op_gap_aligned(&mut h, inp, false),
            29 => op_gap_aligned(&mut h, inp, true),
            30 => op_alloc_aligned(&mut h, inp, false),
            31 => op_alloc_aligned(&mut h, inp, true),
            32 => op_remove_exact(&mut h, inp, true),
            _ => op_remove_exact(&mut h, inp, false),
        }
        if h.replaced {
            // A fresh tree object: its wrap flag starts clear.
            h.replaced = false;
            c.wrapped_flag = false;
        }
        h.check_all();
    }
}
