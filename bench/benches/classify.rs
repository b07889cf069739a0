//! ns per frame for the first two steps of the worker's per-frame path:
//! `parse_frame` (in place) + `Classifier::classify`, on 64-byte UDP frames
//! (60 bytes without FCS).
//!
//! - 10 filters: the seed's port filters (section 1.3) and DSCP filters
//!   (section 2.1), traffic spread over their ports and DSCP values.
//! - 10,000 filters: an ISP-style set — ssh first, 10,000 per-subscriber
//!   `/32` dst filters, then EF voice and a bulk port range — traffic spread
//!   over the subscribers (plus some outsiders and service ports).
//!
//! Frames cycle through a 4096-frame table so caches see a realistic spread
//! rather than one hot frame.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use weir_dataplane::classify::{Classifier, FilterSpec, IpPrefix, L3Match, PortMatch};
use weir_dataplane::parse::parse_frame;

const FRAMES: usize = 4096;
const SUBSCRIBERS: u32 = 10_000;
/// 198.18.0.0/15 (RFC 2544 benchmarking range).
const BASE: u32 = 0xc612_0000;

/// A 60-byte Ethernet/IPv4/UDP frame (64 on the wire with FCS).
fn udp_frame(src: u32, dst: u32, tos: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[1] = tos;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// Deterministic xorshift so every run benches the same traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn sport(p: u16, target: u32) -> FilterSpec {
    FilterSpec {
        l3: L3Match::Ipv4,
        sport: Some(PortMatch::Masked {
            value: p,
            mask: 0xffff,
        }),
        target,
        ..FilterSpec::default()
    }
}

fn tos(value: u8, target: u32) -> FilterSpec {
    FilterSpec {
        l3: L3Match::Ipv4,
        tos: Some((value, 0xfc)),
        target,
        ..FilterSpec::default()
    }
}

/// The seed's rules: section 1.3 ports, then section 2.1 DSCP classes.
fn seed_filters() -> Vec<FilterSpec> {
    vec![
        sport(80, 10),
        sport(443, 10),
        sport(3306, 10),
        sport(5432, 10),
        sport(22, 20),
        tos(46 << 2, 20), // EF
        tos(34 << 2, 30), // AF41
        tos(36 << 2, 30), // AF42
        tos(26 << 2, 40), // AF31
        tos(0, 50),       // BE
    ]
}

fn seed_traffic() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed);
    let ports = [80u16, 443, 3306, 5432, 22, 873, 3260, 5004, 40000];
    let dscp = [46u8, 34, 36, 26, 0, 8];
    (0..FRAMES)
        .map(|_| {
            let host = (rng.next() % 256) as u32;
            udp_frame(
                BASE | host,
                BASE | 0x1_0000 | host,
                rng.pick(&dscp) << 2,
                rng.pick(&ports),
                (rng.next() % 65536) as u16,
            )
        })
        .collect()
}

fn isp_filters() -> Vec<FilterSpec> {
    let mut f = vec![sport(22, 1)];
    f.extend((0..SUBSCRIBERS).map(|i| FilterSpec {
        l3: L3Match::Ipv4,
        dst: Some(IpPrefix {
            v6: false,
            addr: 0xffff_0000_0000 | u128::from(BASE + i),
            len: 32,
        }),
        target: 100 + i,
        ..FilterSpec::default()
    }));
    f.push(tos(46 << 2, 2));
    f.push(FilterSpec {
        dport: Some(PortMatch::Range { lo: 6881, hi: 6999 }),
        target: 3,
        ..FilterSpec::default()
    });
    f
}

fn isp_traffic() -> Vec<Vec<u8>> {
    let mut rng = Rng(0xc0ffee);
    (0..FRAMES)
        .map(|_| {
            // 90 % to subscribers, 10 % to addresses no filter names.
            let dst = if rng.below(10) == 0 {
                BASE + SUBSCRIBERS + (rng.next() % 1000) as u32
            } else {
                BASE + (rng.next() % u64::from(SUBSCRIBERS)) as u32
            };
            let sport = if rng.below(50) == 0 { 22 } else { 40000 };
            let dport = (rng.next() % 10_000) as u16;
            let tos = if rng.below(8) == 0 { 46 << 2 } else { 0 };
            udp_frame(0x0a00_0001, dst, tos, sport, dport)
        })
        .collect()
}

fn bench_set(c: &mut Criterion, name: &str, filters: &[FilterSpec], frames: &[Vec<u8>]) {
    let classifier = Classifier::new(filters).expect("bench filters are valid");
    eprintln!(
        "{name}: {} filters, {} groups, {} entries",
        classifier.len(),
        classifier.group_count(),
        classifier.entry_count()
    );
    let headers: Vec<_> = frames
        .iter()
        .map(|f| parse_frame(f).expect("bench frames are valid"))
        .collect();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("parse+classify", |b| {
        b.iter(|| {
            let frame = &frames[i % FRAMES];
            i = i.wrapping_add(1);
            parse_frame(black_box(frame))
                .ok()
                .and_then(|h| classifier.classify(&h))
        })
    });
    let mut i = 0usize;
    g.bench_function("classify", |b| {
        b.iter(|| {
            let h = &headers[i % FRAMES];
            i = i.wrapping_add(1);
            classifier.classify(black_box(h))
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let seed = seed_traffic();
    let mut i = 0usize;
    c.bench_function("parse_frame/udp64", |b| {
        b.iter(|| {
            let frame = &seed[i % FRAMES];
            i = i.wrapping_add(1);
            parse_frame(black_box(frame)).ok()
        })
    });
    bench_set(c, "filters_10", &seed_filters(), &seed);
    bench_set(c, "filters_10000", &isp_filters(), &isp_traffic());
}

criterion_group!(classify, benches);
criterion_main!(classify);
