//! RESP2 encoding of commands and incremental parsing of replies.
//!
//! The gateway speaks RESP2 only (it never sends HELLO), so replies are one of
//! five types. Parsing is incremental: `parse` returns `Ok(None)` until a whole
//! value is buffered, which lets one reader task decode replies of many
//! pipelined requests straight from the socket buffer.

use bytes::{Buf, Bytes, BytesMut};

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK` style status reply.
    Simple(Bytes),
    /// `-ERR ...` error reply (kept as the full message, prefix included).
    Error(Bytes),
    Int(i64),
    /// Bulk string; binary-safe.
    Bulk(Bytes),
    /// Null bulk string or null array.
    Nil,
    Array(Vec<Value>),
}

impl Value {
    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }

    /// The error message when this is an error reply.
    pub fn error_text(&self) -> Option<String> {
        match self {
            Value::Error(e) => Some(String::from_utf8_lossy(e).into_owned()),
            _ => None,
        }
    }
}

/// Malformed bytes from the server: the connection cannot be trusted after it.
#[derive(Debug, thiserror::Error)]
#[error("protocol error from redis: {0}")]
pub struct ProtocolError(pub &'static str);

/// Deepest nesting accepted, so a hostile or broken server cannot make the
/// parser recurse without bound.
const MAX_DEPTH: usize = 64;

/// Appends one command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    push_header(out, b'*', args.len());
    for a in args {
        let a = a.as_ref();
        push_header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Parses one value from the front of `buf`, consuming it on success.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Value>, ProtocolError> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        Some(v) => {
            buf.advance(pos);
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

fn parse_at(buf: &BytesMut, pos: &mut usize, depth: usize) -> Result<Option<Value>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError("reply nested too deeply"));
    }
    let Some(line) = read_line(buf, *pos) else {
        return Ok(None);
    };
    let (kind, body) = (buf[*pos], &buf[*pos + 1..line]);
    let next = line + 2;
    match kind {
        b'+' => {
            let v = Value::Simple(Bytes::copy_from_slice(body));
            *pos = next;
            Ok(Some(v))
        }
        b'-' => {
            let v = Value::Error(Bytes::copy_from_slice(body));
            *pos = next;
            Ok(Some(v))
        }
        b':' => {
            let v = Value::Int(parse_int(body)?);
            *pos = next;
            Ok(Some(v))
        }
        b'$' => {
            let n = parse_int(body)?;
            if n < 0 {
                *pos = next;
                return Ok(Some(Value::Nil));
            }
            let n = n as usize;
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err(ProtocolError("bulk string not terminated by CRLF"));
            }
            let v = Value::Bulk(Bytes::copy_from_slice(&buf[next..next + n]));
            *pos = next + n + 2;
            Ok(Some(v))
        }
        b'*' => {
            let n = parse_int(body)?;
            if n < 0 {
                *pos = next;
                return Ok(Some(Value::Nil));
            }
            let mut p = next;
            // Capacity is capped: the count comes from the wire.
            let mut items = Vec::with_capacity((n as usize).min(1024));
            for _ in 0..n {
                match parse_at(buf, &mut p, depth + 1)? {
                    Some(v) => items.push(v),
                    None => return Ok(None),
                }
            }
            *pos = p;
            Ok(Some(Value::Array(items)))
        }
        _ => Err(ProtocolError("unknown reply type byte")),
    }
}

/// Index of the `\r` ending the line that starts at `start`, if buffered.
fn read_line(buf: &BytesMut, start: usize) -> Option<usize> {
    let rest = buf.get(start..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    if i == 0 {
        // A line must at least hold its type byte.
        return None;
    }
    Some(start + i)
}

fn parse_int(b: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError("invalid integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Vec<Value> {
        let mut b = BytesMut::from(bytes);
        let mut out = vec![];
        while let Some(v) = parse(&mut b).unwrap() {
            out.push(v);
        }
        assert!(b.is_empty());
        out
    }

    #[test]
    fn encodes_binary_args() {
        let mut out = vec![];
        encode_command(&mut out, &[&b"SET"[..], b"k", b"\xff\r\n"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\xff\r\n\r\n");
    }

    #[test]
    fn parses_every_type() {
        let v = parse_all(
            b"+OK\r\n-ERR x\r\n:-5\r\n$3\r\na\r\n\r\n$-1\r\n*-1\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n",
        );
        assert_eq!(
            v,
            vec![
                Value::Simple(Bytes::from_static(b"OK")),
                Value::Error(Bytes::from_static(b"ERR x")),
                Value::Int(-5),
                Value::Bulk(Bytes::from_static(b"a\r\n")),
                Value::Nil,
                Value::Nil,
                Value::Array(vec![
                    Value::Int(1),
                    Value::Array(vec![Value::Bulk(Bytes::new())])
                ]),
            ]
        );
    }

    #[test]
    fn waits_for_partial_input() {
        let full = b"*2\r\n$5\r\nhello\r\n:42\r\n";
        for cut in 0..full.len() {
            let mut b = BytesMut::from(&full[..cut]);
            assert_eq!(parse(&mut b).unwrap(), None, "cut at {cut}");
            assert_eq!(b.len(), cut);
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(&mut BytesMut::from(&b"?x\r\n"[..])).is_err());
        assert!(parse(&mut BytesMut::from(&b":abc\r\n"[..])).is_err());
        assert!(parse(&mut BytesMut::from(&b"$1\r\nab\r\n"[..])).is_err());
    }
}
