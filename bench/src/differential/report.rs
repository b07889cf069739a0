//! The differential report as Markdown (`--md`), the table
//! docs/performance.md quotes.

use super::*;

/// The report as markdown: a table of trees, then one of classes.
pub fn markdown(r: &DiffReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Differential test, weir against kernel HTB and `weir simulate` ({}; {:.0} s trials, {} per path taking turns, median; tolerance {:.1} point of the root's rate; {:.0} s in all): **{} of {} trees pass**.\n",
        r.weir,
        r.trial_s,
        r.repeat,
        r.tolerance_pts,
        r.took_s,
        r.passed,
        r.trees.len()
    );
    if let Some(t) = r.trees.iter().find(|t| t.proto == Proto::Tcp) {
        let _ = writeln!(
            md,
            "TCP trees ({}): one bulk iperf3 flow ({}) per active class instead of UDP; rates from the receiver's sockets over the same {:.0} s window, after {:.0} s of warm-up, in Mbit/s of frame bytes; tolerance {:.1} point against the kernel; no simulator (its TCP is a model, not a stack).\n",
            r.trees
                .iter()
                .filter(|t| t.proto == Proto::Tcp)
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            tcp::CONGESTION_CONTROL,
            r.tcp_window_s,
            TCP_WARMUP.as_secs_f64(),
            t.tolerance_pts
        );
    }
    let _ = writeln!(
        md,
        "| tree | classes | depth | leaves | active | oversubscribed parents | root Mbit/s | largest weir − kernel (points) | largest sim − weir (points) | attempts (steal % of a CPU / weir wake-ups > 1 ms late of all) | verdict |"
    );
    let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
    for t in &r.trees {
        let attempts: Vec<String> = t
            .attempts
            .iter()
            .map(|a| {
                format!(
                    "{:.1} / {} of {}",
                    a.steal_pct, a.weir_worker.late_over_1ms, a.weir_worker.wakeups
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {} | {} ({}) | {} |",
            t.name,
            t.classes,
            t.depth,
            t.leaves,
            t.active,
            t.oversubscribed,
            t.root_mbit,
            t.max_weir_kernel_pts(),
            t.max_sim_weir_pts()
                .map_or("—".to_owned(), |x| format!("{x:.2}")),
            t.attempts.len(),
            attempts.join(", "),
            if t.pass {
                "pass".to_owned()
            } else {
                format!("**FAIL**: {}", t.verdict)
            }
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| tree | class | prio | quantum | rate / ceil Mbit/s | offered | kernel | weir | sim | weir − kernel (points) | sim − weir (points) | kernel runs | weir runs |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|");
    for t in &r.trees {
        for c in &t.rows {
            let runs = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let tcp = t.proto == Proto::Tcp;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.3} / {:.3} | {} | {:.2} | {:.2} | {} | {:+.2} | {} | {} | {} |",
                t.name,
                c.class,
                c.prio,
                c.quantum.map_or("default".to_owned(), |q| q.to_string()),
                c.rate_mbit,
                c.ceil_mbit,
                if tcp {
                    "TCP".to_owned()
                } else {
                    format!("{:.2}", c.offered_mbit)
                },
                c.kernel_mbit,
                c.weir_mbit,
                if tcp {
                    "—".to_owned()
                } else {
                    format!("{:.2}", c.sim_mbit)
                },
                c.weir_kernel_pts,
                if tcp {
                    "—".to_owned()
                } else {
                    format!("{:+.2}", c.sim_weir_pts)
                },
                runs(&c.kernel_runs),
                runs(&c.weir_runs)
            );
        }
    }
    let _ = writeln!(md);
    if r.trees.iter().any(|t| t.proto == Proto::Tcp) {
        let _ = writeln!(
            md,
            "TCP, per run (the order of the rate columns above): segments the sender retransmitted in the window, and its smoothed RTT at the end (ms; a full 1000-packet pfifo leaf of 1514-byte frames is 404 ms at 30 Mbit/s).\n"
        );
        let _ = writeln!(
            md,
            "| tree | class | kernel retransmits | weir retransmits | kernel RTT ms | weir RTT ms |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        let join = |v: Vec<String>| v.join(" ");
        for t in r.trees.iter().filter(|t| t.proto == Proto::Tcp) {
            for c in &t.rows {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    t.name,
                    c.class,
                    join(c.kernel_retransmits.iter().map(u64::to_string).collect()),
                    join(c.weir_retransmits.iter().map(u64::to_string).collect()),
                    join(c.kernel_rtt_ms.iter().map(|x| format!("{x:.0}")).collect()),
                    join(c.weir_rtt_ms.iter().map(|x| format!("{x:.0}")).collect()),
                );
            }
        }
        let _ = writeln!(md);
    }
    md
}
