//! The TOML as written: serde structs that only know TOML types, each value
//! wrapped in `Spanned` so the checks that follow can point at it.
//!
//! The document is parsed once with `toml_edit` (which keeps the byte span
//! of every key and value) and each entry — a pair, a tree's own keys, one
//! class, one filter — is deserialised on its own. serde stops at the first
//! problem of a struct, so this split is what lets one run report an unknown
//! key in one class *and* a bad rate in another.

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;
use toml_edit::{Item, Value};

use super::diag::{Ctx, Span};

/// A string (usually a number with a unit) or a bare integer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StrOrInt {
    Str(String),
    Int(i64),
}

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrOrInt, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrOrInt;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string (a number with a unit, like \"300mbit\") or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
                Ok(StrOrInt::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
                i64::try_from(v)
                    .map(StrOrInt::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number that may be written as a float or an integer (`probability`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Number(pub f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Number, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Number;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number like 0.02")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// `tos`: `"0xb8/0xfc"`, a bare byte, or `{ value = 0xb8, mask = 0xfc }`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RawTos {
    Str(String),
    Int(i64),
    Table { value: i64, mask: Option<i64> },
}

impl<'de> Deserialize<'de> for RawTos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawTos, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTos;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a TOS byte, \"value/mask\" like \"0xb8/0xfc\", or { value = 0xb8, mask = 0xfc }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTos, E> {
                Ok(RawTos::Str(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTos, E> {
                Ok(RawTos::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTos, E> {
                Ok(RawTos::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTos, A::Error> {
                let (mut value, mut mask) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "value" => value = Some(map.next_value::<i64>()?),
                        "mask" => mask = Some(map.next_value::<i64>()?),
                        other => {
                            return Err(de::Error::unknown_field(other, &["value", "mask"]));
                        }
                    }
                }
                let value = value.ok_or_else(|| de::Error::missing_field("value"))?;
                Ok(RawTos::Table { value, mask })
            }
        }
        d.deserialize_any(V)
    }
}

pub(crate) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPair {
    pub name: S<String>,
    pub inside: S<String>,
    pub outside: S<String>,
    pub upload: Option<S<String>>,
    pub download: Option<S<String>>,
    pub queues: Option<S<i64>>,
}

/// `[xdp]` (old name `[dataplane]`): how the AF_XDP workers run (`weir run`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawXdp {
    pub cores: Option<S<Vec<S<i64>>>>,
    pub batch: Option<S<i64>>,
    pub frame_size: Option<S<i64>>,
    pub frames: Option<S<i64>>,
    pub ring_size: Option<S<i64>>,
    pub handover_ring: Option<S<i64>>,
    pub busy_poll: Option<S<bool>>,
    pub worker_nice: Option<S<i64>>,
    pub worker_rtprio: Option<S<i64>>,
    pub xdp_mode: Option<S<String>>,
    pub pass: Option<S<Vec<S<String>>>>,
}

/// `[history]`: where `weir run` keeps its history database and for how
/// long (checked in `history`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHistory {
    pub path: Option<S<String>>,
    pub keep_seconds: Option<S<String>>,
    pub keep_minutes: Option<S<String>>,
    pub max_size: Option<S<StrOrInt>>,
}

/// `[subscribers]`: circuits from a ShapedDevices.csv (and its
/// network.json) compiled into a pair of trees (checked in
/// `subscribers::compile`). `leaf` written as a `[subscribers.leaf]`
/// section is taken out first to keep its spans.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubscribers {
    pub devices: S<String>,
    pub network: Option<S<String>>,
    pub download: Option<S<String>>,
    pub upload: Option<S<String>>,
    pub parent: Option<S<String>>,
    pub first_id: Option<S<String>>,
    pub prio: Option<S<i64>>,
    pub leaf: Option<S<RawQdisc>>,
    pub circuit_metrics: Option<S<bool>>,
}

/// `[slices]`: where the `[[slice]]` entries go (checked in `slices`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlices {
    pub download: Option<S<String>>,
    pub upload: Option<S<String>>,
    pub parent: Option<S<String>>,
    pub first_id: Option<S<String>>,
    pub prio: Option<S<i64>>,
}

/// One `[[slice]]` (seed section 4).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlice {
    pub name: S<String>,
    pub tenant: Option<S<String>>,
    #[serde(rename = "type")]
    pub kind: S<String>,
    pub vlan: Option<S<i64>>,
    pub prefixes: Option<S<Vec<S<String>>>>,
    pub bandwidth: S<StrOrInt>,
    pub ceil: Option<S<StrOrInt>>,
    pub max_latency: Option<S<StrOrInt>>,
    pub max_jitter: Option<S<StrOrInt>>,
    pub min_reliability: Option<S<f64>>,
    pub security: Option<S<i64>>,
    pub isolation: Option<S<i64>>,
    pub allow: Option<S<Vec<S<String>>>>,
}

