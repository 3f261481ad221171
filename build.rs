//! Prepares the Lua twins (src/scripts/*.lua) for embedding: comments and
//! indentation are dropped, and each script's SHA-1 is computed here, so the
//! library (the WebAssembly module above all) carries small scripts and no
//! hashing code. The .lua files stay the readable source of truth.
//!
//! The list below is the only list of scripts: the `Script` statics, the
//! batch script's dispatch order and `scripts::ALL` are generated from it.
//! The numbers the scripts share with Rust come from src/algorithm/twin.rs.

use std::fmt::Write as _;
use std::path::Path;

#[path = "src/algorithm/twin.rs"]
mod twin;

/// Each script the batch script runs, in its dispatcher's order (the
/// `batch_number` a call names is the position here, from 1), with the
/// doc of its `Script` static.
const SCRIPTS: [(&str, &str); 6] = [
    (
        "fixed_window",
        "[`FixedWindow`](crate::FixedWindow); configuration `limit, window_ms`.",
    ),
    (
        "sliding_window",
        "[`SlidingWindow`](crate::SlidingWindow); configuration `limit, window_ms`.",
    ),
    (
        "sliding_log",
        "[`SlidingLog`](crate::SlidingLog); configuration `limit, window_ms`.",
    ),
    (
        "token_bucket",
        "[`TokenBucket`](crate::TokenBucket); configuration `capacity, refill, interval_ms, initial`.",
    ),
    (
        "gcra",
        "[`Gcra`](crate::Gcra); configuration `rate, period_ms, burst`.",
    ),
    (
        "concurrency",
        "[`Concurrency`](crate::Concurrency): acquire, release, extend, peek.",
    ),
];

/// The multi-limit script's doc.
const MULTI_DOC: &str = "Several rate limits decided as one call, all or nothing, with the \
block after abuse ([`AllOf`](crate::algorithm::AllOf)): `KEYS` one key per limit, then the \
block's; `ARGV` the time, the cost, the block's duration in ms, the mode, then per limit its \
script's [`batch_number`](Script::batch_number), the count of its configuration's numbers, \
them. The reply has the time, the block's end or 0, then per limit its reply's length and \
reply.";

/// The batch script's doc.
const BATCH_DOC: &str = "Several calls of the other scripts in one script call: `KEYS` one \
key per call; `ARGV` per call the script's [`batch_number`](Script::batch_number), the count of \
its arguments, then its `ARGV`; or only `0` for the previous call's script and `ARGV` again. The \
reply has, per call, that script's reply, or a string: the error it raised (a failed call fails \
alone).";

fn main() {
    println!("cargo:rerun-if-changed=src/scripts");
    println!("cargo:rerun-if-changed=src/algorithm/twin.rs");
    let read = |name: &str| {
        let path = format!("src/scripts/{name}.lua");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let mut prelude = String::new();
    for (name, value) in twin::FOR_LUA {
        writeln!(prelude, "local EL_{name} = {value}").unwrap();
    }
    prelude.push_str(&minify(&read("prelude")));
    let mut out = format!(
        "/// The shared functions every script starts with.\n\
         pub(crate) const PRELUDE: &str = {prelude:?};\n"
    );
    let mut bodies = Vec::new();
    for (name, doc) in SCRIPTS {
        let body = minify(&read(name));
        let code = full_text(name, &prelude, &body);
        let sha1 = sha1_smol::Sha1::from(&code).digest().to_string();
        let constant = name.to_uppercase();
        writeln!(
            out,
            "/// {doc}\n\
             pub static {constant}: Script = Script::new({name:?}, {body:?}, {sha1:?});"
        )
        .unwrap();
        bodies.push(body);
    }
    // The batch and multi-limit scripts carry every other script's part,
    // wrapped as a function; only their dispatchers are stored,
    // `Script::code` assembles the rest from the parts above.
    for (name, doc) in [("batch", BATCH_DOC), ("multi", MULTI_DOC)] {
        let dispatcher = minify(&read(name));
        let code = full_text(name, &prelude, &batch_body(&bodies, &dispatcher));
        let sha1 = sha1_smol::Sha1::from(&code).digest().to_string();
        let constant = name.to_uppercase();
        writeln!(
            out,
            "/// {doc}\n\
             pub static {constant}: Script = Script::wrapping({name:?}, {dispatcher:?}, {sha1:?});"
        )
        .unwrap();
    }
    let statics: Vec<String> = SCRIPTS
        .iter()
        .map(|(name, _)| format!("&{}", name.to_uppercase()))
        .collect();
    let n = statics.len();
    let list = statics.join(", ");
    writeln!(
        out,
        "/// The scripts [`BATCH`] runs, in the order of its dispatcher.\n\
         pub(crate) static RUN_IN_BATCH: [&Script; {n}] = [{list}];\n\
         /// Every script, e.g. to load them all at start-up.\n\
         pub static ALL: [&Script; {}] = [{list}, &BATCH, &MULTI];",
        n + 2
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
    for ((name, _), body) in SCRIPTS.iter().zip(bodies) {
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
