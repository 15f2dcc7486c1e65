//! **fork**: copying an address space of many VMAs with [`Mm::fork`] (write-lock every
//! parent VMA, duplicate the tree node by node, point its entries at copies of the VMAs)
//! against rebuilding the same layout in a fresh [`Mm`] by one `MAP_FIXED` mmap per VMA.

use std::hint::black_box;
use std::time::Duration;

use vmlock::{Backing, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, PAGE_SIZE};

use super::fault::BASE;
use super::{Ctx, TableDef};
use crate::harness::{Contender, Stopwatch};
use crate::report::{fmt_count, fmt_ratio, fmt_vs, Table};

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "fork",
    about: "Mm::fork of 10^4 VMAs vs rebuilding the layout by mmap(MAP_FIXED)",
    run,
};

/// The mmap requests of a layout of `n` VMAs, ascending: 1 to 4 pages each, one unmapped
/// page between neighbours, a mix of anonymous read-write and file-backed read-only
/// mappings (shaped like a process's heap arenas and libraries).
///
/// ```
/// let reqs = benches::tables::fork::layout(100);
/// let mm = benches::tables::fork::rebuild(&reqs);
/// assert_eq!(mm.vma_count(), 100);
/// ```
pub fn layout(n: usize) -> Vec<MapRequest> {
    let mut at = BASE;
    (0..n)
        .map(|i| {
            let len = (1 + i % 4) * PAGE_SIZE;
            let (prot, backing) = if i % 3 == 0 {
                let file = FileId(1 + (i / 3) as u64);
                (Prot::READ, Backing::File { file, pgoff: 0 })
            } else {
                (Prot::READ | Prot::WRITE, Backing::Anonymous)
            };
            let req = MapRequest {
                addr: Some(at),
                len,
                prot,
                flags: MapFlags::PRIVATE | MapFlags::FIXED,
                backing,
            };
            at += len + PAGE_SIZE;
            req
        })
        .collect()
}

/// A fresh address space with every request of `reqs` mapped, in order.
pub fn rebuild(reqs: &[MapRequest]) -> Mm {
    let mm = Mm::new(MmConfig::default());
    for r in reqs {
        let got = mm.mmap(r);
        assert_eq!(got.ok(), r.addr, "mapping {r:?}");
    }
    mm
}

/// Address spaces kept alive at once while timing; they are dropped with the clock stopped.
const SEGMENT: u64 = 4;

/// Time `n` runs of `f` (thread CPU time), not counting the drop of what they return.
fn time_each(n: u64, mut f: impl FnMut() -> Mm) -> Duration {
    let mut total = Duration::ZERO;
    let mut keep = Vec::with_capacity(SEGMENT.min(n) as usize);
    let mut left = n;
    while left > 0 {
        let k = left.min(SEGMENT);
        let t = Stopwatch::start();
        for _ in 0..k {
            keep.push(f());
        }
        total += t.elapsed();
        black_box(&keep);
        keep.clear();
        left -= k;
    }
    total
}

/// The two contenders for a parent built from `reqs`: fork it, or rebuild it by mmap.
pub fn contenders<'a>(parent: &'a Mm, reqs: &'a [MapRequest]) -> Vec<Contender<'a>> {
    vec![
        Contender::timed("Mm::fork", move |n| time_each(n, || parent.fork())),
        Contender::timed("fresh Mm + mmap(MAP_FIXED) each", move |n| {
            time_each(n, || rebuild(reqs))
        }),
    ]
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let sizes: &[usize] = ctx.pick(&[10_000], &[1_000, 10_000], &[1_000, 10_000, 100_000]);
    let mut t = Table::new(
        "fork: copy an address space (time per copy, ratio vs rebuilding by mmap)",
        &["VMAs", "Mm::fork", "rebuild by mmap", "fork speed-up"],
    );
    for &n in sizes {
        let reqs = layout(n);
        let parent = rebuild(&reqs);
        assert_eq!(parent.vma_count(), n);
        let mut cs = contenders(&parent, &reqs);
        let m = ctx.measure(&format!("fork {}", fmt_count(n)), &mut cs);
        let (fork, re) = (m[0].ns_per_op, m[1].ns_per_op);
        t.row(vec![
            fmt_count(n),
            fmt_vs(fork, re),
            fmt_vs(re, re),
            fmt_ratio(re / fork),
        ]);
    }
    t.note(format!(
        "VMAs of 1-4 pages, one page apart, every third one file-backed read-only, the rest \
         anonymous read-write (nothing merges). Thread CPU time, median of {} interleaved \
         batches; the drop of each copy is not timed. fork includes write-locking every \
         parent VMA and copying each VMA object; the rebuild maps the same requests in \
         ascending order into a fresh Mm.",
        ctx.cfg.rounds
    ));
    vec![t]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_and_rebuild_give_the_parent_layout() {
        let reqs = layout(300);
        let parent = rebuild(&reqs);
        let listing = parent.vmas();
        assert_eq!(listing.len(), 300);
        let child = parent.fork();
        assert_eq!(child.vmas(), listing);
        child.validate().unwrap();
        assert_eq!(rebuild(&reqs).vmas(), listing);
        // The contenders run and produce copies of the same size.
        let mut cs = contenders(&parent, &reqs);
        let cfg = crate::harness::Config {
            warmup: Duration::from_millis(1),
            batch: Duration::from_millis(1),
            rounds: 1,
        };
        let m = crate::harness::run(&cfg, &mut cs);
        assert!(m.iter().all(|m| m.ns_per_op > 0.0), "{m:?}");
        parent.validate().unwrap();
    }
}
