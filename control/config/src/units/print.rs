//! Printers of rates, sizes and times for what weir shows, one family.
//!
//! The config's own form is the types' `Display` ([`super::Rate`] `300Mbit`,
//! exact, parses back to the same value). The others here each have one
//! job, and differ on purpose:
//! - `sprint_*`: iproute2's `sprint_rate`/`sprint_size`/`sprint_time`, byte
//!   for byte, for the outputs that must read as `tc … show` does;
//! - `fmt_rate_decimal` / `fmt_rate_est`: measured rates, rounded to three
//!   decimals (`29.998Mbit`), for history and the stats text;
//! - `fmt_mbit` / `fmt_ms`: a number in a fixed unit for table columns
//!   whose header names the unit;
//! - `fmt_duration`: how long something lasted, as words (`2h 5min`);
//! - `columns`: rows of cells as aligned text columns, for the tables of
//!   `weir simulate` and `weir history`.

const DECIMAL_RATE_UNITS: [&str; 5] = ["bit", "Kbit", "Mbit", "Gbit", "Tbit"];

/// iproute2's `sprint_rate`: bits/s in decimal units, dividing while the
/// value is a round thousand or at least a million (so it truncates:
/// 29 998 123 bit/s is `29998Kbit`).
pub fn sprint_rate(bits: u64) -> String {
    let mut rate = bits;
    let mut i = 0;
    while i < DECIMAL_RATE_UNITS.len() - 1 {
        if rate < 1000 || (!rate.is_multiple_of(1000) && rate < 1_000_000) {
            break;
        }
        rate /= 1000;
        i += 1;
    }
    format!("{rate}{}", DECIMAL_RATE_UNITS[i])
}

/// iproute2's `sprint_size`: `Mb`/`Kb` only when the size is within a few
/// bytes of a whole number of them.
pub fn sprint_size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1024 * 1024
        && (1024.0 * 1024.0 * (b / (1024.0 * 1024.0)).round() - b).abs() < 1024.0
    {
        format!("{}Mb", (b / (1024.0 * 1024.0)).round())
    } else if bytes >= 1024 && (1024.0 * (b / 1024.0).round() - b).abs() < 16.0 {
        format!("{}Kb", (b / 1024.0).round())
    } else {
        format!("{bytes}b")
    }
}

/// iproute2's `sprint_time` (fq_codel's target and interval): one decimal,
/// dropped when it is 0.
pub fn sprint_time(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us >= 1_000_000.0 {
        format!("{:.1}s", us / 1_000_000.0).replace(".0s", "s")
    } else if us >= 1000.0 {
        format!("{:.1}ms", us / 1000.0).replace(".0ms", "ms")
    } else {
        format!("{us:.0}us")
    }
}

/// A measured rate in decimal units with up to three decimals, trailing
/// zeros dropped: `29.998Mbit`, `1.5Kbit`, `1Gbit`.
pub fn fmt_rate_decimal(bits: f64) -> String {
    let mut v = bits;
    let mut i = 0;
    while v.abs() >= 1000.0 && i < DECIMAL_RATE_UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", DECIMAL_RATE_UNITS[i])
}

/// The stats text's rate estimate: like [`fmt_rate_decimal`], but Gbit only
/// for a whole number of Mbit (`1234.568Mbit` rather than `1.235Gbit`), so
/// a changing rate near a gigabit keeps its unit and three decimals.
pub fn fmt_rate_est(bits: u64) -> String {
    match bits {
        b if b >= 1_000_000_000 && b % 1_000_000 == 0 => format!("{}Gbit", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{}Mbit", (b as f64 / 1e6 * 1000.0).round() / 1000.0),
        b if b >= 1_000 => format!("{}Kbit", (b as f64 / 1e3 * 1000.0).round() / 1000.0),
        b => format!("{b}bit"),
    }
}

/// bits/s as Mbit/s with `places` decimals, for a column headed Mbit/s.
pub fn fmt_mbit(bits: u64, places: usize) -> String {
    format!("{:.places$}", bits as f64 / 1e6)
}

/// ns as ms with `places` decimals, for a column headed ms.
pub fn fmt_ms(ns: u64, places: usize) -> String {
    format!("{:.places$}", ns as f64 / 1e6)
}

/// How long something lasted, in ms, as `2h 5min`, `3min 20s`, `45s`,
/// `1d 2h`: the two largest units (negative is 0).
pub fn fmt_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) if ms < 1000 => format!("{}ms", ms.max(0)),
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}min"),
        (0, 0, _) => format!("{m}min {sec}s"),
        (0, _, _) if m == 0 => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}min"),
        _ if h == 0 => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// Rows of cells as columns two spaces apart, each as wide as its widest
