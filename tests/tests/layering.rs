//! The workspace's layering, checked from the sources.
//!
//! - Crates: each `bellwether-*` crate may depend only on the crates in a layer below its
//!   own ([`LAYERS`]); cargo already refuses cycles, this keeps the direction.
//! - Modules: within a crate, the graph of `use crate::…` imports (and inline
//!   `crate::module::` paths, outside comments) between top-level modules has no cycle.
//! - Files: no source file outside tests is longer than [`MAX_LINES`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Crates by layer, lowest first. A crate may use crates of lower layers only.
const LAYERS: &[&[&str]] = &[
    &[
        "bellwether-proto",
        "bellwether-stacktrace",
        "bellwether-detect",
    ],
    &["bellwether-model", "bellwether-fingerprint"],
    &["bellwether-store"],
    &["bellwether-alerting", "bellwether-cluster"],
    &["bellwether-agent", "bellwether-collector"],
    &["bellwether-testkit"],
    &["bellwether-e2e"],
];

/// Longest source file allowed outside tests.
const MAX_LINES: usize = 500;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every workspace crate: (package name, crate directory).
fn crates() -> Vec<(String, PathBuf)> {
    let root = root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_default();
    members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .filter_map(|member| {
            let dir = root.join(member);
            let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = "))?
                .trim_matches('"')
                .to_owned();
            Some((name, dir))
        })
        .collect()
}

/// The `bellwether-*` crates named in a manifest's `[dependencies]` table.
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut out = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && line.starts_with("bellwether-") {
            if let Some(name) = line.split(['.', ' ', '=']).next() {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifiers after each `crate::` in `text`, including every branch of braced
/// `use crate::{a::X, b::{Y, Z}};` trees.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(tree) = rest.strip_prefix('{') {
            let end = matching_brace(tree).unwrap_or(tree.len());
            for branch in top_level_branches(&tree[..end]) {
                out.insert(identifier(branch.trim_start()));
            }
        } else {
            out.insert(identifier(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn matching_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn top_level_branches(tree: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0usize, 0, Vec::new());
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&tree[start..]);
    out
}

/// Top-level module → the top-level modules it uses, for the crate whose root is `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Ok(relative) = file.strip_prefix(src) else {
            continue;
        };
        let first = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        // Comments (doc links included) name modules without depending on them.
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let used = crate_paths(&code);
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(used.into_iter().filter(|m| *m != module));
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next) {
                if let Some(cycle) = visit(next, graph, marks, path) {
                    return Some(cycle);
                }
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let crates = crates();
    assert!(
        crates.len() >= 10,
        "workspace members not found: {crates:?}"
    );
    let mut wrong = Vec::new();
    for (name, dir) in &crates {
        let Some(own) = layer_of(name) else {
            wrong.push(format!("{name} is in no layer of LAYERS"));
            continue;
        };
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        for dependency in dependencies(&manifest) {
            match layer_of(&dependency) {
                Some(layer) if layer < own => {}
                _ => wrong.push(format!("{name} depends on {dependency}")),
            }
        }
    }
    assert!(wrong.is_empty(), "against the layers: {wrong:#?}");
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut cycles = Vec::new();
    for (name, dir) in crates() {
        if let Some(cycle) = find_cycle(&module_graph(&dir.join("src"))) {
            cycles.push(format!("{name}: {}", cycle.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn source_files_outside_tests_are_short() {
    let mut long = Vec::new();
    for (_, dir) in crates() {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
            let is_test = name.is_some_and(|n| n == "tests.rs" || n.ends_with("_tests.rs"))
                || file.components().any(|c| c.as_os_str() == "tests");
            let lines = std::fs::read_to_string(&file)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if !is_test && lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "longer than {MAX_LINES} lines: {long:#?}");
}

#[test]
fn the_checks_see_a_cycle_and_a_braced_import() {
    let paths = crate_paths("use crate::{a::X, b::{Y, Z}};\nfn f() { crate::c::g(); }");
    assert_eq!(
        paths,
        ["a", "b", "c"].into_iter().map(String::from).collect()
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph).map(|c| c.len()),
        Some(4),
        "a -> b -> c -> a"
    );
    let mut acyclic = graph.clone();
    acyclic.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);
    assert_eq!(
        dependencies("[dependencies]\nbellwether-model.workspace = true\nserde = \"1\"\n[dev-dependencies]\nbellwether-store.workspace = true\n"),
        ["bellwether-model".to_owned()].into_iter().collect()
    );
}
