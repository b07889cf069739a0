//! Name globs for SNI and HTTP Host matchers: `*.googlevideo.com`,
//! `video.test`, `cdn?.example.net`.
//!
//! `*` matches any run of characters, dots included (so `*.example.com`
//! matches `a.b.example.com`, and not `example.com` itself); `?` matches one
//! character. Matching ignores ASCII case, as DNS does. Names are ASCII
//! (internationalised names travel as punycode in both SNI and Host), so a
//! pattern with other bytes is refused when the config is read.
//!
//! Matching is the two-pointer walk with one backtrack point (the last
//! `*`): linear in practice, O(name × pattern) at worst, with both bounded
//! by [`MAX_LEN`]. Nothing is allocated when matching.

/// A DNS name is at most 253 characters; a pattern no longer than that.
pub const MAX_LEN: usize = 253;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Glob {
    /// Lower-case ASCII.
    pattern: Box<[u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobError {
    Empty,
    TooLong {
        len: usize,
    },
    /// Not printable ASCII, or a space.
    BadChar {
        at: usize,
        ch: char,
    },
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobError::Empty => write!(f, "an empty name pattern matches nothing"),
            GlobError::TooLong { len } => {
                write!(
                    f,
                    "a name pattern of {len} characters is longer than a DNS name ({MAX_LEN})"
                )
            }
            GlobError::BadChar { at, ch } => write!(
                f,
                "{ch:?} at {at} cannot be in a name (names are ASCII; write IDNs as punycode)"
            ),
        }
    }
}

impl std::error::Error for GlobError {}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > MAX_LEN {
            return Err(GlobError::TooLong { len: pattern.len() });
        }
        if let Some((at, ch)) = pattern.char_indices().find(|&(_, c)| !c.is_ascii_graphic()) {
            return Err(GlobError::BadChar { at, ch });
        }
        Ok(Glob {
            pattern: pattern.to_ascii_lowercase().into_bytes().into(),
        })
    }

    /// The pattern as written (lower-cased).
    pub fn as_str(&self) -> &str {
        // Checked ASCII in `new`.
        std::str::from_utf8(&self.pattern).unwrap_or("")
    }

    /// Whether `name` matches, ignoring ASCII case. A trailing dot on the
    /// name (a fully qualified `example.com.`) is ignored.
    pub fn matches(&self, name: &[u8]) -> bool {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.len() > MAX_LEN {
            return false;
        }
        let p = &self.pattern;
        let (mut pi, mut ni) = (0, 0);
        // Where to resume after the last `*`: (pattern index after it, name
        // index it has swallowed up to).
        let mut star: Option<(usize, usize)> = None;
        while ni < name.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == name[ni].to_ascii_lowercase() => {
                    pi += 1;
                    ni += 1;
                }
                _ => match star {
                    Some((sp, sn)) => {
                        pi = sp;
                        ni = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, n: &str) -> bool {
        Glob::new(p).unwrap().matches(n.as_bytes())
    }

    #[test]
    fn literal_and_case() {
        assert!(m("video.test", "video.test"));
        assert!(m("video.test", "VIDEO.Test"));
        assert!(m("video.test", "video.test."));
        assert!(!m("video.test", "video.tes"));
        assert!(!m("video.test", "xvideo.test"));
    }

    #[test]
    fn star_spans_labels_but_needs_the_dot() {
        assert!(m("*.googlevideo.com", "r4---sn-abc.googlevideo.com"));
        assert!(m("*.googlevideo.com", "a.b.googlevideo.com"));
        assert!(!m("*.googlevideo.com", "googlevideo.com"));
        assert!(!m("*.googlevideo.com", "googlevideo.com.evil"));
        assert!(m("*", "anything"));
        assert!(m("cdn?.example.net", "cdn1.example.net"));
        assert!(!m("cdn?.example.net", "cdn12.example.net"));
        assert!(m("*video*", "my.video.site"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert!(matches!(
            Glob::new("a b"),
            Err(GlobError::BadChar { at: 1, .. })
        ));
        assert!(matches!(
            Glob::new("é.com"),
            Err(GlobError::BadChar { at: 0, .. })
        ));
        assert!(matches!(
            Glob::new(&"a".repeat(254)),
            Err(GlobError::TooLong { len: 254 })
        ));
    }

    /// A reference matcher by recursion, for the property test.
    fn reference(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
            (Some(&c), Some(&d)) if c == b'?' || c == d.to_ascii_lowercase() => {
                reference(&p[1..], &n[1..])
            }
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(p in "[a-c*?.]{1,8}", n in "[a-cA-C.]{0,10}") {
            let g = Glob::new(&p).unwrap();
            let name = n.strip_suffix('.').unwrap_or(&n);
            prop_assert_eq!(g.matches(n.as_bytes()), reference(p.as_bytes(), name.as_bytes()));
        }

        #[test]
        fn arbitrary_names_never_panic(n in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Glob::new("*.x?y*").unwrap().matches(&n);
        }
    }
}
