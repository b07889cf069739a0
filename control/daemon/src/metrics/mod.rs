//! Prometheus / OpenMetrics endpoint of `weir run`.
//!
//! The control thread publishes the typed stats of its once-a-second tick
//! ([`weir_api::Stats`]) here; a scrape encodes the latest one with
//! `prometheus-client` (`encode.rs`), served by the HTTP listener
//! (`http.rs`). So a scrape never asks the workers anything and costs the
//! data path nothing, and every number in one scrape comes from one
//! consistent snapshot.
//!
//! Names follow node_exporter's qdisc collector style: `weir_class_*` per
//! HTB class (labels `tree`, `class`, `name`), `weir_qdisc_*` per leaf
//! qdisc (plus `kind`), `weir_tree_*` per tree, `weir_interface_*` per port
//! (kernel counters from /sys plus the XDP program's), `weir_worker_*` per
//! worker. Counters get `_total` from the encoder. The list is in
//! docs/metrics.md.

mod encode;
mod http;

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use weir_api::Stats;

pub use http::{read_token, serve, HttpApi, ServeError, TokenError, MIN_TOKEN_LEN};

/// Where metrics are served unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9469";

/// The latest published stats, shared with the HTTP thread.
#[derive(Clone, Debug, Default)]
pub struct Published(Arc<Mutex<Option<Arc<Stats>>>>);

impl Published {
    pub fn set(&self, stats: Arc<Stats>) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(stats);
        }
    }

    fn get(&self) -> Option<Arc<Stats>> {
        self.0.lock().ok().and_then(|g| g.clone())
    }
}

#[derive(Debug)]
struct StatsCollector(Published);

impl Collector for StatsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        match self.0.get() {
            Some(stats) => encode::stats(&mut enc, &stats),
            None => Ok(()),
        }
    }
}

/// The scrape text for what is published (also used by tests).
pub fn render(published: &Published) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StatsCollector(published.clone())));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_classes_leaves_trees_workers_interfaces() {
        let p = Published::default();
        assert_eq!(
            render(&p).trim(),
            "# EOF",
            "nothing published yet: an empty exposition"
        );
        let mut stats = crate::json::tests::sample_stats(1);
        stats.interfaces[0].kernel.rx_bytes = Some(42);
        p.set(Arc::new(stats));
        let text = render(&p);
        for needle in [
            "weir_class_bytes_total{tree=\"up\",class=\"1:10\",name=\"high\"} 2500",
            "weir_class_tokens_ns{tree=\"up\",class=\"1:10\",name=\"high\"} -1000",
            "weir_class_rate_bits_per_second{tree=\"up\",class=\"1:10\",name=\"high\"} 30000000",
            "weir_qdisc_ecn_marks_total{tree=\"up\",class=\"1:20\",name=\"medium\",kind=\"sfq\"} 4",
            "weir_qdisc_red_early_total{tree=\"up\",class=\"1:30\",name=\"low\",kind=\"red\"} 3",
            "weir_tree_frames_dropped_total{tree=\"up\",direction=\"upload\",reason=\"malformed\"} 6",
            "weir_worker_frames_in_flight{worker=\"0\",pair=\"lab\"} 2096",
            "weir_interface_rx_bytes_total{interface=\"weir-golden-in\"} 42",
            "weir_xdp_redirected_total{interface=\"weir-golden-in\"} 100",
            "# TYPE weir_class_backlog_bytes gauge",
            "# TYPE weir_tree_sojourn_seconds histogram",
            "weir_tree_sojourn_seconds_count{tree=\"up\",direction=\"upload\"} 5",
            "weir_tree_sojourn_seconds_bucket{le=\"+Inf\",tree=\"up\",direction=\"upload\"} 5",
            "weir_worker_rtprio{worker=\"0\",pair=\"lab\"} 10",
            "# TYPE weir_worker_wake_late_seconds histogram",
        ] {
            assert!(text.contains(needle), "missing {needle}:\n{text}");
        }
        assert!(
            !text.contains("weir_interface_rx_bytes_total{interface=\"weir-golden-out\"}"),
            "a counter /sys did not give is left out:\n{text}"
        );
    }
}
