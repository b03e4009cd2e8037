//! The operator's shape, checked on its source: no import cycle among its modules (controllers
//! import shared modules, never the runner or each other in a loop), no dependency on the relay
//! crate, `DynamicObject` only for the foreign external-dns CRD, and production files and
//! functions that stay readable (files at most 500 lines, functions at most 90) in every crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's production code: without its `#[cfg(test)]` tail; nothing for `tests.rs` files.
fn production(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The top-level module each `crate::` path in `code` names (`crate::Context` is `context`).
fn referenced(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end].split(',').map(|s| s.trim().split("::").next().unwrap_or_default().to_string()).collect()
        } else {
            vec![rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default().to_string()]
        };
        for name in names {
            match name.as_str() {
                "" | "self" => {}
                "Context" | "Clock" => drop(out.insert("context".to_string())),
                n if n.starts_with(char::is_lowercase) => drop(out.insert(n.to_string())),
                _ => {}
            }
        }
    }
    out
}

fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

#[test]
fn no_import_cycle_among_the_operators_modules() {
    let src = root().join("operator/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(module) = module_of(&src, f) else { continue };
        let deps = referenced(&production(f));
        graph.entry(module.clone()).or_default().extend(deps.into_iter().filter(|d| *d != module));
    }
    // Depth-first search; a back edge is a cycle.
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle among operator modules: {}", cycle.join(" -> "));
        }
    }
    assert!(graph.len() > 20, "the graph was read: {graph:?}");
    // The runner is imported by nothing.
    assert!(graph.iter().all(|(m, deps)| m == "controller" || !deps.contains("controller")), "{graph:?}");
}

/// Each function's name and length: from its `fn` line to the `}` at the same indentation.
fn function_lengths(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = ["pub fn ", "fn ", "pub async fn ", "async fn ", "pub(crate) fn ", "pub(super) fn ", "pub(crate) async fn "].iter().find_map(|p| trimmed.strip_prefix(p));
        let Some(rest) = signature else { continue };
        let name = rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default().to_string();
        let closing = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == closing) {
            out.push((name, end + 2));
        }
    }
    out
}

#[test]
fn the_operator_does_not_depend_on_the_relay() {
    let manifest = std::fs::read_to_string(root().join("operator/Cargo.toml")).unwrap();
    assert!(!manifest.contains("cascade-relay"), "operator/Cargo.toml names cascade-relay");
}

#[test]
fn dynamic_objects_only_for_external_dns_and_files_stay_readable() {
    for krate in ["operator/src", "relay/src", "crds/src", "core/src"] {
        let mut files = Vec::new();
        rust_files(&root().join(krate), &mut files);
        for f in files {
            let code = production(&f);
            let lines = code.lines().count();
            assert!(lines <= 500, "{} has {lines} lines of production code", f.display());
            for (name, length) in function_lengths(&code) {
                assert!(length <= 90, "{}: fn {name} has {length} lines", f.display());
            }
            if code.contains("DynamicObject") {
                assert!(f.ends_with("operator/src/external_dns.rs"), "{} uses DynamicObject", f.display());
            }
        }
    }
}
