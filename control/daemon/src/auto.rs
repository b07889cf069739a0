//! The once-a-second automation on the control thread: the policy engine's
//! inputs read from two ticks' typed stats ([`weir_api::Stats`], the same the
//! metrics and `weir top` read) and the ports' kernel counters,
//! its decisions carried out (class changes through the data path, hooks
//! run off-thread with a timeout, log lines), and everything worth keeping
//! written to the history database.
//!
//! Nothing here runs on the packet path: a class change is one message to
//! the tree's owner worker, exactly as `weir class change` sends it.
//! Engine changes touch rate and ceil only; burst, cburst and quantum stay
//! as configured, so a policy that moves a class never changes how bursty
//! it may be.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir_api::snapshot::{ClassStats, TreeStats};
use weir_api::Stats;
use weir_xdp::datapath::DataPath;

use weir_config::rules::{Severity, Weekday};
use weir_config::{Config, Rate};
use weir_history::{AppSample, ClassSample, History, IfaceSample, Record};
use weir_policy::{
    ClassMetrics, Decision, Engine, InterfaceMetrics, LocalTime, Metrics, TreeMetrics,
};

/// How long an `exec` hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Hooks running at once; more are skipped (and logged), so a hook that
/// hangs can't pile up processes once a second.
pub const MAX_HOOKS: usize = 4;

/// Where the local wall-clock time that schedules follow comes from.
#[derive(Clone, Debug)]
pub enum LocalClock {
    /// The box's clock and time zone (`TZ`, else /etc/localtime).
    System,
    /// Lab tests: `mon 08:00` read from this file every tick.
    File(PathBuf),
}

impl LocalClock {
    /// The local time now. A file that can't be read or parsed is an
    /// error; the caller logs it and keeps the system clock.
    pub fn now(&self) -> Result<LocalTime, ClockError> {
        match self {
            LocalClock::System => Ok(system_local_time()),
            LocalClock::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ClockError::Read {
                    path: path.clone(),
                    // Kept as text: the error is compared with the last
                    // one so that it is logged once, not every second.
                    error: e.to_string(),
                })?;
                parse_local_time(&text).ok_or_else(|| ClockError::Parse {
                    path: path.clone(),
                    text: text.trim().to_string(),
                })
            }
        }
    }
}

/// Why the clock file gave no local time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("clock file {}: {error}", path.display())]
    Read { path: PathBuf, error: String },
    #[error("clock file {}: \"{text}\" is not a local time; expected e.g. `mon 08:00`", path.display())]
    Parse { path: PathBuf, text: String },
}

/// `mon 08:00` (day names as in schedules, any case; 24-hour time).
pub fn parse_local_time(s: &str) -> Option<LocalTime> {
    let mut words = s.split_whitespace();
    let day = words.next()?.to_ascii_lowercase();
    let time = words.next()?;
    if words.next().is_some() {
        return None;
    }
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let weekday = Weekday::ALL
        .into_iter()
        .find(|d| d.name() == day || FULL[d.index()] == day)?;
    let (h, m) = time.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then(|| LocalTime::new(weekday, h, m))
}

// The libc crate declares tzset for Windows only; glibc and musl have it
// (POSIX), with this signature.
extern "C" {
    fn tzset();
}

fn system_local_time() -> LocalTime {
    // SAFETY: time(NULL) only returns the current time.
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to
    // overwrite (plain integers and a null zone pointer).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the
    // thread-safe variant and keeps no reference to them.
    let ok = !unsafe { libc::localtime_r(&t, &mut tm) }.is_null();
    if !ok {
        // Only when the time is unrepresentable; UTC midnight Monday is as
        // good a guess as any, and schedules then simply don't match.
        return LocalTime::new(Weekday::Mon, 0, 0);
    }
    // tm_wday: 0 is Sunday; Weekday counts from Monday.
    let weekday = Weekday::from_index((tm.tm_wday as usize + 6) % 7);
    LocalTime::new(weekday, tm.tm_hour as u16, tm.tm_min as u16)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A port's kernel counters (/sys/class/net/IF/statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct PortCounters {
    rx_bytes: u64,
    tx_bytes: u64,
    rx_packets: u64,
    tx_packets: u64,
    rx_errors: u64,
    tx_errors: u64,
    rx_dropped: u64,
    tx_dropped: u64,
}

