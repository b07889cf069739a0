//! Policy schedules: weekday sets (`mon-fri`), clock ranges
//! (`08:00-18:00`, crossing midnight) and the week coverage that finds two
//! windows overlapping.

use super::inner;
use crate::diag::Ctx;
use crate::raw::{sp, S};
use crate::units::Rate;

/// Days of the week, Monday first, as the engine's local time gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 for Monday … 6 for Sunday.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Weekday {
        Weekday::ALL[i % 7]
    }

    pub fn previous(self) -> Weekday {
        Weekday::from_index(self.index() + 6)
    }

    pub fn name(self) -> &'static str {
        DAY_NAMES[self.index()].0
    }
}

pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// One active-hours window of a policy: on `days`, from `start` (minute
/// of the day, inclusive) to `end` (exclusive). `end <= start` crosses
/// midnight: the window belongs to the day it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Bit `d` set: the window starts on weekday `d` (Monday = 0).
    pub days: u8,
    pub start: u16,
    pub end: u16,
    pub rate: Option<Rate>,
    pub ceil: Option<Rate>,
    /// `mon-fri 08:00-18:00`, for messages.
    pub text: String,
}

impl Window {
    fn starts_on(&self, d: Weekday) -> bool {
        self.days & (1 << d.index()) != 0
    }

    /// Whether local time `(day, minute)` is inside the window.
    pub fn contains(&self, day: Weekday, minute: u16) -> bool {
        if self.start < self.end {
            self.starts_on(day) && (self.start..self.end).contains(&minute)
        } else {
            (self.starts_on(day) && minute >= self.start)
                || (self.starts_on(day.previous()) && minute < self.end)
        }
    }
}

fn day_index(s: &str) -> Option<usize> {
    let s = s.to_ascii_lowercase();
    DAY_NAMES.iter().position(|(a, b)| *a == s || *b == s)
}

/// `mon-fri`, `sat,sun`, `mon,wed-fri`, `fri-mon` (wraps), `*`/`daily`.
pub(super) fn days(cx: &mut Ctx, src: &str, v: &S<String>) -> Option<u8> {
    let s = v.get_ref().as_str();
    let t = s.trim().to_ascii_lowercase();
    if matches!(t.as_str(), "*" | "daily" | "all" | "every day") {
        return Some(0x7f);
    }
    let mut mask = 0u8;
    let mut at = 0;
    for part in s.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let mut one = |x: &str, off: usize| -> Option<usize> {
            let r = day_index(x.trim());
            if r.is_none() {
                let lead = x.len() - x.trim_start().len();
                cx.error(
                    &inner(src, v, off + lead, x.trim().len()),
                    format!("unknown day \"{}\"; expected mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri, lists like sat,sun, or \"daily\"", x.trim()),
                );
            }
            r
        };
        let a = one(lo, at)?;
        let b = one(hi, at + lo.len() + usize::from(part.len() != lo.len()))?;
        let mut d = a;
        loop {
            mask |= 1 << d;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
        at += part.len() + 1;
    }
    Some(mask)
}

fn clock(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

pub(super) fn fmt_clock(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `08:00-18:00` (end exclusive; `22:00-06:00` crosses midnight; `24:00`
/// ends a day).
pub(super) fn hours(cx: &mut Ctx, src: &str, v: &S<String>) -> Option<(u16, u16)> {
    let s = v.get_ref().as_str();
    let r = s
        .split_once('-')
        .and_then(|(a, b)| Some((clock(a)?, clock(b)?)));
    match r {
        Some((a, b)) if a < MINUTES_PER_DAY && a != b => Some((a, b % MINUTES_PER_DAY)),
        Some((a, b)) if a == b => {
            cx.error(
                &sp(v),
                format!("hours \"{s}\" start and end at the same time; expected a window like \"08:00-18:00\" (\"00:00-24:00\" for the whole day)"),
            );
            None
        }
        _ => {
            cx.error(
                &inner(src, v, 0, s.len()),
                format!("bad hours \"{s}\"; expected HH:MM-HH:MM in 24-hour local time, like \"08:00-18:00\" (end excluded; 24:00 ends the day)"),
            );
            None
        }
    }
}

pub(super) const WEEK_MINUTES: usize = 7 * MINUTES_PER_DAY as usize;

/// The minutes of the week a window covers, as a bitmap.
pub(super) fn coverage(w: &Window) -> Vec<u64> {
    let mut bits = vec![0u64; WEEK_MINUTES.div_ceil(64)];
    for d in Weekday::ALL {
        if !w.starts_on(d) {
            continue;
        }
        let len = if w.start < w.end {
            usize::from(w.end - w.start)
        } else {
            usize::from(MINUTES_PER_DAY - w.start + w.end)
        };
        let base = d.index() * usize::from(MINUTES_PER_DAY) + usize::from(w.start);
        for k in 0..len {
            let m = (base + k) % WEEK_MINUTES;
            bits[m / 64] |= 1 << (m % 64);
        }
    }
    bits
}

pub(super) fn first_common(a: &[u64], b: &[u64]) -> Option<usize> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| *x & *y != 0)
        .map(|(i, (x, y))| i * 64 + (x & y).trailing_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cross_midnight_on_their_start_day() {
        let w = Window {
            days: 1 << Weekday::Fri.index(),
            start: 22 * 60,
            end: 6 * 60,
            rate: None,
            ceil: None,
            text: String::new(),
        };
        assert!(w.contains(Weekday::Fri, 22 * 60));
        assert!(w.contains(Weekday::Sat, 5 * 60 + 59));
        assert!(!w.contains(Weekday::Sat, 6 * 60));
        assert!(!w.contains(Weekday::Fri, 5 * 60));
        assert!(!w.contains(Weekday::Thu, 23 * 60));
    }
}
