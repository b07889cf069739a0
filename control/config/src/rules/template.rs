//! `exec` argument templates: text with `{placeholder}`s, checked once so
//! the engine only substitutes names known to exist for the rule's target.

use super::inner;
use super::when::TargetKind;
use crate::diag::Ctx;
use crate::raw::S;

/// A value substituted into an `exec` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// The rule's name.
    Rule,
    Severity,
    /// The measured value, a plain number in the metric's unit.
    Value,
    Threshold,
    Metric,
    /// `interface weir-out` or `up 1:10 (web)`.
    Target,
    /// `open` or `resolved`.
    State,
    /// The tree's name (class rules only).
    Tree,
    /// The class id (class rules only).
    Class,
    /// The interface name (interface rules only).
    Interface,
}

const PLACEHOLDERS: &[(&str, Placeholder)] = &[
    ("rule", Placeholder::Rule),
    ("severity", Placeholder::Severity),
    ("value", Placeholder::Value),
    ("threshold", Placeholder::Threshold),
    ("metric", Placeholder::Metric),
    ("target", Placeholder::Target),
    ("state", Placeholder::State),
    ("tree", Placeholder::Tree),
    ("class", Placeholder::Class),
    ("interface", Placeholder::Interface),
];

/// One piece of an `exec` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var(Placeholder),
}

/// An `exec` argument: text with `{placeholder}`s (`{{` and `}}` are
/// literal braces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(pub Vec<Piece>);

impl Template {
    /// The argument with each placeholder replaced by `value(p)`.
    pub fn render(&self, mut value: impl FnMut(Placeholder) -> String) -> String {
        let mut s = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => s.push_str(t),
                Piece::Var(v) => s.push_str(&value(*v)),
            }
        }
        s
    }
}

pub(super) fn template(
    cx: &mut Ctx,
    src: &str,
    v: &S<String>,
    target: &TargetKind,
    program: bool,
) -> Option<Template> {
    let s = v.get_ref().as_str();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s.char_indices().peekable();
    while let Some((i, c)) = rest.next() {
        match c {
            '{' if rest.peek().map(|x| x.1) == Some('{') => {
                rest.next();
                text.push('{');
            }
            '}' if rest.peek().map(|x| x.1) == Some('}') => {
                rest.next();
                text.push('}');
            }
            '}' => {
                cx.error(
                    &inner(src, v, i, 1),
                    "lone `}` in an exec argument; expected `}}` for a literal brace",
                );
                return None;
            }
            '{' => {
                let Some(close) = s[i..].find('}') else {
                    cx.error(
                        &inner(src, v, i, s.len() - i),
                        "unclosed `{` in an exec argument; expected a placeholder like {rule}, or `{{` for a literal brace",
                    );
                    return None;
                };
                let name = &s[i + 1..i + close];
                let span = inner(src, v, i, close + 1);
                let Some(&(_, p)) = PLACEHOLDERS.iter().find(|(n, _)| *n == name) else {
                    cx.error(
                        &span,
                        format!(
                            "unknown placeholder `{{{name}}}`; expected one of {}",
                            PLACEHOLDERS
                                .iter()
                                .map(|(n, _)| format!("{{{n}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    return None;
                };
                if program {
                    cx.error(
                        &span,
                        "a placeholder in the program (the first exec argument); expected a fixed program path, with placeholders in the arguments after it",
                    );
                    return None;
                }
                let bad = match p {
                    Placeholder::Tree | Placeholder::Class => target.interface,
                    Placeholder::Interface => !target.interface,
                    _ => false,
                };
                if bad {
                    cx.error(
                        &span,
                        format!("`{{{name}}}` is not known for this rule ({}); expected {{target}}, or a rule that watches {}", if target.interface { "it watches an interface" } else { "it watches a class" }, if target.interface { "a class" } else { "an interface" }),
                    );
                    return None;
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Var(p));
                for _ in 0..close {
                    rest.next();
                }
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Some(Template(pieces))
}
