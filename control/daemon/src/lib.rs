//! weir-daemon: the control side of `weir run`.
//!
//! [`cli_run`] loads and checks the configuration, compiles each tree,
//! starts the AF_XDP data path (`weir_xdp::datapath::DataPath`: XDP programs,
//! UMEMs, sockets, pinned workers), says what runs where, and then only
//! waits, on one control thread: for the once-a-second tick (rates, the
//! policy engine and SLA rules, history samples, what the metrics serve),
//! for the operator API (`weir show`, `weir class change`, `weir reload`,
//! `weir top`), for SIGUSR1 or the stats period (print the stats), SIGHUP
//! (reload) and SIGINT / SIGTERM (stop the workers, report what was still
//! queued, and check that every tree balances and every UMEM frame came
//! back: free or in a fill ring). Nothing here touches a packet.
//!
//! Modules: `json.rs` builds the typed stats ([`weir_api::Stats`]) from a
//! data path snapshot, `text.rs` the text output, [`tcshow`] `weir show`'s
//! tc-style output, [`metrics`] the Prometheus endpoint and the HTTP
//! listener, `auto.rs` the once-a-second automation, `change.rs` and
//! `reload.rs` plan class changes and reloads against the running trees.
//!
//! Output contract (tests and scripts rely on it): stdout gets the
//! placement, then a line that is exactly `ready`, then stats dumps and the
//! final report (with `--json` each dump is one JSON line of
//! [`weir_api::Stats`]); logs go to stderr. Exit 0 after a clean stop, 2
//! on configuration errors, 1 when the data path cannot start or the final
//! accounting does not add up (the report is still printed and written).

mod apps;
mod auto;
mod change;
mod circuit;
mod json;
pub mod metrics;
pub mod reload;
pub mod tcshow;
mod text;
mod whois;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use weir_dataplane::classify::IpPrefix;
use weir_dataplane::shaper::TreeEdit;
use weir_xdp::datapath::{DataPath, PairSpec, RunError, RunSpec, Snapshot, TreeSpec};
use weir_xdp::prog::{PassPrefix, XdpMode};

use weir_config::{self as config, Config, XdpAttach};

pub use change::{plan as plan_class_change, ChangeArgs, ChangeError, Planned};
use json::{stats, with_control};

use weir_api::snapshot::{ControlStats, HistoryHealth, SlaOpen, StatsKind};
use weir_api::{self as api, Pending, Request, Response};
use weir_history::History;

/// What `weir run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Print stats this often (besides on SIGUSR1).
    pub stats_interval: Option<Duration>,
    /// Stats and report as one JSON line each.
    pub json: bool,
    /// Also write the final report (JSON) here.
    pub report: Option<PathBuf>,
    /// The operator API's socket; None: no API.
    pub socket: Option<PathBuf>,
    /// Where to serve Prometheus metrics; None: not served.
    pub metrics: Option<std::net::SocketAddr>,
    /// The history database, overriding `[history] path` (`none`: no
    /// history).
    pub history: Option<PathBuf>,
    /// Lab testing: the local time policy schedules see is read from this
    /// file every tick (`mon 08:00`) instead of the system clock.
    pub clock_file: Option<PathBuf>,
    /// The token that allows `POST /api` on the HTTP listener; None: the
    /// listener is read-only.
    pub http_token_file: Option<PathBuf>,
}

/// The data path's spec for a checked configuration: one [`PairSpec`] per
/// `[[pair]]`, each direction's tree compiled with `seed` (SFQ / FQ-CoDel
/// hash seeds).
pub fn run_spec(config: &Config, seed: u64) -> RunSpec {
    let tree = |i: Option<u32>, salt: u64| {
        i.and_then(|i| config.trees.get(i as usize))
            .map(|t| TreeSpec {
                name: t.name.clone(),
                shaper: t.shaper_spec(seed ^ salt),
            })
    };
    let pairs = config
        .pairs
        .iter()
        .enumerate()
        .map(|(n, p)| PairSpec {
            name: p.name.clone(),
            inside: p.inside.clone(),
            outside: p.outside.clone(),
            queues: p.queues,
            upload: tree(p.upload, 2 * n as u64 + 1),
            download: tree(p.download, 2 * n as u64 + 2),
        })
        .collect();
    let d = &config.xdp;
    RunSpec {
        pairs,
        cores: d.cores().to_vec(),
        batch: d.batch(),
        frame_size: d.frame_size(),
        frames_per_worker: d.frames(),
        ring_size: d.ring_size(),
        handover_ring: d.handover_ring(),
        busy_poll: d.busy_poll(),
        worker_nice: d.worker_nice(),
        worker_rtprio: d.worker_rtprio(),
        xdp_mode: match d.xdp_mode() {
            XdpAttach::Native => XdpMode::Native,
            XdpAttach::Generic => XdpMode::Generic,
        },
        pass: d.pass().iter().map(pass_prefix).collect(),
    }
}

