//! What a tree's apps are (issue 12, item 2): the spec the configuration
//! compiles to and [`super::Apps`] is built from.
//!
//! An app has a name, the leaf class its flows go to and an optional DSCP
//! remark. It is recognised by rules: a rule is a conjunction of matchers
//! (protocol, ports, server names, HTTP hosts, behaviour), and an app may
//! have several rules (any of them). Rules are evaluated in the order of
//! [`AppsSpec::rules`]; the config sorts them by `prio`, then by position in
//! the file, as tc sorts filters.

use crate::remark::Remark;

use super::glob::Glob;

/// Everything the apps of one tree need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppsSpec {
    /// Indexed by app id ([`RuleSpec::app`]).
    pub apps: Vec<AppSpec>,
    /// In evaluation order.
    pub rules: Vec<RuleSpec>,
    /// Flow table entries (allocated once, at build).
    pub flows: u32,
    /// A flow idle this long is forgotten, ns.
    pub idle_timeout: u64,
    /// Reassembly buffers for first flights that span several packets
    /// (a TLS ClientHello over two TCP segments, a QUIC ClientHello over two
    /// Initials): how many flows can be inspected that way at once.
    pub inspect_slots: u32,
    /// How many packets of a flow the name parsers (SNI, Host) look at
    /// before a rule that waits for a name gives up on it.
    pub inspect_packets: u32,
    /// The window over which [`Bulk`] triggers measure a flow's rate, ns
    /// (> 0; one window for the tree, as qosify has one).
    pub bulk_window: u64,
}

impl AppsSpec {
    /// Defaults for the table's size and timeouts, no apps.
    pub fn empty() -> AppsSpec {
        AppsSpec {
            apps: Vec::new(),
            rules: Vec::new(),
            flows: DEFAULT_FLOWS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            inspect_slots: DEFAULT_INSPECT_SLOTS,
            inspect_packets: DEFAULT_INSPECT_PACKETS,
            bulk_window: DEFAULT_BULK_WINDOW,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// 65,536 flows: 8 MB of flow table per tree.
pub const DEFAULT_FLOWS: u32 = 1 << 16;
/// 60 s, conntrack's UDP stream timeout order of magnitude, and long enough
/// that a paused TCP connection keeps its app.
pub const DEFAULT_IDLE_TIMEOUT: u64 = 60_000_000_000;
/// 1,024 flights in reassembly at once (2.3 MB).
pub const DEFAULT_INSPECT_SLOTS: u32 = 1024;
/// A TLS ClientHello is the fourth packet of a TCP connection (after the
/// handshake), a QUIC Initial the first; 8 leaves room for a split hello
/// and a retransmission.
pub const DEFAULT_INSPECT_PACKETS: u32 = 8;

/// One app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSpec {
    pub name: String,
    /// The leaf class (an index into the tree's classes) its flows go to.
    pub class: u32,
    /// What to do to the DSCP of its packets on the way out.
    pub remark: Option<Remark>,
}

/// One rule: every matcher that is given must hold (logical AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSpec {
    /// The app (index into [`AppsSpec::apps`]) a flow matching this gets.
    pub app: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub protocol: Option<u8>,
    /// Inclusive port ranges; either endpoint's port may match (a flow is
    /// both directions, so "from port 80" and "to port 80" are one flow).
    pub ports: Vec<(u16, u16)>,
    /// Server names (TLS or QUIC SNI); any may match.
    pub sni: Vec<Glob>,
    /// HTTP/1 `Host` values (without a port); any may match.
    pub host: Vec<Glob>,
    pub behaviour: Behaviour,
}

impl RuleSpec {
    /// Whether the rule needs anything but the first packet's headers.
    pub fn waits(&self) -> bool {
        !self.sni.is_empty() || !self.host.is_empty() || self.behaviour.is_some()
    }
}

/// Matchers on what a flow does. Statistics are over both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behaviour {
    /// Average packet size, bytes, inclusive.
    pub avg_size: Option<(u32, u32)>,
    /// The inter-arrival time's variance is below this, ns².
    pub iat_variance_below: Option<u64>,
    /// None of the last five gaps reached 100 ms (the seed's "regular
    /// timing": `max(inter_arrival_times[-5:]) < 0.1`).
    pub regular: Option<bool>,
    /// The seed's burst pattern: of the last ten gaps, at least five under
    /// 10 ms and at least two over 100 ms.
    pub bursty: Option<bool>,
    /// Bulk, as qosify detects it: over `window`, the flow carried at
    /// least the given packets or bytes per second.
    pub bulk: Option<Bulk>,
    /// The flow has lasted at least this long, ns.
    pub long_lived: Option<u64>,
    /// The statistics-based matchers (size, variance, regular, bursty) are
    /// known from this many packets on (the seed waits for more than ten
    /// inter-arrival times: 11 packets).
    pub min_packets: u32,
}

impl Behaviour {
    pub fn is_some(&self) -> bool {
        self.avg_size.is_some()
            || self.iat_variance_below.is_some()
            || self.regular.is_some()
            || self.bursty.is_some()
            || self.bulk.is_some()
            || self.long_lived.is_some()
    }
}

/// The seed's voice rule waits for more than ten inter-arrival times.
pub const DEFAULT_MIN_PACKETS: u32 = 11;

/// A bulk trigger. A flow whose rate over one [`AppsSpec::bulk_window`]
/// reaches `pps` or `bytes_per_sec` (whichever is given; either suffices)
/// is bulk, and stays bulk until it has been under the trigger for `hold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bulk {
    pub pps: Option<u32>,
    pub bytes_per_sec: Option<u64>,
    /// How long a bulk flow stays bulk below the trigger, ns.
    pub hold: u64,
}

/// qosify's defaults: 1 s windows, and a flow stays bulk 5 s after it calms.
pub const DEFAULT_BULK_WINDOW: u64 = 1_000_000_000;
pub const DEFAULT_BULK_HOLD: u64 = 5_000_000_000;
