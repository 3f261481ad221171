//! The usual request body, an array of plain strings and numbers (a
//! pipeline: an array of them), read straight into arguments that share the
//! body's buffer: no JSON tree, no copy. Anything else (escapes, booleans,
//! null, nesting, a syntax error) gets `None` and is left to serde_json
//! (`json.rs`), which words the errors; what this reads, serde_json reads
//! alike (tested there).

use bytes::Bytes;

/// `[arg, ...]`, nothing else but whitespace around it.
pub fn command(body: &Bytes) -> Option<Vec<Bytes>> {
    let mut scan = Scan { body, at: 0 };
    let args = scan.args()?;
    scan.end().then_some(args)
}

/// `[[arg, ...], ...]` with at least one command.
pub fn commands(body: &Bytes) -> Option<Vec<Vec<Bytes>>> {
    let mut scan = Scan { body, at: 0 };
    if !scan.eat(b'[') {
        return None;
    }
    let mut cmds = Vec::new();
    loop {
        cmds.push(scan.args()?);
        if scan.eat(b']') {
            return scan.end().then_some(cmds);
        }
        if !scan.eat(b',') {
            return None;
        }
    }
}

struct Scan<'a> {
    body: &'a Bytes,
    at: usize,
}

impl Scan<'_> {
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.body.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn end(&mut self) -> bool {
        self.skip_space();
        self.at == self.body.len()
    }

    /// `[arg, ...]` with at least one argument.
    fn args(&mut self) -> Option<Vec<Bytes>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut args = Vec::with_capacity(8);
        loop {
            self.skip_space();
            args.push(match self.body.get(self.at)? {
                b'"' => self.string()?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            });
            if self.eat(b']') {
                return Some(args);
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// A string without escapes or control characters, valid UTF-8.
    fn string(&mut self) -> Option<Bytes> {
        let start = self.at + 1;
        let len = self.body[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + len;
        if self.body[end] != b'"' {
            return None;
        }
        std::str::from_utf8(&self.body[start..end]).ok()?;
        self.at = end + 1;
        Some(self.body.slice(start..end))
    }

    /// A number as JSON writes it, `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`,
    /// kept as written (serde_json's `arbitrary_precision` keeps it so too).
    fn number(&mut self) -> Option<Bytes> {
        let b = &self.body[..];
        let start = self.at;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits(b, i),
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i = some_digits(b, i + 1)?;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            i = some_digits(b, i)?;
        }
        self.at = i;
        Some(self.body.slice(start..i))
    }
}

/// Past the digits from `i`.
fn digits(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}

/// Past at least one digit from `i`.
fn some_digits(b: &[u8], i: usize) -> Option<usize> {
    let end = digits(b, i);
    (end > i).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_everything_else_to_serde_json() {
        for body in [
            &br#"["a\"b"]"#[..],
            br#"["GET",true]"#,
            br#"["GET",null]"#,
            br#"["GET",01]"#,
            br#"["GET",1.]"#,
            br#"["GET","a"] x"#,
            br#"["GET","a",]"#,
            b"[\"\xff\"]",
            b"[]",
            b"",
        ] {
            assert_eq!(command(&Bytes::copy_from_slice(body)), None, "{body:?}");
        }
        assert_eq!(commands(&Bytes::from_static(b"[]")), None);
        assert_eq!(commands(&Bytes::from_static(br#"[["a"],]"#)), None);
    }

    #[test]
    fn arguments_share_the_body() {
        let body = Bytes::from(br#"[ "SET" , "key" , -1.5e3 ]"#.to_vec());
        let args = command(&body).unwrap();
        assert_eq!(args, ["SET", "key", "-1.5e3"]);
        let inside = body.as_ptr_range();
        assert!(args.iter().all(|a| inside.contains(&a.as_ptr())));
    }
}
