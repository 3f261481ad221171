//! JSON <-> Redis mapping.
//!
//! Requests: a command is a JSON array of strings and numbers (numbers are
//! sent as their literal text, booleans as `true`/`false`). Replies: integers
//! become numbers, bulk and status strings become strings, nil becomes null,
//! arrays stay arrays.
//!
//! Strings are raw bytes. With `Upstash-Encoding: base64` every string is
//! base64 (except the status `OK`, as Upstash does), so any bytes survive.
//! Without it, a string that is not valid UTF-8 is returned with invalid
//! sequences replaced by U+FFFD: JSON cannot carry raw bytes, and clients
//! that need binary values must ask for base64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use std::io::Write;

use serde_json::Value as Json;

use crate::error::ApiError;
use crate::json_scan;
use crate::resp::Value;

/// Parses `POST /`: one command.
pub fn parse_command(body: &Bytes) -> Result<Vec<Bytes>, ApiError> {
    if let Some(args) = json_scan::command(body) {
        return Ok(args);
    }
    match parse_body(body)? {
        Json::Array(items) => to_args(items),
        _ => Err(bad("ERR body must be a JSON array of command arguments")),
    }
}

/// Parses `POST /pipeline` and `POST /multi-exec`: a non-empty array of
/// commands.
pub fn parse_commands(body: &Bytes) -> Result<Vec<Vec<Bytes>>, ApiError> {
    if let Some(cmds) = json_scan::commands(body) {
        return Ok(cmds);
    }
    let Json::Array(cmds) = parse_body(body)? else {
        return Err(bad("ERR body must be a JSON array of commands"));
    };
    if cmds.is_empty() {
        return Err(bad("ERR empty pipeline"));
    }
    cmds.into_iter()
        .map(|c| match c {
            Json::Array(items) => to_args(items),
            _ => Err(bad("ERR each command must be a JSON array")),
        })
        .collect()
}

fn parse_body(body: &[u8]) -> Result<Json, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(&format!("ERR invalid JSON body: {e}")))
}

fn to_args(items: Vec<Json>) -> Result<Vec<Bytes>, ApiError> {
    if items.is_empty() {
        return Err(bad("ERR empty command"));
    }
    items
        .into_iter()
        .map(|v| match v {
            Json::String(s) => Ok(Bytes::from(s)),
            Json::Number(n) => Ok(Bytes::from(n.to_string())),
            Json::Bool(b) => Ok(Bytes::from(b.to_string())),
            _ => Err(bad("ERR command arguments must be strings or numbers")),
        })
        .collect()
}

fn bad(msg: &str) -> ApiError {
    ApiError::BadRequest(msg.to_string())
}

/// Appends `v` as JSON: integers as numbers, strings as strings (base64
/// when asked), nil as null, arrays as arrays, an error nested in an array
/// as `{"error": "..."}`. Written straight to bytes: a reply of a hundred
/// decisions would otherwise allocate a JSON tree of several hundred values.
pub fn write_json(out: &mut Vec<u8>, v: &Value, base64: bool) {
    match v {
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Simple(s) if base64 && s.as_ref() != b"OK" => write_str(out, &STANDARD.encode(s)),
        Value::Bulk(b) if base64 => write_str(out, &STANDARD.encode(b)),
        Value::Simple(s) | Value::Bulk(s) => write_str(out, &String::from_utf8_lossy(s)),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(out, item, base64);
            }
            out.push(b']');
        }
        // Only reachable nested in an array (e.g. a script returning an
        // error table); top-level errors go through `write_reply`.
        Value::Error(e) => write_error(out, e),
    }
}

/// Appends `{"result": ...}` or `{"error": "..."}` for one command.
pub fn write_reply(out: &mut Vec<u8>, v: &Value, base64: bool) {
    match v {
        Value::Error(e) => write_error(out, e),
        other => {
            out.extend_from_slice(b"{\"result\":");
            write_json(out, other, base64);
            out.push(b'}');
        }
    }
}

fn write_error(out: &mut Vec<u8>, e: &[u8]) {
    out.extend_from_slice(b"{\"error\":");
    write_str(out, &String::from_utf8_lossy(e));
    out.push(b'}');
}

