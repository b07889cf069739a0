//! The flow table (issue 12's item 1): what the core knows about each
//! connection, bounded and allocated once.
//!
//! - **One flow per connection, both directions.** A [`FlowKey`] orders the
//!   two endpoints (address, port) so a packet and its reply have the same
//!   key; [`Direction`] says which way a packet went.
//! - **Bounded.** The table holds `capacity` flows in sets of [`WAYS`]
//!   entries; a key can live in one of two sets (by hash: "two choices",
//!   which keeps sets from overflowing while the table has room). The memory is
//!   allocated in [`FlowTable::new`] and never again: a new flow takes an
//!   empty way, else a way idle past the timeout (counted
//!   [`FlowCounters::evicted_idle`]), else the way seen longest ago
//!   ([`FlowCounters::evicted_pressure`]). An insert never fails and never
//!   waits, whatever the load.
//! - **Idle timeouts** are checked where it costs nothing: on insert (above)
//!   and by [`FlowTable::expire`], which sweeps a bounded number of sets
//!   per call, so a caller spreads the sweep over its batches.
//! - **Per-flow statistics in fixed point**, updated per packet with no
//!   division and no floating point: bytes, packets, first and last seen,
//!   the average packet size and the mean and variance of the inter-arrival
//!   time (exponentially weighted, shifts only), and a burst detector (runs
//!   of packets closer than [`BURST_GAP_NS`]). Plus the app the flow was
//!   given and how that was decided, which the classifier of apps sets.
//!
//! Time is an argument (`now`, ns on any monotonic clock), as everywhere
//! in the core. Not yet called by the shaper or the worker: the apps
//! classifier that will (and how a decision reaches the other direction's
//! worker) is the rest of issue 12.

use crate::parse::{Fragment, Headers, L4};
use crate::pool::{table_bytes, Arena, Table};

/// Entries per set: one set's tags fill half a cache line; with two sets
/// per key, sixteen candidates keep pressure evictions of live flows rare
/// until the table is nearly full.
pub const WAYS: usize = 8;

/// Packets closer together than this belong to one burst.
pub const BURST_GAP_NS: u64 = 1_000_000;

/// Inter-arrival times are clamped to this (4.29 s) so their square fits
/// a u64; a longer gap is "long" for every signal that reads it.
const IAT_MAX_NS: u64 = u32::MAX as u64;

/// The weight of a new sample in the averages: 1/2^EWMA_SHIFT.
const EWMA_SHIFT: u32 = 3;

/// Average sizes are kept in 1/2^SIZE_FRAC bytes.
const SIZE_FRAC: u32 = 4;

/// A connection's endpoints in a fixed order, so both directions of it
/// have the same key. Addresses as the parser gives them (IPv4 mapped into
/// IPv6's space), ports 0 for protocols without them and for fragments.
///
/// The addresses are kept as pairs of u64 (8-byte aligned, not 16) so a
/// [`Flow`] packs into two cache lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    lo_addr: [u64; 2],
    hi_addr: [u64; 2],
    pub lo_port: u16,
    pub hi_port: u16,
    pub protocol: u8,
}

/// Which way a packet went relative to its [`FlowKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the `lo` endpoint to the `hi` one.
    LoToHi,
    /// The reply direction.
    HiToLo,
}

impl FlowKey {
    /// The key and direction of a parsed frame; None for frames without an
    /// IP header (ARP and the like are not flows).
    pub fn of(h: &Headers) -> Option<(FlowKey, Direction)> {
        Ends::of(h).map(|e| e.key_and_direction())
    }

    /// The key of a packet from `src` to `dst` (address, port).
    pub fn new(src: (u128, u16), dst: (u128, u16), protocol: u8) -> (FlowKey, Direction) {
        let (lo, hi, dir) = if src <= dst {
            (src, dst, Direction::LoToHi)
        } else {
            (dst, src, Direction::HiToLo)
        };
        let key = FlowKey {
            lo_addr: split(lo.0),
            hi_addr: split(hi.0),
            lo_port: lo.1,
            hi_port: hi.1,
            protocol,
        };
        (key, dir)
    }

    /// The lower endpoint's address.
    pub fn lo_addr(&self) -> u128 {
        join(self.lo_addr)
    }

    /// The higher endpoint's address.
    pub fn hi_addr(&self) -> u128 {
        join(self.hi_addr)
    }

    /// A 64-bit hash: the set is its low bits, the tag its high 32 (never
    /// 0, which marks an empty way). The same as [`Ends::hash`] of a
    /// packet of either direction.
    pub fn hash(&self) -> u64 {
        pair_hash(
            endpoint_hash(self.lo_addr, self.lo_port),
            endpoint_hash(self.hi_addr, self.hi_port),
            self.protocol,
        )
    }
}

/// One endpoint's part of a flow's hash. The address's halves are
/// multiplied, never XORed together first: correlated fields (an address
/// and a port that grow together) would cancel. The port goes into the
/// top bits of the upper half, which IPv4 leaves 0 and IPv6 fills with
/// its first hextet (2001, fd00), the bits least likely to vary with it.
#[inline(always)]
fn endpoint_hash(addr: [u64; 2], port: u16) -> u64 {
    mix(
        addr[0] ^ 0x243f_6a88_85a3_08d3,
        addr[1] ^ (u64::from(port) << 48) ^ 0x1319_8a2e_0370_7344,
    )
}

/// The two endpoints' parts combined so that their order does not
/// matter (a sum and an XOR, both symmetric), with the protocol: a packet
/// and its reply hash alike without ordering their endpoints first.
#[inline(always)]
fn pair_hash(a: u64, b: u64, protocol: u8) -> u64 {
    mix(
        a.wrapping_add(b) ^ 0xa409_3822_299f_31d0,
        a ^ b ^ u64::from(protocol) ^ 0x082e_fa98_ec4e_6c89,
    )
}

/// A packet's endpoints as parsed, in its own direction: what a lookup
/// hashes and compares with a flow's key without ordering them into a
/// [`FlowKey`] first (ordered only when the flow is new).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ends {
    src: [u64; 2],
    dst: [u64; 2],
    sport: u16,
    dport: u16,
    protocol: u8,
}

