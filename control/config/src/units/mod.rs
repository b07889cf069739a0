//! tc(8) units: rates, sizes, times, class ids, DSCP and TOS.
//!
//! Each type parses what `tc` accepts (iproute2 `tc/tc_util.c` `get_rate64`,
//! `get_size`, `get_tc_classid`, `lib/utils.c` `get_time`; unit suffixes are
//! matched case-insensitively, as tc's `strcasecmp` does) and prints a form
//! that parses back to exactly the same value. tc computes in `double` and
//! truncates; weir computes in exact decimal integer arithmetic and truncates
//! the same way, so `1.5mbit` is 1 500 000 bit/s and `1.1kibit` is 1126 bit/s
//! on both.
//!
//! Printing follows tc's look (`300Mbit`, `1514b`, `32Mb`, `5ms`, `1:10`)
//! but never rounds: tc prints `1234567000bit` as `1234Mbit`, weir prints
//! `1234567Kbit`.
//!
//! Durations written with a required unit (rules, history, traffic files)
//! are `duration`'s one parser; the printers of what weir shows (tc-exact
//! `sprint_*`, measured rates, columns) are `print`'s one family.

mod classid;
mod duration;
mod print;
mod tos;

use std::fmt;
use std::str::FromStr;

pub(crate) use classid::parse_hex_part;
pub use classid::ClassId;
pub use duration::{
    parse_duration, DurationError, DurationUnits, HISTORY_SPAN, RULE_DURATION, TRAFFIC_DURATION,
};
pub use print::{
    columns, fmt_duration, fmt_mbit, fmt_ms, fmt_rate_decimal, fmt_rate_est, sprint_rate,
    sprint_size, sprint_time,
};
pub use tos::{Dscp, Tos};

/// What kind of quantity a [`UnitError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    Rate,
    Size,
    Time,
}

impl UnitKind {
    fn expected(self) -> &'static str {
        match self {
            UnitKind::Rate => {
                "a number with a tc rate unit: bit, kbit, mbit, gbit, tbit (bits/s, \
                 x1000), kibit, mibit, gibit, tibit (x1024), bps, kbps, mbps, gbps, tbps \
                 (BYTES/s), kibps, mibps, gibps, tibps; a bare number is bit/s; or N% of \
                 the tree's link"
            }
            UnitKind::Size => {
                "a number with a tc size unit: b (bytes, also bare), k/kb, m/mb, g/gb \
                 (x1024), kbit, mbit, gbit (x1024 bits)"
            }
            UnitKind::Time => {
                "a number with a time unit: s/sec/secs, ms/msec/msecs, us/usec/usecs, \
                 ns/nsec/nsecs; a bare number is microseconds, as tc reads it"
            }
        }
    }

    fn max(self) -> &'static str {
        match self {
            UnitKind::Rate => "18446744073709551615bit (2^64-1 bit/s)",
            UnitKind::Size => "18446744073709551615b (2^64-1 bytes)",
            UnitKind::Time => "18446744073709551615ns (about 584 years)",
        }
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnitKind::Rate => "rate",
            UnitKind::Size => "size",
            UnitKind::Time => "time",
        })
    }
}

/// Why a unit string was rejected. The message says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{kind} \"{input}\" does not start with a number; expected {}", kind.expected())]
    NoNumber { kind: UnitKind, input: String },
    #[error("{kind} \"{input}\" is negative; expected {}", kind.expected())]
    Negative { kind: UnitKind, input: String },
    #[error("unknown unit \"{unit}\" in {kind} \"{input}\"; expected {}", kind.expected())]
    UnknownUnit {
        kind: UnitKind,
        input: String,
        unit: String,
    },
    #[error("{kind} \"{input}\" is too large; expected at most {}", kind.max())]
    TooLarge { kind: UnitKind, input: String },
    #[error("{kind} \"{input}\" has more than {max} decimal places")]
    TooPrecise {
        kind: UnitKind,
        input: String,
        max: u32,
    },
    #[error(
        "rate \"{input}\" is a percentage, but this tree has no link rate; expected `link = \
         \"...\"` in the tree, or an absolute rate like \"300mbit\""
    )]
    PercentWithoutLink { input: String },
    #[error("rate \"{input}\" is not between 0% and 100%")]
    PercentOutOfRange { input: String },
    #[error(
        "class id \"{input}\" {why}; expected major:minor in hex as tc writes it, like \
         \"1:10\" (minor 0x10) or \"1:a\""
    )]
    BadClassId { input: String, why: &'static str },
    #[error(
        "unknown DSCP \"{input}\"; expected a number 0..=63 or a name: EF, AF11..AF43, \
         CS0..CS7, BE, VA, LE"
    )]
    BadDscp { input: String },
    #[error("TOS \"{input}\" {why}; expected a byte or value/mask bytes like \"0xb8/0xfc\"")]
    BadTos { input: String, why: &'static str },
}

