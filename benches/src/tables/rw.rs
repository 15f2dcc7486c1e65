//! **read-under-write**: one reader thread doing random point loads while one writer
//! thread churns (erase a random range, store it back). The figure is the reader's
//! throughput under the writer relative to the same reader alone, measured in alternating
//! windows so that both see the same machine.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use rcu::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rcu::{Epoch, Seize};

use super::{Ctx, TableDef};
use crate::harness::Stopwatch;
use crate::maple_peers::Maple;
use crate::peers::{RangeLookup, RwLockBTreePeer};
use crate::report::{fmt_count, fmt_ns, verdict, Table};
use crate::workload::{Layout, Points, SplitMix64};

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "rw",
    about: "read-under-write: reader throughput while a writer churns, relative to solo",
    run,
};

/// A structure a writer can churn while readers look up.
pub trait Churn: RangeLookup {
    /// One writer step: remove range `i` of the layout, then store it back.
    fn churn(&self, layout: &Layout, i: usize);
}

impl Churn for RwLockBTreePeer {
    fn churn(&self, layout: &Layout, i: usize) {
        let (s, e) = layout.ranges()[i];
        {
            let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
            m.remove(&s);
        }
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        m.insert(s, (e, i as u64));
    }
}

/// Control: the maple (seize) reader with a second thread that only computes (no memory
/// traffic). What any busy second thread costs a reader on this machine (shared core
/// resources, clock), independent of the tree.
pub struct SpinControl(Maple<Seize>);

impl RangeLookup for SpinControl {
    const NAME: &'static str = "control: maple (seize) + a computing thread";
    fn build(layout: &Layout) -> Self {
        Self(Maple::build(layout))
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        self.0.lookup(x)
    }
}

impl Churn for SpinControl {
    fn churn(&self, _layout: &Layout, i: usize) {
        let mut x = i as u64;
        for _ in 0..1000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        black_box(x);
    }
}

/// Control: the maple (seize) reader with a second thread writing at random into 32 MiB
/// of its own memory (the size of the shared L3): what a memory-heavy neighbour costs,
/// without touching the tree.
pub struct MemControl {
    tree: Maple<Seize>,
    buf: Vec<AtomicU64>,
}

