//! Checked conversions of single values, each reporting at the value.

use super::diag::Ctx;
use super::raw::{sp, StrOrInt, S};
use super::units::{Rate, Size, Time, UnitError};

fn unit_value<T>(
    cx: &mut Ctx,
    v: &S<StrOrInt>,
    what: &str,
    from_int: impl FnOnce(u64) -> Option<T>,
    from_str: impl FnOnce(&str) -> Result<T, UnitError>,
) -> Option<T> {
    match v.get_ref() {
        StrOrInt::Int(i) => {
            let r = u64::try_from(*i).ok().and_then(from_int);
            if r.is_none() {
                cx.error(
                    &sp(v),
                    format!("`{what}` = {i} is out of range; expected a non-negative number"),
                );
            }
            r
        }
        StrOrInt::Str(s) => match from_str(s) {
            Ok(t) => Some(t),
            Err(e) => {
                cx.error(&sp(v), format!("`{what}`: {e}"));
                None
            }
        },
    }
}

/// A rate; a bare integer is bits/s. `N%` is of `link`.
pub(crate) fn rate(cx: &mut Ctx, v: &S<StrOrInt>, what: &str, link: Option<Rate>) -> Option<Rate> {
    unit_value(
        cx,
        v,
        what,
        |b| Some(Rate::from_bits_per_sec(b)),
        |s| Rate::parse(s, link),
    )
}

/// A rate used for shaping: at least 1 byte/s, as tc (which sends bytes/s
/// and refuses a zero rate).
pub(crate) fn shaping_rate(
    cx: &mut Ctx,
    v: &S<StrOrInt>,
    what: &str,
    link: Option<Rate>,
) -> Option<Rate> {
    let r = rate(cx, v, what, link)?;
    if r.bytes_per_sec() == 0 {
        cx.error(
            &sp(v),
            format!("`{what}` = {r} is below 1 byte/s; expected at least 8bit"),
        );
        return None;
    }
    Some(r)
}

/// A size; a bare integer is bytes.
pub(crate) fn size(cx: &mut Ctx, v: &S<StrOrInt>, what: &str) -> Option<Size> {
    unit_value(cx, v, what, |b| Some(Size::from_bytes(b)), |s| s.parse())
}

/// A size that must fit `lo..=hi` bytes (and so a u32 when `hi` does).
pub(crate) fn size_in(cx: &mut Ctx, v: &S<StrOrInt>, what: &str, lo: u64, hi: u64) -> Option<u64> {
    let s = size(cx, v, what)?.bytes();
    if s < lo || s > hi {
        cx.error(
            &sp(v),
            format!(
                "`{what}` = {} is out of range; expected {} ..= {}",
                Size::from_bytes(s),
                Size::from_bytes(lo),
                Size::from_bytes(hi)
            ),
        );
        return None;
    }
    Some(s)
}

/// A time; a bare integer is microseconds (tc's `get_time`).
pub(crate) fn time(cx: &mut Ctx, v: &S<StrOrInt>, what: &str) -> Option<Time> {
    unit_value(
        cx,
        v,
        what,
        |us| us.checked_mul(1000).map(Time::from_ns),
        |s| s.parse(),
    )
}

/// A time where a bare number is seconds (tc-sfq `perturb`).
pub(crate) fn time_secs(cx: &mut Ctx, v: &S<StrOrInt>, what: &str) -> Option<Time> {
    unit_value(
        cx,
        v,
        what,
        |s| s.checked_mul(1_000_000_000).map(Time::from_ns),
        Time::parse_default_secs,
    )
}

/// An integer in `lo..=hi`.
pub(crate) fn int_in(cx: &mut Ctx, v: &S<i64>, what: &str, lo: i64, hi: i64) -> Option<i64> {
    let i = *v.get_ref();
    if i < lo || i > hi {
        cx.error(
            &sp(v),
            format!("`{what}` = {i} is out of range; expected {lo} ..= {hi}"),
        );
        return None;
    }
    Some(i)
}

/// A count (packets, flows…) written as an integer or a numeric string, in
/// `lo..=hi`.
pub(crate) fn count_in(cx: &mut Ctx, v: &S<StrOrInt>, what: &str, lo: u64, hi: u64) -> Option<u64> {
    let n = match v.get_ref() {
        StrOrInt::Int(i) => u64::try_from(*i).ok(),
        StrOrInt::Str(s) => super::units::parse_int(s),
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            let shown = match v.get_ref() {
                StrOrInt::Int(i) => i.to_string(),
                StrOrInt::Str(s) => format!("\"{s}\""),
            };
            cx.error(
                &sp(v),
                format!("`{what}` = {shown} is out of range; expected an integer {lo} ..= {hi}"),
            );
            None
        }
    }
}
