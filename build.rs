//! Prepares the Lua twins (src/scripts/*.lua) for embedding: comments and
//! indentation are dropped, and each script's SHA-1 is computed here, so the
//! library (the WebAssembly module above all) carries small scripts and no
//! hashing code. The .lua files stay the readable source of truth.

use std::fmt::Write as _;
use std::path::Path;

const SCRIPTS: [&str; 6] = [
    "fixed_window",
    "sliding_window",
    "sliding_log",
    "token_bucket",
    "gcra",
    "concurrency",
];

fn main() {
    println!("cargo:rerun-if-changed=src/scripts");
    let read = |name: &str| {
        let path = format!("src/scripts/{name}.lua");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let prelude = minify(&read("prelude"));
    let mut out = format!("/// The shared functions every script starts with.\npub(crate) const PRELUDE: &str = {prelude:?};\n");
    let mut bodies = Vec::new();
    for name in SCRIPTS {
        let body = minify(&read(name));
        let code = full_text(name, &prelude, &body);
        let sha1 = sha1_smol::Sha1::from(&code).digest().to_string();
        let constant = name.to_uppercase();
        writeln!(
            out,
            "/// `{name}.lua`: its own part and the SHA-1 of the full text.\n\
             pub(crate) const {constant}: (&str, &str) = ({body:?}, {sha1:?});"
        )
        .unwrap();
        bodies.push(body);
    }
    // The batch script carries every other script's part, wrapped as a
    // function; only its dispatcher is stored, `Script::code` assembles the
    // rest from the parts above.
    let dispatcher = minify(&read("batch"));
    let code = full_text("batch", &prelude, &batch_body(&bodies, &dispatcher));
    let sha1 = sha1_smol::Sha1::from(&code).digest().to_string();
    writeln!(
        out,
        "/// `batch.lua`: its dispatcher and the SHA-1 of the full text.\n\
         pub(crate) const BATCH: (&str, &str) = ({dispatcher:?}, {sha1:?});"
    )
    .unwrap();
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("scripts.rs");
    std::fs::write(dest, out).unwrap();
}

/// The text sent to Redis; `Script::code` builds the same.
fn full_text(name: &str, prelude: &str, body: &str) -> String {
    format!("-- edgelimit {name}\n{prelude}{body}")
}

/// The batch script's own part: each script's part as a function of its
/// KEYS and ARGV, then the dispatcher; `scripts::batch_body` builds the same.
fn batch_body(bodies: &[String], dispatcher: &str) -> String {
    let mut text = String::new();
    for (name, body) in SCRIPTS.iter().zip(bodies) {
        write!(
            text,
            "local function el_run_{name}(KEYS, ARGV)\n{body}end\n"
        )
        .unwrap();
    }
    text + dispatcher
}

/// Drops blank lines, whole-line comments and indentation. Lua needs none of
/// them, and the scripts use no long strings (`[[…]]`) where they would
/// matter; a comment after code on the same line is kept.
fn minify(source: &str) -> String {
    assert!(!source.contains("[["), "long strings would be altered");
    source
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
}
