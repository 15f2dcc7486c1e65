//! **memory**: heap bytes per stored range, counted by the `compare` binary's global
//! allocator ([`crate::alloc::CountingAlloc`]) while each structure is built.

use rcu::Seize;

use super::{Ctx, Mode, TableDef};
use crate::alloc;
use crate::maple_peers::{pairs, store_all, Tree};
use crate::peers::{BTreePeer, RangeLookup, RangeMapPeer, SkipMapPeer, TreeIndexPeer};
use crate::report::{fmt_bytes, fmt_count, fmt_ratio, verdict, Table};
use crate::workload::Layout;

/// Registry entry.
pub const DEF: TableDef = TableDef {
    name: "memory",
    about: "heap bytes per range at 10^6 ranges (counting allocator)",
    run,
};

fn run(ctx: &Ctx) -> Vec<Table> {
    let n = ctx.pick(100_000, 1_000_000, 1_000_000);
    let layout = Layout::new(n);
    let mut rows: Vec<(String, Option<f64>)> = Vec::new();
    let mut heights: Vec<String> = Vec::new();
    let mut measure = |name: &str, f: &dyn Fn(&Layout) -> Box<dyn std::any::Any>| {
        ctx.progress(format!("memory {}: {name}", fmt_count(n)));
        let (built, bytes) = alloc::measure(|| f(&layout));
        if let Some(t) = built.downcast_ref::<Tree<Seize>>() {
            heights.push(format!("{name}: height {}", t.height()));
        }
        drop(built);
        rows.push((name.to_string(), bytes.map(|b| b as f64 / n as f64)));
    };
    measure(BTreePeer::NAME, &|l| Box::new(BTreePeer::build(l)));
    measure(SkipMapPeer::NAME, &|l| Box::new(SkipMapPeer::build(l)));
    measure(TreeIndexPeer::NAME, &|l| Box::new(TreeIndexPeer::build(l)));
    measure(RangeMapPeer::NAME, &|l| Box::new(RangeMapPeer::build(l)));
    measure("maple (store_range)", &|l| {
        let t = Tree::<Seize>::default();
        store_all(&t, l);
        Box::new(t)
    });
    measure("maple (bulk build)", &|l| {
        Box::new(pairs(l).collect::<Tree<Seize>>())
    });
    if ctx.mode == Mode::Full {
        // Slow to build at 10^6 today, so only in --full.
        measure("maple alloc tree (store_range)", &|l| {
            let t = Tree::<Seize>::new_alloc();
            store_all(&t, l);
            Box::new(t)
        });
    }
    let peer = rows[0].1;
    let mut t = Table::new(
        format!(
            "memory: heap bytes per range at {} ranges (ratio vs BTreeMap)",
            fmt_count(n)
        ),
        &["structure", "bytes/range", "ratio"],
    );
    let mut goals = Vec::new();
    for (name, b) in rows {
        if let (Some(b), true) = (b, name.starts_with("maple")) {
            goals.push(format!(
                "Goal, {name}: {} per range (≤ 32 B at 10^6: {}).",
                fmt_bytes(b),
                verdict(b <= 32.0)
            ));
        }
        match (b, peer) {
            (Some(b), Some(p)) => t.row(vec![name, fmt_bytes(b), fmt_ratio(b / p)]),
            _ => t.row(vec![name, "n/a".into(), "n/a".into()]),
        }
    }
    t.note(
        "Net bytes left allocated after building by ascending insertion (allocator request \
         sizes, not counting malloc's own overhead). Goal for maple: ≤ 32 bytes per range; \
         the kernel's tree used 14.7. n/a: the counting allocator is not installed (only \
         the `compare` binary installs it).",
    );
    t.note(format!(
        "Tree heights: {}. The kernel's tree at 10^6: 57,549 nodes, height 5.",
        heights.join("; ")
    ));
    if n == 1_000_000 {
        for g in goals {
            t.note(g);
        }
    }
    vec![t]
}