impl Ends {
    /// The endpoints of a parsed frame (ports 0 for protocols without them
    /// and for fragments);
    /// None for frames without an IP header.
    #[inline]
    pub fn of(h: &Headers) -> Option<Ends> {
        let ip = h.ip.as_ref()?;
        let (sport, dport) = match (ip.fragment, ip.l4) {
            (Fragment::None, L4::Ports { sport, dport }) => (sport, dport),
            _ => (0, 0),
        };
        Some(Ends {
            src: split(ip.src),
            dst: split(ip.dst),
            sport,
            dport,
            protocol: ip.protocol,
        })
    }

    /// [`FlowKey::hash`] of the flow these endpoints belong to.
    #[inline]
    pub fn hash(&self) -> u64 {
        pair_hash(
            endpoint_hash(self.src, self.sport),
            endpoint_hash(self.dst, self.dport),
            self.protocol,
        )
    }

    /// Whether `key` is the key of the flow these endpoints belong to
    /// (either way round).
    #[inline]
    fn is(&self, key: &FlowKey) -> bool {
        key.protocol == self.protocol
            && ((key.lo_addr == self.src
                && key.lo_port == self.sport
                && key.hi_addr == self.dst
                && key.hi_port == self.dport)
                || (key.lo_addr == self.dst
                    && key.lo_port == self.dport
                    && key.hi_addr == self.src
                    && key.hi_port == self.sport))
    }

    /// The flow's key.
    pub fn key(&self) -> FlowKey {
        self.key_and_direction().0
    }

    /// The flow's key, and which way these endpoints go along it.
    pub fn key_and_direction(&self) -> (FlowKey, Direction) {
        FlowKey::new(
            (join(self.src), self.sport),
            (join(self.dst), self.dport),
            self.protocol,
        )
    }
}

fn split(a: u128) -> [u64; 2] {
    [a as u64, (a >> 64) as u64]
}

fn join(a: [u64; 2]) -> u128 {
    u128::from(a[0]) | u128::from(a[1]) << 64
}

/// Bit `w` set where way `w`'s tag is `tag`: on x86_64, two vector
/// compares and two masks (the compiler made a mix of scalar and vector
/// compares of the portable form, twice per packet).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tag_mask(tags: &[u32; WAYS], tag: u32) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps,
        _mm_set1_epi32,
    };
    const _: () = assert!(WAYS == 8, "two 4-lane compares cover a set");
    let p = tags.as_ptr().cast::<__m128i>();
    // SAFETY: SSE2 is part of x86_64's baseline, so the intrinsics run on
    // every x86_64 CPU; the two unaligned loads read the 32 bytes of
    // `tags` (8 u32) and nothing past them.
    unsafe {
        let want = _mm_set1_epi32(tag as i32);
        let lo = _mm_cmpeq_epi32(_mm_loadu_si128(p), want);
        let hi = _mm_cmpeq_epi32(_mm_loadu_si128(p.add(1)), want);
        let lo = _mm_movemask_ps(_mm_castsi128_ps(lo)) as u32;
        let hi = _mm_movemask_ps(_mm_castsi128_ps(hi)) as u32;
        lo | hi << 4
    }
}

/// Bit `w` set where way `w`'s tag is `tag` (portable form).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn tag_mask(tags: &[u32; WAYS], tag: u32) -> u32 {
    tags.iter()
        .enumerate()
        .fold(0, |m, (w, &t)| m | (u32::from(t == tag) << w))
}

/// 64x64→128 multiply folded back to 64 bits.
#[inline(always)]
fn mix(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b | 1);
    (m as u64) ^ ((m >> 64) as u64)
}

/// How a flow's app was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Decided {
    /// Not yet: the flow goes where the filters (or the default) put it.
    #[default]
    Undecided,
    /// By protocol and port.
    Port,
    /// By the TLS ClientHello's server name.
    TlsSni,
    /// By the QUIC Initial's server name.
    QuicSni,
    /// By the HTTP/1 Host header.
    HttpHost,
    /// By behaviour: packet size, timing, bulk, bursts.
    Behaviour,
    /// By the other direction's worker, which saw the deciding packet.
    Peer,
    /// Every rule has answered no: the flow stays where the filters put
    /// it (a bulk or long-lived rule may still move it).
    Nothing,
}

impl Decided {
    /// As `weir show flows` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Decided::Undecided => "undecided",
            Decided::Port => "port",
            Decided::TlsSni => "tls-sni",
            Decided::QuicSni => "quic-sni",
            Decided::HttpHost => "http-host",
            Decided::Behaviour => "behaviour",
            Decided::Peer => "peer",
            Decided::Nothing => "none",
        }
    }
}

/// No app (undecided, or no rule matched) in [`Flow::app`], and no rule
/// or reassembly slot in the fields that hold one.
pub const NONE: u16 = u16::MAX;

/// Gap classes of [`Flow::gaps`], at the seed's two thresholds.
pub const GAP_SHORT_NS: u64 = 10_000_000;
pub const GAP_LONG_NS: u64 = 100_000_000;
const GAP_SHORT: u32 = 0;
const GAP_MID: u32 = 1;
const GAP_LONG: u32 = 2;

/// What the table knows about one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub first_seen: u64,
    pub last_seen: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Variance of the inter-arrival time, ns² (EWMA of the squared
    /// deviation from the mean).
    iat_var: u64,
    /// Average packet size, bytes × 2^4.
    avg_size: u32,
    /// Mean inter-arrival time, ns (EWMA).
    iat_mean: u32,
    /// The class of each of the last 16 gaps, 2 bits each, the newest in
    /// the low bits: under 10 ms, between, 100 ms or more (the seed's burst
    /// and regularity tests read them).
    gaps: u32,
    /// The bulk window under way: its start (ticks after `first_seen`),
    /// and the packets and bytes in it.
    win_start: u32,
    win_packets: u32,
    win_bytes: u32,
    /// The rate of the last closed window, bytes/s (saturated).
    last_bps: u32,
    /// Bulk, as the apps engine decided at a window's close: until when
    /// (ticks after `first_seen`), and by which rule (or [`NONE`]).
    pub bulk_until: u32,
    pub bulk_rule: u16,
    /// The app this flow is in (an index into the tree's apps), or
    /// [`NONE`].
    pub app: u16,
    /// The rule that put it there; while undecided, the first rule whose
    /// name matcher matched the flow's server name, if one did.
    pub rule: u16,
    /// The rule that had decided the flow before a bulk or long-lived rule
    /// moved it, to go back to when that no longer holds.
    pub base: u16,
    /// The reassembly slot of a first flight under inspection.
    pub slot: u16,
    pub decided: Decided,
    /// Which name parsers may still find a name (the apps engine's bits).
    pub inspect: u8,
}

