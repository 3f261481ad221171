//! Bearer-token authentication (`Authorization: Bearer` or `?_token=`).

use axum::http::HeaderMap;
use percent_encoding::percent_decode_str;

use crate::error::ApiError;

#[derive(Clone)]
pub struct Token {
    secret: Vec<u8>,
    pub read_only: bool,
}

// Never print secrets, even in debug output.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(read_only: {})", self.read_only)
    }
}

impl Token {
    pub fn new(secret: &str, read_only: bool) -> Token {
        Token {
            secret: secret.as_bytes().to_vec(),
            read_only,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.secret.len()
    }

    /// Whether it is empty: such a token must never be accepted.
    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub read_only: bool,
}

#[derive(Debug, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
    /// Explicit opt-out of authentication (`--insecure-no-auth`).
    open: bool,
}

impl Tokens {
    pub fn new(tokens: Vec<Token>, open: bool) -> Tokens {
        Tokens { tokens, open }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Access, ApiError> {
        if self.open {
            return Ok(Access { read_only: false });
        }
        let given = bearer(headers)
            .map(|t| t.as_bytes().to_vec())
            .or_else(|| query.and_then(query_token));
        // An empty token never matches, whatever was configured.
        let Some(given) = given.filter(|g| !g.is_empty()) else {
            return Err(ApiError::Unauthorized);
        };
        // Compare against every token without early exit so the answer time
        // does not reveal which prefix matched.
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(&t.secret, &given) {
                found = Some(Access {
                    read_only: t.read_only,
                });
            }
        }
        found.ok_or(ApiError::Unauthorized)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_token(query: &str) -> Option<Vec<u8>> {
    query.split('&').find_map(|kv| {
        let v = kv.strip_prefix("_token=")?;
        Some(percent_decode_str(v).collect())
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a token file: one token per line, `readonly:` prefix for read-only
/// ones; blank lines and `#` comments are skipped. Each token comes with its
/// line number (from 1).
pub fn parse_token_file(text: &str) -> Vec<(usize, Token)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| match l.strip_prefix("readonly:") {
            Some(t) => (n, Token::new(t.trim(), true)),
            None => (n, Token::new(l, false)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn accepts_header_or_query() {
        let t = Tokens::new(
            vec![Token::new("s3cret", false), Token::new("ro", true)],
            false,
        );
        let mut h = HeaderMap::new();
        assert!(t.check(&h, None).is_err());
        assert!(t.check(&h, Some("a=1&_token=ro")).unwrap().read_only);
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        assert!(!t.check(&h, None).unwrap().read_only);
        h.insert("authorization", HeaderValue::from_static("Bearer s3cre"));
        assert!(t.check(&h, None).is_err());
        assert!(t.check(&HeaderMap::new(), Some("_token=bad")).is_err());
    }

    #[test]
    fn token_file() {
        let t = parse_token_file("# c\n\nabc\nreadonly: def\nreadonly:\n");
        assert_eq!(t.len(), 3);
        assert!(!t[0].1.read_only && t[1].1.read_only);
        assert_eq!((t[1].0, t[1].1.secret.as_slice()), (4, b"def".as_slice()));
        assert!(
            t[2].1.is_empty(),
            "line 5 is an empty token, refused at start"
        );
    }
}
