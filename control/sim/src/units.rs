//! The few unit parsers the traffic file needs.
//!
//! Rates follow tc(8) exactly (bare or `bit` = bits/s, `bps` = BYTES/s), so a
//! policy and the traffic that tests it read the same. Durations differ from
//! tc on purpose: a bare number is rejected instead of meaning µs, because a
//! traffic file's `duration = "10"` is far more likely to mean seconds.

use weir_config::units::{self, DurationError, Rate};

/// Parse a tc-style rate ("10mbit", "1.5gbit", "125kbps", "1000") into
/// bits/s, with the config's own parser (one table of tc units). `%` is not
/// accepted: a traffic source has no link to be a share of.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    if text.trim().ends_with('%') {
        return Err(format!("'{text}': a traffic rate cannot be a percentage"));
    }
    let bits = Rate::parse(text, None)
        .map_err(|e| e.to_string())?
        .bits_per_sec();
    if bits == 0 {
        return Err(format!("'{text}': rate must be above zero"));
    }
    Ok(bits)
}

/// Parse a duration with an explicit unit ("10s", "20ms", "1.5s", "250us",
/// "100ns", "2min") into nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let units = "(ns, us, ms, s, min)";
    units::parse_duration(text, &units::TRAFFIC_DURATION).map_err(|e| match e {
        DurationError::NoNumber => format!("'{text}' is not a duration (expected e.g. \"10s\")"),
        DurationError::NoUnit => format!("'{text}': a duration needs a unit {units}"),
        DurationError::UnknownUnit(unit) => {
            format!("'{text}': unknown time unit '{unit}' {units}")
        }
        DurationError::BadNumber | DurationError::TooLong => {
            format!("'{text}': duration out of range")
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

    #[test]
    fn rate_formatting() {
        assert_eq!(fmt_rate(300_000_000), "300Mbit");
        assert_eq!(fmt_rate(64_000), "64Kbit");
        assert_eq!(fmt_rate(999), "999bit");
        assert_eq!(fmt_rate(10_000_000_000), "10Gbit");
    }
}
