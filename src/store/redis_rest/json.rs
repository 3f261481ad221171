//! The little JSON the Upstash REST protocol needs: command arrays of
//! strings out, `{"result": …}` / `{"error": …}` replies in. Hand-written so
//! the WebAssembly build carries no general JSON library.

/// A parsed JSON value, as far as replies go.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// A number that is not an integer in i64 range, as its text: replies
    /// never need its value, and parsing floats would grow the wasm module.
    OtherNumber(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn field(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value of field `name` of an object, taken out of it (a reply's
    /// result can be large: a batch's, one array per call).
    pub(crate) fn into_field(self, name: &str) -> Option<Json> {
        match self {
            Json::Object(fields) => fields.into_iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// What kind of value it is, for error messages: naming it rather than
    /// printing it keeps formatting code out of the WebAssembly module.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) | Json::OtherNumber(_) => "a number",
            Json::Str(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Compact JSON (tests compare documents with it).
impl std::fmt::Display for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = |text: &str| {
            let mut out = String::new();
            push_str(&mut out, text);
            out
        };
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(n) => write!(f, "{n}"),
            Json::OtherNumber(text) => f.write_str(text),
            Json::Str(text) => f.write_str(&quoted(text)),
            Json::Array(values) => {
                f.write_str("[")?;
                for (i, value) in values.iter().enumerate() {
                    write!(f, "{}{value}", if i == 0 { "" } else { "," })?;
                }
                f.write_str("]")
            }
            Json::Object(fields) => {
                f.write_str("{")?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma}{}:{value}", quoted(key))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Appends `text` to `out` as a JSON string literal. Runs of characters
/// needing no escape are copied whole.
pub(crate) fn push_str(out: &mut String, text: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // Every byte matched above is ASCII, so `i` is a char boundary
        // (`get`, not indexing: no panic path, and so no formatting code,
        // in the WebAssembly module).
        out.push_str(text.get(plain..i).unwrap_or_default());
        plain = i + 1;
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 15)] as char);
        } else {
            out.push_str(escaped);
        }
    }
    out.push_str(text.get(plain..).unwrap_or_default());
    out.push('"');
}

/// `["a","b",…]`.
pub(crate) fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, item);
    }
    out.push(']');
    out
}

/// Parses one JSON document; `None` if it is not valid JSON.
pub(crate) fn parse(text: &str) -> Option<Json> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.skip_ws();
    (parser.at == parser.bytes.len()).then_some(value)
}

/// Nesting beyond this is refused rather than recursed into.
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &str, value: Json) -> Option<Json> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end) == Some(word.as_bytes())).then(|| {
            self.at = end;
            value
        })
    }

    fn value(&mut self) -> Option<Json> {
        self.skip_ws();
        match *self.bytes.get(self.at)? {
            b'{' => self.nested(Self::object),
            b'[' => self.nested(Self::array),
            b'"' => self.string().map(Json::Str),
            b'n' => self.literal("null", Json::Null),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn nested(&mut self, inner: fn(&mut Self) -> Option<Json>) -> Option<Json> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let value = inner(self);
        self.depth -= 1;
        value
    }

    fn object(&mut self) -> Option<Json> {
        self.eat(b'{')?;
        let mut fields = Vec::new();
        if self.eat(b'}').is_some() {
            return Some(Json::Object(fields));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.eat(b':')?;
            fields.push((key, self.value()?));
            if self.eat(b'}').is_some() {
                return Some(Json::Object(fields));
            }
            self.eat(b',')?;
        }
    }

    fn array(&mut self) -> Option<Json> {
        self.eat(b'[')?;
        // A script's reply has 5 to 8 numbers: room for them at once.
        let mut items = Vec::with_capacity(8);
        if self.eat(b']').is_some() {
            return Some(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            if self.eat(b']').is_some() {
                return Some(Json::Array(items));
            }
            self.eat(b',')?;
        }
    }

    fn number(&mut self) -> Option<Json> {
        self.integer().or_else(|| self.other_number())
    }

    /// The common case, an integer in i64 range, its value taken as its
    /// digits are read; `None` (nothing consumed) for anything else.
    fn integer(&mut self) -> Option<Json> {
        let negative = self.bytes.get(self.at) == Some(&b'-');
        let first = self.at + usize::from(negative);
        let mut at = first;
        let mut value: i64 = 0;
        while let Some(&digit @ b'0'..=b'9') = self.bytes.get(at) {
            let digit = i64::from(digit - b'0');
            let next = value.checked_mul(10)?;
            value = match negative {
                true => next.checked_sub(digit)?,
                false => next.checked_add(digit)?,
            };
            at += 1;
        }
        let digits = at - first;
        let leading_zero = digits > 1 && self.bytes.get(first) == Some(&b'0');
        let more = matches!(self.bytes.get(at), Some(b'.' | b'e' | b'E' | b'-' | b'+'));
        if digits == 0 || leading_zero || more {
            return None;
        }
        self.at = at;
        Some(Json::Int(value))
    }

    /// Any other JSON number (a fraction, an exponent, beyond i64), kept
    /// as its text.
    fn other_number(&mut self) -> Option<Json> {
        let start = self.at;
        while matches!(
            self.bytes.get(self.at),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        // Every integer in i64 range was read by `integer`.
        is_number(text).then(|| Json::OtherNumber(text.to_owned()))
    }

    fn string(&mut self) -> Option<String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            match byte {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escaped = *self.bytes.get(self.at)?;
                    self.at += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                0x00..=0x1f => return None,
                _ => out.push(byte),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = std::str::from_utf8(self.bytes.get(self.at..self.at + 4)?).ok()?;
        self.at += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) {
            // A surrogate pair: \\uD83D\\uDE00.
            if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                return None;
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return None;
            }
            char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
        } else {
            char::from_u32(first)
        }
    }
}