impl Default for Flow {
    fn default() -> Flow {
        Flow {
            key: FlowKey::default(),
            first_seen: 0,
            last_seen: 0,
            packets: 0,
            bytes: 0,
            iat_var: 0,
            avg_size: 0,
            iat_mean: 0,
            gaps: 0,
            win_start: 0,
            win_packets: 0,
            win_bytes: 0,
            last_bps: 0,
            bulk_until: 0,
            bulk_rule: NONE,
            app: NONE,
            rule: NONE,
            base: NONE,
            slot: NONE,
            decided: Decided::Undecided,
            inspect: 0,
        }
    }
}

/// Bulk windows are timed in ticks of 2^20 ns (1.05 ms): a shift per
/// packet, not a division.
const TICK_SHIFT: u32 = 20;

/// Ticks from `since` to `now`, saturated to u32 (52 days).
fn ticks_since(since: u64, now: u64) -> u32 {
    ns_to_ticks(now.saturating_sub(since))
}

impl Flow {
    fn start(key: FlowKey, bytes: u32, now: u64) -> Flow {
        Flow {
            key,
            first_seen: now,
            last_seen: now,
            packets: 1,
            bytes: u64::from(bytes),
            avg_size: bytes.min(u32::MAX >> SIZE_FRAC) << SIZE_FRAC,
            win_packets: 1,
            win_bytes: bytes,
            ..Flow::default()
        }
    }

    /// Count one more packet of `bytes` at `now`; `window` is the bulk
    /// window, ns.
    /// Returns the rates of a bulk window it closed, if it closed one.
    #[inline]
    fn update(&mut self, bytes: u32, now: u64, window: u64) -> Option<Rates> {
        let gap = now.saturating_sub(self.last_seen).min(IAT_MAX_NS);
        self.last_seen = self.last_seen.max(now);
        self.packets += 1;
        self.bytes = self.bytes.saturating_add(u64::from(bytes));
        // avg += (size - avg) / 8, in 1/16 bytes.
        let size = i64::from(bytes.min(u32::MAX >> SIZE_FRAC) << SIZE_FRAC);
        let avg = i64::from(self.avg_size);
        self.avg_size = (avg + ((size - avg) >> EWMA_SHIFT)) as u32;
        // The first gap seeds the mean; then mean and variance move by 1/8
        // of the new sample's difference.
        if self.packets == 2 {
            self.iat_mean = gap as u32;
        } else {
            let mean = i64::from(self.iat_mean);
            let dev = gap as i64 - mean;
            let sq = dev.unsigned_abs().saturating_mul(dev.unsigned_abs());
            self.iat_mean = (mean + (dev >> EWMA_SHIFT)) as u32;
            // var += (sq - var) / 8, as var - var/8 + sq/8: no sign, no
            // 128-bit arithmetic.
            self.iat_var = self.iat_var - (self.iat_var >> EWMA_SHIFT) + (sq >> EWMA_SHIFT);
        }
        let class = if gap < GAP_SHORT_NS {
            GAP_SHORT
        } else if gap < GAP_LONG_NS {
            GAP_MID
        } else {
            GAP_LONG
        };
        self.gaps = self.gaps << 2 | class;
        self.window(bytes, now, window)
    }

    /// The bulk window: count the packet; when the window is over, its
    /// rates.
    #[inline]
    fn window(&mut self, bytes: u32, now: u64, length: u64) -> Option<Rates> {
        let at = ticks_since(self.first_seen, now);
        let elapsed = at.saturating_sub(self.win_start);
        if elapsed < ns_to_ticks(length).max(1) {
            self.win_packets = self.win_packets.saturating_add(1);
            self.win_bytes = self.win_bytes.saturating_add(bytes);
            return None;
        }
        // One division per window, not per packet.
        let elapsed_ns = u64::from(elapsed) << TICK_SHIFT;
        let per_sec =
            |n: u32| u32::try_from(u64::from(n) * 1_000_000_000 / elapsed_ns).unwrap_or(u32::MAX);
        let rates = Rates {
            pps: per_sec(self.win_packets),
            bps: per_sec(self.win_bytes),
            at,
        };
        self.last_bps = rates.bps;
        self.win_start = at;
        self.win_packets = 1;
        self.win_bytes = bytes;
        Some(rates)
    }

    /// Now, in the ticks `bulk_until` counts.
    pub fn ticks_at(&self, now: u64) -> u32 {
        ticks_since(self.first_seen, now)
    }

    /// Average packet size, bytes.
    pub fn avg_size(&self) -> u32 {
        self.avg_size >> SIZE_FRAC
    }

    /// Mean inter-arrival time, ns (0 before the second packet).
    pub fn iat_mean_ns(&self) -> u64 {
        u64::from(self.iat_mean)
    }

    /// Variance of the inter-arrival time, ns².
    pub fn iat_var_ns2(&self) -> u64 {
        self.iat_var
    }

    /// How long the flow has lasted, ns.
    pub fn age(&self) -> u64 {
        self.last_seen - self.first_seen
    }

    /// Inter-arrival gaps seen (one fewer than the packets).
    pub fn gaps_seen(&self) -> u64 {
        self.packets.saturating_sub(1)
    }

