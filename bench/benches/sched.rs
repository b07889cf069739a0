//! ns per packet (enqueue + dequeue, 64-byte packets) through the HTB with
//! fq_codel leaves, for 10, 1,000 and 100,000 active leaf classes.
//!
//! - `fq_codel_leaves`: the worst case for caches — every packet goes to
//!   the next class in turn — one packet at a time.
//! - `fq_codel_leaves_batch32`: the same traffic through `enqueue_batch` /
//!   `dequeue_batch` 32 packets at a time, as the AF_XDP worker calls them
//!   (reported per packet).
//! - `fq_codel_leaves_bursts16` (and `_batch32`): a second, more realistic
//!   workload — arrivals come in bursts of 16 packets of one flow of one
//!   class, the classes still in turn.
//!
//! Each tree is built once per benchmark; a line on stderr says whether its
//! tables are on transparent huge pages.
//!
//! See `docs/performance.md`, "Scheduler". Run:
//! `cargo bench -p weir-bench --bench sched`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use weir_bench::{anon_huge_pages_kib, SchedLoad};

const BATCH: usize = 32;
const BURST: u32 = 16;

fn sched(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched");
    group.measurement_time(Duration::from_secs(5));
    for (name, burst) in [("fq_codel_leaves", 1), ("fq_codel_leaves_bursts16", BURST)] {
        for leaves in [10u32, 1_000, 100_000] {
            let mut load = SchedLoad::with_bursts(leaves, 64, 2, burst);
            // Whether the tree's tables got 2 MiB pages decides the 100,000
            // numbers (docs/performance.md): say so in every run.
            eprintln!(
                "{name}/{leaves}: tables on an MADV_HUGEPAGE mapping: {}; process AnonHugePages: {} KiB",
                load.htb.huge_pages(),
                anon_huge_pages_kib().map_or_else(|| "?".to_string(), |k| k.to_string()),
            );
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(BenchmarkId::new(name, leaves), &leaves, |b, _| {
                b.iter(|| black_box(load.step()))
            });
            drop(load);
            let mut load = SchedLoad::with_bursts(leaves, 64, 2, burst);
            group.throughput(Throughput::Elements(BATCH as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_batch32"), leaves),
                &leaves,
                |b, _| b.iter(|| black_box(load.step_batch(BATCH))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, sched);
criterion_main!(benches);