/// One `[[slice_type]]`: a custom slice type, defaults for its slices.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSliceType {
    pub name: S<String>,
    pub prio: Option<S<i64>>,
    pub ceil_factor: Option<S<f64>>,
    pub leaf: Option<S<String>>,
    pub max_latency: Option<S<StrOrInt>>,
    pub max_jitter: Option<S<StrOrInt>>,
    pub min_reliability: Option<S<f64>>,
    pub security: Option<S<i64>>,
    pub isolation: Option<S<i64>>,
}

/// A tree's own keys (`class` and `filter` are taken out first and parsed
/// entry by entry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTree {
    pub link: Option<S<StrOrInt>>,
    pub default: S<String>,
    pub r2q: Option<S<i64>>,
    pub overhead: Option<S<i64>>,
    pub mpu: Option<S<i64>>,
    pub malformed: Option<S<String>>,
    pub pool: Option<S<i64>>,
    pub wash: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClass {
    pub id: S<String>,
    pub name: Option<S<String>>,
    pub parent: Option<S<String>>,
    pub rate: S<StrOrInt>,
    pub ceil: Option<S<StrOrInt>>,
    pub burst: Option<S<StrOrInt>>,
    pub cburst: Option<S<StrOrInt>>,
    pub prio: Option<S<i64>>,
    pub quantum: Option<S<StrOrInt>>,
    pub qdisc: Option<S<RawQdisc>>,
    pub dscp: Option<S<StrOrInt>>,
    pub remark: Option<S<String>>,
}

/// Every key any leaf qdisc kind takes; which ones a kind accepts is
/// checked per kind (an internally tagged enum would lose the spans).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQdisc {
    pub kind: S<String>,
    pub limit: Option<S<StrOrInt>>,
    // sfq
    pub perturb: Option<S<StrOrInt>>,
    pub quantum: Option<S<StrOrInt>>,
    pub divisor: Option<S<i64>>,
    pub flows: Option<S<i64>>,
    pub depth: Option<S<i64>>,
    // red
    pub min: Option<S<StrOrInt>>,
    pub max: Option<S<StrOrInt>>,
    pub avpkt: Option<S<StrOrInt>>,
    pub burst: Option<S<i64>>,
    pub probability: Option<S<Number>>,
    pub ecn: Option<S<bool>>,
    pub harddrop: Option<S<bool>>,
    pub adaptive: Option<S<bool>>,
    pub bandwidth: Option<S<StrOrInt>>,
    // fq_codel
    pub target: Option<S<StrOrInt>>,
    pub interval: Option<S<StrOrInt>>,
    pub ce_threshold: Option<S<StrOrInt>>,
    pub memory_limit: Option<S<StrOrInt>>,
    #[serde(alias = "drop_batch")]
    pub drop_batch_size: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    pub prio: Option<S<i64>>,
    pub flowid: Option<S<String>>,
    /// `"drop"`: tc's `action drop` (instead of a flowid).
    pub action: Option<S<String>>,
    pub protocol: Option<S<StrOrInt>>,
    pub ip_proto: Option<S<StrOrInt>>,
    pub sport: Option<S<StrOrInt>>,
    pub dport: Option<S<StrOrInt>>,
    pub src: Option<S<String>>,
    pub dst: Option<S<String>>,
    pub dscp: Option<S<StrOrInt>>,
    pub tos: Option<S<RawTos>>,
    pub vlan: Option<S<i64>>,
}

/// `[tree.NAME.apps]`: the flow table of a tree's apps (checked in `app`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAppsTable {
    pub flows: Option<S<i64>>,
    pub idle_timeout: Option<S<String>>,
    pub inspect_slots: Option<S<i64>>,
    pub inspect_packets: Option<S<i64>>,
    pub bulk_window: Option<S<String>>,
}

