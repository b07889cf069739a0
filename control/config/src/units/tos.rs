//! DSCP code points (by number or name, like `ef`, `af41`) and TOS byte
//! matches (`value/mask`), as tc u32 `match ip tos` reads them.

use std::fmt;
use std::str::FromStr;

use super::{parse_int, UnitError};

/// A DSCP code point, 0..=63 (the top six bits of the TOS / traffic class
/// byte).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dscp(u8);

/// Names with a single meaning, used for printing (BE is CS0; printed BE).
const DSCP_NAMES: &[(&str, u8)] = &[
    ("BE", 0),
    ("LE", 1),
    ("CS1", 8),
    ("AF11", 10),
    ("AF12", 12),
    ("AF13", 14),
    ("CS2", 16),
    ("AF21", 18),
    ("AF22", 20),
    ("AF23", 22),
    ("CS3", 24),
    ("AF31", 26),
    ("AF32", 28),
    ("AF33", 30),
    ("CS4", 32),
    ("AF41", 34),
    ("AF42", 36),
    ("AF43", 38),
    ("CS5", 40),
    ("VA", 44),
    ("EF", 46),
    ("CS6", 48),
    ("CS7", 56),
];

impl Dscp {
    /// None above 63.
    pub const fn new(value: u8) -> Option<Dscp> {
        if value <= 63 {
            Some(Dscp(value))
        } else {
            None
        }
    }

    pub const fn value(self) -> u8 {
        self.0
    }

    /// The TOS-byte match for this code point: `(dscp << 2) / 0xfc`, the
    /// ECN bits masked out (tc u32 `match ip tos 0xb8 0xfc` is EF).
    pub const fn tos(self) -> Tos {
        Tos {
            value: self.0 << 2,
            mask: 0xfc,
        }
    }

    /// The code point's name, if it has one.
    pub fn name(self) -> Option<&'static str> {
        DSCP_NAMES
            .iter()
            .find(|(_, v)| *v == self.0)
            .map(|(n, _)| *n)
    }
}

impl FromStr for Dscp {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Dscp, UnitError> {
        let t = s.trim();
        let bad = || UnitError::BadDscp {
            input: t.to_string(),
        };
        if let Some(v) = parse_int(t) {
            return u8::try_from(v).ok().and_then(Dscp::new).ok_or_else(bad);
        }
        if t.eq_ignore_ascii_case("CS0") {
            return Ok(Dscp(0));
        }
        DSCP_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map(|(_, v)| Dscp(*v))
            .ok_or_else(bad)
    }
}

impl fmt::Display for Dscp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A match on the TOS / traffic-class byte: `byte & mask == value & mask`,
/// as tc u32 `match ip tos VALUE MASK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tos {
    pub value: u8,
    pub mask: u8,
}

impl FromStr for Tos {
    type Err = UnitError;
    /// `0xb8/0xfc`, or a single byte (mask 0xff); decimal or 0x hex.
    fn from_str(s: &str) -> Result<Tos, UnitError> {
        let t = s.trim();
        let byte = |part: &str, what: &'static str| -> Result<u8, UnitError> {
            let v = parse_int(part).ok_or(UnitError::BadTos {
                input: t.to_string(),
                why: what,
            })?;
            u8::try_from(v).map_err(|_| UnitError::BadTos {
                input: t.to_string(),
                why: "has a part above 0xff",
            })
        };
        match t.split_once('/') {
            Some((v, m)) => Ok(Tos {
                value: byte(v, "has a value that is not a number")?,
                mask: byte(m, "has a mask that is not a number")?,
            }),
            None => Ok(Tos {
                value: byte(t, "is not a number")?,
                mask: 0xff,
            }),
        }
    }
}

impl fmt::Display for Tos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x}/0x{:02x}", self.value, self.mask)
    }
}

impl From<Dscp> for Tos {
    fn from(d: Dscp) -> Tos {
        d.tos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dscp_names() {
        let d = |s: &str| s.parse::<Dscp>().unwrap().value();
        assert_eq!(d("EF"), 46);
        assert_eq!(d("ef"), 46);
        assert_eq!(d("AF11"), 10);
        assert_eq!(d("AF41"), 34);
        assert_eq!(d("AF42"), 36);
        assert_eq!(d("AF31"), 26);
        assert_eq!(d("AF43"), 38);
        assert_eq!(d("CS0"), 0);
        assert_eq!(d("CS1"), 8);
        assert_eq!(d("CS7"), 56);
        assert_eq!(d("BE"), 0);
        assert_eq!(d("VA"), 44);
        assert_eq!(d("LE"), 1);
        assert_eq!(d("63"), 63);
        assert!("64".parse::<Dscp>().is_err());
        assert!("AF44".parse::<Dscp>().is_err());
        assert_eq!(
            Dscp::new(46).unwrap().tos(),
            Tos {
                value: 0xb8,
                mask: 0xfc
            }
        );
        for x in [
            "AF11", "AF12", "AF13", "AF21", "AF22", "AF23", "AF31", "AF32", "AF33", "AF41",
        ] {
            let (c, p) = (x.as_bytes()[2] - b'0', x.as_bytes()[3] - b'0');
            assert_eq!(d(x), 8 * c + 2 * p, "{x}");
        }
    }

    #[test]
    fn tos() {
        let t = |s: &str| s.parse::<Tos>().unwrap();
        assert_eq!(
            t("0xb8/0xfc"),
            Tos {
                value: 0xb8,
                mask: 0xfc
            }
        );
        assert_eq!(
            t("184"),
            Tos {
                value: 184,
                mask: 0xff
            }
        );
        assert_eq!(t("0xb8/0xfc").to_string(), "0xb8/0xfc");
        assert!("0x100/0xfc".parse::<Tos>().is_err());
        assert!("b8/fc".parse::<Tos>().is_err());
    }
}
