//! Durations as people write them outside tc: a decimal number and a unit
//! that is required (`30s`, `1.5min`, `250ms`, `6h`), because a bare number
//! is microseconds to tc and seconds to most people. tc's own `get_time`
//! (a bare number is µs, tc's truncation) is [`super::Time`].
//!
//! One parser; each place that reads durations passes its [`DurationUnits`]
//! (the unit names it accepts, in its own resolution, and its limit) and
//! words the typed [`DurationError`] in its own message. The arithmetic is
//! exact (no `f64`): the number times the unit, rounded to the nearest
//! whole unit of the resolution.

/// The units a duration may be written in and where it stops.
#[derive(Clone, Copy, Debug)]
pub struct DurationUnits {
    /// Names (compared case-insensitively) and how many resolution units
    /// one of them is.
    pub units: &'static [(&'static [&'static str], u64)],
    /// The largest value accepted, in the resolution.
    pub max: u64,
    /// When both the number and the unit are wrong (`1.2.3`, `.x`), report
    /// the unit ([`DurationError::NoUnit`], [`DurationError::UnknownUnit`])
    /// rather than the number: traffic files always have.
    pub unit_first: bool,
}

const SEC_NS: u64 = 1_000_000_000;

/// `[[sla]]` `for` and `[[policy]]` `every`: ms to h, in ns, at most a
/// week (more than any rule means; it keeps ns in a u64).
pub const RULE_DURATION: DurationUnits = DurationUnits {
    units: &[
        (&["ms", "msec", "msecs"], 1_000_000),
        (&["s", "sec", "secs", "second", "seconds"], SEC_NS),
        (&["m", "min", "mins", "minute", "minutes"], 60 * SEC_NS),
        (&["h", "hour", "hours"], 3600 * SEC_NS),
    ],
    max: 7 * 86400 * SEC_NS,
    unit_first: false,
};

/// `[history]` spans (`retention = "30d"`): s to weeks, in ms, at most a
/// century (more than anyone keeps; it keeps ms in an i64).
pub const HISTORY_SPAN: DurationUnits = DurationUnits {
    units: &[
        (&["s", "sec", "secs", "second", "seconds"], 1000),
        (&["m", "min", "mins", "minute", "minutes"], 60_000),
        (&["h", "hour", "hours"], 3_600_000),
        (&["d", "day", "days"], 86_400_000),
        (&["w", "week", "weeks"], 7 * 86_400_000),
    ],
    max: 100 * 365 * 86_400_000,
    unit_first: false,
};

/// Traffic files (`duration = "10s"`, `rtt = "20ms"`): ns to min, in ns,
/// up to what a u64 holds.
pub const TRAFFIC_DURATION: DurationUnits = DurationUnits {
    units: &[
        (&["ns", "nsec"], 1),
        (&["us", "usec", "µs"], 1_000),
        (&["ms", "msec"], 1_000_000),
        (&["s", "sec", "secs"], SEC_NS),
        (&["min"], 60 * SEC_NS),
    ],
    max: u64::MAX,
    unit_first: true,
};

/// Why a duration did not parse; each caller words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing numeric before the unit (`h`, ``).
    #[error("no number")]
    NoNumber,
    /// Digits and dots that are not one decimal (`1.2.3h`, `.`).
    #[error("not one decimal number")]
    BadNumber,
    #[error("no unit")]
    NoUnit,
    /// The unit as written, trimmed and in ASCII lower case.
    #[error("unknown unit \"{0}\"")]
    UnknownUnit(String),
    /// Above the table's `max` (or a u64).
    #[error("too long")]
    TooLong,
}

/// Fraction digits beyond this do not change a result in ns of anything
/// up to a u64 by more than rounding; they are ignored.
const MAX_FRAC_DIGITS: usize = 18;

/// Parse `s` (trimmed; spaces allowed between number and unit) with `units`
/// into a count of the table's resolution.
pub fn parse_duration(s: &str, units: &DurationUnits) -> Result<u64, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    if num.is_empty() {
        return Err(DurationError::NoNumber);
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let number = if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        Err(DurationError::BadNumber)
    } else {
        Ok(())
    };
    let per = if unit.is_empty() {
        Err(DurationError::NoUnit)
    } else {
        units
            .units
            .iter()
            .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(unit)))
            .map(|&(_, per)| per)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_ascii_lowercase()))
    };
    let per = if units.unit_first {
        let per = per?;
        number?;
        per
    } else {
        number?;
        per?
    };
    let per = u128::from(per);
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| DurationError::TooLong)?
    };
    let mut v = int.checked_mul(per).ok_or(DurationError::TooLong)?;
    let frac = &frac[..frac.len().min(MAX_FRAC_DIGITS)];
    if !frac.is_empty() {
        // Round half up, like `f64::round` on these non-negative values.
        let f: u128 = frac.parse().map_err(|_| DurationError::BadNumber)?;
        let den = 10u128.pow(frac.len() as u32);
        v = v
            .checked_add((f * per + den / 2) / den)
            .ok_or(DurationError::TooLong)?;
    }
    match u64::try_from(v) {
        Ok(v) if v <= units.max => Ok(v),
        _ => Err(DurationError::TooLong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_durations() {
        let d = |s| parse_duration(s, &RULE_DURATION);
        assert_eq!(d("30s"), Ok(30_000_000_000));
        assert_eq!(d("1.5min"), Ok(90_000_000_000));
        assert_eq!(d("250ms"), Ok(250_000_000));
        assert_eq!(d(" 2 H "), Ok(7_200_000_000_000));
        assert_eq!(d(".5s"), Ok(500_000_000));
        assert_eq!(d("7d"), Err(DurationError::UnknownUnit("d".into())));
        assert_eq!(d("30"), Err(DurationError::NoUnit));
        assert_eq!(d("s"), Err(DurationError::NoNumber));
        assert_eq!(d("."), Err(DurationError::BadNumber));
        assert_eq!(
            d("5 Parsecs"),
            Err(DurationError::UnknownUnit("parsecs".into()))
        );
        assert_eq!(d("1.2.3s"), Err(DurationError::BadNumber));
        assert_eq!(d("168h"), Ok(7 * 86400 * SEC_NS));
        assert_eq!(d("168.001h"), Err(DurationError::TooLong));
        assert_eq!(
            d("99999999999999999999999999999999999999999h"),
            Err(DurationError::TooLong)
        );
    }

    #[test]
    fn rounding_is_to_the_nearest_unit_of_the_resolution() {
        let h = |s| parse_duration(s, &HISTORY_SPAN);
        assert_eq!(h("0.0004s"), Ok(0));
        assert_eq!(h("0.0005s"), Ok(1));
        assert_eq!(h("2 weeks"), Ok(14 * 86_400_000));
        assert_eq!(h("200000w"), Err(DurationError::TooLong));
        let t = |s| parse_duration(s, &TRAFFIC_DURATION);
        assert_eq!(t("1.5ns"), Ok(2));
        assert_eq!(t("250us"), Ok(250_000));
        assert_eq!(t("0.1234567890123456789s"), Ok(123_456_789));
        assert_eq!(t("20000000000min"), Err(DurationError::TooLong));
        // Which of two faults is reported is the table's choice.
        assert_eq!(t("1.2.3"), Err(DurationError::NoUnit));
        assert_eq!(t("1.2.3x"), Err(DurationError::UnknownUnit("x".into())));
        assert_eq!(t("1.2.3s"), Err(DurationError::BadNumber));
        assert_eq!(h("1.2.3"), Err(DurationError::BadNumber));
        assert_eq!(h("1.2.3x"), Err(DurationError::BadNumber));
    }
}