impl RangeLookup for MemControl {
    const NAME: &'static str = "control: maple (seize) + a thread writing 32 MiB";
    fn build(layout: &Layout) -> Self {
        Self {
            tree: Maple::build(layout),
            buf: (0..(4 << 20)).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    #[inline]
    fn lookup(&self, x: usize) -> Option<u64> {
        self.tree.lookup(x)
    }
}

impl Churn for MemControl {
    fn churn(&self, _layout: &Layout, i: usize) {
        let mut rng = SplitMix64::new(i as u64);
        for _ in 0..64 {
            let j = rng.below(self.buf.len() as u64) as usize;
            // Relaxed: private scratch memory; only the traffic matters.
            self.buf[j].store(i as u64, Ordering::Relaxed);
        }
    }
}

/// One reader window: loads per wall-clock second and per second of the reader's CPU time.
fn read_for<P: RangeLookup>(p: &P, pts: &mut Points, window: Duration) -> (f64, f64) {
    let t = Instant::now();
    let cpu = Stopwatch::start();
    let mut ops = 0u64;
    loop {
        for _ in 0..256 {
            black_box(p.lookup(pts.next_point()));
        }
        ops += 256;
        let el = t.elapsed();
        if el >= window {
            let c = cpu.elapsed().max(Duration::from_nanos(1));
            return (ops as f64 / el.as_secs_f64(), ops as f64 / c.as_secs_f64());
        }
    }
}

/// Result of one structure: medians of reader throughput alone and under the writer, and
/// the writer's throughput.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RwResult {
    /// Reader loads per wall-clock second alone.
    pub solo: f64,
    /// Reader loads per wall-clock second while the writer churns.
    pub shared: f64,
    /// Reader loads per CPU second alone.
    pub solo_cpu: f64,
    /// Reader loads per CPU second while the writer churns.
    pub shared_cpu: f64,
    /// Writer steps/s (each step is an erase and a store).
    pub writer: f64,
    /// The writer thread panicked in some window (a bug in the structure).
    pub writer_failed: bool,
}

/// Measure `p` over `rounds` alternating windows.
pub fn measure<P: Churn>(p: &P, layout: &Layout, window: Duration, rounds: usize) -> RwResult {
    let mut pts = layout.points();
    let (mut solo, mut shared, mut writer) = (Vec::new(), Vec::new(), Vec::new());
    let (mut solo_cpu, mut shared_cpu) = (Vec::new(), Vec::new());
    let mut writer_failed = false;
    // Warm-up, untimed.
    read_for(p, &mut pts, window);
    for round in 0..rounds.max(1) {
        let (wall, cpu) = read_for(p, &mut pts, window);
        solo.push(wall);
        solo_cpu.push(cpu);
        let stop = AtomicBool::new(false);
        let started = AtomicBool::new(false);
        let steps = AtomicU64::new(0);
        let mut wt = None;
        thread::scope(|s| {
            let w = s.spawn(|| {
                let mut rng = SplitMix64::new(0x5EED ^ round as u64);
                let t = Instant::now();
                let mut n = 0u64;
                // Release: pairs with the reader's acquire spin; nothing else is published.
                started.store(true, Ordering::Release);
                // Relaxed: a stop request; the join below orders everything else.
                while !stop.load(Ordering::Relaxed) {
                    p.churn(layout, rng.below(layout.len() as u64) as usize);
                    n += 1;
                }
                // Relaxed: read after join.
                steps.store(n, Ordering::Relaxed);
                t.elapsed()
            });
            // Acquire: pairs with the writer's release store of `started`.
            while !started.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let (wall, cpu) = read_for(p, &mut pts, window);
            shared.push(wall);
            shared_cpu.push(cpu);
            // Relaxed: only asks the writer to finish; `join` synchronises.
            stop.store(true, Ordering::Relaxed);
            wt = w.join().ok();
        });
        // Relaxed: the writer thread has been joined.
        let n = steps.load(Ordering::Relaxed);
        match wt {
            Some(wt) if wt > Duration::ZERO => writer.push(n as f64 / wt.as_secs_f64()),
            Some(_) => {}
            None => writer_failed = true,
        }
    }
    let med = |v: &mut Vec<f64>| {
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    RwResult {
        solo: med(&mut solo),
        shared: med(&mut shared),
        solo_cpu: med(&mut solo_cpu),
        shared_cpu: med(&mut shared_cpu),
        writer: med(&mut writer),
        writer_failed,
    }
}

/// Append one structure's row.
pub fn add_row(t: &mut Table, name: &str, r: &RwResult) {
    t.row(vec![
        name.to_string(),
        fmt_ns(1e9 / r.solo),
        fmt_ns(1e9 / r.shared),
        format!("{:.0}%", 100.0 * r.shared / r.solo),
        format!("{:.0}%", 100.0 * r.shared_cpu / r.solo_cpu),
        if r.writer_failed {
            "writer panicked".to_string()
        } else {
            format!("{:.2} M/s", r.writer / 1e6)
        },
    ]);
}

fn row<P: Churn>(ctx: &Ctx, t: &mut Table, layout: &Layout, window: Duration) -> RwResult {
    ctx.progress(format!("rw {}: {}", fmt_count(layout.len()), P::NAME));
    let p = P::build(layout);
    let r = measure(&p, layout, window, ctx.cfg.rounds);
    add_row(t, P::NAME, &r);
    r
}

fn goal(name: &str, r: &RwResult) -> String {
    let (wall, cpu) = (r.shared / r.solo, r.shared_cpu / r.solo_cpu);
    format!(
        "Goal, {name} reader keeps ≥ 90% of its solo throughput: {:.1}% wall-clock ({}), \
         {:.1}% per CPU-second ({}).",
        100.0 * wall,
        verdict(wall >= 0.9),
        100.0 * cpu,
        verdict(cpu >= 0.9)
    )
}

fn run(ctx: &Ctx) -> Vec<Table> {
    let n = 100_000;
    let window = ctx.pick(
        Duration::from_millis(20),
        Duration::from_millis(40),
        Duration::from_millis(100),
    );
    let rounds = ctx.cfg.rounds;
    let layout = Layout::new(n);
    let mut t = Table::new(
        format!(
            "read-under-write: {} ranges, 1 reader + 1 churning writer",
            fmt_count(n)
        ),
        &[
            "structure",
            "reader alone",
            "reader under writer",
            "kept",
            "kept per CPU-second",
            "writer steps",
        ],
    );
    let seize = row::<Maple<Seize>>(ctx, &mut t, &layout, window);
    let epoch = row::<Maple<Epoch>>(ctx, &mut t, &layout, window);
    row::<RwLockBTreePeer>(ctx, &mut t, &layout, window);
    let spin = row::<SpinControl>(ctx, &mut t, &layout, window);
    let mem = row::<MemControl>(ctx, &mut t, &layout, window);
    t.note(format!(
        "Reader: ns per random point load (median of {rounds} windows of {window:?}, \
         alternating alone / with the writer). Writer step: erase a random range, store it \
         back (two write operations). Goal for maple: kept ≥ 90%. On a 2-core machine the \
         writer takes the second core. \"kept\" is wall-clock throughput under the writer \
         over alone; \"per CPU-second\" divides by the reader's own CPU time instead, which \
         removes time the reader was descheduled (other load on a shared machine) but also \
         hides time a blocked RwLock reader spends asleep."
    ));
    t.note(format!(
        "Controls: the same maple (seize) reader next to a thread that never touches the \
         tree: computing only, it keeps {:.0}% per CPU-second; writing at random into 32 MiB \
         of its own, {:.0}%. What a second busy thread costs any reader on this machine \
         (shared core and cache), whatever the structure; the maple writer's cost beyond that \
         is the tree's.",
        100.0 * spin.shared_cpu / spin.solo_cpu,
        100.0 * mem.shared_cpu / mem.solo_cpu,
    ));
    t.note(goal(Maple::<Seize>::NAME, &seize));
    t.note(goal(Maple::<Epoch>::NAME, &epoch));
    vec![t]
}
