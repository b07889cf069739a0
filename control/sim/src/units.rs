//! The few unit parsers the traffic file needs.
//!
//! Rates follow tc(8) exactly (bare or `bit` = bits/s, `bps` = BYTES/s), so a
//! policy and the traffic that tests it read the same. Durations differ from
//! tc on purpose: a bare number is rejected instead of meaning µs, because a
//! traffic file's `duration = "10"` is far more likely to mean seconds.

use weir_config::units::Rate;

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
    let s = text.trim();
    let (num, unit) = split_number(s);
    if num.is_empty() {
        return Err(format!(
            "'{text}' is not a duration (expected e.g. \"10s\")"
        ));
    }
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "ns" | "nsec" => 1,
        "us" | "usec" | "µs" => 1_000,
        "ms" | "msec" => 1_000_000,
        "s" | "sec" | "secs" => 1_000_000_000,
        "min" => 60_000_000_000,
        "" => {
            return Err(format!(
                "'{text}': a duration needs a unit (ns, us, ms, s, min)"
            ))
        }
        _ => {
            return Err(format!(
                "'{text}': unknown time unit '{unit}' (ns, us, ms, s, min)"
            ))
        }
    };
    scale_decimal(num, mult).ok_or_else(|| format!("'{text}': duration out of range"))
}

/// Split "1.5mbit" into ("1.5", "mbit").
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(s.len(), |(i, _)| i);
    (&s[..end], &s[end..])
}

/// `num` (decimal digits with at most one '.') times `mult`, exactly, with
/// the fraction rounded to nearest. None on bad syntax or overflow.
fn scale_decimal(num: &str, mult: u64) -> Option<u64> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int_v: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut v = int_v.checked_mul(u128::from(mult))?;
    if !frac.is_empty() {
        // Up to 18 fractional digits keep the arithmetic in u128.
        let frac = &frac[..frac.len().min(18)];
        let f: u128 = frac.parse().ok()?;
        let den = 10u128.pow(frac.len() as u32);
        v = v.checked_add((f * u128::from(mult) + den / 2) / den)?;
    }
    u64::try_from(v).ok()
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
