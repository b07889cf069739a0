//! Rate tests and how they end: [`rate_test`] runs the measurement on weir,
//! again when the hypervisor stole CPU time, and against the kernel twin
//! when every attempt was disturbed (docs/testing.md).

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use weir_testkit::host::{self, stolen_share, CpuTimes};

use super::serialize;

/// The rate of the lab tree's root (1:1), Mbit/s: the parent of every
/// leaf the tests measure, and the unit of the kernel comparison's points.
pub const LAB_PARENT_MBIT: f64 = 100.0;
/// Allowed error of a measured rate, % of what HTB promises.
pub const RATE_PCT: f64 = 3.0;

/// One rate a test measured, with what HTB promises for it. A test
/// returns its rates to [`rate_test`] instead of asserting them where it
/// measures them, so a missed rate never skips the test's other checks.
#[derive(Clone, Debug)]
pub struct Rate {
    /// What was measured ("A→B all saturated", "1:10 after ceil 30mbit").
    pub case: String,
    pub class: String,
    /// Mbit/s of Ethernet frames at the receiving host.
    pub achieved: f64,
    pub promised: f64,
    /// The rate of the class's parent, Mbit/s.
    pub parent: f64,
    /// Allowed error, % of `promised`.
    pub pct: f64,
}

impl Rate {
    /// A class of the lab tree (parent 1:1 at [`LAB_PARENT_MBIT`]) judged
    /// within [`RATE_PCT`].
    pub fn new(case: &str, class: &str, achieved: f64, promised: f64) -> Rate {
        Rate {
            case: case.to_string(),
            class: class.to_string(),
            achieved,
            promised,
            parent: LAB_PARENT_MBIT,
            pct: RATE_PCT,
        }
    }

    /// The error, % of the promise.
    pub fn err_pct(&self) -> f64 {
        (self.achieved - self.promised) / self.promised * 100.0
    }

    /// The size of the error in points of the parent's rate.
    pub fn err_points(&self) -> f64 {
        (self.achieved - self.promised).abs() / self.parent * 100.0
    }

    pub fn within(&self) -> bool {
        self.err_pct().abs() <= self.pct
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<36} {:<5} achieved {:7.2} Mbit/s  promised {:6.2}  ({:+.2} %, allowed ±{})",
            self.case,
            self.class,
            self.achieved,
            self.promised,
            self.err_pct(),
            self.pct
        )
    }
}

/// The machine's CPU time (all CPUs, from /proc/stat) when the last lab
/// came up: a failed rate check says how much the hypervisor stole since.
pub(super) static LAB_START: Mutex<Option<CpuTimes>> = Mutex::new(None);

/// Steal above this share of one CPU's time during an attempt makes a
/// missed rate a reason to run the test again rather than a failure. On a
/// quiet host steal stays near 0.1 %. A case that missed by 3.5 % had
/// 180 ms stolen in 7 s, most of it in one burst (2.6 % of one CPU), and
/// then passed three times in a row within 0.01 %.
pub const STEAL_RETRY_PCT: f64 = 1.0;
/// Attempts of a rate test on weir alone (the first and up to three more)
/// before it is judged against the kernel twin instead.
pub const HOST_ATTEMPTS: u32 = 4;
/// Rounds of the kernel comparison: each runs the flows through the
/// kernel twin, then through weir. Each side is judged on its median run,
/// so one run that a burst of steal hit does not decide.
pub const TWIN_ROUNDS: u32 = 3;
/// How much larger weir's error may be than the kernel's, in points of the
/// parent's rate, when they are compared.
pub const TWIN_POINTS: f64 = 1.0;
/// Before another attempt, wait up to this long for a quiet host.
const QUIET_WAIT: Duration = Duration::from_secs(30);
/// Set (to anything) to also run the kernel comparison after an attempt
/// that passed, and fail if it fails: shows that comparison's table on a
/// quiet host. It only adds a check.
pub const TWIN_NOW_ENV: &str = "WEIR_E2E_TWIN_NOW";