/// Whether `text` is a JSON number: `-? int frac? exp?`.
fn is_number(text: &str) -> bool {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let rest = text.strip_prefix('-').unwrap_or(text);
    let int = digits(rest);
    if int == 0 || (int > 1 && rest.starts_with('0')) {
        return false;
    }
    let mut rest = rest.get(int..).unwrap_or_default();
    if let Some(frac) = rest.strip_prefix('.') {
        let n = digits(frac);
        if n == 0 {
            return false;
        }
        rest = frac.get(n..).unwrap_or_default();
    }
    if let Some(exp) = rest.strip_prefix(['e', 'E']) {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        let n = digits(exp);
        return n > 0 && n == exp.len();
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_command_arrays_with_escapes() {
        let body = string_array(["EVALSHA", "a\"b\\c", "new\nline", "\u{1}", "é"]);
        assert_eq!(body, r#"["EVALSHA","a\"b\\c","new\nline","\u0001","é"]"#);
        assert_eq!(
            parse(&body).unwrap(),
            Json::Array(vec![
                Json::Str("EVALSHA".into()),
                Json::Str("a\"b\\c".into()),
                Json::Str("new\nline".into()),
                Json::Str("\u{1}".into()),
                Json::Str("é".into()),
            ])
        );
    }

    #[test]
    fn parses_replies() {
        let reply =
            parse(r#" { "result" : [1, -2, 3000000000000, null, "x\u00e9\ud83d\ude00"] } "#)
                .unwrap();
        assert_eq!(
            reply.field("result"),
            Some(&Json::Array(vec![
                Json::Int(1),
                Json::Int(-2),
                Json::Int(3_000_000_000_000),
                Json::Null,
                Json::Str("xé😀".into()),
            ]))
        );
        let error = parse(r#"{"error":"NOSCRIPT No matching script. Please use EVAL."}"#).unwrap();
        assert_eq!(
            error.field("error"),
            Some(&Json::Str(
                "NOSCRIPT No matching script. Please use EVAL.".into()
            ))
        );
        assert_eq!(parse("1.5"), Some(Json::OtherNumber("1.5".into())));
        assert_eq!(
            parse("-2e10"),
            Some(Json::OtherNumber("-2e10".into())),
            "exponent"
        );
        assert_eq!(parse("1."), None);
        let text = r#"{"a":[1,-2.5e3,"x\"y",null,true],"b":{}}"#;
        assert_eq!(
            parse(text).unwrap().to_string(),
            text,
            "Display is compact JSON"
        );
        assert_eq!(parse("01"), None);
        assert_eq!(parse("1e"), None);
        assert_eq!(parse("-0"), Some(Json::Int(0)));
        assert_eq!(parse("9223372036854775807"), Some(Json::Int(i64::MAX)));
        assert_eq!(parse("-9223372036854775808"), Some(Json::Int(i64::MIN)));
        assert_eq!(
            parse("9223372036854775808"),
            Some(Json::OtherNumber("9223372036854775808".into())),
            "beyond i64"
        );
        for invalid in ["-", "00", "-01", "1-", "1+", "--1", "[1-2]"] {
            assert_eq!(parse(invalid), None, "{invalid}");
        }
        assert_eq!(
            parse("[true,false,{}]"),
            Some(Json::Array(vec![
                Json::Bool(true),
                Json::Bool(false),
                Json::Object(vec![])
            ]))
        );
    }

    #[test]
    fn every_escape_both_ways() {
        let mut out = String::new();
        push_str(&mut out, "\r\t\u{1f}/");
        assert_eq!(out, r#""\r\t\u001f/""#);
        assert_eq!(
            parse(r#""\"\\\/\b\f\n\r\t\u0041""#),
            Some(Json::Str("\"\\/\u{8}\u{c}\n\r\tA".into()))
        );
        assert_eq!(parse(r#""\ud83d\u0041""#), None, "a lone high surrogate");
    }

    #[test]
    fn nesting_is_bounded_by_depth_not_by_siblings() {
        let nested = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
        assert!(parse(&nested(MAX_DEPTH)).is_some());
        assert_eq!(parse(&nested(MAX_DEPTH + 1)), None);
        let siblings = format!("[{}]", vec![r#"{"a":[[]]}"#; 100].join(","));
        assert!(parse(&siblings).is_some());
    }

    #[test]
    fn a_single_zero_may_begin_a_number() {
        assert_eq!(parse("0"), Some(Json::Int(0)));
        assert_eq!(parse("0.5"), Some(Json::OtherNumber("0.5".into())));
        assert_eq!(parse("-0e1"), Some(Json::OtherNumber("-0e1".into())));
    }

    #[test]
    fn rejects_malformed_input() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "\"unterminated",
            "[1 2]",
            "{} x",
            "\"\\q\"",
            "\"\\ud83d\"",
            "nul",
            "[\"a\u{1}\"]",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(parse(&deep), None, "nesting is bounded");
    }
}
