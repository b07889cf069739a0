//! A JSON reader that keeps where every value is (RFC 8259), so errors
//! about a network.json's content point at the `FILE:LINE:COL` of the key
//! or value they are about, as the TOML's and the CSV's do. serde_json
//! gives positions for syntax errors only.
//!
//! Numbers are kept as their source text, so a rate converts exactly
//! (through the one decimal parser of `units`), never through a float.
//! Nesting is bounded ([`MAX_DEPTH`]), so no input can exhaust the stack.

use std::ops::Range;

/// Deepest nesting of arrays and objects accepted. A network hierarchy of
/// sites and access points is a few levels deep; each level of it is two
/// of these (the node and its `children`).
pub const MAX_DEPTH: usize = 128;

/// A value and where it is in the text (byte range).
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub at: Range<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// As written (`1000`, `2.5`, `-1e3`).
    Number(String),
    String(String),
    Array(Vec<Spanned<Json>>),
    /// Members in file order (a repeated key is kept twice; the caller
    /// decides).
    Object(Vec<(Spanned<String>, Spanned<Json>)>),
}

impl Json {
    /// What a value is, for messages ("a number", "an object").
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// A syntax error: what was expected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: usize,
    pub message: String,
}

/// Parse a whole JSON text.
pub fn parse(text: &str) -> Result<Spanned<Json>, SyntaxError> {
    let mut p = Parser { text, at: 0 };
    p.space();
    let v = p.value(0)?;
    p.space();
    if p.at < text.len() {
        return Err(p.error("text after the JSON value: the file holds one object"));
    }
    Ok(v)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            at: self.at,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Spanned<Json>, SyntaxError> {
        let start = self.at;
        let value = match self.peek() {
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Json::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => Json::Number(self.number()?),
            Some(b't') => self.word("true", Json::Bool(true))?,
            Some(b'f') => self.word("false", Json::Bool(false))?,
            Some(b'n') => self.word("null", Json::Null)?,
            Some(_) => {
                return Err(self.error(
                    "expected a value (an object, array, string, number, true, false or null)",
                ))
            }
            None => return Err(self.error("the text ends where a value was expected")),
        };
        Ok(Spanned {
            value,
            at: start..self.at,
        })
    }

    fn word(&mut self, word: &str, value: Json) -> Result<Json, SyntaxError> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self
                .error("expected a value (an object, array, string, number, true, false or null)"))
        }
    }

    fn enter(&self, depth: usize) -> Result<usize, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(&format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(depth + 1)
    }

    fn object(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        let depth = self.enter(depth)?;
        self.at += 1;
        let mut members = Vec::new();
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key in double quotes"));
            }
            let start = self.at;
            let key = Spanned {
                value: self.string()?,
                at: start..self.at,
            };
            self.space();
            if self.peek() != Some(b':') {
                return Err(self.error("expected `:` after the key"));
            }
            self.at += 1;
            self.space();
            let value = self.value(depth)?;
            members.push((key, value));
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.error("expected `,` or `}` after the value")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, SyntaxError> {
        let depth = self.enter(depth)?;
        self.at += 1;
        let mut items = Vec::new();
        self.space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.space();
            items.push(self.value(depth)?);
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]` after the value")),
            }
        }
    }

    /// A number as written, checked against JSON's grammar.
    fn number(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.at += 1;
            }
            p.at > from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        if self.peek() == Some(b'0') {
            self.at += 1;
        } else if !digits(self) {
            return Err(self.error("expected a digit"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                return Err(self.error("expected a digit after the decimal point"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !digits(self) {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        Ok(self.text[start..self.at].to_string())
    }

    /// A string at its opening quote, unescaped.
    fn string(&mut self) -> Result<String, SyntaxError> {
        self.at += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.text[self.at..].chars().next() else {
                return Err(self.error("the text ends inside a string"));
            };
            match c {
                '"' => {
                    self.at += 1;
                    return Ok(s);
                }
                '\\' => {
                    self.at += 1;
                    s.push(self.escape()?);
                }
                c if u32::from(c) < 0x20 => {
                    return Err(self.error(
                        "a control character inside a string (write it as an escape, as \\n)",
                    ));
                }
                c => {
                    s.push(c);
                    self.at += c.len_utf8();
                }
            }
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Result<char, SyntaxError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.at += 1;
                let high = self.hex4()?;
                if !(0xd800..0xdc00).contains(&high) {
                    return char::from_u32(high)
                        .ok_or_else(|| self.error("a \\u escape of a lone low surrogate"));
                }
                // A high surrogate: its low half must follow.
                if !self.text[self.at..].starts_with("\\u") {
                    return Err(self.error("a \\u escape of a high surrogate without its low half"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xdc00..0xe000).contains(&low) {
                    return Err(self.error("a \\u escape of a high surrogate without its low half"));
                }
                let c = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                return char::from_u32(c).ok_or_else(|| self.error("an invalid \\u escape"));
            }
            _ => {
                return Err(
                    self.error("an unknown escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)")
                )
            }
        };
        self.at += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let hex = self
            .text
            .get(self.at..self.at + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("expected four hex digits after \\u"))?;
        let v = u32::from_str_radix(hex, 16)
            .map_err(|_| self.error("expected four hex digits after \\u"))?;
        self.at += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_spans() {
        let text = r#" {"a": [1, -2.5e3, true, null], "b": {"c\"d": "é\u00e9\ud83d\ude00"}} "#;
        let v = parse(text).expect("parses");
        let Json::Object(m) = &v.value else {
            panic!("{v:?}")
        };
        assert_eq!(&text[m[0].0.at.clone()], "\"a\"");
        let Json::Array(a) = &m[0].1.value else {
            panic!()
        };
        assert_eq!(a[1].value, Json::Number("-2.5e3".into()));
        assert_eq!(&text[a[1].at.clone()], "-2.5e3");
        let Json::Object(b) = &m[1].1.value else {
            panic!()
        };
        assert_eq!(b[0].0.value, "c\"d");
        assert_eq!(b[0].1.value, Json::String("éé😀".into()));
        assert_eq!(v.at, 1..text.len() - 1);
    }

    #[test]
    fn syntax_errors_say_where() {
        for (text, at, what) in [
            ("", 0, "the text ends where a value was expected"),
            ("{\"a\" 1}", 5, "expected `:` after the key"),
            ("{\"a\": 1,}", 8, "expected a key in double quotes"),
            ("[1 2]", 3, "expected `,` or `]` after the value"),
            (
                "{} {}",
                3,
                "text after the JSON value: the file holds one object",
            ),
            ("\"abc", 4, "the text ends inside a string"),
            (
                "01",
                1,
                "text after the JSON value: the file holds one object",
            ),
            ("1.", 2, "expected a digit after the decimal point"),
            (
                "\"\\x\"",
                2,
                "an unknown escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
            ),
            (
                "\"\\ud800\"",
                7,
                "a \\u escape of a high surrogate without its low half",
            ),
            (
                "tru",
                0,
                "expected a value (an object, array, string, number, true, false or null)",
            ),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!((e.at, e.message.as_str()), (at, what), "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let e = parse(&deep).expect_err("too deep");
        assert_eq!(e.at, MAX_DEPTH);
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
