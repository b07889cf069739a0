//! Two groups.
//!
//! `flow`: ns per packet for the flow table (`weir_dataplane::flow`): find the
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

//!
//! `apps`: what apps add to the worker's path, as a ratio in one run (this
//! VM's speed drifts from minute to minute). The same tree (a root and a
//! pfifo leaf that never limits) takes the same UDP frames through
//! `Shaper::enqueue_batch` + `dequeue_batch`, 32 at a time as the worker
//! calls them, without apps and with the seed's apps (port rules, a name
//! rule, a bulk rule), at 1,000, 100,000 and 1,000,000 active flows. The
//! difference per packet is the apps' cost: the flow lookup and update,
//! and the rules of decided flows. Frames are written into a batch buffer
//! per iteration (the same work for both).
//!
//! `cargo bench -p weir-bench --bench flow`; docs/performance.md, "Apps".

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use weir_dataplane::app::{AppSpec, AppsSpec, Behaviour, Bulk, Glob, RuleSpec};
use weir_dataplane::flow::{FlowKey, FlowTable};
use weir_dataplane::htb::{ClassSpec, HtbSpec};
use weir_dataplane::packet::{Frame, Packet};
use weir_dataplane::qdisc::{FifoLimit, QdiscParams};
use weir_dataplane::remark::Remark;
use weir_dataplane::shaper::{MalformedPolicy, Shaper, ShaperSpec};

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
    for flows in sizes() {
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

/// A root at 100 Gbit/s and one pfifo leaf: the tree never limits, so
/// every batch goes in and out.
fn tree(apps: AppsSpec) -> ShaperSpec {
    let class = |id: u64, parent: Option<u32>, qdisc: Option<QdiscParams>| ClassSpec {
        id: 1 << 32 | id,
        parent,
        rate: 12_500_000_000,
        ceil: 12_500_000_000,
        burst: 1 << 20,
        cburst: 1 << 20,
        prio: 0,
        quantum: 1514,
        qdisc,
    };
    ShaperSpec {
        htb: HtbSpec {
            classes: vec![
                class(1, None, None),
                class(
                    10,
                    Some(0),
                    Some(QdiscParams::Fifo(FifoLimit::Packets(4096))),
                ),
                class(
                    20,
                    Some(0),
                    Some(QdiscParams::Fifo(FifoLimit::Packets(4096))),
                ),
            ],
            overhead: 0,
            mpu: 0,
            pool_capacity: 8192,
            seed: 1,
            spare_leaves: 0,
        },
        filters: vec![],
        default_class: 1,
        malformed: MalformedPolicy::Default,
        apps,
        class_remark: Vec::new(),
        wash: false,
    }
}

/// The seed's port rules, a name rule on 80/443 and a bulk rule, the table
/// sized at twice the active flows.
fn seed_apps(flows: usize) -> AppsSpec {
    let app = |name: &str, dscp: u8| AppSpec {
        name: name.into(),
        class: 2,
        remark: Some(Remark::Set(dscp)),
    };
    let port_rule = |app: u16, ports: &[u16]| RuleSpec {
        app,
        ports: ports.iter().map(|&p| (p, p)).collect(),
        ..RuleSpec::default()
    };
    let mut spec = AppsSpec::empty();
    spec.flows = (flows * 2) as u32;
    spec.apps = vec![
        app("voice", 46),
        app("video", 34),
        app("database", 26),
        app("web", 0),
        app("backup", 8),
    ];
    spec.rules = vec![
        RuleSpec {
            app: 1,
            ports: vec![(80, 80), (443, 443)],
            sni: vec![Glob::new("*.googlevideo.com").unwrap()],
            ..RuleSpec::default()
        },
        port_rule(0, &[5060, 5061]),
        port_rule(1, &[554, 8080, 1935]),
        port_rule(2, &[3306, 5432, 1521, 1433]),
        port_rule(3, &[80, 443, 8080, 8443]),
        port_rule(4, &[873, 22]),
        RuleSpec {
            app: 4,
            behaviour: Behaviour {
                bulk: Some(Bulk {
                    pps: Some(2000),
                    bytes_per_sec: None,
                    hold: 5_000_000_000,
                }),
                ..Behaviour::default()
            },
            ..RuleSpec::default()
        },
    ];
    spec
}

/// A 64-byte UDP frame template: 198.18/15 addresses, ports patched per
/// flow.
fn template() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[198, 18, 0, 0]);
    f[30..34].copy_from_slice(&[198, 19, 0, 0]);
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f
}

