//! The client side of the operator commands (`weir show`, `weir class
//! change`, `weir top`): build a request, ask the running `weir run` over
//! its socket, print the answer. Exit codes: 0 answered, 1 could not ask
//! (no weir running, no permission), 2 weir refused the request (the
//! message says what was wrong and what was expected).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use weir_api::{self as api, Request, Response, Stats};

const TIMEOUT: Duration = Duration::from_secs(15);

/// The answer to `req`, or the exit code after saying (as `who`) why
/// there is none: 1 could not ask, 2 refused.
fn answer(who: &str, socket: &Path, req: &Request, err: &mut dyn Write) -> Result<Response, i32> {
    match api::request(socket, req, TIMEOUT) {
        Err(e) => {
            let _ = writeln!(err, "{who}: {e}");
            Err(1)
        }
        Ok(r) if !r.ok => {
            let _ = writeln!(err, "{who}: {}", r.error.as_deref().unwrap_or("refused"));
            Err(2)
        }
        Ok(r) => Ok(r),
    }
}

/// Send `req` and print the answer.
pub fn ask(socket: &Path, req: &Request, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match answer("weir", socket, req, err) {
        Err(code) => code,
        Ok(r) => {
            if let Some(t) = &r.text {
                let _ = out.write_all(t.as_bytes());
            }
            if let Some(j) = &r.json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(j).unwrap_or_default()
                );
            }
            0
        }
    }
}

/// `weir class change CLASSID [--tree T] key value …` as a request.
pub fn class_change_request(
    class: &str,
    tree: Option<String>,
    params: &[String],
) -> Result<Request, String> {
    let (mut rate, mut ceil, mut burst, mut cburst, mut prio, mut quantum) =
        (None, None, None, None, None, None);
    if params.is_empty() {
        return Err("nothing to change; expected `rate R`, `ceil C`, `burst B`, `cburst B`, `prio P` or `quantum Q` after the class id".into());
    }
    let mut it = params.iter();
    while let Some(key) = it.next() {
        let Some(value) = it.next() else {
            return Err(format!("`{key}` has no value; expected `{key} VALUE`"));
        };
        let slot = match key.as_str() {
            "rate" => &mut rate,
            "ceil" => &mut ceil,
            "burst" | "buffer" | "maxburst" => &mut burst,
            "cburst" | "cbuffer" | "cmaxburst" => &mut cburst,
            "quantum" => &mut quantum,
            "prio" => {
                prio = Some(
                    value
                        .parse::<u8>()
                        .map_err(|_| format!("bad prio \"{value}\"; expected 0..=7"))?,
                );
                continue;
            }
            other => {
                return Err(format!(
                "unknown parameter `{other}`; expected rate, ceil, burst, cburst, prio or quantum"
            ))
            }
        };
        if slot.replace(value.clone()).is_some() {
            return Err(format!("`{key}` given twice; expected each parameter once"));
        }
    }
    Ok(Request::ClassChange {
        tree,
        class: class.to_string(),
        rate,
        ceil,
        burst,
        cburst,
        prio,
        quantum,
    })
}

fn mbit(bits: u64) -> String {
    weir_config::units::fmt_mbit(bits, 2)
}

/// "262us", "2.1ms"; "-" when the histogram has no bound.
fn delay(ns: Option<u64>) -> String {
    match ns {
        Some(ns) if ns >= 1_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        Some(ns) => format!("{:.0}us", ns as f64 / 1e3),
        None => "-".to_string(),
    }
}

/// One screen of `weir top` from a stats object; `prev` gives the drops
/// of the last refresh.
pub fn top_screen(stats: &Stats, prev: Option<&Stats>) -> String {
    let mut s = String::new();
    for (ti, t) in stats.trees.iter().enumerate() {
        let f = &t.frames;
        s.push_str(&format!(
            "tree {} ({} {}, worker {}): received {} sent {} dropped {} queued {}, sojourn p50 ≤ {} p99 ≤ {}\n",
            t.name,
            t.pair,
            t.direction.name(),
            t.worker,
            f.received,
            f.sent,
            f.dropped_total,
            f.queued,
            delay(t.sojourn.p50_ns_at_most),
            delay(t.sojourn.p99_ns_at_most),
        ));
        s.push_str(&format!(
            "  {:<8} {:<12} {:>4} {:>10} {:>10} {:>10} {:>6} {:>9} {:>10} {:>6}\n",
            "class",
            "name",
            "prio",
            "rate",
            "ceil",
            "now Mbit",
            "%ceil",
            "drops/s",
            "backlog",
            "qlen"
        ));
        for (ci, c) in t.classes.iter().enumerate() {
            // A class of a tree the configuration in force does not know
            // has no rate, ceil or prio: shown as 0.
            let now = c.rate_est.unwrap_or(0);
            let ceil_bits = c.ceil.unwrap_or(0) * 8;
            let share = if ceil_bits > 0 {
                format!("{:.0}%", now as f64 * 100.0 / ceil_bits as f64)
            } else {
                "-".into()
            };
            let drops_before = prev
                .and_then(|p| p.trees.get(ti))
                .and_then(|pt| pt.classes.get(ci))
                .map_or(c.drops, |pc| pc.drops);
            s.push_str(&format!(
                "  {:<8} {:<12} {:>4} {:>10} {:>10} {:>10} {:>6} {:>9} {:>9}b {:>6}\n",
                c.classid.as_deref().unwrap_or("?"),
                c.name.as_deref().unwrap_or("-"),
                c.prio.unwrap_or(0),
                mbit(c.rate.unwrap_or(0) * 8),
                mbit(ceil_bits),
                mbit(now),
                share,
                c.drops.saturating_sub(drops_before),
                c.backlog,
                c.qlen,
            ));
        }
        s.push('\n');
    }
    s
}