    /// Of the last `n` (≤ 16) gaps, how many were under 10 ms and how many
    /// 100 ms or more.
    fn gap_counts(&self, n: u32) -> (u32, u32) {
        (0..n).fold((0, 0), |(short, long), i| {
            match (self.gaps >> (2 * i)) & 3 {
                GAP_SHORT => (short + 1, long),
                GAP_LONG => (short, long + 1),
                _ => (short, long),
            }
        })
    }

    /// The seed's `has_burst_pattern`: of the last ten gaps, at least five
    /// under 10 ms and at least two over 100 ms. None before ten gaps.
    pub fn bursty(&self) -> Option<bool> {
        if self.gaps_seen() < 10 {
            return None;
        }
        let (short, long) = self.gap_counts(10);
        Some(short >= 5 && long >= 2)
    }

    /// The seed's regular timing: none of the last five gaps reached
    /// 100 ms. None before six gaps (the seed wants more than five).
    pub fn regular(&self) -> Option<bool> {
        if self.gaps_seen() < 6 {
            return None;
        }
        Some(self.gap_counts(5).1 == 0)
    }

    /// The rate of the last closed bulk window, bytes/s (0 before one
    /// closed).
    pub fn last_rate(&self) -> u32 {
        self.last_bps
    }
}

/// A closed bulk window's rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    pub pps: u32,
    pub bps: u32,
    /// When it closed, in the flow's ticks ([`Flow::ticks_at`]).
    pub at: u32,
}

/// `ns` in the ticks of [`Flow::ticks_at`], rounded down, saturated.
pub fn ns_to_ticks(ns: u64) -> u32 {
    u32::try_from(ns >> TICK_SHIFT).unwrap_or(u32::MAX)
}

/// qosify's bulk window: 1 s.
pub const DEFAULT_WINDOW_NS: u64 = 1_000_000_000;

/// What the table did, monotonic since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Flows in the table now.
    pub live: u64,
    /// Packets of a flow the table held.
    pub hits: u64,
    /// Flows started.
    pub inserted: u64,
    /// Flows taken out by [`FlowTable::expire`] after the idle timeout.
    pub expired: u64,
    /// Flows idle past the timeout whose way a new flow took.
    pub evicted_idle: u64,
    /// Live flows whose way a new flow took because their set was full:
    /// the table is too small for the load.
    pub evicted_pressure: u64,
}

/// Why a flow left the table, for a caller that keeps more about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evicted {
    Idle,
    Pressure,
}

/// The bounded flow table of one worker's tree.
pub struct FlowTable {
    /// Per set, the tags of its ways (0: empty).
    tags: Table<[u32; WAYS]>,
    /// Per set, its ways' flows.
    flows: Table<[Flow; WAYS]>,
    set_mask: u64,
    idle_ns: u64,
    /// Bulk window, ns.
    window: u64,
    /// Next set [`FlowTable::expire`] looks at.
    sweep: usize,
    counters: FlowCounters,
}

/// A key's two candidate sets and its tag in one table (see
/// [`FlowTable::slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    sets: [u32; 2],
    tag: u32,
}

/// What [`FlowTable::packet`] found.
pub struct Seen<'a> {
    pub flow: &'a mut Flow,
    /// The flow is new with this packet.
    pub new: bool,
    /// The flow whose way it took, if any (as it was), and why.
    pub evicted: Option<(Flow, Evicted)>,
    /// The rates of the bulk window this packet closed, if it closed one.
    pub window: Option<Rates>,
}

impl FlowTable {
    /// A table for at least `capacity` flows (rounded up to a power of two
    /// sets of [`WAYS`]; at least one set), whose flows expire after
    /// `idle_ns` without a packet.
    pub fn new(capacity: usize, idle_ns: u64) -> FlowTable {
        let sets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        // On huge pages when large: at 100,000 flows the table is 25 MB,
        // and on 4 KiB pages every lookup would miss the TLB as well as the
        // cache (the same reason as the scheduler's tables).
        let mut arena = Arena::with_capacity(
            table_bytes::<[u32; WAYS]>(sets) + table_bytes::<[Flow; WAYS]>(sets),
        );
        FlowTable {
            tags: Table::from_fn(&mut arena, sets, |_| [0; WAYS]),
            flows: Table::from_fn(&mut arena, sets, |_| [Flow::default(); WAYS]),
            set_mask: sets as u64 - 1,
            idle_ns,
            window: DEFAULT_WINDOW_NS,
            sweep: 0,
            counters: FlowCounters::default(),
        }
    }

    /// Measure bulk over `window` instead of the default.
    pub fn with_window(mut self, window_ns: u64) -> FlowTable {
        self.window = window_ns;
        self
    }

    /// Flows the table can hold.
    pub fn capacity(&self) -> usize {
        self.tags.len() * WAYS
    }

    pub fn counters(&self) -> FlowCounters {
        self.counters
    }

    /// Where `key` lives: hash it once for the stages of a batched lookup
    /// ([`FlowTable::prefetch`], [`FlowTable::prefetch_flow`],
    /// [`FlowTable::packet_in`]).
    #[inline]
    pub fn slot(&self, key: &FlowKey) -> Slot {
        self.slot_of(key.hash())
    }

    /// [`FlowTable::slot`] of the flow a packet with these endpoints
    /// belongs to.
    #[inline]
    pub fn locate(&self, ends: &Ends) -> Slot {
        self.slot_of(ends.hash())
    }

    #[inline]
    fn slot_of(&self, h: u64) -> Slot {
        // The second set from other bits of the same hash (they overlap
        // the tag's low bits for tables above 2^8 sets: harmless, the key
        // is compared anyway).
        let other = h >> 24;
        Slot {
            sets: [(h & self.set_mask) as u32, (other & self.set_mask) as u32],
            tag: ((h >> 32) as u32).max(1),
        }
    }

    /// First stage of a batched lookup: ask the CPU for the tags of
    /// `key`'s first set, for a batch of packets looked up together. Only
    /// the first: a new flow takes a way there while the set has room, so
    /// most flows live in it, and one line per packet less to fetch is
    /// what a table larger than the caches is short of.
    #[inline]
    pub fn prefetch(&self, slot: Slot) {
        crate::pool::prefetch(&self.tags[slot.sets[0] as usize]);
    }

