//! Human-readable dumps: an indented text form and Graphviz DOT.

use core::fmt::Write;

use rcu::sync::atomic::Ordering;

use super::node::{NodePtr, NodeType};
use super::RawTree;

/// Formats an entry word.
pub(crate) type WordFmt<'a> = &'a dyn Fn(usize) -> String;

/// Indented text dump.
///
/// # Safety
/// Writers excluded for the duration.
pub(crate) unsafe fn text(tree: &RawTree, fmt_word: WordFmt<'_>) -> String {
    // Relaxed: writers excluded.
    let root = tree.root.load(Ordering::Relaxed);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "maple tree ({}, height {}, {} ranges)",
        if tree.alloc { "alloc" } else { "plain" },
        // Relaxed: writers excluded.
        tree.height.load(Ordering::Relaxed),
        // Relaxed: writers excluded.
        tree.len.load(Ordering::Relaxed)
    );
    if root != 0 {
        // SAFETY: forwarded.
        unsafe { text_node(&mut out, NodePtr(root), 0, usize::MAX, 1, fmt_word) };
    }
    out
}

/// # Safety
/// Writers excluded; `node` reachable.
unsafe fn text_node(
    out: &mut String,
    node: NodePtr,
    min: usize,
    max: usize,
    indent: usize,
    fmt_word: WordFmt<'_>,
) {
    let pad = "  ".repeat(indent);
    // SAFETY: reachable, writers excluded.
    let d = unsafe { node.node() }.items(node.ty(), max);
    let _ = writeln!(
        out,
        "{pad}{} {:#x} [{min}, {max}] {} slots",
        node.ty().name(),
        node.addr(),
        d.len()
    );
    let mut s = min;
    for (i, it) in d.iter().enumerate() {
        if node.ty().is_leaf() {
            let v = if it.slot == 0 {
                "empty".to_string()
            } else {
                fmt_word(it.slot)
            };
            let _ = writeln!(out, "{pad}  {i:2}: [{s}, {}] {v}", it.piv);
        } else {
            if node.ty() == NodeType::ARange {
                let _ = writeln!(out, "{pad}  {i:2}: [{s}, {}] gap {}", it.piv, it.gap);
            } else {
                let _ = writeln!(out, "{pad}  {i:2}: [{s}, {}]", it.piv);
            }
            // SAFETY: reachable child.
            unsafe { text_node(out, NodePtr(it.slot), s, it.piv, indent + 2, fmt_word) };
        }
        s = it.piv.wrapping_add(1);
    }
}

/// Graphviz DOT dump: one record per node, edges from slots to children.
///
/// # Safety
/// Writers excluded for the duration.
pub(crate) unsafe fn dot(tree: &RawTree, fmt_word: WordFmt<'_>) -> String {
    let mut out = String::from("digraph maple {\n  node [shape=record, fontname=monospace];\n");
    // Relaxed: writers excluded.
    let root = tree.root.load(Ordering::Relaxed);
    if root != 0 {
        // SAFETY: forwarded.
        unsafe { dot_node(&mut out, NodePtr(root), 0, usize::MAX, fmt_word) };
    }
    out.push_str("}\n");
    out
}

/// # Safety
/// Writers excluded; `node` reachable.
unsafe fn dot_node(out: &mut String, node: NodePtr, min: usize, max: usize, fmt_word: WordFmt<'_>) {
    // SAFETY: reachable, writers excluded.
    let d = unsafe { node.node() }.items(node.ty(), max);
    let id = node.addr();
    let mut label = format!("{}\\n[{min}, {max}]", node.ty().name());
    let mut s = min;
    for (i, it) in d.iter().enumerate() {
        let v = if node.ty().is_leaf() {
            if it.slot == 0 {
                "-".to_string()
            } else {
                fmt_word(it.slot).replace(['{', '}', '|', '<', '>', '"'], "_")
            }
        } else if node.ty() == NodeType::ARange {
            format!("gap {}", it.gap)
        } else {
            String::new()
        };
        let _ = write!(label, "|<s{i}> {s}-{}\\n{v}", it.piv);
        s = it.piv.wrapping_add(1);
    }
    let _ = writeln!(out, "  n{id:x} [label=\"{label}\"];");
    if !node.ty().is_leaf() {
        let mut s = min;
        for (i, it) in d.iter().enumerate() {
            let _ = writeln!(out, "  n{id:x}:s{i} -> n{:x};", NodePtr(it.slot).addr());
            // SAFETY: reachable child.
            unsafe { dot_node(out, NodePtr(it.slot), s, it.piv, fmt_word) };
            s = it.piv.wrapping_add(1);
        }
    }
}