/// cell (in characters), left-aligned before column `right_from` and
/// right-aligned from it on (`usize::MAX`: all left); trailing spaces
/// trimmed, a newline after each row.
pub fn columns(rows: &[Vec<String>], right_from: usize) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if c >= right_from {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_print_as_tc_prints_them() {
        // Values read off `tc class show` on this project's kernel.
        for (bits, shown) in [
            (100_000_000, "100Mbit"),
            (1_600_000_000, "1600Mbit"),
            (3_000_000_000, "3Gbit"),
            (1_200_000_000, "1200Mbit"),
            (29_998_123, "29998Kbit"),
            (0, "0bit"),
            (999, "999bit"),
            (1_500, "1500bit"),
        ] {
            assert_eq!(sprint_rate(bits), shown, "{bits}");
        }
    }

    #[test]
    fn sizes_and_times_print_as_tc_prints_them() {
        for (bytes, shown) in [
            (1600, "1600b"),
            (15000, "15000b"),
            (15360, "15Kb"),
            (1500, "1500b"),
            (33_554_432, "32Mb"),
        ] {
            assert_eq!(sprint_size(bytes), shown, "{bytes}");
        }
        assert_eq!(sprint_time(5_000_000), "5ms");
        assert_eq!(sprint_time(100_000_000), "100ms");
        assert_eq!(sprint_time(500_000), "500us");
        assert_eq!(sprint_time(2_500_000_000), "2.5s");
    }

    #[test]
    fn measured_rates_have_three_decimals() {
        assert_eq!(fmt_rate_decimal(0.0), "0bit");
        assert_eq!(fmt_rate_decimal(999.0), "999bit");
        assert_eq!(fmt_rate_decimal(1500.0), "1.5Kbit");
        assert_eq!(fmt_rate_decimal(29_998_234.5), "29.998Mbit");
        assert_eq!(fmt_rate_decimal(12_300_000.0), "12.3Mbit");
        assert_eq!(fmt_rate_decimal(1e9), "1Gbit");
        assert_eq!(fmt_rate_decimal(2.5e15), "2500Tbit");
        assert_eq!(fmt_rate_est(29_998_234), "29.998Mbit");
        assert_eq!(fmt_rate_est(1_234_567_890), "1234.568Mbit");
        assert_eq!(fmt_rate_est(2_000_000_000), "2Gbit");
        assert_eq!(fmt_rate_est(1500), "1.5Kbit");
        assert_eq!(fmt_rate_est(999), "999bit");
    }

    #[test]
    fn columns_have_a_fixed_unit() {
        assert_eq!(fmt_mbit(29_998_234, 2), "30.00");
        assert_eq!(fmt_mbit(29_998_234, 3), "29.998");
        assert_eq!(fmt_ms(1_234_567, 3), "1.235");
    }

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(fmt_duration(500), "500ms");
        assert_eq!(fmt_duration(45_000), "45s");
        assert_eq!(fmt_duration(300_000), "5min");
        assert_eq!(fmt_duration(200_000), "3min 20s");
        assert_eq!(fmt_duration(7_500_000), "2h 5min");
        assert_eq!(fmt_duration(3_600_000), "1h");
        assert_eq!(fmt_duration(93_600_000), "1d 2h");
        assert_eq!(fmt_duration(86_400_000), "1d");
        assert_eq!(fmt_duration(-5), "0ms");
    }
}