impl PortCounters {
    fn read(ifname: &str) -> PortCounters {
        // A counter /sys does not give counts as 0: its deltas stay 0.
        let k = crate::json::kernel_counters(ifname);
        PortCounters {
            rx_bytes: k.rx_bytes.unwrap_or(0),
            tx_bytes: k.tx_bytes.unwrap_or(0),
            rx_packets: k.rx_packets.unwrap_or(0),
            tx_packets: k.tx_packets.unwrap_or(0),
            rx_errors: k.rx_errors.unwrap_or(0),
            tx_errors: k.tx_errors.unwrap_or(0),
            rx_dropped: k.rx_dropped.unwrap_or(0),
            tx_dropped: k.tx_dropped.unwrap_or(0),
        }
    }
}

/// A counter's increase; after a reset (a rebuilt tree, a re-created
/// interface) the new value is the increase.
fn delta(now: u64, before: u64) -> u64 {
    now.checked_sub(before).unwrap_or(now)
}

/// Per app of every tree with apps, what it did between `prev` and `snap`
/// (matched by tree and app name: a reload that renames or reorders apps
/// starts their counters again, seen as a drop of the counter).
pub(crate) fn app_samples(snap: &Stats, prev: &Stats, interval_ns: u64) -> Vec<AppSample> {
    let mut out = Vec::new();
    for t in &snap.trees {
        let Some(apps) = &t.apps else { continue };
        let before = prev.tree(&t.name).and_then(|b| b.apps.as_ref());
        for a in &apps.apps {
            let b = before.and_then(|b| b.apps.iter().find(|x| x.name == a.name));
            let d = |f: fn(&weir_api::snapshot::AppStats) -> u64| delta(f(a), b.map_or(0, f));
            let bytes = d(|x| x.bytes);
            out.push(AppSample {
                tree: t.name.clone(),
                app: a.name.clone(),
                class: a.class.clone(),
                flows: d(|x| x.flows),
                bytes,
                packets: d(|x| x.packets),
                drops: d(|x| x.drops),
                rate_bps: (u128::from(bytes) * 8_000_000_000 / u128::from(interval_ns.max(1)))
                    as u64,
            });
        }
    }
    out
}

fn per_sec(n: u64, interval_ns: u64) -> u64 {
    if interval_ns == 0 {
        return 0;
    }
    (u128::from(n) * 1_000_000_000 / u128::from(interval_ns)) as u64
}

/// One port and the tree that shapes traffic out of it.
#[derive(Clone, Debug)]
struct Port {
    name: String,
    egress_tree: Option<usize>,
    last: Option<PortCounters>,
}

fn ports(config: &Config) -> Vec<Port> {
    let mut out = Vec::new();
    for p in &config.pairs {
        out.push(Port {
            name: p.inside.clone(),
            egress_tree: p.download.map(|t| t as usize),
            last: None,
        });
        out.push(Port {
            name: p.outside.clone(),
            egress_tree: p.upload.map(|t| t as usize),
            last: None,
        });
    }
    out
}

/// Runs `exec` hooks without a shell, stdout and stderr into weir's
/// stderr (the journal under systemd), killed after [`HOOK_TIMEOUT`].
#[derive(Clone, Debug, Default)]
struct Hooks {
    running: Arc<AtomicUsize>,
}

