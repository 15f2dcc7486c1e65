//! **hot-vma**: every thread looks up addresses inside one VMA (the uprobe case, where all
//! CPUs hit the same text mapping): store-free speculation ([`Mm::lookup_speculative`],
//! and [`Mm::lookup`] with its per-thread counters and fallback, which must cost no more
//! than 5% over it) against the per-VMA read lock ([`Mm::lock_vma_under_rcu`], whose
//! reference count is one cache line every thread writes) and against `mmap_read_lock` +
//! `vma_lookup` (one lock word every thread writes).

use std::hint::black_box;
use std::thread;
use std::time::Duration;

use vmlock::{Backing, FileId, MapFlags, MapRequest, Mm, MmConfig, Prot, Speculation, VmaInfo};

use super::fault::{
    fmt_rate, interleave, interleave_corun, load_note, run_corun, run_window, Bursts, CoRun, Op,
    Rates, Window, BASE,
};
use super::{Ctx, TableDef};
use crate::report::{fmt_ratio, fmt_vs, verdict, Table};
use crate::workload::SplitMix64;

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "hot-vma",
    about: "all threads look up one VMA: speculation vs per-VMA read lock vs mmap_lock",
    run,
};

/// Pages of the hot VMA.
pub const HOT_PAGES: usize = 256;
/// Other VMAs around it (so the tree has a few levels, as in a real process).
pub const AROUND: usize = 400;

/// An address space with one hot, file-backed, read-execute VMA among [`AROUND`] others.
#[derive(Debug)]
pub struct HotSpace {
    /// The address space.
    pub mm: Mm,
    /// The hot VMA.
    pub hot: VmaInfo,
}

impl Default for HotSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl HotSpace {
    /// Build the address space.
    pub fn new() -> Self {
        const PAGE: usize = vmlock::PAGE_SIZE;
        let mm = Mm::new(MmConfig::default());
        let map = |addr: usize, len: usize, prot: Prot, backing: Backing| {
            let req = MapRequest {
                addr: Some(addr),
                len,
                prot,
                flags: MapFlags::PRIVATE | MapFlags::FIXED,
                backing,
            };
            assert_eq!(mm.mmap(&req), Ok(addr));
        };
        // Two-page anonymous VMAs with a page between them, the hot one in the middle.
        let hot_at = BASE + AROUND / 2 * 3 * PAGE;
        for i in 0..AROUND {
            let a = BASE
                + i * 3 * PAGE
                + if i >= AROUND / 2 {
                    (HOT_PAGES + 1) * PAGE
                } else {
                    0
                };
            map(a, 2 * PAGE, Prot::READ | Prot::WRITE, Backing::Anonymous);
        }
        let text = Backing::File {
            file: FileId(1),
            pgoff: 0,
        };
        map(hot_at, HOT_PAGES * PAGE, Prot::READ | Prot::EXEC, text);
        let hot = mm.mmap_read_lock().vma_lookup(hot_at);
        let hot = hot.expect("the hot VMA was just mapped");
        HotSpace { mm, hot }
    }

    /// A random byte of the hot VMA.
    pub fn random_addr(&self, rng: &mut SplitMix64) -> usize {
        self.hot.start + rng.below((self.hot.end - self.hot.start) as u64) as usize
    }
}

/// How a reader finds the VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HotPath {
    /// [`Mm::lookup_speculative`] (the `mmap_lock` only if it says `Retry`).
    Speculative,
    /// [`Mm::lookup`]: speculation, its per-thread counters, the `mmap_lock` as a fallback.
    Lookup,
    /// [`Mm::lock_vma_under_rcu`], read the VMA, drop the lock (`mmap_lock` on `None`).
    VmaLock,
    /// `mmap_read_lock` + `vma_lookup`.
    MmapLock,
}

impl HotPath {
    /// All paths, in table order.
    pub const ALL: [HotPath; 4] = [
        HotPath::Speculative,
        HotPath::Lookup,
        HotPath::VmaLock,
        HotPath::MmapLock,
    ];