/// Writes a line to stderr past libtest's capture, so a CI log shows how
/// a rate test went even when it passes.
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs a test that measures shaped rates, holding the lab lock, and ends
/// it as pass or fail; never anything else.
///
/// `weir` is one attempt: it brings up its own lab, runs the traffic
/// through weir, makes every check that is not a rate (flushed == 0,
/// ceil values, UMEM accounting, history rows, …) with plain assertions,
/// which fail the test at once, and returns the rates it measured.
/// `kernel` runs the same flows through the kernel twin (its own lab,
/// [`Lab::twin`]) and returns the kernel's rates for the same cases, in
/// the same order.
///
/// - Every rate within its tolerance: pass.
/// - A rate missed while no CPU lost more than [`STEAL_RETRY_PCT`] % to
///   the hypervisor: fail.
/// - A rate missed under more steal than that: wait for a quiet host and
///   run `weir` again, [`HOST_ATTEMPTS`] times in all. No shaper that
///   has to be scheduled keeps its rates while its VM is not running.
/// - Every attempt missed under steal: the host cannot hold rates, so
///   weir is compared with kernel HTB in the same window instead: the
///   flows run through the kernel twin and through weir in turn,
///   [`TWIN_ROUNDS`] times, and the test passes only if, for every rate,
///   weir's median error is at most [`TWIN_POINTS`] point (of the
///   parent's rate) larger than the kernel's. The table of what was
///   compared is printed either way.
pub fn rate_test(name: &str, weir: impl Fn() -> Vec<Rate>, kernel: impl Fn() -> Vec<Rate>) {
    // The lock is taken here, not in `weir`, so an attempt's steal is
    // measured over that attempt only, not over another test's run.
    let _serial = serialize();
    let twin_now = std::env::var_os(TWIN_NOW_ENV).is_some();
    for attempt in 1..=HOST_ATTEMPTS {
        let start = CpuTimes::now();
        let rates = weir();
        assert!(!rates.is_empty(), "{name}: the test measured no rate");
        let steal = start.and_then(|s| s.worst_steal_pct_since());
        let steal_text = steal.map_or("unknown".to_string(), |p| format!("{p:.1} % of a CPU"));
        for r in &rates {
            say(&format!("{name}: attempt {attempt}: {r}"));
        }
        let misses: Vec<String> = rates
            .iter()
            .filter(|r| !r.within())
            .map(ToString::to_string)
            .collect();
        if misses.is_empty() {
            say(&format!(
                "{name}: PASS on attempt {attempt} (steal {steal_text})"
            ));
            if twin_now {
                say(&format!(
                    "{name}: {TWIN_NOW_ENV} is set: also comparing with the kernel twin"
                ));
                against_kernel(name, &weir, &kernel);
            }
            return;
        }
        if !steal.is_some_and(|p| p > STEAL_RETRY_PCT) {
            panic!(
                "{name}: attempt {attempt} missed what HTB promises while the host was quiet (steal {steal_text}):\n{}\n{}",
                misses.join("\n"),
                host_note()
            );
        }
        if attempt == HOST_ATTEMPTS {
            say(&format!(
                "{name}: attempt {attempt} missed too, under steal {steal_text}; every attempt was disturbed, so weir is judged against kernel HTB in the same window"
            ));
            break;
        }
        let quiet = host::wait_for_quiet_host(STEAL_RETRY_PCT, QUIET_WAIT);
        say(&format!(
            "{name}: attempt {attempt} missed under steal {steal_text} ({}); {}; running it again",
            misses.join("; "),
            match quiet {
                Some(q) if q <= STEAL_RETRY_PCT => format!("host quiet again (steal {q:.1} %)"),
                Some(q) => format!(
                    "host still stealing {q:.1} % after {} s",
                    QUIET_WAIT.as_secs()
                ),
                None => "host steal unknown".to_string(),
            }
        ));
    }
    against_kernel(name, &weir, &kernel);
}

/// The kernel comparison of [`rate_test`]: kernel, weir, kernel, weir, …
/// and a verdict per rate on the median errors.
fn against_kernel(name: &str, weir: &dyn Fn() -> Vec<Rate>, kernel: &dyn Fn() -> Vec<Rate>) {
    let mut weir_runs: Vec<Vec<Rate>> = Vec::new();
    let mut kernel_runs: Vec<Vec<Rate>> = Vec::new();
    let mut steal_pct: f64 = 0.0;
    for round in 1..=TWIN_ROUNDS {
        let start = CpuTimes::now();
        kernel_runs.push(kernel());
        weir_runs.push(weir());
        let steal = start.and_then(|s| s.worst_steal_pct_since());
        steal_pct = steal_pct.max(steal.unwrap_or(0.0));
        let steal = steal.map_or("unknown".to_string(), |p| format!("{p:.1} % of a CPU"));
        say(&format!(
            "{name}: kernel comparison round {round} of {TWIN_ROUNDS} done (steal {steal})"
        ));
    }
    let (table, worse) = compare_with_kernel(&weir_runs, &kernel_runs, steal_pct);
    say(&format!(
        "{name}: weir against kernel HTB, interleaved:\n{table}"
    ));
    assert!(
        worse.is_empty(),
        "{name}: weir's error is more than {TWIN_POINTS} point of the parent's rate (plus what steal explains of a shortfall) larger than kernel HTB's in the same window:\n{}\n{}",
        worse.join("\n"),
        host_note()
    );
    say(&format!(
        "{name}: PASS against kernel HTB (weir no more than {TWIN_POINTS} point worse for every rate)"
    ));
}