/// A JSON string, escaped.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arguments() {
        let parse = |b: &'static [u8]| parse_command(&Bytes::from_static(b));
        let parse_all = |b: &'static [u8]| parse_commands(&Bytes::from_static(b));
        let a = parse(br#"["SET","k",1.50,true,-7,12345678901234567890123]"#).unwrap();
        let a: Vec<&[u8]> = a.iter().map(|b| b.as_ref()).collect();
        assert_eq!(
            a,
            vec![
                &b"SET"[..],
                b"k",
                b"1.50",
                b"true",
                b"-7",
                b"12345678901234567890123"
            ]
        );
        assert!(parse(b"{").is_err());
        assert!(parse(b"[]").is_err());
        assert!(parse(br#"["GET",null]"#).is_err());
        assert!(parse(br#"{"a":1}"#).is_err());
        assert!(parse_all(br#"[["GET","a"],"x"]"#).is_err());
        assert!(parse_all(b"[]").is_err());
    }

    /// Bodies made of JSON fragments, valid or not, many of each shape.
    fn bodies() -> Vec<Vec<u8>> {
        const PARTS: &[&str] = &[
            "[",
            "]",
            ",",
            " ",
            "\n",
            "\"",
            "\"EVALSHA\"",
            "\"k\\\"q\"",
            "\"é\"",
            "\"\t\"",
            "0",
            "-0",
            "01",
            "12",
            "-7",
            "1.50",
            "1.",
            ".5",
            "1e5",
            "1E+2",
            "2e-",
            "-",
            "true",
            "null",
            "{}",
            "[\"a\"]",
            "\"\"",
            "x",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut out = vec![
            br#"["EVALSHA","ab12",1,"k",60000]"#.to_vec(),
            b"[[\"GET\",\"a\"]]".to_vec(),
        ];
        for _ in 0..20_000 {
            let mut body = Vec::new();
            let nested = next(3) == 0;
            if nested {
                body.push(b'[');
            }
            body.push(b'[');
            for _ in 0..next(8) {
                body.extend_from_slice(PARTS[next(PARTS.len())].as_bytes());
            }
            // Mostly well-formed: an argument list closed properly.
            if next(2) == 0 {
                body.extend_from_slice(b"\"a\"]");
            }
            if nested {
                body.push(b']');
            }
            out.push(body);
        }
        // Invalid UTF-8 inside a string.
        out.push(b"[\"\xff\"]".to_vec());
        out
    }

    #[test]
    fn reads_what_serde_json_reads_alike() {
        let (mut fast_commands, mut fast_pipelines) = (0, 0);
        for body in bodies() {
            let body = Bytes::from(body);
            if let Some(args) = json_scan::command(&body) {
                fast_commands += 1;
                let slow = parse_command(&Bytes::from(body.to_vec())).ok();
                assert_eq!(Some(args), slow, "{:?}", String::from_utf8_lossy(&body));
            }
            if let Some(cmds) = json_scan::commands(&body) {
                fast_pipelines += 1;
                let slow = parse_commands(&Bytes::from(body.to_vec())).ok();
                assert_eq!(Some(cmds), slow, "{:?}", String::from_utf8_lossy(&body));
            }
        }
        // The scan took a good share of the bodies (the rest went to serde).
        assert!(
            fast_commands > 500 && fast_pipelines > 100,
            "{fast_commands} {fast_pipelines}"
        );
    }

    #[test]
    fn maps_replies() {
        let json = |v: &Value, base64: bool| {
            let mut out = vec![];
            write_json(&mut out, v, base64);
            String::from_utf8(out).unwrap()
        };
        let v = Value::Array(vec![
            Value::Int(3),
            Value::Int(-9007199254740993),
            Value::Nil,
            Value::Bulk(Bytes::from_static(b"\xffa")),
            Value::Simple(Bytes::from_static(b"OK")),
            Value::Simple(Bytes::from_static(b"PONG")),
            Value::Array(vec![]),
            Value::Bulk(Bytes::from_static(b"q\"\\\n\x01")),
            Value::Error(Bytes::from_static(b"ERR in")),
        ]);
        assert_eq!(
            json(&v, true),
            r#"[3,-9007199254740993,null,"/2E=","OK","UE9ORw==",[],"cSJcCgE=",{"error":"ERR in"}]"#
        );
        assert_eq!(
            json(&v, false),
            r#"[3,-9007199254740993,null,"�a","OK","PONG",[],"q\"\\\n\u0001",{"error":"ERR in"}]"#
        );
        let reply = |v: &Value| {
            let mut out = vec![];
            write_reply(&mut out, v, true);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            reply(&Value::Error(Bytes::from_static(b"ERR x"))),
            r#"{"error":"ERR x"}"#
        );
        assert_eq!(reply(&Value::Int(1)), r#"{"result":1}"#);
    }
}