    /// Second stage, once the tags have arrived: ask for the lines of the
    /// flow the first set's tags point at; when they do not hold the key,
    /// ask for the second set's tags instead.
    #[inline]
    pub fn prefetch_flow(&self, slot: Slot) {
        let set = slot.sets[0] as usize;
        let m = tag_mask(&self.tags[set], slot.tag);
        if m == 0 {
            crate::pool::prefetch(&self.tags[slot.sets[1] as usize]);
            return;
        }
        let flow: *const Flow = &self.flows[set][m.trailing_zeros() as usize];
        // One past the flow: the range ends where the next way starts.
        crate::pool::prefetch_range(flow.cast(), flow.wrapping_add(1).cast());
    }

    /// Every flow the table holds (a walk of the whole table).
    pub fn iter(&self) -> impl Iterator<Item = &Flow> {
        self.tags
            .iter()
            .zip(self.flows.iter())
            .flat_map(|(tags, flows)| tags.iter().zip(flows).filter(|(t, _)| **t != 0))
            .map(|(_, f)| f)
    }

    /// Sets of the table ([`FlowTable::iter_sets`] walks a range of them).
    pub fn sets(&self) -> usize {
        self.tags.len()
    }

    /// The flows of sets `sets` (clamped to the table): a bounded piece of
    /// a whole-table walk, so a walker can spread one over many batches.
    pub fn iter_sets(&self, sets: std::ops::Range<usize>) -> impl Iterator<Item = &Flow> {
        let end = sets.end.min(self.tags.len());
        let start = sets.start.min(end);
        self.tags[start..end]
            .iter()
            .zip(&self.flows[start..end])
            .flat_map(|(tags, flows)| tags.iter().zip(flows).filter(|(t, _)| **t != 0))
            .map(|(_, f)| f)
    }

    /// The flow of `key`, if the table holds it.
    pub fn get(&self, key: &FlowKey) -> Option<&Flow> {
        let (set, way) = self.find(self.slot(key), key)?;
        Some(&self.flows[set][way])
    }

    /// The flow of `key`, mutable (to set its app).
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Flow> {
        let (set, way) = self.find(self.slot(key), key)?;
        Some(&mut self.flows[set][way])
    }

    /// The (set, way) of `key`'s flow.
    #[inline]
    fn find(&self, slot: Slot, key: &FlowKey) -> Option<(usize, usize)> {
        self.find_by(slot, |k| k == key)
    }

    /// The (set, way) of the flow in `slot` whose key `is` says is the
    /// one.
    #[inline(always)]
    fn find_by(&self, slot: Slot, is: impl Fn(&FlowKey) -> bool) -> Option<(usize, usize)> {
        for set in slot.sets {
            let set = set as usize;
            let mut m = tag_mask(&self.tags[set], slot.tag);
            while m != 0 {
                let w = m.trailing_zeros() as usize;
                if is(&self.flows[set][w].key) {
                    return Some((set, w));
                }
                m &= m - 1;
            }
        }
        None
    }

    /// The first (set, way) of `slot`'s sets whose tag is `tag`.
    fn find_tag(&self, slot: Slot, tag: u32) -> Option<(usize, usize)> {
        slot.sets.iter().find_map(|&set| {
            let m = tag_mask(&self.tags[set as usize], tag);
            (m != 0).then(|| (set as usize, m.trailing_zeros() as usize))
        })
    }

