//! The gateway's modules form no import cycle: each uses only modules
//! below it, errors and responses at the bottom (read from the sources).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the crate modules its files `use`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![];
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).unwrap() {
                files.push((
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    inner.unwrap().path(),
                ));
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push((
                path.file_stem().unwrap().to_string_lossy().into_owned(),
                path,
            ));
        }
    }
    for (module, path) in files {
        if module == "lib" || module == "main" {
            continue; // the roots: they use everything
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                uses.insert(name);
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = imports();
    // Depth-first, reporting the first cycle found.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut vec![], &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
    assert!(
        graph["error"]
            .iter()
            .all(|m| m == "conn" || m == "response"),
        "{:?}",
        graph["error"]
    );
    assert!(graph["response"].is_empty());
}