impl Hooks {
    fn run(&self, rule: &str, argv: &[String]) {
        let Some((program, args)) = argv.split_first() else {
            return;
        };
        if self.running.fetch_add(1, Ordering::SeqCst) >= MAX_HOOKS {
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(
                rule,
                "SLA hook {program} not run: {MAX_HOOKS} hooks are still running"
            );
            return;
        }
        let stderr = || {
            std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_or_else(|_| Stdio::null(), Stdio::from)
        };
        let spawned = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stderr())
            .stderr(stderr())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                self.running.fetch_sub(1, Ordering::SeqCst);
                tracing::error!(
                    rule,
                    "SLA hook {program}: can't start it: {e}; check the path in the rule's exec and that it is executable"
                );
                return;
            }
        };
        let running = Arc::clone(&self.running);
        let (rule, program) = (rule.to_string(), program.clone());
        let waiter = std::thread::Builder::new()
            .name("weir-hook".into())
            .spawn(move || {
                let deadline = Instant::now() + HOOK_TIMEOUT;
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) if status.success() => {
                            tracing::debug!(rule, "SLA hook {program} done");
                            break;
                        }
                        Ok(Some(status)) => {
                            tracing::warn!(rule, "SLA hook {program} failed: {status}");
                            break;
                        }
                        Ok(None) if Instant::now() >= deadline => {
                            let _ = child.kill();
                            let _ = child.wait();
                            tracing::warn!(
                                rule,
                                "SLA hook {program} killed after {}s",
                                HOOK_TIMEOUT.as_secs()
                            );
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                        Err(e) => {
                            tracing::warn!(rule, "SLA hook {program}: {e}");
                            break;
                        }
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = waiter {
            // The child runs on unwatched; it is reaped when weir exits.
            self.running.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("SLA hook: no thread to watch it: {e}");
        }
    }
}

/// The policy engine and what it needs between ticks.
pub(super) struct Automation {
    engine: Engine,
    clock: LocalClock,
    /// The last clock-file error logged, so it is logged once, not every
    /// second.
    clock_error: Option<ClockError>,
    hooks: Hooks,
    ports: Vec<Port>,
    /// Whether anything is configured for the engine to do.
    active: bool,
}

impl Automation {
    pub(super) fn new(config: &Config, clock: LocalClock) -> Automation {
        if matches!(clock, LocalClock::System) {
            // SAFETY: tzset only reads TZ and /etc/localtime into libc's
            // globals; it runs before any other thread calls localtime_r.
            unsafe { tzset() };
        }
        Automation {
            engine: Engine::new(config),
            clock,
            clock_error: None,
            hooks: Hooks::default(),
            ports: ports(config),
            active: !config.sla.is_empty() || !config.policies.is_empty(),
        }
    }

    /// A new configuration is in force (reload): open violations are
    /// closed, every class is back at its configured values and the engine
    /// starts over from them.
    pub(super) fn reset(&mut self, config: &Config, history: Option<&History>, why: &str) {
        self.close_open(history, why);
        self.engine = Engine::new(config);
        self.active = !config.sla.is_empty() || !config.policies.is_empty();
        let old: HashMap<String, Option<PortCounters>> =
            self.ports.drain(..).map(|p| (p.name, p.last)).collect();
        self.ports = ports(config);
        for p in &mut self.ports {
            p.last = old.get(&p.name).copied().flatten();
        }
    }

    /// Close the violations still open in the history (reload, stop).
    pub(super) fn close_open(&mut self, history: Option<&History>, why: &str) {
        let open = self.engine.open_violations();
        if open.is_empty() {
            return;
        }
        for (rule, _) in &open {
            tracing::info!(rule = rule.as_str(), "SLA {rule} closed: {why}");
        }
        if let Some(h) = history {
            h.record(Record::ResolveAll {
                at_unix_ms: unix_ms(),
                why: why.to_string(),
            });
        }
    }

    /// The rules open now, with how long (for the stats JSON).
    pub(super) fn open_rules(&self) -> Vec<(String, u64)> {
        self.engine.open_violations()
    }

