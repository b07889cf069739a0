//! The few unit parsers the traffic file needs.
//!
//! Rates follow tc(8) exactly (bare or `bit` = bits/s, `bps` = BYTES/s), so a
//! policy and the traffic that tests it read the same. Durations differ from
//! tc on purpose: a bare number is rejected instead of meaning µs, because a
//! traffic file's `duration = "10"` is far more likely to mean seconds.

use weir_config::units::{self, Rate, UnitError};

/// A traffic rate that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("'{0}': a traffic rate cannot be a percentage")]
    Percentage(String),
    /// The config's own rate parser said no (its message as is).
    #[error("{0}")]
    Syntax(UnitError),
    #[error("'{0}': rate must be above zero")]
    Zero(String),
}

/// Parse a tc-style rate ("10mbit", "1.5gbit", "125kbps", "1000") into
/// bits/s, with the config's own parser (one table of tc units). `%` is not
/// accepted: a traffic source has no link to be a share of.
pub fn parse_rate(text: &str) -> Result<u64, RateError> {
    if text.trim().ends_with('%') {
        return Err(RateError::Percentage(text.to_string()));
    }
    let bits = Rate::parse(text, None)
        .map_err(RateError::Syntax)?
        .bits_per_sec();
    if bits == 0 {
        return Err(RateError::Zero(text.to_string()));
    }
    Ok(bits)
}

/// A duration that is not one; each variant keeps the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("'{0}' is not a duration (expected e.g. \"10s\")")]
    NotANumber(String),
    #[error("'{0}': a duration needs a unit (ns, us, ms, s, min)")]
    NoUnit(String),
    #[error("'{text}': unknown time unit '{unit}' (ns, us, ms, s, min)")]
    UnknownUnit { text: String, unit: String },
    #[error("'{0}': duration out of range")]
    OutOfRange(String),
}

/// Parse a duration with an explicit unit ("10s", "20ms", "1.5s", "250us",
/// "100ns", "2min") into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let text_owned = || text.to_string();
    units::parse_duration(text, &units::TRAFFIC_DURATION).map_err(|e| match e {
        units::DurationError::NoNumber => DurationError::NotANumber(text_owned()),
        units::DurationError::NoUnit => DurationError::NoUnit(text_owned()),
        units::DurationError::UnknownUnit(unit) => DurationError::UnknownUnit {
            text: text_owned(),
            unit,
        },
        units::DurationError::BadNumber | units::DurationError::TooLong => {
            DurationError::OutOfRange(text_owned())
        }
    })
}

/// tc-style rendering of a rate in bits/s ("300Mbit", "1500Mbit"), as the
/// config prints it.
pub fn fmt_rate(bits_per_sec: u64) -> String {
    Rate::from_bits_per_sec(bits_per_sec).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_tc_units() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("10Mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("1.5gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert_eq!(parse_rate("125kbps"), Ok(1_000_000));
        assert_eq!(parse_rate("1mibit"), Ok(1 << 20));
        assert_eq!(parse_rate("0.5kbit"), Ok(500));
        assert!(parse_rate("10mbt").is_err());
        assert!(parse_rate("mbit").is_err());
        assert!(parse_rate("0mbit").is_err());
        assert!(parse_rate("10%").is_err());
        assert!(parse_rate("1.2.3mbit").is_err());
        assert!(parse_rate("99999999999tbit").is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_duration("20ms"), Ok(20_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("250us"), Ok(250_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("2min"), Ok(120_000_000_000));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    /// The typed errors print what the plain strings used to, word for word
    /// (the traffic file's messages and `weir simulate --duration` show them).
    #[test]
    fn errors_name_the_text_and_what_was_expected() {
        let msg = |r: Result<u64, DurationError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(parse_duration("10")),
            "'10': a duration needs a unit (ns, us, ms, s, min)"
        );
        assert_eq!(
            msg(parse_duration("10 parsecs")),
            "'10 parsecs': unknown time unit 'parsecs' (ns, us, ms, s, min)"
        );
        assert_eq!(
            msg(parse_duration("s")),
            "'s' is not a duration (expected e.g. \"10s\")"
        );
        assert_eq!(
            msg(parse_duration("99999999999min")),
            "'99999999999min': duration out of range"
        );
        assert_eq!(
            parse_rate("10%").unwrap_err().to_string(),
            "'10%': a traffic rate cannot be a percentage"
        );
        assert_eq!(
            parse_rate("0mbit").unwrap_err().to_string(),
            "'0mbit': rate must be above zero"
        );
        let e = parse_rate("10mbt").unwrap_err();
        assert!(matches!(e, RateError::Syntax(_)), "{e:?}");
        assert!(e.to_string().starts_with("unknown unit \"mbt\""), "{e}");
    }

    #[test]
    fn rate_formatting() {
        assert_eq!(fmt_rate(300_000_000), "300Mbit");
        assert_eq!(fmt_rate(64_000), "64Kbit");
        assert_eq!(fmt_rate(999), "999bit");
        assert_eq!(fmt_rate(10_000_000_000), "10Gbit");
    }
}