/// `weir top`: refresh every `interval`, `count` times (or until killed).
pub fn top(
    socket: &Path,
    interval: Duration,
    count: Option<u64>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let clear = std::io::stdout().is_terminal();
    let mut prev: Option<Stats> = None;
    let mut shown = 0u64;
    loop {
        let stats = match answer("weir top", socket, &Request::Stats, err) {
            Err(code) => return code,
            Ok(r) => match serde_json::from_value::<Stats>(r.json.unwrap_or_default()) {
                Ok(stats) => stats,
                Err(e) => {
                    let _ = writeln!(
                        err,
                        "weir top: {} answered stats this weir can't read ({e}); expected the same weir version",
                        socket.display()
                    );
                    return 1;
                }
            },
        };
        let screen = top_screen(&stats, prev.as_ref());
        if clear {
            let _ = write!(out, "\x1b[H\x1b[2J");
        }
        let _ = write!(out, "{screen}");
        let _ = out.flush();
        prev = Some(stats);
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return 0;
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn class_change_words_as_tc_takes_them() {
        let r = class_change_request(
            "1:10",
            None,
            &strings(&["rate", "10mbit", "ceil", "20mbit", "prio", "2"]),
        )
        .expect("valid");
        assert_eq!(
            r,
            Request::ClassChange {
                tree: None,
                class: "1:10".into(),
                rate: Some("10mbit".into()),
                ceil: Some("20mbit".into()),
                burst: None,
                cburst: None,
                prio: Some(2),
                quantum: None,
            }
        );
        for (args, needle) in [
            (vec![], "nothing to change"),
            (vec!["rate"], "has no value"),
            (vec!["rat", "1mbit"], "unknown parameter `rat`"),
            (vec!["rate", "1mbit", "rate", "2mbit"], "given twice"),
            (vec!["prio", "x"], "bad prio"),
        ] {
            let e = class_change_request("1:10", None, &strings(&args)).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    /// The daemon's recorded `--json` lines, as `weir top` reads them.
    fn recorded() -> Vec<Stats> {
        let lines = include_str!("../../daemon/tests/data/stats-lines.json");
        lines
            .lines()
            .take(3)
            .map(|l| serde_json::from_str(l).expect("a stats line"))
            .collect()
    }

    #[test]
    fn top_screen_shows_rates_and_drop_rates() {
        let before = recorded().swap_remove(1);
        let mut now = before.clone();
        let c = &mut now.trees[0].classes[1];
        c.drops += 7;
        c.rate_est = Some(30_000_000);
        let s = top_screen(&now, Some(&before));
        let line = s.lines().find(|l| l.contains("1:10")).expect("class 1:10");
        assert!(line.contains("30.00"), "{s}");
        assert!(line.contains("50%"), "share of a 60 Mbit ceil: {s}");
        assert!(line.contains(" 7 "), "drops per refresh: {s}");
    }

    /// `weir top` for the daemon's recorded `--json` lines (their second
    /// line has rates, the first gives the drops before), kept from before
    /// the typed snapshot.
    #[test]
    fn top_screen_is_byte_identical_to_the_recorded_one() {
        let stats = recorded();
        let got = top_screen(&stats[1], Some(&stats[0]));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/top.txt");
        if std::env::var_os("WEIR_RECORD_GOLDEN").is_some() {
            std::fs::write(path, &got).expect("write golden");
        }
        let want = std::fs::read_to_string(path).expect("golden file");
        assert!(got == want, "top changed:\n{got}");
    }
}