    /// One second: measure, decide, act, record. `config` is updated with
    /// every class change applied.
    pub(super) fn tick(
        &mut self,
        config: &mut Config,
        datapath: &DataPath,
        snap: &Stats,
        prev: Option<&Stats>,
        history: Option<&History>,
    ) {
        let at_unix_ms = unix_ms();
        let interval_ns = prev.map_or(0, |p| snap.at_ns.saturating_sub(p.at_ns));
        let mut classes = Vec::new();
        let mut trees = Vec::with_capacity(config.trees.len());
        for tree in &config.trees {
            let now = snap.tree(&tree.name);
            let before = prev.and_then(|p| p.tree(&tree.name));
            let mut tm = TreeMetrics::default();
            if let Some(now) = now {
                let mut previous = Previous {
                    tree: before,
                    by_id: None,
                };
                for (i, c) in tree.classes.iter().enumerate() {
                    let s = now.classes.get(i);
                    let b = s.and_then(|s| previous.of(i, s));
                    let m = class_metrics(s, b, interval_ns, c.rate, c.ceil);
                    tm.classes.push(m);
                    if let (true, Some(s)) = (history.is_some(), s) {
                        let d = |f: fn(&ClassStats) -> u64| delta(f(s), b.map_or(0, f));
                        classes.push(ClassSample {
                            tree: tree.name.clone(),
                            class: c.id.to_string(),
                            name: c.name.clone(),
                            bytes: d(|x| x.bytes),
                            packets: d(|x| x.packets),
                            drops: d(|x| x.drops),
                            overlimits: d(|x| x.overlimits),
                            backlog_bytes: s.backlog,
                            backlog_packets: s.qlen,
                            rate_bps: m.rate_bps,
                            rate: m.rate,
                            ceil: m.ceil,
                            utilization: if m.ceil > 0 {
                                m.rate_bps as f64 * 100.0 / (m.ceil as f64 * 8.0)
                            } else {
                                0.0
                            },
                        });
                    }
                }
            }
            trees.push(tm);
        }
        let mut interfaces = Vec::with_capacity(self.ports.len());
        let mut iface_samples = Vec::new();
        for port in &mut self.ports {
            let now = PortCounters::read(&port.name);
            let last = port.last.replace(now);
            let Some(last) = last else {
                continue;
            };
            let d = |f: fn(&PortCounters) -> u64| delta(f(&now), f(&last));
            // The egress tree's own drops are drops on the way out of the
            // port, as much as the driver's.
            let tree_drops = port
                .egress_tree
                .and_then(|t| {
                    let name = &config.trees[t].name;
                    let n = snap.tree(name)?.frames.dropped_total;
                    let b = prev
                        .and_then(|p| p.tree(name))
                        .map_or(0, |b| b.frames.dropped_total);
                    Some(delta(n, b))
                })
                .unwrap_or(0);
            let tx_bps = per_sec(d(|c| c.tx_bytes), interval_ns) * 8;
            let rx_bps = per_sec(d(|c| c.rx_bytes), interval_ns) * 8;
            interfaces.push(InterfaceMetrics {
                name: port.name.clone(),
                tx_bps,
                drops: tree_drops + d(|c| c.tx_dropped),
            });
            if history.is_some() {
                let link = port
                    .egress_tree
                    .and_then(|t| config.trees[t].link)
                    .map(Rate::bits_per_sec)
                    .filter(|&l| l > 0);
                iface_samples.push(IfaceSample {
                    name: port.name.clone(),
                    rx_bytes: d(|c| c.rx_bytes),
                    tx_bytes: d(|c| c.tx_bytes),
                    rx_packets: d(|c| c.rx_packets),
                    tx_packets: d(|c| c.tx_packets),
                    rx_errors: d(|c| c.rx_errors),
                    tx_errors: d(|c| c.tx_errors),
                    rx_drops: d(|c| c.rx_dropped),
                    tx_drops: d(|c| c.tx_dropped),
                    rate_in_bps: rx_bps,
                    rate_out_bps: tx_bps,
                    utilization: link.map(|l| tx_bps as f64 * 100.0 / l as f64),
                });
            }
        }
        if let Some(h) = history {
            if interval_ns > 0 {
                let interval_ms = (interval_ns / 1_000_000).min(u64::from(u32::MAX)) as u32;
                h.record(Record::Sample {
                    at_unix_ms,
                    interval_ms,
                    classes,
                    interfaces: iface_samples,
                });
                let apps = prev.map(|p| app_samples(snap, p, interval_ns));
                if let Some(apps) = apps.filter(|a| !a.is_empty()) {
                    h.record(Record::Apps {
                        at_unix_ms,
                        interval_ms,
                        apps,
                    });
                }
            }
        }
        if !self.active {
            return;
        }
        let local = match self.clock.now() {
            Ok(t) => {
                self.clock_error = None;
                t
            }
            Err(e) => {
                if self.clock_error.as_ref() != Some(&e) {
                    tracing::warn!("{e}; schedules follow the system clock meanwhile");
                    self.clock_error = Some(e);
                }
                system_local_time()
            }
        };
        let metrics = Metrics {
            interval_ns,
            trees,
            interfaces,
        };
        for d in self.engine.tick(snap.at_ns, local, &metrics) {
            self.carry_out(d, config, datapath, history, at_unix_ms);
        }
    }

