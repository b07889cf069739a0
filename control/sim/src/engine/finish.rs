//! The end of a run: accumulators, histograms and the shaper's own counters
//! become the [`Report`], and the frame accounting is checked to balance.

use hdrhistogram::Histogram;
use weir_dataplane::packet::DropReason;
use weir_dataplane::shaper::ShaperSpec;

use super::{Core, State, NONE, N_REASONS};
use crate::report::{
    AppReport, ClassReport, FrameReport, HtbClassReport, Report, Sojourn, SourceReport, TcpReport,
    Timeline,
};
use crate::traffic::{SourceKind, Traffic};
use crate::SimError;

fn sojourn(h: &Option<Histogram<u64>>) -> Option<Sojourn> {
    let h = h.as_ref()?;
    if h.is_empty() {
        return None;
    }
    Some(Sojourn {
        samples: h.len(),
        p50_ns: h.value_at_quantile(0.5),
        p99_ns: h.value_at_quantile(0.99),
        max_ns: h.max(),
        mean_ns: h.mean() as u64,
    })
}

fn drops_map(drops: &[u64; N_REASONS]) -> std::collections::BTreeMap<String, u64> {
    DropReason::ALL
        .iter()
        .filter(|r| drops[r.index()] > 0)
        .map(|r| (r.name().to_string(), drops[r.index()]))
        .collect()
}

fn bps(bytes: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    (u128::from(bytes) * 8 * 1_000_000_000 / u128::from(ns)) as u64
}

pub(super) fn finish<C: Core>(
    core: &mut C,
    mut st: State,
    tree: &str,
    spec: &ShaperSpec,
    labels: &[String],
    traffic: &Traffic,
) -> Result<Report, SimError> {
    let p = st.p;
    let window = p.duration - p.warmup;
    let n = st.classes.len();
    // A class's sojourn merges its (source, leaf) pairs, then its subtree's;
    // a source's merges its pairs. Same bounds everywhere: `add` cannot fail.
    let mut class_hist: Vec<Option<Histogram<u64>>> = vec![None; n];
    let mut source_hist: Vec<Option<Histogram<u64>>> = vec![None; st.sources.len()];
    let merge = |into: &mut Option<Histogram<u64>>, h: &Histogram<u64>| match into {
        Some(x) => {
            let _ = x.add(h);
        }
        None => *into = Some(h.clone()),
    };
    for pair in &st.pairs.list {
        merge(&mut class_hist[pair.class as usize], &pair.hist);
        merge(&mut source_hist[pair.source as usize], &pair.hist);
    }
    for i in (0..n).rev() {
        let parent = st.classes[i].parent;
        if parent == NONE {
            continue;
        }
        if let Some(h) = class_hist[i].clone() {
            merge(&mut class_hist[parent as usize], &h);
        }
    }
    let label = |i: usize| labels.get(i).cloned().unwrap_or_else(|| format!("#{i}"));
    let class_accs = std::mem::take(&mut st.classes);
    let classes = class_accs
        .into_iter()
        .enumerate()
        .map(|(i, acc)| {
            let cs = &spec.htb.classes[i];
            ClassReport {
                index: i as u32,
                label: label(i),
                parent: cs.parent,
                leaf: cs.qdisc.is_some(),
                qdisc: cs.qdisc.map(|q| q.kind().to_string()),
                prio: cs.prio,
                rate_bps: cs.rate.saturating_mul(8),
                ceil_bps: cs.ceil.saturating_mul(8),
                burst: cs.burst,
                cburst: cs.cburst,
                offered: acc.offered.report(),
                sent: acc.sent.report(),
                dropped: acc.dropped.report(),
                offered_bps: bps(acc.offered_win, window),
                achieved_bps: bps(acc.sent_win, window),
                drops: drops_map(&acc.drops),
                ce_marks: acc.marks,
                sojourn: sojourn(&class_hist[i]),
                max_packet: acc.max_len,
                max_burst_at_ceil: acc.ceil.bucket_bytes(),
                htb: core.class_stats(i as u32).map(|s| HtbClassReport {
                    bytes: s.bytes,
                    packets: s.packets,
                    drops: s.drops,
                    overlimits: s.overlimits,
                    lends: s.lends,
                    borrows: s.borrows,
                    giants: s.giants,
                    backlog_packets: s.backlog.packets,
                }),
                timeline: Timeline {
                    bucket_ns: p.bucket_ns,
                    bytes: acc.timeline,
                },
            }
        })
        .collect();
    let mut sources = Vec::with_capacity(st.sources.len());
    for (si, (rt, s)) in st.sources.iter().zip(&traffic.sources).enumerate() {
        let acc = &rt.acc;
        let mut class_ids: Vec<u32> = st.flows
            [rt.first_flow as usize..(rt.first_flow + rt.flows) as usize]
            .iter()
            .filter(|f| f.class != NONE)
            .map(|f| f.class)
            .collect();
        class_ids.sort_unstable();
        class_ids.dedup();
        let tcp = rt.is_tcp.then(|| {
            let conns = st.conns.iter().filter(|c| c.source == si as u32);
            let mut r = TcpReport::default();
            for c in conns {
                r.connections += 1;
                r.window_reductions += c.reductions;
                r.losses += c.losses;
                r.ce_echoes += c.ce_echoes;
                r.final_cwnd_sum += u64::from(c.cwnd);
            }
            r
        });
        sources.push(SourceReport {
            name: s.name.clone(),
            kind: match s.kind {
                SourceKind::Cbr { .. } => "cbr",
                SourceKind::OnOff { .. } => "onoff",
                SourceKind::Poisson { .. } => "poisson",
                SourceKind::Tcp(_) => "tcp",
            }
            .to_string(),
            flows: s.flows,
            classes: class_ids.iter().map(|&c| label(c as usize)).collect(),
            offered: acc.offered.report(),
            sent: acc.sent.report(),
            dropped: acc.dropped.report(),
            offered_bps: bps(acc.offered_win, window),
            achieved_bps: bps(acc.sent_win, window),
            goodput_bps: rt.is_tcp.then(|| bps(acc.payload_win, window)),
            drops: drops_map(&acc.drops),
            ce_marks: acc.marks,
            unclassified: acc.unclassified,
            sojourn: sojourn(&source_hist[si]),
            tcp,
        });
    }
    let counters = core.counters();
    let queued = core.queued();
    let dropped_total: u64 = counters.dropped.iter().sum();
    let frames = FrameReport {
        received: counters.received,
        sent: counters.sent,
        dropped: drops_map(&counters.dropped),
        dropped_total,
        queued,
        balanced: counters.received == counters.sent + dropped_total + queued
            && st.emitted == counters.received
            && st.sent == counters.sent
            && st.dropped == counters.dropped,
    };
    if !frames.balanced {
        return Err(SimError::Accounting {
            received: counters.received,
            sent: counters.sent,
            dropped: dropped_total,
            queued,
            offered: st.emitted,
            seen_sent: st.sent,
            seen_dropped: st.dropped.iter().sum(),
        });
    }
    let apps = core
        .apps()
        .map(|a| {
            a.apps()
                .iter()
                .zip(a.counters())
                .map(|(spec, c)| AppReport {
                    name: spec.name.clone(),
                    class: label(spec.class as usize),
                    flows: c.flows,
                    packets: c.packets,
                    bytes: c.bytes,
                    drops: c.drops,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Report {
        tree: tree.to_string(),
        seed: p.seed,
        duration_ns: p.duration,
        warmup_ns: p.warmup,
        timeline_bucket_ns: p.bucket_ns,
        classes,
        sources,
        apps,
        frames,
        engine: st.engine,
    })
}