/// Write flow `i`'s frame into `f`: source address and port from `i`, to
/// port 3306 (the database rule decides it on its first packet).
fn write_flow(f: &mut [u8], i: u32) {
    f[28..30].copy_from_slice(&((i % 65_536) as u16).to_be_bytes());
    f[33] = (i / 65_536) as u8;
    f[34..36].copy_from_slice(&(1024 + (i % 50_000) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&3306u16.to_be_bytes());
}

const SHAPER_BATCH: usize = 32;

/// Active flow counts: 1,000, 100,000 and 1,000,000, or the one that
/// `WEIR_BENCH_FLOWS` names (to profile one size).
fn sizes() -> Vec<usize> {
    match std::env::var("WEIR_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) => vec![n],
        None => vec![1_000, 100_000, 1_000_000],
    }
}

fn apps(c: &mut Criterion) {
    let mut g = c.benchmark_group("apps");
    g.throughput(Throughput::Elements(SHAPER_BATCH as u64));
    for flows in sizes() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let order: Vec<u32> = (0..(flows * 4).max(65_536))
            .map(|_| (rng.next() % flows as u64) as u32)
            .collect();
        for (name, spec) in [
            ("without_apps", tree(AppsSpec::empty())),
            ("with_apps", tree(seed_apps(flows))),
        ] {
            let mut shaper = Shaper::new(&spec, 0).expect("the bench tree builds");
            let mut frames = vec![template(); SHAPER_BATCH];
            let mut out: Vec<Packet> = Vec::with_capacity(SHAPER_BATCH);
            let mut now = 1_000_000_000u64;
            // Every flow seen once (decided) before measuring.
            for i in 0..flows as u32 {
                write_flow(&mut frames[0], i);
                shaper.enqueue(Frame { addr: 0, len: 64 }, &frames[0], now);
                out.clear();
                shaper.dequeue_batch(now, &mut out, SHAPER_BATCH);
            }
            let mut at = 0usize;
            g.bench_function(BenchmarkId::new(name, flows), |b| {
                b.iter(|| {
                    for (k, f) in frames.iter_mut().enumerate() {
                        write_flow(f, order[(at + k) % order.len()]);
                    }
                    at = (at + SHAPER_BATCH) % order.len();
                    now += 10_000;
                    shaper.enqueue_batch(
                        frames.iter().enumerate().map(|(k, f)| {
                            (
                                Frame {
                                    addr: k as u64,
                                    len: 64,
                                },
                                f.as_slice(),
                            )
                        }),
                        now,
                    );
                    out.clear();
                    black_box(shaper.dequeue_batch(now, &mut out, SHAPER_BATCH));
                    shaper.take_drops().count()
                })
            });
            if let Some(a) = shaper.apps() {
                let c = a.flow_counters();
                eprintln!(
                    "apps/{flows}: {} live, {} pressure evictions, database packets {}",
                    c.live,
                    c.evicted_pressure,
                    a.counters()[2].packets
                );
            }
        }
    }
    g.finish();
}

