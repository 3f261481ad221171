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
use serde_json::{json, Value as Json};

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

/// Maps one reply to JSON.
pub fn to_json(v: &Value, base64: bool) -> Json {
    match v {
        Value::Int(i) => json!(i),
        Value::Nil => Json::Null,
        Value::Simple(s) if base64 && s.as_ref() != b"OK" => Json::String(STANDARD.encode(s)),
        Value::Simple(s) => Json::String(String::from_utf8_lossy(s).into_owned()),
        Value::Bulk(b) if base64 => Json::String(STANDARD.encode(b)),
        Value::Bulk(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::Array(items) => Json::Array(items.iter().map(|i| to_json(i, base64)).collect()),
        // Only reachable nested in an array (e.g. a script returning an
        // error table); top-level errors go through `reply`.
        Value::Error(e) => json!({ "error": String::from_utf8_lossy(e) }),
    }
}

/// `{"result": ...}` or `{"error": "..."}` for one command of a pipeline.
pub fn reply(v: &Value, base64: bool) -> Json {
    match v {
        Value::Error(e) => json!({ "error": String::from_utf8_lossy(e) }),
        other => json!({ "result": to_json(other, base64) }),
    }
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
        let v = Value::Array(vec![
            Value::Int(3),
            Value::Nil,
            Value::Bulk(Bytes::from_static(b"\xffa")),
            Value::Simple(Bytes::from_static(b"OK")),
            Value::Simple(Bytes::from_static(b"PONG")),
        ]);
        assert_eq!(
            to_json(&v, true),
            json!([3, null, "/2E=", "OK", "UE9ORw=="])
        );
        assert_eq!(
            to_json(&v, false),
            json!([3, null, "\u{fffd}a", "OK", "PONG"])
        );
        let e = Value::Error(Bytes::from_static(b"ERR x"));
        assert_eq!(reply(&e, true), json!({"error": "ERR x"}));
        assert_eq!(reply(&Value::Int(1), true), json!({"result": 1}));
    }
}
