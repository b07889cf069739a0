//! Diagnostics: every config error or warning points at a file position.

use std::fmt;
use std::ops::Range;

/// One error or warning, at the key or value it is about. Printed as
/// `FILE:LINE:COL: what is wrong; expected …`. Lines and columns count from
/// 1 (columns in characters); line 0 means "the file as a whole" (it could
/// not be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

impl Diagnostic {
    /// A file that could not be read: one diagnostic at line 0.
    pub fn unreadable(file: String, e: &std::io::Error) -> Diagnostic {
        Diagnostic {
            file,
            line: 0,
            col: 0,
            message: format!("can't read the file: {e}"),
        }
    }

    /// As `weir check` prints a warning: `FILE:LINE:COL: warning: …`.
    pub fn warning_line(&self) -> String {
        format!(
            "{}:{}:{}: warning: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Where a diagnostic goes: a byte range of the source text. `None` is the
/// start of the file (used only when the parser gave no position at all).
pub(crate) type Span = Option<Range<usize>>;

/// Collects diagnostics while one file is checked.
pub(crate) struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Ctx<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Ctx {
            file,
            text,
            line_starts,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The file being read, as given to [`Ctx::new`].
    pub(crate) fn file(&self) -> &'a str {
        self.file
    }

    pub(crate) fn diagnostic(&self, span: &Span, message: String) -> Diagnostic {
        let offset = span.as_ref().map_or(0, |r| r.start).min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        // Count characters, not bytes; a span never splits a character, but
        // be safe if it does.
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Diagnostic {
            file: self.file.to_string(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
            message,
        }
    }

    pub(crate) fn error(&mut self, span: &Span, message: impl Into<String>) {
        let d = self.diagnostic(span, message.into());
        self.errors.push(d);
    }

    pub(crate) fn warn(&mut self, span: &Span, message: impl Into<String>) {
        let d = self.diagnostic(span, message.into());
        self.warnings.push(d);
    }

    /// The line a span starts on (for "first defined at line N").
    pub(crate) fn line_of(&self, span: &Span) -> u32 {
        self.diagnostic(span, String::new()).line
    }
}

/// Sort by position (stable: same position keeps discovery order).
pub(crate) fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| (d.line, d.col));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        let cx = Ctx::new("f.toml", text);
        let d = cx.diagnostic(&Some(0..1), "m".into());
        assert_eq!((d.line, d.col), (1, 1));
        let x = text.find('"').unwrap();
        let d = cx.diagnostic(&Some(x..x + 3), "m".into());
        assert_eq!((d.line, d.col), (2, 6));
        assert_eq!(d.to_string(), "f.toml:2:6: m");
        let d = cx.diagnostic(&Some(text.len()..text.len()), "m".into());
        assert_eq!((d.line, d.col), (3, 1));
        let d = cx.diagnostic(&None, "m".into());
        assert_eq!((d.line, d.col), (1, 1));
    }
}