/// The same comparison measured the way a noisy VM allows: both shapers
/// run in alternation, 40 rounds of 2,000 batches each, so a slow minute
/// slows both; per flow count, the median ns per packet of each and the
/// median of the per-round differences. Printed after criterion's groups
/// (`cargo bench -p weir-bench --bench flow -- apps` prints it too).
fn interleaved() {
    const ROUNDS: usize = 40;
    const BATCHES: usize = 2_000;
    for flows in sizes() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let order: Vec<u32> = (0..(flows * 4).max(65_536))
            .map(|_| (rng.next() % flows as u64) as u32)
            .collect();
        let mut arms: Vec<(Shaper, usize, u64)> = [tree(AppsSpec::empty()), tree(seed_apps(flows))]
            .iter()
            .map(|spec| {
                let mut s = Shaper::new(spec, 0).expect("the bench tree builds");
                let mut f = template();
                let mut out = Vec::with_capacity(SHAPER_BATCH);
                for i in 0..flows as u32 {
                    write_flow(&mut f, i);
                    s.enqueue(Frame { addr: 0, len: 64 }, &f, 1_000_000_000);
                    out.clear();
                    s.dequeue_batch(1_000_000_000, &mut out, SHAPER_BATCH);
                }
                (s, 0usize, 1_000_000_000u64)
            })
            .collect();
        let mut frames = vec![template(); SHAPER_BATCH];
        let mut out: Vec<Packet> = Vec::with_capacity(SHAPER_BATCH);
        let mut per_arm: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut diffs = Vec::new();
        for _ in 0..ROUNDS {
            let mut ns = [0f64; 2];
            for (k, (shaper, at, now)) in arms.iter_mut().enumerate() {
                let start = std::time::Instant::now();
                for _ in 0..BATCHES {
                    for (j, f) in frames.iter_mut().enumerate() {
                        write_flow(f, order[(*at + j) % order.len()]);
                    }
                    *at = (*at + SHAPER_BATCH) % order.len();
                    *now += 10_000;
                    shaper.enqueue_batch(
                        frames.iter().enumerate().map(|(j, f)| {
                            (
                                Frame {
                                    addr: j as u64,
                                    len: 64,
                                },
                                f.as_slice(),
                            )
                        }),
                        *now,
                    );
                    out.clear();
                    black_box(shaper.dequeue_batch(*now, &mut out, SHAPER_BATCH));
                    black_box(shaper.take_drops().count());
                }
                ns[k] = start.elapsed().as_nanos() as f64 / (BATCHES * SHAPER_BATCH) as f64;
                per_arm[k].push(ns[k]);
            }
            diffs.push(ns[1] - ns[0]);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let least = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (least_without, least_with) = (least(&per_arm[0]), least(&per_arm[1]));
        let (without, with) = (median(&mut per_arm[0]), median(&mut per_arm[1]));
        eprintln!(
            "apps interleaved, {flows} flows: without apps {without:.1} ns/packet, with apps {with:.1} ns/packet, added {:.1} ns/packet (median of {ROUNDS} rounds' differences), ratio {:.2}; memory floor of the table's access pattern {:.1} ns/packet",
            median(&mut diffs),
            with / without,
            floor(flows)
        );
        eprintln!(
            "apps interleaved, {flows} flows, fastest round of each (noise only adds time): without apps {least_without:.1}, with apps {least_with:.1}, added {:.1} ns/packet",
            least_with - least_without
        );
    }
}

/// Ask for the line at `p` (x86_64: `prefetcht0`; elsewhere nothing).
#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults and reads nothing the
    // program sees, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            (p as *const T).cast::<i8>(),
            std::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The memory floor of the table's access pattern, with no logic: the
/// same footprint as a table for `flows` flows at half load (a 64-byte tag
/// line per set, 128 bytes per way), and per packet the same three stages
/// (tags of one set, then the flow's two lines), 32 packets at a time.
/// What is left of the apps' cost above this is computation.
fn floor(flows: usize) -> f64 {
    let sets = (flows * 2 / 8).max(1).next_power_of_two();
    let tags: Vec<[u32; 16]> = (0..sets).map(|i| [i as u32; 16]).collect();
    let lines: Vec<[u64; 16]> = (0..sets * 8).map(|i| [i as u64; 16]).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pick = [(0usize, 0usize); SHAPER_BATCH];
    let mut sum = 0u64;
    let batches = 20_000;
    let start = std::time::Instant::now();
    for _ in 0..batches {
        for p in pick.iter_mut() {
            let r = rng.next();
            *p = ((r as usize) & (sets - 1), (r >> 40) as usize % 8);
            prefetch(&tags[p.0]);
        }
        for &(set, way) in &pick {
            let w = (tags[set][way] as usize + way) % (sets * 8);
            prefetch(&lines[w]);
        }
        for &(set, way) in &pick {
            let w = (tags[set][way] as usize + way) % (sets * 8);
            sum = sum.wrapping_add(lines[w][0]).wrapping_add(lines[w][8]);
        }
    }
    black_box(sum);
    start.elapsed().as_nanos() as f64 / (batches * SHAPER_BATCH) as f64
}

criterion_group!(benches, bench, apps);

fn main() {
    benches();
    interleaved();
    Criterion::default().configure_from_args().final_summary();
}
