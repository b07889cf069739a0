//! tc handles (`major:minor`, hexadecimal), as `get_tc_classid` reads them.

use std::fmt;
use std::str::FromStr;

use super::UnitError;

/// A tc handle `major:minor`, both hexadecimal (`1:10` is minor 16).
/// weir allows 32 bits for each (tc: 16), so large trees don't run out.
/// Minor 0 (`1:`) is the qdisc itself, not a class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassId {
    pub major: u32,
    pub minor: u32,
}

impl ClassId {
    pub const fn new(major: u32, minor: u32) -> ClassId {
        ClassId { major, minor }
    }
}

pub(crate) fn parse_hex_part(input: &str, part: &str) -> Result<u32, UnitError> {
    let digits = part
        .strip_prefix("0x")
        .or_else(|| part.strip_prefix("0X"))
        .unwrap_or(part);
    if digits.is_empty() {
        // tc's strtoul reads "" as 0 ("1:" is minor 0); "0x" alone is not.
        if part.is_empty() {
            return Ok(0);
        }
        return Err(UnitError::BadClassId {
            input: input.to_string(),
            why: "has no digits after 0x",
        });
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UnitError::BadClassId {
            input: input.to_string(),
            why: "has a character that is not a hex digit",
        });
    }
    u32::from_str_radix(digits, 16).map_err(|_| UnitError::BadClassId {
        input: input.to_string(),
        why: "has a part above ffffffff (32 bits)",
    })
}

impl FromStr for ClassId {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<ClassId, UnitError> {
        let t = s.trim();
        let Some((major, minor)) = t.split_once(':') else {
            return Err(UnitError::BadClassId {
                input: t.to_string(),
                why: "has no ':'",
            });
        };
        if major.is_empty() && minor.is_empty() {
            return Err(UnitError::BadClassId {
                input: t.to_string(),
                why: "has no digits",
            });
        }
        Ok(ClassId {
            major: parse_hex_part(t, major)?,
            minor: parse_hex_part(t, minor)?,
        })
    }
}

impl fmt::Display for ClassId {
    /// As tc's `print_tc_classid`: `1:10`, `1:` for minor 0, `:10` for
    /// major 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.minor == 0 {
            write!(f, "{:x}:", self.major)
        } else if self.major == 0 {
            write!(f, ":{:x}", self.minor)
        } else {
            write!(f, "{:x}:{:x}", self.major, self.minor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_ids_are_hex() {
        let c = |s: &str| s.parse::<ClassId>().unwrap();
        assert_eq!(c("1:10"), ClassId::new(1, 0x10));
        assert_eq!(c("1:a"), ClassId::new(1, 10));
        assert_eq!(c("1:A"), ClassId::new(1, 10));
        assert_eq!(c("1:"), ClassId::new(1, 0));
        assert_eq!(c(":10"), ClassId::new(0, 0x10));
        assert_eq!(c("ffffffff:ffffffff"), ClassId::new(u32::MAX, u32::MAX));
        assert_eq!(c("0x1:0x10"), ClassId::new(1, 0x10));
        assert_eq!(ClassId::new(1, 0x10).to_string(), "1:10");
        assert_eq!(ClassId::new(1, 0).to_string(), "1:");
        assert_eq!(ClassId::new(0, 0x10).to_string(), ":10");
        for bad in ["10", ":", "1:g", "1:100000000", "x:1", "1:0x", "1:2:3"] {
            assert!(bad.parse::<ClassId>().is_err(), "{bad}");
        }
    }
}