    /// Row label.
    pub fn label(self) -> &'static str {
        match self {
            HotPath::Speculative => "speculation (`lookup_speculative`)",
            HotPath::Lookup => "speculation + per-thread counters (`lookup`)",
            HotPath::VmaLock => "per-VMA read lock (`lock_vma_under_rcu`)",
            HotPath::MmapLock => "mmap_lock (`mmap_read_lock` + `vma_lookup`)",
        }
    }

    /// Find the VMA containing `addr`.
    ///
    /// ```
    /// use benches::tables::hot_vma::{HotPath, HotSpace};
    /// let s = HotSpace::new();
    /// for p in HotPath::ALL {
    ///     assert_eq!(p.find(&s.mm, s.hot.start + 100), Some(s.hot));
    /// }
    /// ```
    pub fn find(self, mm: &Mm, addr: usize) -> Option<VmaInfo> {
        let locked = || mm.mmap_read_lock().vma_lookup(addr);
        match self {
            HotPath::Speculative => match mm.lookup_speculative(addr) {
                Speculation::Found(v) => Some(v),
                Speculation::Unmapped => None,
                Speculation::Retry => locked(),
            },
            HotPath::Lookup => mm.lookup(addr),
            HotPath::VmaLock => match mm.lock_vma_under_rcu(addr) {
                Some(g) => Some(g.info()),
                None => locked(),
            },
            HotPath::MmapLock => locked(),
        }
    }
}

