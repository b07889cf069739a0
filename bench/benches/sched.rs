//! ns per packet (enqueue + dequeue, 64-byte packets) through the HTB with
//! fq_codel leaves, for 10, 1,000 and 100,000 active leaf classes.
//!
//! Run: `cargo bench -p weir-bench --bench sched`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use weir_bench::SchedLoad;

fn sched(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    for leaves in [10u32, 1_000, 100_000] {
        let mut load = SchedLoad::new(leaves, 64, 2);
        group.bench_with_input(BenchmarkId::new("fq_codel_leaves", leaves), &leaves, |b, _| {
            b.iter(|| black_box(load.step()))
        });
    }
    group.finish();
}

criterion_group!(benches, sched);
criterion_main!(benches);
