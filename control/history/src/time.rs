//! Unix milliseconds ⇄ RFC 3339 text, in UTC, with the civil-date
//! arithmetic of Howard Hinnant's `days_from_civil` (proleptic Gregorian,
//! no leap seconds, as Unix time has none). Small enough not to need a
//! date crate.

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2025-03-01T12:00:05Z`, or with milliseconds when there are some
/// (`…:05.250Z`).
pub fn rfc3339(unix_ms: i64) -> String {
    let (days, ms) = (
        unix_ms.div_euclid(86_400_000),
        unix_ms.rem_euclid(86_400_000),
    );
    let (y, m, d) = civil_from_days(days);
    let s = ms / 1000;
    let (hh, mm, ss, frac) = (s / 3600, s / 60 % 60, s % 60, ms % 1000);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac:03}Z")
    }
}

/// `2025-03-01 12:00:05` (UTC), for the text output.
pub fn short(unix_ms: i64) -> String {
    let t = rfc3339(unix_ms - unix_ms.rem_euclid(1000));
    t.trim_end_matches('Z').replacen('T', " ", 1)
}

/// A time `weir history --since/--until` can't read: what was wrong, in
/// the text given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{why} in \"{input}\"; expected RFC 3339 like 2025-03-01T12:00:00Z or 2025-03-01 13:00:00+01:00")]
pub struct TimeError {
    /// The text, trimmed.
    pub input: String,
    /// What is wrong with it: `bad month "13"`, `no time zone (Z or ±HH:MM)`.
    pub why: String,
}

fn num(s: &str, what: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what} \"{s}\""));
    }
    s.parse().map_err(|_| format!("bad {what} \"{s}\""))
}

/// Parse RFC 3339 (`2025-03-01T12:00:00Z`, `…T13:00:00+01:00`, a space
/// for the `T`, fractions of a second) into unix ms. A date alone is its
/// midnight UTC.
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    let t = s.trim();
    let bad = |why: String| TimeError {
        input: t.to_string(),
        why,
    };
    let (date, rest) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut dp = date.splitn(3, '-');
    let (Some(y), Some(mo), Some(d)) = (dp.next(), dp.next(), dp.next()) else {
        return Err(bad("no YYYY-MM-DD date".into()));
    };
    if y.len() != 4 {
        return Err(bad(format!("bad year \"{y}\"")));
    }
    let y = i64::from(num(y, "year").map_err(bad)?);
    let mo = num(mo, "month").map_err(bad)?;
    let d = num(d, "day").map_err(bad)?;
    if !(1..=12).contains(&mo) {
        return Err(bad(format!("month {mo} is not 1..=12")));
    }
    let month_days =
        days_from_civil(y + i64::from(mo == 12), mo % 12 + 1, 1) - days_from_civil(y, mo, 1);
    if d < 1 || i64::from(d) > month_days {
        return Err(bad(format!("day {d} is not in that month")));
    }
    let days = days_from_civil(y, mo, d);
    let Some(rest) = rest else {
        return Ok(days * 86_400_000);
    };
    // Time, then Z or ±HH:MM.
    let (clock, offset_min) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0i64)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (c, off) = (&rest[..i], &rest[i..]);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let Some((oh, om)) = off[1..].split_once(':') else {
            return Err(bad(format!("bad offset \"{off}\"")));
        };
        let (oh, om) = (
            num(oh, "offset").map_err(bad)?,
            num(om, "offset").map_err(bad)?,
        );
        if oh > 23 || om > 59 {
            return Err(bad(format!("bad offset \"{off}\"")));
        }
        (c, sign * i64::from(oh * 60 + om))
    } else {
        return Err(bad("no time zone (Z or ±HH:MM)".into()));
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    let mut hp = hms.splitn(3, ':');
    let (Some(h), Some(mi), Some(sec)) = (hp.next(), hp.next(), hp.next()) else {
        return Err(bad("no HH:MM:SS time".into()));
    };
    let (h, mi, sec) = (
        num(h, "hour").map_err(bad)?,
        num(mi, "minute").map_err(bad)?,
        num(sec, "second").map_err(bad)?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad(format!("time {h:02}:{mi:02}:{sec:02} out of range")));
    }
    let ms_frac = match frac {
        None => 0,
        Some(f) => {
            num(f, "fraction").map_err(bad)?;
            let mut digits: String = f.chars().take(3).collect();
            while digits.len() < 3 {
                digits.push('0');
            }
            i64::from(num(&digits, "fraction").map_err(bad)?)
        }
    };
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec.min(59)) - offset_min * 60;
    Ok(secs * 1000 + ms_frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // date -u -d @1700000000 → 2023-11-14T22:13:20Z
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_700_000_000_250), "2023-11-14T22:13:20.250Z");
        // 2024 is a leap year: 2024-02-29T00:00:00Z = 1709164800
        assert_eq!(rfc3339(1_709_164_800_000), "2024-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1000), "1969-12-31T23:59:59Z");
        assert_eq!(short(1_700_000_000_999), "2023-11-14 22:13:20");
    }

    #[test]
    fn parses_what_it_prints_and_offsets() {
        for ms in [0, 1_700_000_000_000, 1_709_164_800_000, 1_700_000_000_250] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Ok(ms));
        }
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14 17:13:20-05:00"),
            Ok(1_700_000_000_000)
        );
        assert_eq!(parse_rfc3339("2024-02-29"), Ok(1_709_164_800_000));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z"),
            Ok(1_700_000_000_500)
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        assert_eq!(
            parse_rfc3339(" 2023-13-01 ").map_err(|e| e.to_string()),
            Err("month 13 is not 1..=12 in \"2023-13-01\"; expected RFC 3339 like 2025-03-01T12:00:00Z or 2025-03-01 13:00:00+01:00".to_string())
        );
        for bad in [
            "yesterday",
            "2023-13-01",
            "2023-02-29",
            "2023-11-14T25:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13Z",
            "23-11-14",
            "2023-11-14T22:13:20+1",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
