//! The receiver's accounting: per stream, frames and bytes received,
//! duplicates and reordering (from the sequence numbers), and one-way
//! latency (receive time minus the send time in the probe) in an
//! HdrHistogram. Pure: the receive time is an argument.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::testframe::{self, FCS};

/// Latencies are recorded in nanoseconds up to 60 s, 3 significant digits.
const LATENCY_MAX_NS: u64 = 60_000_000_000;
/// Arrivals are also counted per slot of this length from the stream's
/// first arrival, for the steady-state rate ([`StreamRx::steady_pps`]).
pub const SLOT_NS: u64 = 100_000_000;

/// One stream as the receiver saw it.
#[derive(Clone, Debug)]
pub struct StreamRx {
    /// Distinct frames (duplicates not counted).
    pub received: u64,
    /// L2 bytes of those frames, FCS included.
    pub bytes: u64,
    pub duplicates: u64,
    /// Frames that arrived after a frame with a higher sequence number.
    pub reordered: u64,
    max_seq: Option<u32>,
    /// One bit per sequence number seen.
    seen: Vec<u64>,
    pub first_ns: Option<u64>,
    pub last_ns: u64,
    pub latency: Histogram<u64>,
    /// Frames per [`SLOT_NS`] slot since the first arrival.
    slots: Vec<u64>,
}

impl StreamRx {
    fn new() -> StreamRx {
        StreamRx {
            received: 0,
            bytes: 0,
            duplicates: 0,
            reordered: 0,
            max_seq: None,
            seen: Vec::new(),
            first_ns: None,
            last_ns: 0,
            latency: Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3)
                .expect("constant histogram bounds are valid"),
            slots: Vec::new(),
        }
    }

    fn record(&mut self, seq: u32, len: usize, sent_ns: u64, now_ns: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            // Grow in steps, so a long trial reallocates rarely.
            self.seen
                .resize((word + 1).next_power_of_two().max(1024), 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.received += 1;
        self.bytes += (len + FCS) as u64;
        match self.max_seq {
            Some(m) if seq < m => self.reordered += 1,
            _ => self.max_seq = Some(seq),
        }
        let first = *self.first_ns.get_or_insert(now_ns);
        self.last_ns = now_ns;
        let slot = (now_ns.saturating_sub(first) / SLOT_NS) as usize;
        // Bounded: a trial lasts seconds, and an hour is 36,000 slots.
        if slot < 36_000 {
            if slot >= self.slots.len() {
                self.slots.resize(slot + 1, 0);
            }
            self.slots[slot] += 1;
        }
        let lat = now_ns.saturating_sub(sent_ns).clamp(1, LATENCY_MAX_NS);
        // In range by the clamp above: cannot fail.
        let _ = self.latency.record(lat);
    }
}

impl StreamRx {
    /// Frames per second over the steady part of the stream: from `skip_ns`
    /// after its first arrival to the end of the last *whole* slot. It
    /// leaves out what a shaper lets through at once when a class starts
    /// (its burst, sent at line rate) and the partial slot at the end.
    /// None when the stream lasted too short for a whole slot after the
    /// skip.
    pub fn steady_pps(&self, skip_ns: u64) -> Option<f64> {
        let skip = skip_ns.div_ceil(SLOT_NS) as usize;
        // The last slot is partial (the stream ended somewhere in it).
        let end = self.slots.len().checked_sub(1)?;
        if end <= skip {
            return None;
        }
        let frames: u64 = self.slots[skip..end].iter().sum();
        Some(frames as f64 / ((end - skip) as f64 * SLOT_NS as f64 / 1e9))
    }

    /// Frames per second over the whole slots of this stream that lie
    /// inside `[from_ns, to_ns)` on the receiver's clock. Unlike
    /// [`StreamRx::steady_pps`] the window is the same for every stream of
    /// a trial, so streams that share a shaper are measured over the same
    /// time (the differential test compares classes that borrow from each
    /// other: a window that runs into the drain after the sender stopped,
    /// when some classes have emptied and others borrow what they left,
    /// would measure another mix). A slot with no arrival counts as zero.
    /// None when no whole slot fits.
    pub fn window_pps(&self, from_ns: u64, to_ns: u64) -> Option<f64> {
        let first = self.first_ns?;
        if to_ns <= first {
            return None;
        }
        let k0 = from_ns.saturating_sub(first).div_ceil(SLOT_NS) as usize;
        let k1 = ((to_ns - first) / SLOT_NS) as usize;
        if k1 <= k0 {
            return None;
        }
        let frames: u64 = (k0..k1)
            .map(|k| self.slots.get(k).copied().unwrap_or(0))
            .sum();
        Some(frames as f64 / ((k1 - k0) as f64 * SLOT_NS as f64 / 1e9))
    }
}

/// Everything one receiver saw.
#[derive(Clone, Debug)]
pub struct Receiver {
    pub streams: Vec<StreamRx>,
    /// Frames that are not ours (ARP, IPv6 ND, …) or name a stream this
    /// trial does not have.
    pub foreign: u64,
}

impl Receiver {
    pub fn new(streams: usize) -> Receiver {
        Receiver {
            streams: (0..streams).map(|_| StreamRx::new()).collect(),
            foreign: 0,
        }
    }