fn pass_prefix(p: &IpPrefix) -> PassPrefix {
    let addr = if p.v6 {
        IpAddr::V6(Ipv6Addr::from(p.addr))
    } else {
        IpAddr::V4(Ipv4Addr::from(p.addr as u32))
    };
    PassPrefix { addr, len: p.len }
}

/// Why a reload changed nothing, or stopped part way; the running
/// configuration is what was applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load: its diagnostics, one a line.
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Config(Vec<config::Diagnostic>),
    #[error("{} can't be applied to the running trees (restart weir to apply it): {}", path.display(), why.join("; "))]
    NeedsRestart { path: PathBuf, why: Vec<String> },
    /// A step the data path refused; the steps before it stay applied.
    #[error("{}: applied {done} of {total} change(s), then: {step}: {source}", path.display())]
    Partly {
        path: PathBuf,
        done: usize,
        total: usize,
        /// The step refused: its summary, or `rebuilding tree NAME`.
        step: String,
        source: Box<RunError>,
    },
}

/// What the control thread waits for.
enum Event {
    Stats,
    Stop(&'static str),
    Reload,
    /// Once a second: the rate estimates (and, later, history and
    /// policies) are taken on this beat.
    Tick,
    Api(Box<Pending>),
}

fn signal_events(tx: mpsc::Sender<Event>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1, SIGHUP])?;
    std::thread::Builder::new()
        .name("weir-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let ev = match sig {
                    SIGUSR1 => Event::Stats,
                    SIGHUP => Event::Reload,
                    SIGINT => Event::Stop("SIGINT"),
                    _ => Event::Stop("SIGTERM"),
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

/// Rate estimates need the previous dump.
struct Printer {
    json: bool,
    previous: Option<Snapshot>,
}

impl Printer {
    fn stats(&mut self, config: &Config, snap: Snapshot, out: &mut dyn Write) {
        let text = if self.json {
            let stats = stats(config, &snap, self.previous.as_ref(), StatsKind::Stats);
            stats.to_json().to_string() + "\n"
        } else {
            text::snapshot(config, &snap, self.previous.as_ref())
        };
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.previous = Some(snap);
    }
}

/// The control thread's state while weir runs.
struct Control {
    /// The file `weir reload` and SIGHUP read again.
    config_path: PathBuf,
    /// The configuration in force: the file as loaded plus every
    /// `class change` applied since.
    config: Config,
    /// The text `config` was compiled from: `weir circuit` compiles it
    /// again with the circuits changed.
    config_text: String,
    datapath: DataPath,
    /// The snapshots of the last two ticks: rates over the last second.
    ticks: (Option<Snapshot>, Option<Snapshot>),
    /// The last tick's stats: what the automation compares the next
    /// tick's with.
    last_stats: Option<Arc<weir_api::Stats>>,
    /// What the metrics endpoint serves.
    published: crate::metrics::Published,
    /// SLA rules and allocation policies, run on the tick.
    auto: auto::Automation,
    /// The history database; None when off or when it could not be
    /// opened (logged at start).
    history: Option<History>,
}

impl Control {
    /// Take the second's snapshot; false when the workers did not answer.
    fn tick(&mut self) -> bool {
        match self.datapath.snapshot() {
            Ok(s) => {
                let last = self.ticks.1.take();
                let stats = stats(&self.config, &s, last.as_ref(), StatsKind::Stats);
                self.auto.tick(
                    &mut self.config,
                    &self.datapath,
                    &stats,
                    self.last_stats.as_deref(),
                    self.history.as_ref(),
                );
                // The automation reads only counters of the last tick's
                // stats, so the published ones serve as that too.
                let stats = json::with_rates_of(stats, &self.config);
                let stats = Arc::new(with_control(stats, self.control_stats()));
                self.published.set(metrics_view(&self.config, &stats));
                self.last_stats = Some(stats);
                self.ticks = (last, Some(s));
                true
            }
            Err(e) => {
                tracing::error!("tick: {e}");
                false
            }
        }
    }

    /// What the stats say besides the data path: the SLA rules open now
    /// and the history database's health.
    fn control_stats(&self) -> ControlStats {
        let sla_open = self.auto.open_rules().into_iter();
        ControlStats {
            sla_open: sla_open
                .map(|(rule, since_ns)| SlaOpen { rule, since_ns })
                .collect(),
            history: self.history.as_ref().map(|h| {
                let st = h.stats();
                HistoryHealth {
                    written: st.written,
                    dropped: st.dropped,
                    write_errors: st.write_errors,
                    last_error: st.last_error,
                    db_bytes: st.db_bytes,
                }
            }),
        }
    }

    /// A fresh snapshot and the tick before it (for rates).
    fn fresh(&self) -> Result<(Snapshot, Option<&Snapshot>), RunError> {
        let snap = self.datapath.snapshot()?;
        // Rates come from the last full second, not from the few ms since
        // the last tick.
        let prev = self.ticks.0.as_ref();
        Ok((snap, prev))
    }

    fn answer(&mut self, request: Request) -> Response {
        match request {
            Request::Stats => match self.fresh() {
                Ok((snap, prev)) => {
                    let stats = stats(&self.config, &snap, prev, StatsKind::Stats);
                    Response::json(with_control(stats, self.control_stats()).to_json())
                }
                Err(e) => Response::error(e.to_string()),
            },
            Request::Show {
                what,
                stats,
                json,
                tree,
                class,
                top,
            } => {
                if let Some(t) = &tree {
                    if self.config.tree(t).is_none() {
                        return Response::error(change::no_tree(&self.config, t).to_string());
                    }
                }
                let select = tcshow::Select { class, top };
                if (select.class.is_some() || select.top.is_some()) && what != api::ShowWhat::Class
                {
                    return Response::error("--class and --top go with `weir show class`");
                }
                if !select.known(&self.config) {
                    return Response::error(format!(
                        "no class {} in any tree; expected a class id like 1:10 or a class's name",
                        select.class.as_deref().unwrap_or_default()
                    ));
                }
                let (snap, prev) = match self.fresh() {
                    Ok(x) => x,
                    Err(e) => return Response::error(e.to_string()),
                };
                let mut snap = json::stats(&self.config, &snap, prev, StatsKind::Stats);
                if let Some(t) = &tree {
                    snap.trees.retain(|s| &s.name == t);
                }
                if what == api::ShowWhat::Apps && snap.trees.iter().all(|t| t.apps.is_none()) {
                    return Response::error(no_apps(tree.as_deref()));
                }
                if json {
                    Response::json(text::show_json(&self.config, &snap, what, stats, &select))
                } else {
                    Response::text(text::show(&self.config, &snap, what, stats, &select))
                }
            }
            Request::Flows {
                tree,
                app,
                top,
                by,
                json,
            } => match self.flows(tree.as_deref(), app, top, by) {
                Ok(trees) if json => match serde_json::to_value(&trees) {
                    Ok(v) => Response::json(v),
                    Err(e) => Response::error(format!("unencodable flows: {e}")),
                },
                Ok(trees) => Response::text(apps::flows_text(&trees)),
                Err(e) => Response::error(e),
            },
            Request::ClassChange {
                tree,
                class,
                rate,
                ceil,
                burst,
                cburst,
                prio,
                quantum,
            } => {
                let args = ChangeArgs {
                    tree,
                    class,
                    rate,
                    ceil,
                    burst,
                    cburst,
                    prio,
                    quantum,
                };
                self.class_change(&args)
            }
            Request::Reload => match self.reload() {
                Ok(text) => Response::text(text),
                Err(e) => Response::error(e.to_string()),
            },
            Request::Circuit(req) => self.circuit(&req),
            Request::Whois { address, json } => match self.fresh() {
                Ok((snap, prev)) => {
                    let stats = json::stats(&self.config, &snap, prev, StatsKind::Stats);
                    whois::answer(&self.config, &stats.trees, &address, json)
                }
                Err(e) => Response::error(e.to_string()),
            },
        }
    }

    /// `weir show flows`: the top flows of `tree` (or of every tree with
    /// apps), of app `app` if given. Each tree's worker walks its table
    /// in bounded steps and answers when done (`DataPath::top_flows`).
    fn flows(
        &self,
        tree: Option<&str>,
        app: Option<String>,
        top: usize,
        by: api::FlowsBy,
    ) -> Result<Vec<api::snapshot::TreeFlows>, String> {
        use weir_xdp::datapath::{FlowOrder, FlowQuery, MAX_TOP};
        if top == 0 || top > MAX_TOP {
            return Err(format!("--top {top}: expected 1 to {MAX_TOP} flows"));
        }
        if let Some(t) = tree {
            if self.config.tree(t).is_none() {
                return Err(change::no_tree(&self.config, t).to_string());
            }
        }
        // Which trees have apps, and which have the app asked for: from a
        // snapshot (counters only; it walks nothing).
        let snap = self.datapath.snapshot().map_err(|e| e.to_string())?;
        let with_apps: Vec<&weir_xdp::datapath::TreeSnapshot> = snap
            .trees
            .iter()
            .filter(|t| tree.is_none_or(|n| t.name == n))
            .filter(|t| t.apps.is_some())
            .collect();
        if with_apps.is_empty() {
            return Err(no_apps(tree));
        }
        let wanted: Vec<&str> = with_apps
            .iter()
            .filter(|t| {
                app.as_ref().is_none_or(|a| {
                    t.apps
                        .as_ref()
                        .is_some_and(|x| x.apps.iter().any(|s| &s.spec.name == a))
                })
            })
            .map(|t| t.name.as_str())
            .collect();
        if let (Some(a), true) = (&app, wanted.is_empty()) {
            let mut known: Vec<&str> = with_apps
                .iter()
                .filter_map(|t| t.apps.as_ref())
                .flat_map(|x| x.apps.iter().map(|s| s.spec.name.as_str()))
                .collect();
            known.sort_unstable();
            known.dedup();
            return Err(format!(
                "no app named {a}{}; apps: {}",
                tree.map(|t| format!(" in tree {t}")).unwrap_or_default(),
                known.join(", ")
            ));
        }
        let query = FlowQuery {
            top,
            app,
            by: match by {
                api::FlowsBy::Rate => FlowOrder::Rate,
                api::FlowsBy::Bytes => FlowOrder::Bytes,
            },
        };
        wanted
            .into_iter()
            .map(|name| {
                let top = self
                    .datapath
                    .top_flows(name, query.clone())
                    .map_err(|e| e.to_string())?;
                Ok(apps::tree_flows(self.config.tree(name), &top, by))
            })
            .collect()
    }

    /// Read the file again and apply it if it can be applied in place
    /// (see `reload.rs`). Err: nothing was changed, and why.
    fn reload(&mut self) -> Result<String, ReloadError> {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        let result = self.reload_inner();
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        match &result {
            Ok(text) => tracing::info!("reload: {}", text.trim_end().replace('\n', "; ")),
            Err(e) => tracing::error!(
                "reload refused, the running configuration stays: {}",
                e.to_string().replace('\n', "; ")
            ),
        }
        result
    }

    fn reload_inner(&mut self) -> Result<String, ReloadError> {
        let loaded = config::load(&self.config_path).map_err(ReloadError::Config)?;
        self.apply(loaded, "reloaded")
    }

    /// Make `loaded` (the file read again, or the running file with
    /// changed circuits) the configuration in force: classes changed in
    /// place where only their rates differ, trees rebuilt where their
    /// structure does (see `reload.rs`). Err: nothing was changed (or, for
    /// `Partly`, what was).
    fn apply(&mut self, loaded: config::Loaded, what: &str) -> Result<String, ReloadError> {
        let source = loaded.source;
        let mut new = loaded.config;
        // Circuits and nodes keep their class ids, wherever they moved in
        // the files: the plan matches classes by id.
        config::subscribers::keep_ids(&self.config, &mut new);
        let (steps, edits, mut rebuilds) = match reload::plan(&self.config, &new) {
            reload::Plan::NeedsRestart(why) => {
                return Err(ReloadError::NeedsRestart {
                    path: self.config_path.clone(),
                    why,
                })
            }
            reload::Plan::Apply {
                steps,
                edits,
                rebuilds,
            } => (steps, edits, rebuilds),
        };
        let total = steps.len() + edits.len() + rebuilds.len();
        // Changes made at run time (`weir class change`) that the file does
        // not repeat are overwritten by the file: the file is the truth
        // after a reload.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64);
        let mut text = String::new();
        let mut done = 0;
        let mut failure = None;
        for step in &steps {
            if let Err(e) = self
                .datapath
                .change_class(&step.tree, step.class, step.change)
            {
                failure = Some((step.summary.clone(), e));
                break;
            }
            self.config.trees[step.tree_index].classes[step.class as usize] =
                new.trees[step.tree_index].classes[step.class as usize].clone();
            text.push_str(&format!("applied: {}\n", step.summary));
            done += 1;
        }
        let mut edited = 0;
        for e in &edits {
            if failure.is_some() {
                break;
            }
            let ti = e.tree_index;
            let spec = e.after.shaper_spec(seed ^ ti as u64);
            let result = TreeEdit::new(&spec, e.remove.clone(), e.added)
                .map_err(|source| RunError::Shaper {
                    tree: e.tree.clone(),
                    source,
                })
                .and_then(|edit| self.datapath.edit_tree(&e.tree, edit));
            let took = match result {
                Ok(took) => took,
                Err(RunError::EditTree { source, .. }) => {
                    // The running tree has no room (or had a leaf with a
                    // higher id): build it anew instead.
                    let mut r = e.fallback.clone();
                    r.why = format!("{}; the running tree refused it in place: {source}", r.why);
                    rebuilds.push(r);
                    continue;
                }
                Err(err) => {
                    failure = Some((format!("changing tree {} in place", e.tree), err));
                    break;
                }
            };
            self.config.trees[ti] = e.after.clone();
            new.trees[ti] = e.after.clone();
            if let Some(subs) = new.subscribers.as_mut() {
                for p in [&mut subs.download, &mut subs.upload].into_iter().flatten() {
                    if p.tree as usize == ti {
                        p.renumber(&e.new_index);
                    }
                }
            }
            if let Some(slices) = new.slices.as_mut() {
                for p in [&mut slices.download, &mut slices.upload]
                    .into_iter()
                    .flatten()
                {
                    if p.tree as usize == ti {
                        p.renumber(&e.new_index);
                    }
                }
            }
            let list = |ids: &[String]| {
                if ids.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", ids.join(", "))
                }
            };
            text.push_str(&format!(
                "changed in place: tree {}: {} leaf class(es) removed{}, {} added{}, filters from the file; held the worker {:.3} ms; every other class kept its queue, tokens and counters\n",
                e.tree,
                e.remove.len(),
                list(&e.removed_ids),
                e.added,
                list(&e.added_ids),
                took.as_secs_f64() * 1e3,
            ));
            edited += 1;
            done += 1;
            for step in &e.steps {
                if let Err(err) = self
                    .datapath
                    .change_class(&step.tree, step.class, step.change)
                {
                    failure = Some((step.summary.clone(), err));
                    break;
                }
                text.push_str(&format!("applied: {}\n", step.summary));
            }
            if failure.is_some() {
                break;
            }
        }
        if failure.is_none() {
            for r in &rebuilds {
                let spec = new.trees[r.tree_index].shaper_spec(seed ^ r.tree_index as u64);
                let took = match self.datapath.replace_tree(&r.tree, &spec, r.map.clone()) {
                    Ok(took) => took,
                    Err(e) => {
                        failure = Some((format!("rebuilding tree {}", r.tree), e));
                        break;
                    }
                };
                let leaves = self.config.trees[r.tree_index]
                    .classes
                    .iter()
                    .filter(|c| c.is_leaf())
                    .count();
                let kept = leaves - r.dropped.len();
                self.config.trees[r.tree_index] = new.trees[r.tree_index].clone();
                text.push_str(&format!(
                    "rebuilt: tree {} ({}): queues of {kept} leaf class(es) kept, swapped in {:.2} ms{}\n",
                    r.tree,
                    r.why,
                    took.as_secs_f64() * 1e3,
                    if r.dropped.is_empty() {
                        String::new()
                    } else {
                        format!(", queues of removed {} dropped", r.dropped.join(", "))
                    }
                ));
                done += 1;
            }
        }
        if let Some((step, source)) = failure {
            // Some trees are the new file's and some the old one's: the
            // circuits' placement matches neither set. Without it, whois
            // and weir circuit refuse, and the next reload numbers
            // circuits afresh, rather than read classes that moved.
            if done > 0 && self.config.subscribers.take().is_some() {
                tracing::warn!("{what} applied in part: the subscribers' placement is dropped until a reload or restart applies a whole file");
            }
            return Err(ReloadError::Partly {
                path: self.config_path.clone(),
                done,
                total,
                step,
                source: Box::new(source),
            });
        }
        if new.history != self.config.history {
            text.push_str(
                "warning: [history] changed: the open database is kept until weir restarts\n",
            );
        }
        // Everything matches the file now; take it wholesale. The policy
        // engine starts over from the file's values, which the steps above
        // just restored.
        std::mem::swap(&mut self.config, &mut new);
        let why = if what == "reloaded" {
            "configuration reloaded".to_string()
        } else {
            what.to_string()
        };
        self.auto.reset(&self.config, self.history.as_ref(), &why);
        for w in &loaded.warnings {
            text.push_str(&format!("warning: {w}\n"));
        }
        self.config_text = source;
        text.push_str(&format!(
            "{}: {what}: {} class change(s) in place, {edited} tree(s) changed in place, {} tree(s) rebuilt\n",
            self.config_path.display(),
            steps.len() + edits.iter().map(|e| e.steps.len()).sum::<usize>(),
            rebuilds.len()
        ));
        Ok(text)
    }

    /// `weir circuit add|change|del`: the running file compiled again with
    /// the circuit changed, and applied as a reload is.
    fn circuit(&mut self, a: &api::CircuitRequest) -> Response {
        let Some(subs) = &self.config.subscribers else {
            return Response::error(
                "the configuration has no [subscribers]; `weir circuit` changes its circuits",
            );
        };
        let given = match circuit::given(subs, a) {
            Ok(g) => g,
            Err(e) => return Response::error(format!("weir circuit {}: {e}", a.action.name())),
        };
        let file = self.config_path.display().to_string();
        let loaded = match config::parse_with(&self.config_text, &file, Some(&given)) {
            Ok(l) => l,
            Err(diags) => {
                return Response::error(
                    diags
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
        };
        let what = format!("circuit {} {}", a.action.name(), a.id);
        match self.apply(loaded, &what) {
            Ok(text) => {
                tracing::info!("{what}: {}", text.trim_end().replace('\n', "; "));
                Response::text(text)
            }
            Err(e) => Response::error(e.to_string()),
        }
    }

    fn class_change(&mut self, args: &ChangeArgs) -> Response {
        let planned = match change::plan(&self.config, args) {
            Ok(p) => p,
            Err(e) => return Response::error(e.to_string()),
        };
        let tree_name = self.config.trees[planned.tree].name.clone();
        if let Err(e) = self
            .datapath
            .change_class(&tree_name, planned.class, planned.change)
        {
            return Response::error(e.to_string());
        }
        self.config.trees[planned.tree].classes[planned.class as usize] = planned.new;
        tracing::info!("class change: {}", planned.summary);
        let mut text = planned.summary + "\n";
        for w in &planned.warnings {
            tracing::warn!("class change: {w}");
            text.push_str(&format!("warning: {w}\n"));
        }
        Response::text(text)
    }
}

/// Why `weir show apps` / `weir show flows` have nothing to show.
fn no_apps(tree: Option<&str>) -> String {
    match tree {
        Some(t) => format!("tree {t} has no apps; see docs/apps.md"),
        None => "no tree has apps; see docs/apps.md".to_string(),
    }
}

/// What /metrics serves of `stats`: all of it, or, for a configuration
/// with `[subscribers]` and no `circuit_metrics = true`, everything but the
/// circuits' classes (about 22 series per circuit and direction: 440,000
/// for 10,000 circuits). The nodes' and the file's own classes stay.
fn metrics_view(config: &Config, stats: &Arc<weir_api::Stats>) -> Arc<weir_api::Stats> {
    let Some(subs) = config.subscribers.as_ref().filter(|s| !s.circuit_metrics) else {
        return Arc::clone(stats);
    };
    let mut view = (**stats).clone();
    for t in &mut view.trees {
        let Some(ti) = config.trees.iter().position(|c| c.name == t.name) else {
            continue;
        };
        let circuit = subs.circuit_classes(ti as u32, t.classes.len());
        let mut index = 0;
        t.classes.retain(|_| {
            let keep = !circuit[index];
            index += 1;
            keep
        });
    }
    Arc::new(view)
}

/// `weir run`: returns the exit code.
pub fn cli_run(opts: &RunOptions, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let loaded = match config::load(&opts.config) {
        Ok(l) => l,
        Err(diags) => {
            for d in &diags {
                let _ = writeln!(err, "{d}");
            }
            let _ = writeln!(err, "{}: {} error(s)", opts.config.display(), diags.len());
            return 2;
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{}:{}:{}: {}", w.file, w.line, w.col, w.message);
    }
    let config = loaded.config;
    let config_text = loaded.source;
    if config.pairs.is_empty() {
        let _ = writeln!(
            err,
            "{}: no [[pair]]: nothing to run; expected at least one port pair (see docs/config.md)",
            opts.config.display()
        );
        return 2;
    }
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x5eed, |d| d.as_nanos() as u64);
    let spec = run_spec(&config, seed);

    // Signals first: a SIGTERM during start-up must not kill the process
    // with XDP programs half attached (the links would go with it, but the
    // report would not be written).
    let (tx, rx) = mpsc::channel();
    if let Err(e) = signal_events(tx.clone()) {
        let _ = writeln!(err, "weir run: can't install signal handlers: {e}");
        return 1;
    }
    // The API socket before the data path: a socket already in use means
    // another weir runs, and this one must not touch its ports.
    let listener = match &opts.socket {
        None => None,
        Some(path) => match api::Listener::bind(path, forwarder(&tx)) {
            Ok(l) => Some(l),
            Err(e) => {
                let _ = writeln!(err, "weir run: {e}");
                return 1;
            }
        },
    };
    let published = crate::metrics::Published::default();
    let http_api = match (&opts.http_token_file, opts.metrics) {
        (None, _) => None,
        (Some(_), None) => {
            let _ = writeln!(
                err,
                "weir run: --http-token-file needs the HTTP listener; give --metrics an address"
            );
            return 2;
        }
        (Some(path), Some(_)) => match crate::metrics::read_token(path) {
            Ok(token) => Some(crate::metrics::HttpApi {
                token,
                forward: Box::new(forwarder(&tx)),
            }),
            Err(e) => {
                let _ = writeln!(err, "weir run: {e}");
                return 2;
            }
        },
    };
    let metrics_addr = match opts.metrics {
        None => None,
        Some(addr) => match crate::metrics::serve(addr, published.clone(), http_api) {
            Ok(a) => Some(a),
            Err(e) => {
                let _ = writeln!(err, "weir run: {e}");
                return 1;
            }
        },
    };
    let datapath = match DataPath::start(spec) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "weir run: {e}");
            return 1;
        }
    };
    for p in datapath.placement() {
        let line = text::placement(p);
        tracing::info!("{line}");
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    // systemd (Type=notify): started. Outside systemd this does nothing.
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("sd_notify READY: {e}");
    }
    let mut watchdog_usec = 0;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec);
    tracing::info!(
        config = %opts.config.display(),
        socket = %listener.as_ref().map_or_else(|| "none".to_string(), |l| l.path().display().to_string()),
        metrics = %metrics_addr.map_or_else(|| "none".to_string(), |a| format!("http://{a}/metrics")),
        "ready"
    );
    start_ticker(tx);

    let history = open_history(&config, opts.history.as_deref());
    let clock = match &opts.clock_file {
        Some(p) => auto::LocalClock::File(p.clone()),
        None => auto::LocalClock::System,
    };
    let mut control = Control {
        config_path: opts.config.clone(),
        auto: auto::Automation::new(&config, clock),
        config,
        config_text,
        datapath,
        ticks: (None, None),
        last_stats: None,
        published,
        history,
    };
    let mut printer = Printer {
        json: opts.json,
        previous: None,
    };
    let period = opts.stats_interval;
    let mut next_stats = period.map(|p| std::time::Instant::now() + p);
    let reason = loop {
        let ev = match next_stats {
            Some(at) => {
                let wait = at.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(ev) => ev,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        next_stats = period.map(|p| at + p);
                        Event::Stats
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => Event::Stop("signal thread ended"),
                }
            }
            None => rx.recv().unwrap_or(Event::Stop("signal thread ended")),
        };
        match ev {
            Event::Stats => match control.datapath.snapshot() {
                Ok(s) => printer.stats(&control.config, s, out),
                Err(e) => tracing::error!("stats: {e}"),
            },
            Event::Tick => {
                let answered = control.tick();
                // The watchdog is fed from the control loop itself, so a
                // stuck control thread (or a worker that stops answering
                // snapshots) gets weir restarted.
                if watchdog && answered {
                    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
                }
            }
            Event::Api(p) => {
                let answer = control.answer(p.request);
                let _ = p.reply.send(answer);
            }
            Event::Reload => {
                // The outcome is logged by reload() itself.
                let _ = control.reload();
            }
            Event::Stop(why) => break why,
        }
    };
    tracing::info!("{reason}: stopping");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    drop(listener);
    let Control {
        config,
        datapath,
        mut auto,
        history,
        ..
    } = control;
    auto.close_open(history.as_ref(), "weir stopped");
    if let Some(h) = history {
        h.close();
    }
    let report = match datapath.stop() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "weir run: stopping: {e}");
            return 1;
        }
    };
    let report_value = json::report(&config, &report, printer.previous.as_ref()).to_json();
    if opts.json {
        let _ = writeln!(out, "{report_value}");
    } else {
        let _ = write!(out, "{}", text::report(&config, &report));
    }
    let _ = out.flush();
    if let Some(path) = &opts.report {
        if let Err(e) = write_report(path, &report_value) {
            let _ = writeln!(
                err,
                "weir run: can't write the report to {}: {e}",
                path.display()
            );
            return 1;
        }
    }
    if !report.balanced || !report.umem_free_or_fill {
        tracing::error!(
            balanced = report.balanced,
            umem_free_or_fill = report.umem_free_or_fill,
            "frame accounting does not add up; the report has the numbers"
        );
        // A stop that lost track of frames is not a clean stop: say so to
        // whoever waits for the exit status (systemd, a test, a script).
        return 1;
    }
    0
}

