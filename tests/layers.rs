//! The core's layers point one way: `algorithm` → `scripts` → `store` →
//! `limiter` → `http` / `wasm`. A module may use the ones before it and the
//! crate's leaf modules (errors, decisions, durations, clocks, randomness),
//! never one after it, so each layer can be read, tested and changed
//! without the ones above it.

use std::path::Path;

/// Each layer, the modules it may use besides the leaves.
const LAYERS: [(&str, &[&str]); 6] = [
    ("algorithm", &[]),
    ("scripts", &["algorithm"]),
    ("store", &["algorithm", "scripts"]),
    ("limiter", &["algorithm", "scripts", "store"]),
    ("http", &["algorithm", "scripts", "store", "limiter"]),
    ("wasm", &["algorithm", "scripts", "store", "limiter"]),
];

/// Names the crate root re-exports from a layer, so `crate::Name` is a use
/// of that layer too.
const REEXPORTS: [(&str, &[&str]); 3] = [
    (
        "limiter",
        &[
            "ConcurrencyLimiter",
            "FailurePolicy",
            "Limiter",
            "Metrics",
            "Permit",
            "WaitOutcome",
        ],
    ),
    ("store", &["MemoryStore", "Store"]),
    ("wasm", &["WasmRateLimiter"]),
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            out.push((path.display().to_string(), text));
        }
    }
}

/// The code of `text` without comments (docs may link anywhere).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_arrow_points_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (position, (layer, allowed)) in LAYERS.iter().enumerate() {
        let mut files = Vec::new();
        sources(&root.join(layer), &mut files);
        assert!(!files.is_empty(), "src/{layer} has sources");
        let above = &LAYERS[position + 1..];
        for (path, text) in &files {
            let code = code(text);
            for (other, _) in above.iter().filter(|(o, _)| !allowed.contains(o)) {
                if code.contains(&format!("crate::{other}")) {
                    broken.push(format!("{path} uses crate::{other}"));
                }
            }
            for (other, names) in REEXPORTS {
                let later = above.iter().any(|(o, _)| *o == other);
                for name in names.iter().filter(|_| later && !allowed.contains(&other)) {
                    let named = root_uses(&code).any(|names| has_word(names, name));
                    if named {
                        broken.push(format!(
                            "{path} uses {other}'s {name} through the crate root"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "arrows pointing up:\n{}",
        broken.join("\n")
    );
}

/// The text of each `use crate::…;` item, however many lines it spans.
fn root_uses(code: &str) -> impl Iterator<Item = &str> {
    code.match_indices("use crate::").map(move |(at, _)| {
        let rest = &code[at..];
        &rest[..rest.find(';').unwrap_or(rest.len())]
    })
}

fn has_word(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !part(before) && !part(after)
    })
}