/// A non-negative decimal number split off the front of a string, kept
/// exact: `mantissa / 10^frac_digits`.
struct Decimal {
    mantissa: u128,
    frac_digits: u32,
}

const MAX_FRAC_DIGITS: u32 = 18;
const MAX_PERCENT_FRAC_DIGITS: u32 = 9;

/// Split `s` into a decimal number and the rest (the unit, leading
/// whitespace removed). Accepts `12`, `12.`, `12.5`, `.5`.
fn split_decimal(kind: UnitKind, s: &str) -> Result<(Decimal, &str), UnitError> {
    let err_input = || s.to_string();
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'-') {
        return Err(UnitError::Negative {
            kind,
            input: err_input(),
        });
    }
    let mut i = 0;
    let mut mantissa: u128 = 0;
    let mut int_digits = 0;
    let mut frac_digits = 0u32;
    let too_large = || UnitError::TooLarge {
        kind,
        input: err_input(),
    };
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(bytes[i] - b'0')))
            .ok_or_else(too_large)?;
        // No integer part above 2^64 can fit any unit; stop early so the
        // fraction below can't overflow either.
        if mantissa > u128::from(u64::MAX) {
            return Err(too_large());
        }
        int_digits += 1;
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            if frac_digits == MAX_FRAC_DIGITS {
                return Err(UnitError::TooPrecise {
                    kind,
                    input: err_input(),
                    max: MAX_FRAC_DIGITS,
                });
            }
            mantissa = mantissa * 10 + u128::from(bytes[i] - b'0');
            frac_digits += 1;
            i += 1;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return Err(UnitError::NoNumber {
            kind,
            input: err_input(),
        });
    }
    Ok((
        Decimal {
            mantissa,
            frac_digits,
        },
        s[i..].trim_start(),
    ))
}

/// `floor(d * num / den)`, or None when it does not fit a u64.
fn scale(d: &Decimal, num: u128, den: u128) -> Option<u64> {
    let den = den.checked_mul(10u128.pow(d.frac_digits))?;
    let v = d.mantissa.checked_mul(num)? / den;
    u64::try_from(v).ok()
}

/// Parse `number[unit]` with a unit table of `(suffix, numerator,
/// denominator)`; suffixes are compared case-insensitively.
fn parse_units(kind: UnitKind, s: &str, table: &[(&str, u128, u128)]) -> Result<u64, UnitError> {
    let s = s.trim();
    let (d, unit) = split_decimal(kind, s)?;
    let Some(&(_, num, den)) = table.iter().find(|(u, _, _)| u.eq_ignore_ascii_case(unit)) else {
        return Err(UnitError::UnknownUnit {
            kind,
            input: s.to_string(),
            unit: unit.to_string(),
        });
    };
    scale(&d, num, den).ok_or_else(|| UnitError::TooLarge {
        kind,
        input: s.to_string(),
    })
}

/// Print `v` with the largest unit of `units` (largest first) that divides
/// it exactly.
fn print_exact(
    f: &mut fmt::Formatter<'_>,
    v: u64,
    units: &[(u64, &str)],
    base: &str,
) -> fmt::Result {
    if v != 0 {
        for &(div, name) in units {
            // `v / div * div == v` rather than `%`: same test, and it keeps
            // clippy's is_multiple_of (Rust 1.87) out of an MSRV-1.80 tree.
            if v / div * div == v {
                return write!(f, "{}{name}", v / div);
            }
        }
    }
    write!(f, "{v}{base}")
}