/// Hands API requests (unix socket or HTTP) to the control thread; false
/// once it is gone.
fn forwarder(tx: &mpsc::Sender<Event>) -> impl Fn(Pending) -> bool + Send + Sync + 'static {
    let tx = std::sync::Mutex::new(tx.clone());
    move |p: Pending| {
        tx.lock()
            .map(|t| t.send(Event::Api(Box::new(p))).is_ok())
            .unwrap_or(false)
    }
}

/// The once-a-second beat. The thread ends when the control thread does
/// (its channel closes).
fn start_ticker(tx: mpsc::Sender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("weir-tick".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            if tx.send(Event::Tick).is_err() {
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no once-a-second tick (rate estimates stay empty): {e}");
    }
}

/// The history database the configuration (or `--history`) asks for;
/// None when off. One that can't be opened is logged and weir shapes on
/// without it: history is for the operator, shaping is the job.
fn open_history(config: &Config, path: Option<&Path>) -> Option<History> {
    let mut cfg = config.history.clone();
    match path {
        Some(p) if p.as_os_str() == "none" => cfg.path = None,
        Some(p) => cfg.path = Some(p.to_path_buf()),
        None => {}
    }
    let path = cfg.path.clone()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    match History::open(&cfg, now) {
        Ok(h) => {
            tracing::info!(path = %path.display(), "history");
            Some(h)
        }
        Err(e) => {
            tracing::error!("{e}; running without history");
            None
        }
    }
}

fn write_report(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /metrics leaves the circuits' classes out unless asked for them.
    #[test]
    fn metrics_leave_circuits_out_unless_asked() {
        let dir = std::env::temp_dir().join(format!("weir-metrics-view-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make the directory");
        std::fs::write(
            dir.join("d.csv"),
            "Circuit ID,Circuit Name,Device ID,Device Name,Parent Node,MAC,IPv4,IPv6,Download Min Mbps,Upload Min Mbps,Download Max Mbps,Upload Max Mbps,Comment\n\
             a,A,d1,D,,,198.18.5.1,,1,1,10,10,\n\
             b,B,d2,D,,,198.18.5.2,,1,1,10,10,\n",
        )
        .expect("write");
        let trees = "[tree.up]\ndefault = \"1:ffff\"\n[[tree.up.class]]\nid = \"1:1\"\nrate = \"1gbit\"\n[[tree.up.class]]\nid = \"1:ffff\"\nparent = \"1:1\"\nrate = \"1mbit\"\n\
                     [tree.down]\ndefault = \"1:ffff\"\n[[tree.down.class]]\nid = \"1:1\"\nrate = \"1gbit\"\n[[tree.down.class]]\nid = \"1:ffff\"\nparent = \"1:1\"\nrate = \"1mbit\"\n";
        let load = |extra: &str| {
            let path = dir.join("weir.toml");
            std::fs::write(
                &path,
                format!("[subscribers]\ndevices = \"d.csv\"\ndownload = \"down\"\nupload = \"up\"\nparent = \"1:1\"\n{extra}\n{trees}"),
            )
            .expect("write");
            config::load(&path).expect("loads").config
        };
        let (off, on) = (load(""), load("circuit_metrics = true"));
        // Recorded stats whose two trees have four classes each, as these
        // trees do: 1:1, 1:ffff and the two circuits.
        let line = include_str!("../tests/data/stats-lines.json")
            .lines()
            .next()
            .expect("a line");
        let stats: weir_api::Stats = serde_json::from_str(line).expect("stats");
        let stats = Arc::new(stats);
        let classes = |s: &weir_api::Stats, tree: &str| {
            s.trees
                .iter()
                .find(|t| t.name == tree)
                .map_or(0, |t| t.classes.len())
        };
        assert_eq!(classes(&stats, "up"), 4);
        let view = metrics_view(&off, &stats);
        assert_eq!((classes(&view, "up"), classes(&view, "down")), (2, 2));
        let view = metrics_view(&on, &stats);
        assert_eq!(classes(&view, "up"), 4);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