/// `[[tree.NAME.app]]` without its `match` entries (taken out first, each
/// parsed on its own).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub name: S<String>,
    pub class: S<String>,
    pub dscp: Option<S<StrOrInt>>,
    pub remark: Option<S<String>>,
}

/// `[[tree.NAME.app.match]]`: one rule of an app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub prio: Option<S<i64>>,
    pub protocol: Option<S<StrOrInt>>,
    pub ports: Option<S<Vec<S<StrOrInt>>>>,
    pub sni: Option<S<Vec<S<String>>>>,
    pub host: Option<S<Vec<S<String>>>>,
    pub avg_size: Option<S<StrOrInt>>,
    pub iat_variance: Option<S<String>>,
    pub regular: Option<S<bool>>,
    pub bursty: Option<S<bool>>,
    pub bulk: Option<S<RawBulk>>,
    pub long_lived: Option<S<String>>,
    pub min_packets: Option<S<i64>>,
}

/// A rule's `bulk = { pps = 2000, rate = "50mbit", hold = "5s" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBulk {
    pub pps: Option<S<i64>>,
    pub rate: Option<S<StrOrInt>>,
    pub hold: Option<S<String>>,
}

/// One `[[tree.NAME.app]]` and its rules.
#[derive(Debug)]
pub(crate) struct RawAppEntry {
    pub span: Span,
    pub app: RawApp,
    pub rules: Vec<(Span, RawMatch)>,
    /// Some rule did not deserialise (reported; it is not in `rules`).
    pub broken_rules: bool,
}

/// `[[sla]]`: a threshold rule on one interface or class and what to do
/// while it is violated (checked in `rules`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSla {
    pub name: S<String>,
    pub interface: Option<S<String>>,
    pub tree: Option<S<String>>,
    pub class: Option<S<String>>,
    pub when: S<String>,
    pub severity: Option<S<String>>,
    pub actions: Option<S<Vec<S<RawAction>>>>,
    pub restore: Option<S<bool>>,
}