    /// Count a packet of `bytes` on `key`'s flow at `now`,
    /// starting the flow if the table does not hold it.
    #[inline]
    pub fn packet(&mut self, key: FlowKey, bytes: u32, now: u64) -> Seen<'_> {
        let slot = self.slot(&key);
        self.packet_in(slot, key, bytes, now)
    }

    /// [`FlowTable::packet`] with `key`'s [`Slot`] already computed.
    #[inline]
    pub fn packet_in(&mut self, slot: Slot, key: FlowKey, bytes: u32, now: u64) -> Seen<'_> {
        match self.find(slot, &key) {
            Some((set, way)) => self.hit(set, way, bytes, now),
            None => self.insert(slot, key, bytes, now),
        }
    }

    /// [`FlowTable::packet`] for a packet with endpoints `ends`, whose
    /// [`Slot`] ([`FlowTable::locate`]) is already computed: the key is
    /// built only if the flow is new.
    #[inline]
    pub fn packet_of(&mut self, slot: Slot, ends: &Ends, bytes: u32, now: u64) -> Seen<'_> {
        match self.find_by(slot, |k| ends.is(k)) {
            Some((set, way)) => self.hit(set, way, bytes, now),
            None => self.insert(slot, ends.key(), bytes, now),
        }
    }

    /// Count a packet on the flow held in (`set`, `way`).
    #[inline(always)]
    fn hit(&mut self, set: usize, way: usize, bytes: u32, now: u64) -> Seen<'_> {
        self.counters.hits += 1;
        let flow = &mut self.flows[set][way];
        let window = flow.update(bytes, now, self.window);
        Seen {
            flow,
            new: false,
            evicted: None,
            window,
        }
    }

    /// A flow the table does not hold, started in the way
    /// [`FlowTable::victim`] picks: out of line, so the per-packet path of
    /// a held flow stays small.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, slot: Slot, key: FlowKey, bytes: u32, now: u64) -> Seen<'_> {
        let (set, way, evicted) = self.victim(slot, now);
        if let Some((_, why)) = evicted {
            match why {
                Evicted::Idle => self.counters.evicted_idle += 1,
                Evicted::Pressure => self.counters.evicted_pressure += 1,
            }
        } else {
            self.counters.live += 1;
        }
        self.counters.inserted += 1;
        self.tags[set][way] = slot.tag;
        let flow = &mut self.flows[set][way];
        *flow = Flow::start(key, bytes, now);
        Seen {
            flow,
            new: true,
            evicted,
            window: None,
        }
    }

    /// The flow of `key`, started with no packet if the table does not
    /// hold it (what the other direction decided arrives before this one
    /// has seen a packet of the flow, or after it was evicted here).
    pub fn entry(&mut self, key: FlowKey, now: u64) -> Seen<'_> {
        let slot = self.slot(&key);
        if let Some((set, way)) = self.find(slot, &key) {
            return Seen {
                flow: &mut self.flows[set][way],
                new: false,
                evicted: None,
                window: None,
            };
        }
        let seen = self.packet_in(slot, key, 0, now);
        seen.flow.packets = 0;
        seen.flow.win_packets = 0;
        seen
    }

    /// Hold a copy of `flow` (another table's, on a reload), as a new flow
    /// would be held; returns the flow it evicted, if any.
    pub fn adopt(&mut self, flow: &Flow, now: u64) -> Option<Flow> {
        let slot = self.slot(&flow.key);
        let seen = self.packet_in(slot, flow.key, 0, now);
        *seen.flow = *flow;
        seen.evicted.map(|(f, _)| f)
    }

    /// The (set, way) a new flow takes among its two sets: an empty way
    /// (the first set's first), else the one seen longest ago (idle past
    /// the timeout, or under pressure). Two choices keep sets from
    /// overflowing while the table has room: with one set per key, a table
    /// at half its capacity already had full sets (a set takes a Poisson
    /// number of keys).
    fn victim(&self, slot: Slot, now: u64) -> (usize, usize, Option<(Flow, Evicted)>) {
        if let Some((set, way)) = self.find_tag(slot, 0) {
            return (set, way, None);
        }
        let (set, way) = slot
            .sets
            .iter()
            .flat_map(|&set| (0..WAYS).map(move |w| (set as usize, w)))
            .min_by_key(|&(set, w)| self.flows[set][w].last_seen)
            .unwrap_or((slot.sets[0] as usize, 0));
        let f = &self.flows[set][way];
        let why = if self.is_idle(f, now) {
            Evicted::Idle
        } else {
            Evicted::Pressure
        };
        (set, way, Some((*f, why)))
    }

    fn is_idle(&self, f: &Flow, now: u64) -> bool {
        now.saturating_sub(f.last_seen) >= self.idle_ns
    }

    /// Take out the flows idle past the timeout in the next `sets` sets
    /// (the sweep wraps around), calling `gone` with each; returns how many
    /// went. Bounded work per call, whatever the table's size.
    pub fn expire(&mut self, now: u64, sets: usize, mut gone: impl FnMut(&Flow)) -> usize {
        let mut n = 0;
        for _ in 0..sets.min(self.tags.len()) {
            let set = self.sweep;
            self.sweep = (self.sweep + 1) % self.tags.len();
            for w in 0..WAYS {
                if self.tags[set][w] != 0 && self.is_idle(&self.flows[set][w], now) {
                    gone(&self.flows[set][w]);
                    self.tags[set][w] = 0;
                    n += 1;
                }
            }
        }
        self.counters.expired += n as u64;
        self.counters.live -= n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_frame;
    use weir_testkit::frame;

    const MS: u64 = 1_000_000;

    fn v4(a: u32) -> u128 {
        // As the parser maps IPv4: ::ffff:a.b.c.d.
        0xffff_0000_0000 | u128::from(a)
    }

    #[test]
    fn a_flow_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Flow>(), 128);
    }

    #[test]
    fn tag_masks_mark_exactly_the_ways_with_the_tag() {
        let tags = [7, 0, 7, 9, u32::MAX, 7, 0, 1];
        for tag in [0, 1, 7, 9, 8, u32::MAX] {
            let want = (0..WAYS).fold(0, |m, w| m | u32::from(tags[w] == tag) << w);
            assert_eq!(tag_mask(&tags, tag), want, "tag {tag}");
        }
        assert_eq!(tag_mask(&tags, 7), 0b0010_0101);
        assert_eq!(tag_mask(&[u32::MAX; WAYS], u32::MAX), 0xff);
    }

    #[test]
    fn endpoints_find_the_flow_either_way_round() {
        let ends = |src: u32, sport: u16, dst: u32, dport: u16, protocol: u8| Ends {
            src: split(v4(src)),
            dst: split(v4(dst)),
            sport,
            dport,
            protocol,
        };
        let out = ends(0xc612_0001, 40000, 0xc613_0002, 443, 6);
        let back = ends(0xc613_0002, 443, 0xc612_0001, 40000, 6);
        let key = out.key();
        assert_eq!(key, back.key());
        assert_eq!(out.hash(), key.hash());
        assert_eq!(back.hash(), key.hash());
        assert!(out.is(&key) && back.is(&key));
        for other in [
            ends(0xc612_0001, 40001, 0xc613_0002, 443, 6),
            ends(0xc612_0001, 40000, 0xc613_0002, 443, 17),
            ends(0xc612_0001, 443, 0xc613_0002, 40000, 6),
        ] {
            assert!(!other.is(&key), "{other:?}");
        }
        let mut t = FlowTable::new(64, 30_000 * MS);
        assert!(t.packet_of(t.locate(&out), &out, 100, 0).new);
        let s = t.packet_of(t.locate(&back), &back, 1500, MS);
        assert!(!s.new);
        assert_eq!((s.flow.packets, s.flow.key), (2, key));
        assert_eq!(t.get(&key).map(|f| f.bytes), Some(1600));
    }

    #[test]
    fn keys_whose_fields_grow_together_spread_over_the_table() {
        // A generator's flows: address, port and the peer's port all step
        // together (what made an XOR of the fields collapse). Each should
        // land where uniform hashing would put it: no set holds many more
        // than the mean.
        let t = FlowTable::new(1 << 16, 30_000 * MS);
        let mut per_set = vec![0u32; t.sets()];
        let mut tags = std::collections::HashSet::new();
        for i in 0..(1u32 << 15) {
            let (k, _) = FlowKey::new(
                (v4(0xc612_0000 + i), 1024 + i as u16),
                (v4(0xc613_0000 + i), 2048 + i as u16),
                17,
            );
            let slot = t.slot(&k);
            per_set[slot.sets[0] as usize] += 1;
            tags.insert((slot.sets[0], slot.tag));
        }
        // 32,768 keys in 8,192 sets: a mean of 4; a Poisson tail of 16 or
        // more is about 1e-5 per set.
        let most = per_set.iter().max().copied().unwrap_or(0);
        assert!(most < 16, "a set got {most} of 32768 keys");
        assert!(tags.len() > 32_700, "only {} distinct slots", tags.len());
    }

    #[test]
    fn both_directions_are_one_flow() {
        let (k1, d1) = FlowKey::new((v4(0xc612_0001), 40000), (v4(0xc612_0002), 443), 6);
        let (k2, d2) = FlowKey::new((v4(0xc612_0002), 443), (v4(0xc612_0001), 40000), 6);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
        let mut t = FlowTable::new(64, 30_000 * MS);
        assert!(t.packet(k1, 100, 0).new);
        let s = t.packet(k2, 1500, MS);
        assert!(!s.new);
        assert_eq!(s.flow.packets, 2);
        assert_eq!(s.flow.bytes, 1600);
    }

    /// A walk in bounded steps of sets sees every flow once, as `iter`
    /// does; ranges past the end are clamped.
    #[test]
    fn set_ranges_cover_the_table_once() {
        let mut t = FlowTable::new(256, 30_000 * MS);
        for i in 0..200u16 {
            let (k, _) = FlowKey::new((v4(0xc612_0001), 1000 + i), (v4(0xc612_0002), 80), 6);
            t.packet(k, 100 + u32::from(i), MS);
        }
        let all: Vec<FlowKey> = t.iter().map(|f| f.key).collect();
        assert_eq!(all.len() as u64, t.counters().live);
        let mut walked = Vec::new();
        let mut set = 0;
        while set < t.sets() {
            walked.extend(t.iter_sets(set..set + 3).map(|f| f.key));
            set += 3;
        }
        assert_eq!(walked, all);
        assert_eq!(t.iter_sets(t.sets()..t.sets() + 9).count(), 0);
        let (hi, lo) = (5, 2);
        assert_eq!(t.iter_sets(hi..lo).count(), 0, "an inverted range is empty");
    }

    #[test]
    fn keys_come_from_parsed_frames_both_ways() {
        let ip = frame::Ipv4 {
            src: [198, 18, 0, 1],
            dst: [198, 18, 0, 2],
            ..frame::Ipv4::default()
        };
        let back = frame::Ipv4 {
            src: ip.dst,
            dst: ip.src,
            ..frame::Ipv4::default()
        };
        let out = frame::ipv4_frame(&ip, &frame::udp(12000, 12001, &[0; 160]));
        let reply = frame::ipv4_frame(&back, &frame::udp(12001, 12000, &[0; 160]));
        let a = FlowKey::of(&parse_frame(&out).expect("parses")).expect("ip");
        let b = FlowKey::of(&parse_frame(&reply).expect("parses")).expect("ip");
        assert_eq!(a.0, b.0);
        assert_eq!((a.0.lo_port, a.0.hi_port, a.0.protocol), (12000, 12001, 17));
        let arp = frame::eth([0xff; 6], [2, 0, 0, 0, 0, 1], 0x0806);
        let arp = [arp, vec![0; 28]].concat();
        assert!(FlowKey::of(&parse_frame(&arp).expect("parses")).is_none());
    }

    /// The seed's voice flow: 160-byte payloads every 20 ms are small and
    /// regular; a bulk flow's full frames back to back are one burst.
    #[test]
    fn size_timing_and_bursts() {
        let mut t = FlowTable::new(64, 30_000 * MS);
        let voice = FlowKey::new((v4(1), 12000), (v4(2), 12001), 17).0;
        for i in 0..200 {
            t.packet(voice, 202, i * 20 * MS);
        }
        let f = *t.get(&voice).expect("held");
        assert_eq!(f.avg_size(), 202);
        assert_eq!(f.iat_mean_ns(), 20 * MS);
        assert_eq!(f.iat_var_ns2(), 0);
        assert_eq!((f.bursty(), f.regular()), (Some(false), Some(true)));
        assert_eq!(f.age(), 199 * 20 * MS);

        let bulk = FlowKey::new((v4(1), 50000), (v4(2), 873), 6).0;
        for i in 0..100 {
            // 10 packets 120 µs apart, then 50 ms of quiet.
            t.packet(bulk, 1514, (i / 10) * 50 * MS + (i % 10) * 120_000);
        }
        let f = *t.get(&bulk).expect("held");
        assert_eq!(f.avg_size(), 1514);
        // Nine short gaps and one of 50 ms in every ten: not the seed's
        // burst pattern (which wants two gaps over 100 ms).
        assert_eq!(f.bursty(), Some(false));
        assert!(f.iat_var_ns2() > 0);
        // Jittery gaps give a variance; the average follows the sizes.
        let jit = FlowKey::new((v4(3), 1), (v4(4), 2), 17).0;
        let mut now = 0;
        for i in 0..400u64 {
            now += if i % 2 == 0 { 10 * MS } else { 30 * MS };
            t.packet(jit, if i % 2 == 0 { 100 } else { 300 }, now);
        }
        let f = *t.get(&jit).expect("held");
        assert!(
            (15 * MS..25 * MS).contains(&f.iat_mean_ns()),
            "{}",
            f.iat_mean_ns()
        );
        let sd = (f.iat_var_ns2() as f64).sqrt();
        assert!((5e6..15e6).contains(&sd), "{sd}");
        assert!((150..250).contains(&f.avg_size()), "{}", f.avg_size());
    }

    /// The seed's video pattern: bursts of four frames 2 ms apart, 150 ms
    /// between bursts: at least five short gaps and two long ones in any
    /// ten. (Bursts of six would leave one long gap in some tens.)
    #[test]
    fn the_seeds_burst_pattern_and_regularity() {
        let mut t = FlowTable::new(64, 30_000 * MS);
        let video = FlowKey::new((v4(1), 5000), (v4(2), 554), 6).0;
        for i in 0..60u64 {
            t.packet(video, 1400, (i / 4) * 150 * MS + (i % 4) * 2 * MS);
        }
        let f = *t.get(&video).expect("held");
        assert_eq!(f.bursty(), Some(true));
        assert_eq!(f.regular(), Some(false));
        // Before ten gaps the pattern is unknown; before six, regularity.
        let young = FlowKey::new((v4(1), 5001), (v4(2), 554), 6).0;
        for i in 0..6u64 {
            t.packet(young, 1400, i * MS);
        }
        let f = *t.get(&young).expect("held");
        assert_eq!((f.bursty(), f.regular()), (None, None));
        t.packet(young, 1400, 6 * MS);
        assert_eq!(t.get(&young).expect("held").regular(), Some(true));
    }

    /// Bulk windows: 2,000 packets/s of 1,500 bytes close a window every
    /// second (953 ticks of 2^20 ns), each reporting its rates, within
    /// 0.2 % (the tick rounding).
    #[test]
    fn bulk_windows_report_their_rates() {
        let mut t = FlowTable::new(64, 30_000 * MS);
        let bulk = FlowKey::new((v4(1), 40000), (v4(2), 5201), 6).0;
        let mut now = 0;
        let mut closed = Vec::new();
        for _ in 0..6000 {
            if let Some(r) = t.packet(bulk, 1500, now).window {
                closed.push((now, r));
            }
            now += 500_000;
        }
        // 3 s of packets: windows close at 0.9995, 1.999 and 2.998 s.
        assert_eq!(closed.len(), 3, "{closed:?}");
        for (at, r) in &closed {
            assert!((r.pps as f64 - 2000.0).abs() <= 4.0, "{r:?}");
            assert!((r.bps as f64 - 3e6).abs() <= 6e3, "{r:?}");
            // Every 953 ticks: 0.9993 s.
            let k = (at + 500_000_000) / 1_000_000_000;
            assert!(at.abs_diff(k * 999_292_928) <= MS, "{at}");
        }
        assert_eq!(t.get(&bulk).expect("held").last_rate(), closed[2].1.bps);
    }

    #[test]
    fn a_full_set_evicts_idle_flows_first_then_the_oldest() {
        // One set: every key collides.
        let mut t = FlowTable::new(WAYS, 10 * MS);
        assert_eq!(t.capacity(), WAYS);
        let key = |i: u16| FlowKey::new((v4(1), i), (v4(2), 80), 6).0;
        for i in 0..WAYS as u16 {
            t.packet(key(i), 64, u64::from(i));
        }
        assert_eq!(t.counters().live, WAYS as u64);
        // All live (within 10 ms): the oldest (0) goes, under pressure.
        let s = t.packet(key(100), 64, MS);
        assert_eq!(
            s.evicted.map(|(f, why)| (f.key, why)),
            Some((key(0), Evicted::Pressure))
        );
        // Keep 1..7 busy, let 100 idle past the timeout.
        for i in 1..WAYS as u16 {
            t.packet(key(i), 64, 12 * MS);
        }
        let s = t.packet(key(101), 64, 12 * MS);
        assert_eq!(
            s.evicted.map(|(f, why)| (f.key, why)),
            Some((key(100), Evicted::Idle))
        );
        let c = t.counters();
        assert_eq!((c.evicted_pressure, c.evicted_idle, c.inserted), (1, 1, 10));
        assert_eq!(c.live, WAYS as u64);
        assert!(t.get(&key(0)).is_none());
        assert!(t.get(&key(101)).is_some());
    }

    #[test]
    fn expire_sweeps_a_bounded_number_of_sets() {
        let mut t = FlowTable::new(1024, 10 * MS);
        let sets = t.capacity() / WAYS;
        for i in 0..500u16 {
            t.packet(FlowKey::new((v4(1), i), (v4(2), 80), 17).0, 64, 0);
        }
        assert_eq!(t.expire(5 * MS, sets, |_| {}), 0);
        // 500 keys in 128 sets of 8: a few sets may have overflowed.
        let held = t.counters().live;
        assert_eq!(held + t.counters().evicted_pressure, 500);
        let mut gone = 0;
        let mut calls = 0;
        while t.counters().live > 0 {
            gone += t.expire(20 * MS, 16, |f| assert_eq!(f.last_seen, 0));
            calls += 1;
            assert!(calls <= sets / 16, "a whole sweep takes sets/16 calls");
        }
        assert_eq!(gone as u64, held);
        assert_eq!(t.counters().expired, held);
    }

    #[test]
    fn a_tiny_table_still_works() {
        let mut t = FlowTable::new(0, 0);
        assert_eq!(t.capacity(), WAYS);
        for i in 0..100u16 {
            let k = FlowKey::new((v4(9), i), (v4(8), i), 6).0;
            assert!(t.packet(k, 1, u64::from(i)).new);
        }
        assert_eq!(t.counters().live, WAYS as u64);
    }

    proptest::proptest! {
        /// Any sequence of packets and sweeps: the table never holds more
        /// than its capacity, `live` counts what it holds, every flow
        /// started is held, expired or evicted, and a packet's flow is
        /// held right after it.
        #[test]
        fn operations_keep_the_counts(
            ops in proptest::collection::vec((0u16..300, 0u64..5 * MS, proptest::bool::ANY, 0u8..8), 1..400),
        ) {
            let mut t = FlowTable::new(64, 20 * MS);
            let mut now = 0;
            for (port, step, sweep, sets) in ops {
                now += step;
                if sweep {
                    t.expire(now, usize::from(sets), |f| assert!(now - f.last_seen >= 20 * MS));
                } else {
                    let k = FlowKey::new((v4(7), port), (v4(8), 53), 17).0;
                    t.packet(k, u32::from(port), now);
                    proptest::prop_assert!(t.get(&k).is_some());
                }
                let held = t.tags.iter().flatten().filter(|&&tag| tag != 0).count() as u64;
                let c = t.counters();
                proptest::prop_assert_eq!(c.live, held);
                proptest::prop_assert!(held <= t.capacity() as u64);
                proptest::prop_assert_eq!(
                    c.inserted,
                    c.live + c.expired + c.evicted_idle + c.evicted_pressure
                );
            }
        }
    }
}
