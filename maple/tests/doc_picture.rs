//! The picture of [`MapleTree::to_dot`] in the crate documentation stays true: the
//! committed `docs/to_dot.dot` is what `to_dot` prints for the small tree built here (node
//! ids, which are addresses, renumbered), and `docs/to_dot.svg` shows exactly its labels.
//!
//! When the tree's shape or the DOT format changes, regenerate both (needs graphviz's
//! `dot`, e.g. `apt-get install graphviz`):
//!
//! ```text
//! MAPLE_BLESS=1 cargo test -p maple-tree --test doc_picture
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use maple::{MapleTree, Value};

/// Ten ranges with holes between them in an allocation tree: two leaves under one
/// allocation-tree root, which records the largest free run below each leaf.
fn small_tree() -> MapleTree<Value> {
    // (length, hole after it), in units of 16 indices.
    const RANGES: [(usize, usize); 10] = [
        (3, 1),
        (1, 2),
        (4, 1),
        (1, 3),
        (5, 1),
        (9, 2),
        (2, 4),
        (6, 1),
        (5, 2),
        (3, 1),
    ];
    let tree = MapleTree::new_alloc();
    let w = tree.lock();
    let mut start = 16;
    for (i, (len, hole)) in RANGES.into_iter().enumerate() {
        let v = Value::new(i).expect("small value");
        w.store_range(start..start + len * 16, v)
            .expect("valid range");
        start += (len + hole) * 16;
    }
    drop(w);
    tree
}

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

/// Renumber the node ids (`n<address in hex>`) in order of appearance.
fn normalize(dot: &str) -> String {
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut rename = |id: &str| {
        let next = ids.len();
        format!("n{}", ids.entry(id.to_string()).or_insert(next))
    };
    let is_id = |s: &str| {
        s.len() > 1 && s.starts_with('n') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
    };
    let mut out = String::new();
    for line in dot.lines() {
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        let head = t.split([' ', ':', ';']).next().unwrap_or("");
        let line = if is_id(head) {
            let mut l = format!("{indent}{}{}", rename(head), &t[head.len()..]);
            // An edge: `nA:sK -> nB;`.
            if let Some(at) = l.find("-> ") {
                let target = l[at + 3..].trim_end_matches(';').to_string();
                if is_id(&target) {
                    l = format!("{}-> {};", &l[..at], rename(&target));
                }
            }
            l
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The text lines of every node label in a DOT graph made by `to_dot`, sorted.
fn dot_texts(dot: &str) -> Vec<String> {
    let mut texts = Vec::new();
    for line in dot.lines() {
        let Some(at) = line.find("label=\"") else {
            continue;
        };
        let label = line[at + 7..].trim_end_matches("\"];");
        for field in label.split('|') {
            // Drop the port name (`<s3> `).
            let field = match field.strip_prefix('<') {
                Some(f) => f.split_once("> ").map_or(f, |(_, rest)| rest),
                None => field,
            };
            texts.extend(
                field
                    .split("\\n")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        }
    }
    texts.sort();
    texts
}

/// The contents of every `<text>` element of an SVG made by graphviz, sorted.
fn svg_texts(svg: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find("<text ") {
        let body = &rest[at..];
        let start = body.find('>').map_or(body.len(), |i| i + 1);
        let end = body.find("</text>").unwrap_or(body.len());
        let text = body[start..end]
            .replace("&#45;", "-")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        texts.push(text);
        rest = &body[end.min(body.len())..];
        if end == body.len() {
            break;
        }
    }
    texts.sort();
    texts
}

/// Render `dot` with graphviz and keep the `<svg>` element only, inside a `<div>`, so that
/// rustdoc's Markdown passes it through as one HTML block (no blank lines) and it scales
/// down to the page's width.
fn render(dot: &Path) -> String {
    let out = Command::new("dot")
        .args(["-Grankdir=LR", "-Tsvg"])
        .arg(dot)
        .output()
        .expect("MAPLE_BLESS needs graphviz's `dot` on the PATH");
    assert!(out.status.success(), "dot failed: {out:?}");
    let svg = String::from_utf8(out.stdout).expect("dot printed UTF-8");
    let start = svg.find("<svg").expect("an <svg> element");
    let mut body: String = svg[start..]
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("<!--"))
        .collect::<Vec<_>>()
        .join("\n");
    // Shown at 70% of graphviz's size (its 14pt text is large next to the docs' text).
    for attr in ["width", "height"] {
        let key = format!(" {attr}=\"");
        let at = body.find(&key).expect("svg size") + key.len();
        let len = body[at..].find("pt\"").expect("size in pt");
        let pt: f64 = body[at..at + len].parse().expect("a number");
        body.replace_range(at..at + len, &format!("{:.0}", pt * 0.7));
    }
    body = body.replacen("<svg ", "<svg style=\"max-width: 100%; height: auto\" ", 1);
    format!("<div align=\"center\">\n{body}\n</div>\n")
}

#[test]
fn the_to_dot_picture_in_the_docs_is_current() {
    let dot = normalize(&small_tree().to_dot());
    let (dot_file, svg_file) = (docs().join("to_dot.dot"), docs().join("to_dot.svg"));
    if std::env::var_os("MAPLE_BLESS").is_some() {
        std::fs::write(&dot_file, &dot).expect("write docs/to_dot.dot");
        std::fs::write(&svg_file, render(&dot_file)).expect("write docs/to_dot.svg");
    }
    let committed = std::fs::read_to_string(&dot_file).expect("docs/to_dot.dot");
    assert_eq!(
        committed, dot,
        "docs/to_dot.dot is stale: regenerate it with `MAPLE_BLESS=1 cargo test -p maple-tree \
         --test doc_picture` (needs graphviz's `dot`)"
    );
    let svg = std::fs::read_to_string(&svg_file).expect("docs/to_dot.svg");
    assert!(
        svg.starts_with("<div") && !svg.contains("\n\n"),
        "not one HTML block"
    );
    assert_eq!(
        svg_texts(&svg),
        dot_texts(&dot),
        "docs/to_dot.svg does not show docs/to_dot.dot: regenerate it (see above)"
    );
}

#[test]
fn normalize_renumbers_node_ids_only() {
    let dot = "digraph maple {\n  node [shape=record];\n  n7f00 [label=\"range_64|<s0> 0-9\\nv1\"];\n  n7f00:s0 -> nab10;\n  nab10 [label=\"leaf_64\"];\n}\n";
    assert_eq!(
        normalize(dot),
        "digraph maple {\n  node [shape=record];\n  n0 [label=\"range_64|<s0> 0-9\\nv1\"];\n  n0:s0 -> n1;\n  n1 [label=\"leaf_64\"];\n}\n"
    );
    assert_eq!(dot_texts(dot), ["0-9", "leaf_64", "range_64", "v1"]);
    let svg = "<svg><text x=\"1\">0&#45;9</text><g><text y=\"2\">v1</text></g></svg>";
    assert_eq!(svg_texts(svg), ["0-9", "v1"]);
}