/// Parse an unsigned integer written in decimal or `0x` hex.
pub(crate) fn parse_int(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

// ---------------------------------------------------------------------------

/// A rate in bits per second, as tc's `rate`/`ceil` (tc hands the kernel
/// bytes per second: [`Rate::bytes_per_sec`] truncates the same way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u64);

/// tc's rate suffix table (`tc_util.c` `suffixes[]`), all as bits/s.
const RATE_UNITS: &[(&str, u128, u128)] = &[
    ("", 1, 1),
    ("bit", 1, 1),
    ("kibit", 1 << 10, 1),
    ("kbit", 1_000, 1),
    ("mibit", 1 << 20, 1),
    ("mbit", 1_000_000, 1),
    ("gibit", 1 << 30, 1),
    ("gbit", 1_000_000_000, 1),
    ("tibit", 1 << 40, 1),
    ("tbit", 1_000_000_000_000, 1),
    ("bps", 8, 1),
    ("kibps", 8 << 10, 1),
    ("kbps", 8_000, 1),
    ("mibps", 8 << 20, 1),
    ("mbps", 8_000_000, 1),
    ("gibps", 8 << 30, 1),
    ("gbps", 8_000_000_000, 1),
    ("tibps", 8 << 40, 1),
    ("tbps", 8_000_000_000_000, 1),
];

impl Rate {
    pub const fn from_bits_per_sec(bits: u64) -> Rate {
        Rate(bits)
    }

    pub const fn bits_per_sec(self) -> u64 {
        self.0
    }

    /// Bytes per second, truncated as tc's `get_rate64` does (`12bit` is
    /// 1 byte/s).
    pub const fn bytes_per_sec(self) -> u64 {
        self.0 / 8
    }

    /// Parse a tc rate. `N%` (decimals allowed, 0..=100) is a share of
    /// `link`, and an error when there is none.
    pub fn parse(s: &str, link: Option<Rate>) -> Result<Rate, UnitError> {
        let t = s.trim();
        if let Some(pct) = t.strip_suffix('%') {
            let (d, rest) = split_decimal(UnitKind::Rate, pct.trim())?;
            if !rest.is_empty() {
                return Err(UnitError::UnknownUnit {
                    kind: UnitKind::Rate,
                    input: t.to_string(),
                    unit: format!("{rest}%"),
                });
            }
            if d.mantissa > 100 * 10u128.pow(d.frac_digits) {
                return Err(UnitError::PercentOutOfRange {
                    input: t.to_string(),
                });
            }
            // link (< 2^64) x mantissa (<= 100 * 10^9 < 2^37) fits a u128.
            if d.frac_digits > MAX_PERCENT_FRAC_DIGITS {
                return Err(UnitError::TooPrecise {
                    kind: UnitKind::Rate,
                    input: t.to_string(),
                    max: MAX_PERCENT_FRAC_DIGITS,
                });
            }
            let Some(link) = link else {
                return Err(UnitError::PercentWithoutLink {
                    input: t.to_string(),
                });
            };
            // At most 100% of a u64, so it fits a u64 too.
            let bits = scale(&d, u128::from(link.0), 100).unwrap_or(link.0);
            return Ok(Rate(bits));
        }
        parse_units(UnitKind::Rate, t, RATE_UNITS).map(Rate)
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Rate, UnitError> {
        Rate::parse(s, None)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_exact(
            f,
            self.0,
            &[
                (1_000_000_000_000, "Tbit"),
                (1_000_000_000, "Gbit"),
                (1_000_000, "Mbit"),
                (1_000, "Kbit"),
            ],
            "bit",
        )
    }
}

// ---------------------------------------------------------------------------

/// A size in bytes (tc `get_size`: bursts, byte limits, RED thresholds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(u64);

/// tc's size suffixes (`tc_util.c` `get_size`): k/m/g are powers of 1024,
/// and the `*bit` forms are 1024-based bits (`1kbit` = 128 bytes).
const SIZE_UNITS: &[(&str, u128, u128)] = &[
    ("", 1, 1),
    ("b", 1, 1),
    ("k", 1 << 10, 1),
    ("kb", 1 << 10, 1),
    ("m", 1 << 20, 1),
    ("mb", 1 << 20, 1),
    ("g", 1 << 30, 1),
    ("gb", 1 << 30, 1),
    ("kbit", 1 << 10, 8),
    ("mbit", 1 << 20, 8),
    ("gbit", 1 << 30, 8),
];

impl Size {
    pub const fn from_bytes(bytes: u64) -> Size {
        Size(bytes)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Size, UnitError> {
        parse_units(UnitKind::Size, s, SIZE_UNITS).map(Size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_exact(f, self.0, &[(1 << 20, "Mb"), (1 << 10, "Kb")], "b")
    }
}

// ---------------------------------------------------------------------------

/// A duration in nanoseconds. A bare number is microseconds, as tc's
/// `get_time` reads it (`target 5000` is 5 ms); `ns` is accepted too, as
/// tc's `get_time64` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

const TIME_UNITS: &[(&str, u128, u128)] = &[
    ("", 1_000, 1),
    ("s", 1_000_000_000, 1),
    ("sec", 1_000_000_000, 1),
    ("secs", 1_000_000_000, 1),
    ("ms", 1_000_000, 1),
    ("msec", 1_000_000, 1),
    ("msecs", 1_000_000, 1),
    ("us", 1_000, 1),
    ("usec", 1_000, 1),
    ("usecs", 1_000, 1),
    ("ns", 1, 1),
    ("nsec", 1, 1),
    ("nsecs", 1, 1),
];

impl Time {
    pub const fn from_ns(ns: u64) -> Time {
        Time(ns)
    }

    pub const fn ns(self) -> u64 {
        self.0
    }

    /// Like `parse`, but a bare number is SECONDS: tc-sfq's `perturb 10`
    /// means ten seconds.
    pub fn parse_default_secs(s: &str) -> Result<Time, UnitError> {
        let t = s.trim();
        let (_, unit) = split_decimal(UnitKind::Time, t)?;
        if unit.is_empty() {
            parse_units(UnitKind::Time, t, &[("", 1_000_000_000, 1)]).map(Time)
        } else {
            t.parse()
        }
    }
}

impl FromStr for Time {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Time, UnitError> {
        parse_units(UnitKind::Time, s, TIME_UNITS).map(Time)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        print_exact(
            f,
            self.0,
            &[(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")],
            "ns",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> u64 {
        s.parse::<Rate>().unwrap().bits_per_sec()
    }
    fn size(s: &str) -> u64 {
        s.parse::<Size>().unwrap().bytes()
    }
    fn time(s: &str) -> u64 {
        s.parse::<Time>().unwrap().ns()
    }

    #[test]
    fn rates_as_tc_reads_them() {
        assert_eq!(rate("1000000"), 1_000_000);
        assert_eq!(rate("8bit"), 8);
        assert_eq!(rate("1kbit"), 1_000);
        assert_eq!(rate("1mbit"), 1_000_000);
        assert_eq!(rate("1Mbit"), 1_000_000);
        assert_eq!(rate("1gbit"), 1_000_000_000);
        assert_eq!(rate("1tbit"), 1_000_000_000_000);
        assert_eq!(rate("1kibit"), 1024);
        assert_eq!(rate("1Kibit"), 1024);
        assert_eq!(rate("1mibit"), 1 << 20);
        assert_eq!(rate("1gibit"), 1 << 30);
        assert_eq!(rate("1tibit"), 1 << 40);
        assert_eq!(rate("1bps"), 8);
        assert_eq!(rate("1kbps"), 8_000);
        assert_eq!(rate("1mbps"), 8_000_000);
        assert_eq!(rate("1MBps"), 8_000_000);
        assert_eq!(rate("1gbps"), 8_000_000_000);
        assert_eq!(rate("1tbps"), 8_000_000_000_000);
        assert_eq!(rate("1kibps"), 8 * 1024);
        assert_eq!(rate("1MiBps"), 8 << 20);
        assert_eq!(rate("1.5mbit"), 1_500_000);
        assert_eq!(rate(".5kbit"), 500);
        assert_eq!(rate("1.1kibit"), 1126);
        assert_eq!(rate("300 mbit"), 300_000_000);
        assert_eq!("12bit".parse::<Rate>().unwrap().bytes_per_sec(), 1);
    }

    #[test]
    fn rate_errors() {
        assert!(matches!(
            "mbit".parse::<Rate>(),
            Err(UnitError::NoNumber { .. })
        ));
        assert!(matches!(
            "-1mbit".parse::<Rate>(),
            Err(UnitError::Negative { .. })
        ));
        assert!(matches!(
            "1mb".parse::<Rate>(),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "30000000tbps".parse::<Rate>(),
            Err(UnitError::TooLarge { .. })
        ));
        assert!(matches!(
            "10%".parse::<Rate>(),
            Err(UnitError::PercentWithoutLink { .. })
        ));
        let link = Some(Rate::from_bits_per_sec(1_000_000_000));
        assert_eq!(
            Rate::parse("30%", link).unwrap().bits_per_sec(),
            300_000_000
        );
        assert_eq!(
            Rate::parse("12.5%", link).unwrap().bits_per_sec(),
            125_000_000
        );
        assert_eq!(
            Rate::parse("100%", link).unwrap().bits_per_sec(),
            1_000_000_000
        );
        assert!(matches!(
            Rate::parse("101%", link),
            Err(UnitError::PercentOutOfRange { .. })
        ));
        let max = Some(Rate::from_bits_per_sec(u64::MAX));
        assert_eq!(
            Rate::parse("99.999999999%", max).unwrap().bits_per_sec(),
            (u128::from(u64::MAX) * 99_999_999_999 / 100_000_000_000) as u64
        );
        assert!(matches!(
            Rate::parse("33.3333333333%", max),
            Err(UnitError::TooPrecise { max: 9, .. })
        ));
        let msg = "1mb".parse::<Rate>().unwrap_err().to_string();
        assert!(
            msg.contains("unknown unit \"mb\"") && msg.contains("expected"),
            "{msg}"
        );
    }

    #[test]
    fn sizes_as_tc_reads_them() {
        assert_eq!(size("1514"), 1514);
        assert_eq!(size("1514b"), 1514);
        assert_eq!(size("1k"), 1024);
        assert_eq!(size("1kb"), 1024);
        assert_eq!(size("1KB"), 1024);
        assert_eq!(size("1m"), 1 << 20);
        assert_eq!(size("1mb"), 1 << 20);
        assert_eq!(size("1g"), 1 << 30);
        assert_eq!(size("1gb"), 1 << 30);
        assert_eq!(size("1kbit"), 128);
        assert_eq!(size("1mbit"), 1 << 17);
        assert_eq!(size("1gbit"), 1 << 27);
        assert_eq!(size("1.5k"), 1536);
        assert!("1kib".parse::<Size>().is_err());
    }

    #[test]
    fn times_as_tc_reads_them() {
        assert_eq!(time("100"), 100_000);
        assert_eq!(time("5ms"), 5_000_000);
        assert_eq!(time("5msec"), 5_000_000);
        assert_eq!(time("1s"), 1_000_000_000);
        assert_eq!(time("2secs"), 2_000_000_000);
        assert_eq!(time("10us"), 10_000);
        assert_eq!(time("10usecs"), 10_000);
        assert_eq!(time("7ns"), 7);
        assert_eq!(time("1.5ms"), 1_500_000);
        assert_eq!(Time::parse_default_secs("10").unwrap().ns(), 10_000_000_000);
        assert_eq!(Time::parse_default_secs("500ms").unwrap().ns(), 500_000_000);
        assert!("5min".parse::<Time>().is_err());
    }

    #[test]
    fn printing() {
        let r = |b| Rate::from_bits_per_sec(b).to_string();
        assert_eq!(r(300_000_000), "300Mbit");
        assert_eq!(r(1_000_000_000), "1Gbit");
        assert_eq!(r(1_500_000), "1500Kbit");
        assert_eq!(r(1_234_567_000), "1234567Kbit");
        assert_eq!(r(12), "12bit");
        assert_eq!(r(0), "0bit");
        assert_eq!(Size::from_bytes(1600).to_string(), "1600b");
        assert_eq!(Size::from_bytes(32 << 20).to_string(), "32Mb");
        assert_eq!(Size::from_bytes(2048).to_string(), "2Kb");
        assert_eq!(Time::from_ns(5_000_000).to_string(), "5ms");
        assert_eq!(Time::from_ns(10_000_000_000).to_string(), "10s");
        assert_eq!(Time::from_ns(1500).to_string(), "1500ns");
    }
}