    fn carry_out(
        &mut self,
        d: Decision,
        config: &mut Config,
        datapath: &DataPath,
        history: Option<&History>,
        at_unix_ms: i64,
    ) {
        match d {
            Decision::Violation {
                rule,
                target,
                severity,
                metric,
                unit,
                value,
                threshold,
                ..
            } => {
                if let Some(h) = history {
                    h.record(Record::Violation {
                        at_unix_ms,
                        rule,
                        target,
                        severity: severity.to_string(),
                        metric: metric.to_string(),
                        unit: unit.suffix().to_string(),
                        value,
                        threshold,
                    });
                }
            }
            Decision::Resolved { rule, value, .. } => {
                if let Some(h) = history {
                    h.record(Record::Resolved {
                        at_unix_ms,
                        rule,
                        value,
                    });
                }
            }
            Decision::Log { severity, message } => match severity {
                Severity::Critical => tracing::error!("{message}"),
                Severity::Warning => tracing::warn!("{message}"),
                Severity::Info => tracing::info!("{message}"),
            },
            Decision::Exec { rule, argv } => self.hooks.run(&rule, &argv),
            Decision::ChangeClass {
                tree,
                class,
                change,
                old,
                new,
                reason,
            } => {
                let t = &mut config.trees[tree as usize];
                let label = t.label(class);
                let rate = |b: u64| Rate::from_bits_per_sec(b.saturating_mul(8));
                if let Err(e) = datapath.change_class(&t.name, class, change) {
                    tracing::error!("policy: class {label} (tree {}) not changed: {e}", t.name);
                    return;
                }
                let c = &mut t.classes[class as usize];
                c.rate = rate(new.rate);
                c.ceil = rate(new.ceil);
                tracing::info!(
                    "policy: class {label} (tree {}): rate {} → {}, ceil {} → {} ({reason})",
                    t.name,
                    rate(old.rate),
                    rate(new.rate),
                    rate(old.ceil),
                    rate(new.ceil)
                );
                if let Some(h) = history {
                    h.record(Record::Adjustment {
                        at_unix_ms,
                        tree: t.name.clone(),
                        class: c.id.to_string(),
                        name: c.name.clone(),
                        old_rate: old.rate,
                        old_ceil: old.ceil,
                        new_rate: new.rate,
                        new_ceil: new.ceil,
                        reason,
                    });
                }
            }
        }
    }
}

/// For a class of this sample, the same class in the previous one: at the
/// same index, or found by id when a tree changed in place moved another
/// class to that index (its last class takes a removed one's index). The
/// map is built on the first such class, once per tree and tick.
struct Previous<'a> {
    tree: Option<&'a TreeStats>,
    by_id: Option<HashMap<&'a str, &'a ClassStats>>,
}

impl<'a> Previous<'a> {
    fn of(&mut self, i: usize, now: &ClassStats) -> Option<&'a ClassStats> {
        let t = self.tree?;
        if let Some(c) = t.classes.get(i).filter(|c| c.classid == now.classid) {
            return Some(c);
        }
        let id = now.classid.as_deref()?;
        let map = self.by_id.get_or_insert_with(|| {
            t.classes
                .iter()
                .filter_map(|c| Some((c.classid.as_deref()?, c)))
                .collect()
        });
        map.get(id).copied()
    }
}