    /// Account one received frame (bytes without FCS) at `now_ns`.
    pub fn record(&mut self, bytes: &[u8], now_ns: u64) {
        match testframe::parse(bytes) {
            Some(p) => match self.streams.get_mut(usize::from(p.stream)) {
                Some(s) => s.record(p.seq, bytes.len(), p.sent_ns, now_ns),
                None => self.foreign += 1,
            },
            None => self.foreign += 1,
        }
    }
}

/// Latency summary in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct LatencyUs {
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyUs {
    pub fn of(h: &Histogram<u64>) -> LatencyUs {
        if h.is_empty() {
            return LatencyUs::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencyUs {
            min: us(h.min()),
            p50: us(h.value_at_quantile(0.5)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::testframe::{Addresses, SizeMix, Template};
    use std::net::Ipv4Addr;

    fn frame(t: &Template, seq: u32, sent: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 128];
        let n = t.write(&mut buf, 64, seq, sent).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn counts_loss_reorder_duplicates_and_latency() {
        let addr = Addresses {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            dst_ip: Ipv4Addr::new(198, 18, 0, 2),
        };
        let t = Template::new(&addr, 1, 0, &SizeMix::Fixed(64), 4);
        let mut r = Receiver::new(2);
        // Sent 0..10; 3 lost, 5 and 6 swapped, 8 twice.
        for (seq, at) in [
            (0, 10),
            (1, 11),
            (2, 12),
            (4, 14),
            (6, 16),
            (5, 17),
            (7, 18),
            (8, 19),
            (8, 20),
            (9, 21),
        ] {
            r.record(
                &frame(&t, seq, 1_000 * u64::from(seq)),
                1_000 * u64::from(seq) + at * 1000,
            );
        }
        r.record(&[0u8; 20], 5);
        let s = &r.streams[1];
        assert_eq!(s.received, 9);
        assert_eq!(s.bytes, 9 * 64);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 1);
        assert_eq!(r.foreign, 1);
        assert_eq!(r.streams[0].received, 0);
        let l = LatencyUs::of(&s.latency);
        assert!(
            (l.min - 10.0).abs() < 0.1 && (l.max - 21.0).abs() < 0.1,
            "{l:?}"
        );
    }

    #[test]
    fn steady_rate_leaves_out_the_start_burst_and_the_last_slot() {
        let addr = Addresses {
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::UNSPECIFIED,
        };
        let t = Template::new(&addr, 0, 0, &SizeMix::Fixed(64), 1);
        let mut r = Receiver::new(1);
        // A burst of 500 frames at t = 0, then 1000 frames/s for 3.05 s.
        let mut seq = 0;
        for _ in 0..500 {
            r.record(&frame(&t, seq, 0), 0);
            seq += 1;
        }
        for k in 1..=3050u64 {
            r.record(&frame(&t, seq, 0), k * 1_000_000);
            seq += 1;
        }
        let s = &r.streams[0];
        // Over the span the burst shows; over the steady part it does not.
        let span = (s.received - 1) as f64 / ((s.last_ns - s.first_ns.unwrap()) as f64 / 1e9);
        assert!(span > 1100.0, "{span}");
        let steady = s.steady_pps(1_000_000_000).unwrap();
        assert!((steady - 1000.0).abs() < 1.0, "{steady}");
        assert_eq!(s.steady_pps(3_100_000_000), None);
    }

    #[test]
    fn window_rate_counts_whole_slots_inside_the_window() {
        let addr = Addresses {
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::UNSPECIFIED,
        };
        let t = Template::new(&addr, 0, 0, &SizeMix::Fixed(64), 1);
        let mut r = Receiver::new(1);
        // First arrival at 50 ms; 1000 frames/s to 3 s, then a drain at
        // 5000 frames/s for 0.5 s that the window must leave out.
        let mut seq = 0;
        let mut at = 50_000_000u64;
        while at < 3_000_000_000 {
            r.record(&frame(&t, seq, 0), at);
            seq += 1;
            at += 1_000_000;
        }
        while at < 3_500_000_000 {
            r.record(&frame(&t, seq, 0), at);
            seq += 1;
            at += 200_000;
        }
        let s = &r.streams[0];
        let w = s.window_pps(1_000_000_000, 3_000_000_000).unwrap();
        assert!((w - 1000.0).abs() < 1.0, "{w}");
        // The steady rate runs into the drain.
        assert!(s.steady_pps(1_000_000_000).unwrap() > 1500.0);
        // Too short for a whole slot; before the first arrival.
        assert_eq!(s.window_pps(1_000_000_000, 1_100_000_000), None);
        assert_eq!(s.window_pps(0, 40_000_000), None);
        // A stream that stopped arriving counts zeros, not nothing.
        let z = s.window_pps(4_000_000_000, 5_000_000_000).unwrap();
        assert_eq!(z, 0.0);
    }

    #[test]
    fn unknown_stream_is_foreign() {
        let addr = Addresses {
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::UNSPECIFIED,
        };
        let t = Template::new(&addr, 5, 0, &SizeMix::Fixed(64), 1);
        let mut r = Receiver::new(2);
        r.record(&frame(&t, 0, 0), 1);
        assert_eq!(r.foreign, 1);
        assert_eq!(LatencyUs::of(&r.streams[0].latency), LatencyUs::default());
    }
}