/// Medians for every path (in [`HotPath::ALL`] order) with `threads` threads, measured
/// in `rounds` interleaved windows of `window`.
pub fn measure(space: &HotSpace, threads: usize, window: Duration, rounds: usize) -> Vec<Rates> {
    let mut cs: Vec<Window<'_>> = HotPath::ALL
        .iter()
        .map(|&path| {
            Box::new(move |seed: u64| {
                let read = |rng: &mut SplitMix64| {
                    black_box(path.find(&space.mm, space.random_addr(rng)));
                };
                run_window(threads, window, seed, &read as Op<'_>, None)
            }) as Window<'_>
        })
        .collect();
    interleave(rounds, &mut cs)
}

/// Co-running bursts (see [`run_corun`]) of `threads` threads through every path, in
/// [`HotPath::ALL`] order: `rounds` rounds of `bursts` bursts, interleaved.
pub fn measure_corun(
    space: &HotSpace,
    threads: usize,
    burst: Duration,
    bursts: usize,
    rounds: usize,
) -> Vec<CoRun> {
    let mut cs: Vec<Bursts<'_>> = HotPath::ALL
        .iter()
        .map(|&path| {
            Box::new(move |seed: u64| {
                let read = |rng: &mut SplitMix64| {
                    black_box(path.find(&space.mm, space.random_addr(rng)));
                };
                run_corun(threads, burst, bursts, seed, &read as Op<'_>, None)
            }) as Bursts<'_>
        })
        .collect();
    interleave_corun(rounds, &mut cs)
}

/// Co-running bursts of one thread speculating on the hot VMA, alone and beside a second
/// thread (on another CPU) that takes and drops the per-VMA read lock of the same VMA, so
/// writes its reference-count line: `[alone, beside]`, interleaved. This is what the VMA
/// layout (64- or 128-byte lines, feature `vmlock/vma-align-128`) is about.
pub fn measure_beside(
    space: &HotSpace,
    burst: Duration,
    bursts: usize,
    rounds: usize,
) -> Vec<CoRun> {
    let mut cs: Vec<Bursts<'_>> = [false, true]
        .into_iter()
        .map(|beside| {
            Box::new(move |seed: u64| {
                let read = |rng: &mut SplitMix64| {
                    black_box(HotPath::Speculative.find(&space.mm, space.random_addr(rng)));
                };
                let lock = |rng: &mut SplitMix64| {
                    black_box(HotPath::VmaLock.find(&space.mm, space.random_addr(rng)));
                };
                let locker = beside.then_some(&lock as Op<'_>);
                run_corun(1, burst, bursts, seed, &read as Op<'_>, locker)
            }) as Bursts<'_>
        })
        .collect();
    interleave_corun(rounds, &mut cs)
}

/// The thread count of the table: every core, at least 2, at most 8.
pub fn threads() -> usize {
    thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let space = HotSpace::new();
    let t_max = threads();
    let window = ctx.pick(
        Duration::from_millis(20),
        Duration::from_millis(40),
        Duration::from_millis(100),
    );
    let rounds = ctx.pick(3, 7, 11);
    let counts = [1, t_max];
    let mut rates = Vec::new();
    for &n in &counts {
        ctx.progress(format!("hot-vma: {n} thread(s)"));
        rates.push(measure(&space, n, window, rounds));
    }
    let burst = Duration::from_micros(500);
    let bursts = ctx.pick(20, 40, 80);
    ctx.progress(format!("hot-vma: {t_max} threads, co-running bursts"));
    let co = measure_corun(&space, t_max, burst, bursts, rounds);
    let co_base = co[2].rate;
    let at = |c: usize, p: HotPath| {
        let i = HotPath::ALL.iter().position(|&x| x == p).unwrap_or(0);
        rates[c][i]
    };
    let mut header: Vec<String> = vec!["read path".to_string()];
    for n in counts {
        let s = if n == 1 { "" } else { "s" };
        header.push(format!("{n} thread{s}: lookups/s"));
        header.push(format!("{n} thread{s}: CPU per lookup"));
    }
    header.push(format!("scaling 1 → {t_max}"));
    header.push(format!("co-running {t_max} threads: lookups/s"));
    header.push("bursts kept".to_string());
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(
        "hot-vma: every thread looks up one VMA (ratios vs the per-VMA read lock)",
        &header,
    );
    for p in HotPath::ALL {
        let mut row = vec![p.label().to_string()];
        for c in 0..counts.len() {
            let (r, base) = (at(c, p), at(c, HotPath::VmaLock));
            row.push(format!(
                "{} ({})",
                fmt_rate(r.wall),
                fmt_ratio(r.wall / base.wall)
            ));
            row.push(fmt_vs(r.cpu_ns, base.cpu_ns));
        }
        row.push(fmt_ratio(at(1, p).wall / at(0, p).wall));
        let c = co[HotPath::ALL.iter().position(|&x| x == p).unwrap_or(0)];
        row.push(format!(
            "{} ({})",
            fmt_rate(c.rate),
            fmt_ratio(c.rate / co_base)
        ));
        row.push(format!("{}/{}", c.accepted, c.tried));
        t.row(row);
    }
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    t.note(format!(
        "One {HOT_PAGES}-page file-backed read-exec VMA among {AROUND} others; each lookup \
         is at a random byte of it; no writer. Lookups/s: all threads together, wall clock, \
         median of {rounds} interleaved windows of {window:?} (ratio: higher is better). CPU \
         per lookup: the threads' own CPU time per lookup (ratio: lower is better; not \
         affected by other load descheduling the threads). This machine has {cores} cores, \
         so the widest column uses {t_max} threads (\"all threads\" = every core)."
    ));
    t.note(load_note(
        &format!("the {t_max} threads (per-VMA path)"),
        at(1, HotPath::VmaLock).cpu_share,
    ));
    t.note(format!(
        "Co-running: {t_max} threads, bursts of {burst:?} started together by a spinning \
         barrier; only bursts in which no thread was preempted (no involuntary context \
         switch, per getrusage) and all started within 5% of the burst are kept, so the \
         threads really ran side by side and contended for the shared cache lines. Median \
         over the kept bursts of {rounds} rounds x {bursts} bursts, interleaved; n/a if \
         fewer than 3 were kept."
    ));
    for (i, p) in HotPath::ALL.iter().enumerate().take(2) {
        let c = co[i].rate / co_base;
        t.note(format!(
            "Goal, co-running: {} ≥ 3x the per-VMA path at {t_max} threads: {} ({}).",
            p.label(),
            fmt_ratio(c),
            verdict(c >= 3.0)
        ));
    }
    {
        // `lookup` against `lookup_speculative`: the counters must be (nearly) free.
        let (spec, look) = (HotPath::Speculative, HotPath::Lookup);
        let i = |p: HotPath| HotPath::ALL.iter().position(|&x| x == p).unwrap_or(0);
        let walls: Vec<f64> = (0..counts.len())
            .map(|c| at(c, look).wall / at(c, spec).wall)
            .collect();
        let cpus: Vec<f64> = (0..counts.len())
            .map(|c| at(c, look).cpu_ns / at(c, spec).cpu_ns)
            .collect();
        let co_ratio = co[i(look)].rate / co[i(spec)].rate;
        let worst_cpu = cpus.iter().copied().fold(0.0, f64::max);
        t.note(format!(
            "Goal: `lookup` (which counts its outcome) within 5% of `lookup_speculative` \
             (store-free: the counters are per thread, a load and a store on a line only \
             that thread writes, summed when read). Lookups/s `lookup` over \
             `lookup_speculative`: {} at 1 thread, {} at {t_max} threads, {} co-running; \
             CPU per lookup: {} and {} ({}: CPU per lookup at most 1.05x). The count that \
             does not depend on the machine's load is in BENCHMARKS.md (callgrind: \
             instructions and atomic read-modify-writes per lookup).",
            fmt_ratio(walls[0]),
            fmt_ratio(walls[1]),
            fmt_ratio(co_ratio),
            fmt_ratio(cpus[0]),
            fmt_ratio(cpus[1]),
            verdict(worst_cpu <= 1.05)
        ));
    }
    for p in [HotPath::Speculative, HotPath::Lookup] {
        let (r, base) = (at(1, p), at(1, HotPath::VmaLock));
        let wall = r.wall / base.wall;
        let cpu = base.cpu_ns / r.cpu_ns;
        t.note(format!(
            "Goal, {} ≥ 3x the per-VMA path at {t_max} threads: {} in lookups/s ({}), {} in \
             CPU per lookup ({}).",
            p.label(),
            fmt_ratio(wall),
            verdict(wall >= 3.0),
            fmt_ratio(cpu),
            verdict(cpu >= 3.0)
        ));
    }
    ctx.progress("hot-vma: speculation beside a read-locker, co-running bursts");
    let side = measure_beside(&space, burst, bursts, rounds);
    let align = std::mem::align_of::<vmlock::raw::Vma>();
    let mut l = Table::new(
        format!(
            "hot-vma: VMA line layout ({align}-byte lines): one speculating thread, alone and \
             beside a per-VMA read-locker of the same VMA (co-running)"
        ),
        &[
            "VMA alignment",
            "speculation alone",
            "beside a read-locker",
            "read locks/s",
            "bursts kept",
        ],
    );
    l.row(vec![
        format!("{align} B"),
        fmt_rate(side[0].rate),
        format!(
            "{} ({})",
            fmt_rate(side[1].rate),
            fmt_ratio(side[1].rate / side[0].rate)
        ),
        fmt_rate(side[1].writer),
        format!(
            "{}/{}, {}/{}",
            side[0].accepted, side[0].tried, side[1].accepted, side[1].tried
        ),
    ]);
    l.note(
        "The speculating thread reads the VMA's first line; the read-locker writes its \
         reference-count line (`lock_vma_under_rcu` + drop, in a loop, pinned to the other \
         CPU). With 64-byte alignment the two lines are adjacent in one 128-byte pair, \
         which adjacent-line prefetchers fetch together; `--features vmlock/vma-align-128` \
         gives each its own pair. The ratio is the speculation rate beside the locker over \
         alone (1.00x: no interference). Same co-running bursts as above.",
    );
    vec![t, l]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_finds_the_hot_vma_and_nothing_in_the_holes() {
        let s = HotSpace::new();
        assert_eq!(s.mm.vma_count(), AROUND + 1);
        assert_eq!(s.hot.end - s.hot.start, HOT_PAGES * vmlock::PAGE_SIZE);
        let mut rng = SplitMix64::new(5);
        for _ in 0..200 {
            let a = s.random_addr(&mut rng);
            for p in HotPath::ALL {
                assert_eq!(p.find(&s.mm, a), Some(s.hot), "{p:?} {a:#x}");
            }
        }
        for a in [s.hot.start - 1, s.hot.end, BASE - 1] {
            for p in HotPath::ALL {
                assert_eq!(p.find(&s.mm, a), None, "{p:?} {a:#x}");
            }
        }
        // The speculative paths did not need the lock (no writer): all answered.
        let st = s.mm.stats();
        assert_eq!((st.spec_failed, st.fallback), (0, 0), "{st:?}");
        assert_eq!(st.spec_ok, 203);
    }

    #[test]
    fn measure_gives_a_rate_per_path() {
        let s = HotSpace::new();
        let r = measure(&s, 2, Duration::from_millis(2), 2);
        assert_eq!(r.len(), HotPath::ALL.len());
        for x in &r {
            assert!(
                x.wall.is_finite() && x.wall > 0.0 && x.cpu_ns > 0.0,
                "{r:?}"
            );
        }
    }
}