/// Per rate: weir's and the kernel's achieved rates in each run, their
/// median errors in points of the parent's rate (the mean of the middle
/// two for an even count), and the verdict. Returns the table and the rows
/// where weir is more than [`TWIN_POINTS`] worse, or, for a rate weir fell
/// short of while the hypervisor took `steal_pct` % of a CPU (the most of
/// any round), [`TWIN_POINTS`] plus the stolen share of the promise
/// (`weir_testkit::host::stolen_share`): weir's worker is one thread, which
/// a stolen CPU stops, while the kernel's HTB also runs in the sender's
/// context on the other CPU. Over the promise nothing is explained.
pub fn compare_with_kernel(
    weir: &[Vec<Rate>],
    kernel: &[Vec<Rate>],
    steal_pct: f64,
) -> (String, Vec<String>) {
    assert!(!weir.is_empty() && !kernel.is_empty(), "no runs to compare");
    let n = weir[0].len();
    for run in weir.iter().chain(kernel) {
        assert_eq!(run.len(), n, "runs measured different numbers of rates");
        for (a, b) in run.iter().zip(&weir[0]) {
            assert!(
                a.case == b.case && a.class == b.class,
                "weir and kernel measured different cases: {a} / {b}"
            );
        }
    }
    let median = |runs: &[Vec<Rate>], i: usize| median_of(runs.iter().map(|r| r[i].err_points()));
    let list = |runs: &[Vec<Rate>], i: usize| {
        runs.iter()
            .map(|r| format!("{:.2}", r[i].achieved))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut table = String::new();
    let mut worse = Vec::new();
    for i in 0..n {
        let r = &weir[0][i];
        let w = median(weir, i);
        let k = median(kernel, i);
        let short = median_of(weir.iter().map(|run| run[i].achieved - run[i].promised)) < 0.0;
        let stolen = short
            .then(|| stolen_share(steal_pct, STEAL_RETRY_PCT, r.promised / r.parent * 100.0))
            .flatten()
            .unwrap_or(0.0);
        let ok = w <= k + TWIN_POINTS + stolen;
        let allowed = if stolen > 0.0 {
            format!("+{TWIN_POINTS} and {stolen:.2} stolen at {steal_pct:.1} % steal")
        } else {
            format!("+{TWIN_POINTS}")
        };
        let row = format!(
            "{:<36} {:<5} promised {:6.2}  weir [{}] median error {w:.2} pt  kernel [{}] median error {k:.2} pt  weir - kernel {:+.2} pt (allowed {allowed}) {}",
            r.case,
            r.class,
            r.promised,
            list(weir, i),
            list(kernel, i),
            w - k,
            if ok { "ok" } else { "WORSE" }
        );
        if !ok {
            worse.push(row.clone());
        }
        table.push_str(&row);
        table.push('\n');
    }
    (table, worse)
}

/// The median (the mean of the middle two for an even count).
fn median_of(values: impl Iterator<Item = f64>) -> f64 {
    let mut e: Vec<f64> = values.collect();
    e.sort_by(f64::total_cmp);
    let m = e.len() / 2;
    if e.len() % 2 == 1 {
        e[m]
    } else {
        (e[m - 1] + e[m]) / 2.0
    }
}

/// How busy the host was since the last `Lab::up`.
pub fn host_note() -> String {
    let start = LAB_START.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(start) = start else {
        return "host load unknown (no lab started)".to_string();
    };
    match CpuTimes::now() {
        Some(now) => format!(
            "host since the lab came up: {} (steal is CPU time the hypervisor took while this VM wanted it)",
            start.summary(&now)
        ),
        None => "host load unknown (no /proc/stat)".to_string(),
    }
}