/// A class's sample from its stats now and in the previous snapshot.
fn class_metrics(
    now: Option<&ClassStats>,
    b: Option<&ClassStats>,
    interval_ns: u64,
    rate: Rate,
    ceil: Rate,
) -> ClassMetrics {
    let Some(s) = now else {
        return ClassMetrics::default();
    };
    let bytes = b.map_or(0, |b| delta(s.bytes, b.bytes));
    ClassMetrics {
        rate_bps: if b.is_some() {
            per_sec(bytes, interval_ns) * 8
        } else {
            0
        },
        rate: rate.bytes_per_sec(),
        ceil: ceil.bytes_per_sec(),
        drops: b.map_or(0, |b| delta(s.drops, b.drops)),
        overlimits: b.map_or(0, |b| delta(s.overlimits, b.overlimits)),
        backlog_packets: s.qlen,
        backlog_bytes: s.backlog,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a tree changed in place, a class's previous sample is found
    /// by id: the removed class's index holds the tree's last class now.
    #[test]
    fn a_class_moved_by_an_edit_is_matched_by_id() {
        use weir_api::snapshot::StatsKind;
        let (config, a) = crate::json::tests::sample_apps(1);
        let before = crate::json::stats(&config, &a, None, StatsKind::Stats);
        let t = &before.trees[0];
        let last = t.classes.len() - 1;
        assert!(last >= 2, "{t:?}");
        let mut now = t.clone();
        now.classes.swap_remove(1);
        let mut p = Previous {
            tree: Some(t),
            by_id: None,
        };
        assert_eq!(p.of(0, &now.classes[0]), Some(&t.classes[0]));
        assert_eq!(p.of(1, &now.classes[1]), Some(&t.classes[last]));
        // A class the previous sample did not have: none.
        let mut added = now.classes[0].clone();
        added.classid = Some("1:ffff".into());
        assert_eq!(p.of(0, &added), None);
    }

    /// The history's app rows: deltas per app between two ticks, matched
    /// by tree and name, and the rate over the interval.
    #[test]
    fn app_samples_are_deltas_of_each_app() {
        use weir_api::snapshot::StatsKind;
        let (config, a) = crate::json::tests::sample_apps(1);
        let (_, b) = crate::json::tests::sample_apps(3);
        let before = crate::json::stats(&config, &a, None, StatsKind::Stats);
        let after = crate::json::stats(&config, &b, None, StatsKind::Stats);
        let s = app_samples(&after, &before, 2_000_000_000);
        let names: Vec<(&str, &str)> = s
            .iter()
            .map(|x| (x.tree.as_str(), x.app.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("up", "voice"),
                ("up", "bulk"),
                ("up", "idle"),
                ("ghost", "voice")
            ]
        );
        let voice = &s[0];
        assert_eq!((voice.bytes, voice.packets, voice.flows), (32_000, 200, 2));
        assert_eq!(voice.drops, 0);
        assert_eq!(voice.rate_bps, 128_000);
        assert_eq!(voice.class.as_deref(), Some("1:10"));
        assert_eq!(s[3].class, None, "a tree the configuration does not know");
        // No earlier tick of an app (a reload added it): its counters as
        // they are.
        let mut first = before.clone();
        first.trees[0].apps = None;
        assert_eq!(app_samples(&after, &first, 1_000_000_000)[0].bytes, 48_000);
        let plain = crate::json::tests::sample_stats(1);
        assert!(app_samples(&plain, &plain, 1_000_000_000).is_empty());
    }

    #[test]
    fn local_time_from_the_clock_file() {
        let t = parse_local_time("mon 08:00\n").unwrap();
        assert_eq!(t, LocalTime::new(Weekday::Mon, 8, 0));
        let t = parse_local_time("Saturday 23:59").unwrap();
        assert_eq!(t, LocalTime::new(Weekday::Sat, 23, 59));
        for bad in [
            "",
            "mon",
            "mon 24:00",
            "mon 8",
            "xyz 08:00",
            "mon 08:00 x",
            "mon -1:00",
        ] {
            assert!(parse_local_time(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn counters_that_restart_count_from_zero() {
        assert_eq!(delta(150, 100), 50);
        assert_eq!(delta(30, 100), 30);
        assert_eq!(per_sec(1_000, 500_000_000), 2_000);
        assert_eq!(per_sec(1_000, 0), 0);
    }
}