/// One entry of an SLA rule's `actions`: exactly one of `log`, `exec`,
/// `throttle`, `set` (checked in `rules`; an enum would lose the spans).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    pub log: Option<S<bool>>,
    pub exec: Option<S<Vec<S<String>>>>,
    pub on: Option<S<String>>,
    pub throttle: Option<S<RawThrottle>>,
    pub set: Option<S<RawSet>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThrottle {
    pub tree: Option<S<String>>,
    pub class: Option<S<String>>,
    pub factor: S<Number>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSet {
    pub tree: Option<S<String>>,
    pub class: Option<S<String>>,
    pub rate: Option<S<StrOrInt>>,
    pub ceil: Option<S<StrOrInt>>,
}

/// `[[policy]]`: how the engine may move one class's rate and ceil.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub name: S<String>,
    pub tree: S<String>,
    pub class: S<String>,
    pub min_rate: Option<S<StrOrInt>>,
    pub max_rate: Option<S<StrOrInt>>,
    pub max_ceil: Option<S<StrOrInt>>,
    pub adjust: Option<S<RawAdjust>>,
    pub schedule: Option<S<Vec<S<RawWindow>>>>,
    pub penalty: Option<S<RawPenalty>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdjust {
    pub high: S<StrOrInt>,
    pub low: S<StrOrInt>,
    pub step: S<StrOrInt>,
    pub every: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    pub days: S<String>,
    pub hours: S<String>,
    pub rate: Option<S<StrOrInt>>,
    pub ceil: Option<S<StrOrInt>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPenalty {
    pub sla: S<String>,
    pub factor: S<Number>,
}

/// An entry that failed to deserialise still names a class id and name,
/// when it has them, so references to it don't cascade into "unknown
/// class" errors.
#[derive(Debug, Default)]
pub(crate) struct Broken {
    pub ids: Vec<String>,
    pub names: Vec<String>,
}

/// One `[tree.NAME]` as written.
#[derive(Debug)]
pub(crate) struct RawTreeEntry {
    pub name: String,
    pub name_span: Span,
    /// None when its own keys did not deserialise (already reported).
    pub tree: Option<RawTree>,
    pub span: Span,
    pub classes: Vec<(Span, RawClass)>,
    pub filters: Vec<(Span, RawFilter)>,
    /// `[tree.NAME.apps]`, when present and well-formed.
    pub apps_table: Option<(Span, RawAppsTable)>,
    /// `[[tree.NAME.app]]` entries, in file order.
    pub apps: Vec<RawAppEntry>,
    pub broken: Broken,
    /// Some class or filter entry did not deserialise.
    pub had_errors: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RawDoc {
    pub pairs: Vec<(Span, RawPair)>,
    pub trees: Vec<RawTreeEntry>,
    /// `[[pair]]` entries that did not deserialise.
    pub broken_pairs: usize,
    /// `[xdp]` (or `[dataplane]`), when present and well-formed.
    pub xdp: Option<RawXdp>,
    /// `[xdp]` was present but did not deserialise, or was given twice.
    pub broken_xdp: bool,
    /// `[history]`, when present and well-formed.
    pub history: Option<RawHistory>,
    /// `[history]` was present but did not deserialise.
    pub broken_history: bool,
    /// `[[sla]]` entries, in file order.
    pub sla: Vec<(Span, RawSla)>,
    /// `[[policy]]` entries, in file order.
    pub policies: Vec<(Span, RawPolicy)>,
    /// Names of `[[sla]]` / `[[policy]]` entries that did not deserialise,
    /// and how many had no readable name: references to them must not
    /// cascade into "unknown rule" errors.
    pub broken_rules: Broken,
    pub broken_rule_count: usize,
    /// The source text, so a check can point inside a string value (the
    /// bad token of an SLA `when` expression).
    pub source: String,
    /// `[subscribers]`, when present and well-formed, with its key's span.
    pub subscribers: Option<(Span, RawSubscribers)>,
    /// `[subscribers]` was present but did not deserialise.
    pub broken_subscribers: bool,
    /// `[slices]`, when present and well-formed, with its key's span.
    pub slices: Option<(Span, RawSlices)>,
    /// `[[slice]]` and `[[slice_type]]` entries, in file order.
    pub slice: Vec<(Span, RawSlice)>,
    pub slice_types: Vec<(Span, RawSliceType)>,
    /// `[slices]`, a `[[slice]]` or a `[[slice_type]]` did not deserialise.
    pub broken_slices: bool,
}

/// Deserialise one entry; on failure report at the error's own span, or
/// at `fallback` (the entry's header) when serde has none (missing keys).
fn entry<T: DeserializeOwned>(cx: &mut Ctx, value: Value, fallback: &Span) -> Option<T> {
    use serde::de::IntoDeserializer;
    match T::deserialize(value.into_deserializer()) {
        Ok(t) => Some(t),
        Err(e) => {
            let span = e.span().or_else(|| fallback.clone());
            cx.error(&span, describe_serde(e.message()));
            None
        }
    }
}

/// serde's messages say what was found and what was expected; make them
/// read like the rest ("…; expected …").
fn describe_serde(msg: &str) -> String {
    let msg = msg.trim_end();
    // serde_spanned's way of saying it got a standard table where a value
    // belongs.
    if msg.contains("expected a borrowed string") {
        return "a table is not allowed here; expected a value".to_string();
    }
    if let Some((what, expected)) = msg.split_once(", expected ") {
        format!("{what}; expected {expected}")
    } else if let Some(field) = msg.strip_prefix("missing field ") {
        format!("missing key {field}; it is required here")
    } else {
        msg.to_string()
    }
}

/// Key/value entries of a table (standard or inline), in file order, with
/// each key's span.
fn table_entries(item: &Item) -> Option<Vec<(String, Span, Item)>> {
    match item {
        Item::Table(t) => Some(
            t.iter()
                .map(|(k, v)| (k.to_string(), t.key(k).and_then(|k| k.span()), v.clone()))
                .collect(),
        ),
        Item::Value(Value::InlineTable(t)) => Some(
            t.iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        t.key(k).and_then(|k| k.span()),
                        Item::Value(v.clone()),
                    )
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Entries of an array of tables (`[[x]]` or `x = [{..}, {..}]`), each
/// with its span.
fn array_entries(item: &Item) -> Option<Vec<(Span, Item)>> {
    match item {
        Item::ArrayOfTables(a) => Some(
            a.iter()
                .map(|t| (t.span(), Item::Table(t.clone())))
                .collect(),
        ),
        Item::Value(Value::Array(a)) => Some(
            a.iter()
                .map(|v| (v.span(), Item::Value(v.clone())))
                .collect(),
        ),
        _ => None,
    }
}

/// What [`take_subtable`] found.
enum Sub<T> {
    Absent,
    Parsed(Spanned<T>),
    Failed,
}

/// Take a standard sub-table (`[tree.t.class.qdisc]` under a
/// `[[tree.t.class]]`) out of an entry and deserialise it on its own.
/// Needed because a standard table loses its span when the entry is turned
/// into a value, and `Spanned` can't be deserialised without one; inline
/// tables keep theirs and are left in place.
fn take_subtable<T: DeserializeOwned>(cx: &mut Ctx, entry: &mut Item, key: &str) -> Sub<T> {
    let Item::Table(t) = entry else {
        return Sub::Absent;
    };
    if !matches!(t.get(key), Some(Item::Table(_))) {
        return Sub::Absent;
    }
    let Some(sub) = t.remove(key) else {
        return Sub::Absent;
    };
    let span = sub.span();
    let Ok(v) = sub.into_value() else {
        return Sub::Absent;
    };
    match self::entry::<T>(cx, v, &span) {
        Some(x) => Sub::Parsed(Spanned::new(span.unwrap_or(0..0), x)),
        None => Sub::Failed,
    }
}

/// Take an array of standard sub-tables (`[[policy.schedule]]` under a
/// `[[policy]]`) out of an entry and deserialise each on its own, for the
/// same reason as [`take_subtable`]: written that way, they lose their
/// spans when the entry becomes a value. Inline arrays stay in place.
fn take_subtables<T: DeserializeOwned>(
    cx: &mut Ctx,
    entry: &mut Item,
    key: &str,
) -> Sub<Vec<Spanned<T>>> {
    let Item::Table(t) = entry else {
        return Sub::Absent;
    };
    if !matches!(t.get(key), Some(Item::ArrayOfTables(_))) {
        return Sub::Absent;
    }
    let key_span = t.key(key).and_then(|k| k.span());
    let Some(Item::ArrayOfTables(a)) = t.remove(key) else {
        return Sub::Absent;
    };
    let mut out = Vec::new();
    let mut failed = false;
    for sub in a.iter() {
        let span = sub.span().or_else(|| key_span.clone());
        let v = Value::InlineTable(sub.clone().into_inline_table());
        match self::entry::<T>(cx, v, &span) {
            Some(x) => out.push(Spanned::new(span.unwrap_or(0..0), x)),
            None => failed = true,
        }
    }
    if failed {
        return Sub::Failed;
    }
    let all = key_span.or_else(|| out.first().map(|x| x.span()));
    Sub::Parsed(Spanned::new(all.unwrap_or(0..0), out))
}

/// An entry item as a value, for serde.
fn entry_value(item: Item) -> Option<Value> {
    item.into_value().ok()
}

fn remove_key(item: &mut Item, key: &str) -> Option<(Span, Item)> {
    match item {
        Item::Table(t) => {
            let span = t.key(key).and_then(|k| k.span());
            t.remove(key).map(|v| (span, v))
        }
        Item::Value(Value::InlineTable(t)) => {
            let span = t.key(key).and_then(|k| k.span());
            t.remove(key).map(|v| (span, Item::Value(v)))
        }
        _ => None,
    }
}

fn str_key(v: &Value, key: &str) -> Option<String> {
    v.as_inline_table()?.get(key)?.as_str().map(str::to_string)
}

/// Parse the document structure and every entry. Syntax errors end the run
/// (nothing after them is trustworthy); entry errors are collected.
pub(crate) fn parse(cx: &mut Ctx, text: &str) -> Option<RawDoc> {
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let msg = e.message().trim().replace('\n', "; ");
            cx.error(&e.span(), format!("TOML syntax: {msg}"));
            return None;
        }
    };
    let root = doc.as_table();
    let mut out = RawDoc {
        source: text.to_string(),
        ..RawDoc::default()
    };
    // The `[xdp]` key as first written (`xdp` or its old name `dataplane`).
    let mut xdp_key: Option<&str> = None;
    for (key, item) in root.iter() {
        let key_span = root.key(key).and_then(|k| k.span());
        match key {
            "pair" => {
                let Some(entries) = array_entries(item) else {
                    cx.error(
                        &key_span,
                        "`pair` must be an array of tables; expected [[pair]] sections",
                    );
                    continue;
                };
                for (span, item) in entries {
                    let fallback = span.clone().or_else(|| key_span.clone());
                    let Some(v) = entry_value(item) else { continue };
                    match entry::<RawPair>(cx, v, &fallback) {
                        Some(p) => out.pairs.push((fallback, p)),
                        None => out.broken_pairs += 1,
                    }
                }
            }
            "tree" => {
                let Some(trees) = table_entries(item) else {
                    cx.error(
                        &key_span,
                        "`tree` must be a table of trees; expected [tree.NAME] sections",
                    );
                    continue;
                };
                for (name, name_span, tree_item) in trees {
                    if let Some(t) = parse_tree(cx, name, name_span, tree_item) {
                        out.trees.push(t);
                    }
                }
            }
            // `dataplane` is the old name of `xdp`, still read so existing
            // files keep working; the crate `weir-dataplane` is the shaping
            // core, not this.
            "xdp" | "dataplane" => {
                if let Some(first) = xdp_key {
                    cx.error(
                        &key_span,
                        format!("[{key}] given as well as [{first}]: they are one section ([dataplane] is the old name of [xdp]); expected only [xdp]"),
                    );
                    out.broken_xdp = true;
                    continue;
                }
                xdp_key = Some(key);
                let fallback = key_span.clone();
                let ok = matches!(item, Item::Table(_) | Item::Value(Value::InlineTable(_)));
                let parsed = if ok {
                    entry_value(item.clone()).and_then(|v| entry::<RawXdp>(cx, v, &fallback))
                } else {
                    cx.error(
                        &key_span,
                        format!("`{key}` must be a table; expected a [{key}] section"),
                    );
                    None
                };
                match parsed {
                    Some(d) => out.xdp = Some(d),
                    None => out.broken_xdp = true,
                }
            }
            "history" => {
                let fallback = key_span.clone();
                let ok = matches!(item, Item::Table(_) | Item::Value(Value::InlineTable(_)));
                let parsed = if ok {
                    entry_value(item.clone()).and_then(|v| entry::<RawHistory>(cx, v, &fallback))
                } else {
                    cx.error(
                        &key_span,
                        "`history` must be a table; expected a [history] section",
                    );
                    None
                };
                match parsed {
                    Some(h) => out.history = Some(h),
                    None => out.broken_history = true,
                }
            }
            "subscribers" => {
                let fallback = key_span.clone();
                let mut item = item.clone();
                let parsed = if matches!(item, Item::Table(_) | Item::Value(Value::InlineTable(_))) {
                    let leaf = take_subtable::<RawQdisc>(cx, &mut item, "leaf");
                    let s = entry_value(item).and_then(|v| entry::<RawSubscribers>(cx, v, &fallback));
                    match (s, leaf) {
                        (Some(mut s), Sub::Parsed(l)) => {
                            s.leaf = Some(l);
                            Some(s)
                        }
                        (s, Sub::Absent) => s,
                        _ => None,
                    }
                } else {
                    cx.error(
                        &key_span,
                        "`subscribers` must be a table; expected a [subscribers] section",
                    );
                    None
                };
                match parsed {
                    Some(s) => out.subscribers = Some((fallback, s)),
                    None => out.broken_subscribers = true,
                }
            }
            "slices" => {
                let fallback = key_span.clone();
                let parsed = if matches!(item, Item::Table(_) | Item::Value(Value::InlineTable(_))) {
                    entry_value(item.clone()).and_then(|v| entry::<RawSlices>(cx, v, &fallback))
                } else {
                    cx.error(&key_span, "`slices` must be a table; expected a [slices] section");
                    None
                };
                match parsed {
                    Some(s) => out.slices = Some((fallback, s)),
                    None => out.broken_slices = true,
                }
            }
            "slice" | "slice_type" => {
                let Some(entries) = array_entries(item) else {
                    cx.error(
                        &key_span,
                        format!("`{key}` must be an array of tables; expected [[{key}]] sections"),
                    );
                    out.broken_slices = true;
                    continue;
                };
                for (span, item) in entries {
                    let fallback = span.clone().or_else(|| key_span.clone());
                    let Some(v) = entry_value(item) else { continue };
                    let ok = if key == "slice" {
                        entry::<RawSlice>(cx, v, &fallback).map(|r| out.slice.push((fallback, r)))
                    } else {
                        entry::<RawSliceType>(cx, v, &fallback)
                            .map(|r| out.slice_types.push((fallback, r)))
                    };
                    out.broken_slices |= ok.is_none();
                }
            }
            "sla" | "policy" => {
                let Some(entries) = array_entries(item) else {
                    cx.error(
                        &key_span,
                        format!("`{key}` must be an array of tables; expected [[{key}]] sections"),
                    );
                    out.broken_rule_count += 1;
                    continue;
                };
                for (span, mut item) in entries {
                    let fallback = span.clone().or_else(|| key_span.clone());
                    if key == "sla" {
                        let Some(v) = entry_value(item) else { continue };
                        let name = str_key(&v, "name");
                        match entry::<RawSla>(cx, v, &fallback) {
                            Some(r) => out.sla.push((fallback, r)),
                            None => broken_rule(&mut out, name),
                        }
                    } else {
                        // `[policy.adjust]` / `[policy.penalty]` written as
                        // standard tables lose their spans in the value.
                        let adjust = take_subtable::<RawAdjust>(cx, &mut item, "adjust");
                        let penalty = take_subtable::<RawPenalty>(cx, &mut item, "penalty");
                        let schedule = take_subtables::<RawWindow>(cx, &mut item, "schedule");
                        let Some(v) = entry_value(item) else { continue };
                        let name = str_key(&v, "name");
                        let failed = matches!(adjust, Sub::Failed)
                            || matches!(penalty, Sub::Failed)
                            || matches!(schedule, Sub::Failed);
                        match entry::<RawPolicy>(cx, v, &fallback) {
                            Some(mut p) if !failed => {
                                if let Sub::Parsed(a) = adjust {
                                    p.adjust = Some(a);
                                }
                                if let Sub::Parsed(q) = penalty {
                                    p.penalty = Some(q);
                                }
                                if let Sub::Parsed(w) = schedule {
                                    p.schedule = Some(w);
                                }
                                out.policies.push((fallback, p));
                            }
                            _ => broken_rule(&mut out, name),
                        }
                    }
                }
            }
            other => cx.error(
                &key_span,
                format!("unknown top-level key `{other}`; expected [[pair]], [xdp], [history], [tree.NAME], [subscribers], [slices], [[slice]], [[slice_type]], [[sla]] or [[policy]]"),
            ),
        }
    }
    Some(out)
}

fn broken_rule(out: &mut RawDoc, name: Option<String>) {
    out.broken_rule_count += 1;
    out.broken_rules.names.extend(name);
}

fn parse_tree(cx: &mut Ctx, name: String, name_span: Span, mut item: Item) -> Option<RawTreeEntry> {
    if table_entries(&item).is_none() {
        cx.error(
            &name_span,
            format!("tree `{name}` must be a table; expected a [tree.{name}] section"),
        );
        return None;
    }
    let span = item.span().or_else(|| name_span.clone());
    let class_item = remove_key(&mut item, "class");
    let filter_item = remove_key(&mut item, "filter");
    let apps_item = remove_key(&mut item, "apps");
    let app_item = remove_key(&mut item, "app");
    let mut t = RawTreeEntry {
        name,
        name_span,
        tree: None,
        span: span.clone(),
        classes: Vec::new(),
        filters: Vec::new(),
        apps_table: None,
        apps: Vec::new(),
        broken: Broken::default(),
        had_errors: false,
    };
    if let Ok(v) = item.into_value() {
        t.tree = entry::<RawTree>(cx, v, &span);
    }
    if let Some((key_span, ci)) = class_item {
        match array_entries(&ci) {
            None => {
                t.had_errors = true;
                cx.error(
                    &key_span,
                    format!(
                        "`class` must be an array of tables; expected [[tree.{}.class]] sections",
                        t.name
                    ),
                );
            }
            Some(entries) => {
                for (s, mut item) in entries {
                    let fallback = s.or_else(|| key_span.clone());
                    let qdisc = take_subtable::<RawQdisc>(cx, &mut item, "qdisc");
                    let Some(v) = entry_value(item) else { continue };
                    let (id, nm) = (str_key(&v, "id"), str_key(&v, "name"));
                    let parsed = entry::<RawClass>(cx, v, &fallback);
                    match (parsed, qdisc) {
                        (Some(mut c), Sub::Parsed(q)) => {
                            c.qdisc = Some(q);
                            t.classes.push((fallback, c));
                        }
                        (Some(c), Sub::Absent) => t.classes.push((fallback, c)),
                        (_, _) => {
                            t.had_errors = true;
                            t.broken.ids.extend(id);
                            t.broken.names.extend(nm);
                        }
                    }
                }
            }
        }
    }
    if let Some((key_span, fi)) = filter_item {
        match array_entries(&fi) {
            None => {
                t.had_errors = true;
                cx.error(
                    &key_span,
                    format!(
                        "`filter` must be an array of tables; expected [[tree.{}.filter]] sections",
                        t.name
                    ),
                );
            }
            Some(entries) => {
                for (s, mut item) in entries {
                    let fallback = s.or_else(|| key_span.clone());
                    let tos = take_subtable::<RawTos>(cx, &mut item, "tos");
                    let Some(v) = entry_value(item) else { continue };
                    match (entry::<RawFilter>(cx, v, &fallback), tos) {
                        (Some(mut f), Sub::Parsed(tos)) => {
                            f.tos = Some(tos);
                            t.filters.push((fallback, f));
                        }
                        (Some(f), Sub::Absent) => t.filters.push((fallback, f)),
                        (_, _) => t.had_errors = true,
                    }
                }
            }
        }
    }
    if let Some((key_span, ai)) = apps_item {
        parse_apps_table(cx, &mut t, key_span, ai);
    }
    if let Some((key_span, ai)) = app_item {
        parse_apps(cx, &mut t, key_span, ai);
    }
    Some(t)
}

/// `[tree.NAME.apps]`, a standard or an inline table.
fn parse_apps_table(cx: &mut Ctx, t: &mut RawTreeEntry, key_span: Span, item: Item) {
    if !matches!(item, Item::Table(_) | Item::Value(Value::InlineTable(_))) {
        t.had_errors = true;
        cx.error(
            &key_span,
            format!(
                "`apps` must be a table; expected a [tree.{0}.apps] section (the flow table; each app is a [[tree.{0}.app]])",
                t.name
            ),
        );
        return;
    }
    let span = item.span().or_else(|| key_span.clone());
    match entry_value(item).and_then(|v| entry::<RawAppsTable>(cx, v, &span)) {
        Some(a) => t.apps_table = Some((span, a)),
        None => t.had_errors = true,
    }
}

/// `[[tree.NAME.app]]` entries and their `[[tree.NAME.app.match]]` rules;
/// every entry is deserialised on its own, so one bad rule doesn't hide
/// the problems of the next.
fn parse_apps(cx: &mut Ctx, t: &mut RawTreeEntry, key_span: Span, item: Item) {
    let Some(entries) = array_entries(&item) else {
        t.had_errors = true;
        cx.error(
            &key_span,
            format!(
                "`app` must be an array of tables; expected [[tree.{}.app]] sections",
                t.name
            ),
        );
        return;
    };
    for (s, mut item) in entries {
        let fallback = s.or_else(|| key_span.clone());
        let mut rules = Vec::new();
        let mut failed = false;
        if let Some((match_span, mi)) = remove_key(&mut item, "match") {
            match array_entries(&mi) {
                None => {
                    failed = true;
                    cx.error(
                        &match_span,
                        format!(
                            "`match` must be an array of tables; expected [[tree.{}.app.match]] sections",
                            t.name
                        ),
                    );
                }
                Some(ms) => {
                    for (ms_span, mut m) in ms {
                        let m_fallback = ms_span.or_else(|| match_span.clone());
                        let bulk = take_subtable::<RawBulk>(cx, &mut m, "bulk");
                        let Some(v) = entry_value(m) else { continue };
                        match (entry::<RawMatch>(cx, v, &m_fallback), bulk) {
                            (Some(mut r), Sub::Parsed(b)) => {
                                r.bulk = Some(b);
                                rules.push((m_fallback, r));
                            }
                            (Some(r), Sub::Absent) => rules.push((m_fallback, r)),
                            (_, _) => failed = true,
                        }
                    }
                }
            }
        }
        // A rule that did not deserialise fails the tree, but the app and
        // its other rules are still checked, so one run reports them all.
        t.had_errors |= failed;
        let Some(v) = entry_value(item) else { continue };
        match entry::<RawApp>(cx, v, &fallback) {
            Some(app) => t.apps.push(RawAppEntry {
                span: fallback,
                app,
                rules,
                broken_rules: failed,
            }),
            None => t.had_errors = true,
        }
    }
}

/// The span of a `Spanned` value, as a diagnostic position.
pub(crate) fn sp<T>(s: &Spanned<T>) -> Span {
    Some(s.span())
}
