//! The client side of the operator commands (`weir show`, `weir class
//! change`, `weir top`): build a request, ask the running `weir run` over
//! its socket, print the answer. Exit codes: 0 answered, 1 could not ask
//! (no weir running, no permission), 2 weir refused the request (the
//! message says what was wrong and what was expected).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use weir_api::{self as api, Request};

const TIMEOUT: Duration = Duration::from_secs(15);

/// Send `req` and print the answer.
pub fn ask(socket: &Path, req: &Request, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match api::request(socket, req, TIMEOUT) {
        Err(e) => {
            let _ = writeln!(err, "weir: {e}");
            1
        }
        Ok(r) if !r.ok => {
            let _ = writeln!(err, "weir: {}", r.error.as_deref().unwrap_or("refused"));
            2
        }
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

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn mbit(bits: u64) -> String {
    weir_config::units::fmt_mbit(bits, 2)
}

/// One screen of `weir top` from a stats object; `prev` gives the drops
/// of the last refresh.
pub fn top_screen(stats: &Value, prev: Option<&Value>) -> String {
    let mut s = String::new();
    let empty = Vec::new();
    let trees = stats["trees"].as_array().unwrap_or(&empty);
    for (ti, t) in trees.iter().enumerate() {
        let f = &t["frames"];
        let soj = &t["sojourn"];
        let delay = |key: &str| match soj[key].as_u64() {
            Some(ns) if ns >= 1_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
            Some(ns) => format!("{:.0}us", ns as f64 / 1e3),
            None => "-".to_string(),
        };
        s.push_str(&format!(
            "tree {} ({} {}, worker {}): received {} sent {} dropped {} queued {}, sojourn p50 ≤ {} p99 ≤ {}\n",
            t["name"].as_str().unwrap_or("?"),
            t["pair"].as_str().unwrap_or("?"),
            t["direction"].as_str().unwrap_or("?"),
            u(&t["worker"]),
            u(&f["received"]),
            u(&f["sent"]),
            u(&f["dropped_total"]),
            u(&f["queued"]),
            delay("p50_ns_at_most"),
            delay("p99_ns_at_most"),
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
        let classes = t["classes"].as_array().unwrap_or(&empty);
        for (ci, c) in classes.iter().enumerate() {
            let now = u(&c["rate_est"]);
            let ceil_bits = u(&c["ceil"]) * 8;
            let share = if ceil_bits > 0 {
                format!("{:.0}%", now as f64 * 100.0 / ceil_bits as f64)
            } else {
                "-".into()
            };
            let drops_now = u(&c["drops"]);
            let drops_before = prev
                .and_then(|p| p["trees"].get(ti))
                .and_then(|pt| pt["classes"].get(ci))
                .map_or(drops_now, |pc| u(&pc["drops"]));
            s.push_str(&format!(
                "  {:<8} {:<12} {:>4} {:>10} {:>10} {:>10} {:>6} {:>9} {:>9}b {:>6}\n",
                c["classid"].as_str().unwrap_or("?"),
                c["name"].as_str().unwrap_or("-"),
                u(&c["prio"]),
                mbit(u(&c["rate"]) * 8),
                mbit(ceil_bits),
                mbit(now),
                share,
                drops_now.saturating_sub(drops_before),
                u(&c["backlog"]),
                u(&c["qlen"]),
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
    let mut prev: Option<Value> = None;
    let mut shown = 0u64;
    loop {
        let stats = match api::request(socket, &Request::Stats, TIMEOUT) {
            Err(e) => {
                let _ = writeln!(err, "weir top: {e}");
                return 1;
            }
            Ok(r) if !r.ok => {
                let _ = writeln!(err, "weir top: {}", r.error.as_deref().unwrap_or("refused"));
                return 2;
            }
            Ok(r) => r.json.unwrap_or(Value::Null),
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

    #[test]
    fn top_screen_shows_rates_and_drop_rates() {
        let before = serde_json::json!({"trees": [{"name": "up", "pair": "lab", "direction": "upload", "worker": 0,
            "frames": {"received": 10, "sent": 8, "dropped_total": 2, "queued": 0},
            "classes": [{"classid": "1:10", "name": "high", "prio": 1, "rate": 3_750_000, "ceil": 7_500_000,
                          "rate_est": 30_000_000, "drops": 5, "backlog": 0, "qlen": 0}]}]});
        let mut now = before.clone();
        now["trees"][0]["classes"][0]["drops"] = serde_json::json!(12);
        let s = top_screen(&now, Some(&before));
        assert!(s.contains("1:10"), "{s}");
        assert!(s.contains("30.00"), "{s}");
        assert!(s.contains("50%"), "{s}");
        assert!(s.contains(" 7 "), "drops per refresh: {s}");
    }
}
