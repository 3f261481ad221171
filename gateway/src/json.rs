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
use crate::resp::Value;

/// Parses `POST /`: one command.
pub fn parse_command(body: &[u8]) -> Result<Vec<Bytes>, ApiError> {
    match parse_body(body)? {
        Json::Array(items) => to_args(items),
        _ => Err(bad("ERR body must be a JSON array of command arguments")),
    }
}

/// Parses `POST /pipeline` and `POST /multi-exec`: a non-empty array of
/// commands.
pub fn parse_commands(body: &[u8]) -> Result<Vec<Vec<Bytes>>, ApiError> {
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
        let a = parse_command(br#"["SET","k",1.50,true,-7,12345678901234567890123]"#).unwrap();
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
        assert!(parse_command(b"{").is_err());
        assert!(parse_command(b"[]").is_err());
        assert!(parse_command(br#"["GET",null]"#).is_err());
        assert!(parse_command(br#"{"a":1}"#).is_err());
        assert!(parse_commands(br#"[["GET","a"],"x"]"#).is_err());
        assert!(parse_commands(b"[]").is_err());
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
