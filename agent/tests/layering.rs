//! The crate's top-level modules form layers that only point down: none names, through
//! `crate::` paths, a module that names it back (directly or further round).
//!
//! The check reads the sources as text, so it needs no parser and works on any crate's
//! `src`. An edge is any `crate::<module>` path in the code: `use` statements (braced
//! groups over several lines too) and inline paths. Comment lines are skipped: a doc link
//! to the module that calls this one is a pointer for the reader, not a dependency.
//! `super::` paths are taken to stay inside their top-level module.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it names, each with a file that names it.
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

/// The graph of the top-level modules under `src`. `lib.rs`, `main.rs` and `bin/` are
/// crate roots, not modules.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |file: &Path| {
        let first = file.strip_prefix(src).ok()?.components().next()?;
        let name = first.as_os_str().to_str()?;
        let name = name.strip_suffix(".rs").unwrap_or(name);
        (!matches!(name, "lib" | "main" | "bin")).then(|| name.to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let Some(from) = module_of(file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("source file reads");
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .flat_map(|line| [line, "\n"])
            .collect();
        for to in crate_path_heads(&code) {
            if to != from && modules.contains(&to) {
                let relative = file.strip_prefix(src).unwrap_or(file).to_owned();
                let edges = graph.entry(from.clone()).or_default();
                edges.entry(to).or_insert(relative);
            }
        }
    }
    graph
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("source directory reads")
        .map(|entry| entry.expect("directory entry reads").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The first segment of every `crate::` path in `text`; for a braced group
/// (`crate::{a::X, b::{Y, Z}}`), the first segment of each of its items.
fn crate_path_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    for (at, prefix) in text.match_indices("crate::") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        match rest.strip_prefix('{') {
            Some(group) => heads.extend(group_heads(group)),
            None => heads.push(ident(rest)),
        }
    }
    heads
}

/// The first segment of each item of a braced group, read up to its closing brace.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut item_start) = (0, true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[i..]));
                item_start = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every edge that lies on a cycle, with the file that makes it and the shortest cycle
/// through it: `queue → export (queue/codec.rs): queue → export → queue`.
fn cycles(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (from, edges) in graph {
        for (to, file) in edges {
            if let Some(back) = shortest_path(graph, to, from) {
                let cycle = std::iter::once(from.as_str())
                    .chain(back.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(" → ");
                found.push(format!("{from} → {to} ({}): {cycle}", file.display()));
            }
        }
    }
    found
}

/// The modules along a shortest path from `from` to `to`, both included.
fn shortest_path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_owned()];
            let mut at = to;
            while at != from {
                at = came_from[at];
                path.push(at.to_owned());
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if next != from && !came_from.contains_key(next.as_str()) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

#[test]
fn the_agent_modules_form_layers() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules that import each other, directly or further round:\n{}",
        cycles.join("\n")
    );
    // The scan sees the imports at all: the queue stores batches.
    assert!(
        graph.get("queue").is_some_and(|e| e.contains_key("batch")),
        "{graph:#?}"
    );
}

#[test]
fn braced_inline_and_nested_paths_are_edges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "pub mod a; pub mod b; pub mod c; use crate::a;");
    write(
        "a.rs",
        "use crate::{\n    b::X,\n    c::{self, Y},\n};\nuse bellwether_crate::d;",
    );
    write("b.rs", "pub fn f() {\n    crate::c::g::h();\n}");
    write("c/mod.rs", "mod g;");
    write(
        "c/g.rs",
        "/// See [`Y`](crate::b::Y).\npub fn h() -> crate::a::X {}",
    );
    let graph = module_graph(dir.path());
    let edges = |m: &str| -> Vec<&str> { graph[m].keys().map(String::as_str).collect() };
    assert_eq!(
        (edges("a"), edges("b"), edges("c")),
        (vec!["b", "c"], vec!["c"], vec!["a"])
    );
    assert_eq!(
        cycles(&graph),
        [
            "a → b (a.rs): a → b → c → a",
            "a → c (a.rs): a → c → a",
            "b → c (b.rs): b → c → a → b",
            "c → a (c/g.rs): c → a → c",
        ]
    );
}
