//! ns per packet for the flow table (`weir_dataplane::flow`): find the
//! packet's flow (or start it) and update its statistics, at 1,000,
//! 100,000 and 1,000,000 active flows, one packet at a time and in
//! batches of 64 with the sets' tags and then the flows prefetched first
//! (the form a worker's rx batch would use).
//!
//! Keys are precomputed and visited in a shuffled order, so the table's
//! sets are touched as a spread of real flows would touch them: at a
//! million flows (about 150 MB) nearly every lookup misses the caches,
//! which is what the number measures. The table is sized at twice the
//! active flows, as a config would size it; the bench prints how many
//! packets found their flow evicted (a full set).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use weir_dataplane::flow::{FlowKey, FlowTable};

const BATCH: usize = 64;
const IDLE_NS: u64 = 60_000_000_000;

/// Deterministic xorshift so every run benches the same traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `flows` distinct UDP keys between 198.18.0.0/15 hosts, and a visiting
/// order of `4 × flows` (at least 65,536) packets spread over them.
fn traffic(flows: usize) -> (Vec<FlowKey>, Vec<u32>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let keys: Vec<FlowKey> = (0..flows as u64)
        .map(|i| {
            let src = 0xffff_0000_0000 | u128::from(0xc612_0000 + (i as u32 % 65_536));
            let dst = 0xffff_0000_0000 | u128::from(0xc613_0000 + (i as u32 / 65_536));
            FlowKey::new((src, 1024 + (i % 50_000) as u16), (dst, 443), 17).0
        })
        .collect();
    let n = (flows * 4).max(65_536);
    let order = (0..n).map(|_| (rng.next() % flows as u64) as u32).collect();
    (keys, order)
}

fn table(keys: &[FlowKey]) -> FlowTable {
    let mut t = FlowTable::new(keys.len() * 2, IDLE_NS);
    for (i, &k) in keys.iter().enumerate() {
        t.packet(k, 100, i as u64);
    }
    t
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Elements(BATCH as u64));
    for flows in [1_000usize, 100_000, 1_000_000] {
        let (keys, order) = traffic(flows);
        let mut t = table(&keys);
        let mut at = 0usize;
        let mut now = 1_000_000_000u64;
        g.bench_function(BenchmarkId::new("one_at_a_time", flows), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let k = keys[order[at] as usize];
                    at = (at + 1) % order.len();
                    now += 100;
                    black_box(t.packet(k, 1514, now).flow.packets);
                }
            })
        });
        g.bench_function(BenchmarkId::new("batched", flows), |b| {
            b.iter(|| {
                let mut slots = [None; BATCH];
                for (i, slot) in slots.iter_mut().enumerate() {
                    let k = keys[order[(at + i) % order.len()] as usize];
                    let s = t.slot(&k);
                    t.prefetch(s);
                    *slot = Some((s, k));
                }
                for &(s, _) in slots.iter().flatten() {
                    t.prefetch_flow(s);
                }
                for &(s, k) in slots.iter().flatten() {
                    now += 100;
                    black_box(t.packet_in(s, k, 1514, now).flow.packets);
                }
                at = (at + BATCH) % order.len();
            })
        });
        // A table twice the active flows still has a few full sets (a set
        // takes a Poisson number of flows): say how many lookups started a
        // flow again, so the numbers above are read with it.
        let c = t.counters();
        eprintln!(
            "flow/{flows}: {} live of {flows}, {} pressure evictions in {} packets",
            c.live,
            c.evicted_pressure,
            c.hits + c.inserted
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
