//! `weir class change`: from the operator's words (tc units) to a checked
//! `ClassChange` for the data path and the class's new configuration.
//!
//! Like `tc class change`, a value not given keeps its current setting,
//! except the ones tc derives: a new `rate` without `burst` gets tc's
//! default burst for the new rate, a new `ceil` without `cburst` likewise,
//! and a new `rate` without `quantum` gets rate / r2q (clamped as Linux
//! clamps it). So `change rate 10mbit` on a class leaves it exactly as
//! `tc class change … rate 10mbit` would.

use weir_dataplane::htb::ClassChange;

use weir_config::{default_burst, Class, Config, Rate, Size, UnitError, QUANTUM_MAX, QUANTUM_MIN};

/// Why a class change was refused; each says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("no tree \"{name}\"; expected one of: {trees}")]
    NoTree {
        name: String,
        /// The configured trees, comma-separated.
        trees: String,
    },
    #[error("tree \"{tree}\" has no class \"{class}\"")]
    NoClassInTree { tree: String, class: String },
    #[error("no class \"{class}\" in any tree; expected a class id like 1:10 or a class name")]
    NoClass { class: String },
    #[error("class \"{class}\" is in trees {trees}; say which with --tree")]
    Ambiguous { class: String, trees: String },
    #[error(
        "nothing to change; expected at least one of rate, ceil, burst, cburst, prio, quantum"
    )]
    Nothing,
    #[error("bad {what} \"{value}\": {source}")]
    Bad {
        what: &'static str,
        value: String,
        source: UnitError,
    },
    #[error("rate \"{value}\" is below 8bit; expected a positive rate")]
    RateZero { value: String },
    #[error("quantum \"{value}\" is out of range; expected 1b..2gb")]
    Quantum { value: String },
    #[error("prio {prio} is out of range; expected 0..=7")]
    Prio { prio: u8 },
    #[error("ceil {ceil} is below rate {rate}; expected ceil ≥ rate")]
    CeilBelowRate { ceil: Rate, rate: Rate },
    #[error("{what} {size} is out of range; expected 1b..4gb")]
    Burst { what: &'static str, size: Size },
}

/// The error for a tree name the configuration does not have.
pub fn no_tree(config: &Config, name: &str) -> ChangeError {
    ChangeError::NoTree {
        name: name.to_string(),
        trees: tree_names(config),
    }
}

/// The operator's request, values as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeArgs {
    pub tree: Option<String>,
    pub class: String,
    pub rate: Option<String>,
    pub ceil: Option<String>,
    pub burst: Option<String>,
    pub cburst: Option<String>,
    pub prio: Option<u8>,
    pub quantum: Option<String>,
}

/// A checked change: what to send to the data path and the class as it
/// will be.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub tree: usize,
    pub class: u32,
    pub change: ClassChange,
    pub new: Class,
    /// One line saying what changed, for the operator and the log.
    pub summary: String,
    pub warnings: Vec<String>,
}

/// Find the class: by id or name, in `tree` or in the only tree that has
/// it.
pub fn resolve(
    config: &Config,
    tree: Option<&str>,
    class: &str,
) -> Result<(usize, u32), ChangeError> {
    let candidates: Vec<(usize, u32)> = config
        .trees
        .iter()
        .enumerate()
        .filter(|(_, t)| tree.is_none_or(|name| t.name == name))
        .filter_map(|(i, t)| t.class_index(class).map(|c| (i, c)))
        .collect();
    match (candidates.as_slice(), tree) {
        ([one], _) => Ok(*one),
        ([], Some(name)) if config.tree(name).is_none() => Err(no_tree(config, name)),
        ([], Some(name)) => Err(ChangeError::NoClassInTree {
            tree: name.to_string(),
            class: class.to_string(),
        }),
        ([], None) => Err(ChangeError::NoClass {
            class: class.to_string(),
        }),
        (many, _) => Err(ChangeError::Ambiguous {
            class: class.to_string(),
            trees: many
                .iter()
                .map(|(t, _)| config.trees[*t].name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn tree_names(config: &Config) -> String {
    config
        .trees
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn size(what: &'static str, s: &str) -> Result<Size, ChangeError> {
    s.parse::<Size>().map_err(|source| ChangeError::Bad {
        what,
        value: s.to_string(),
        source,
    })
}

/// Check `args` against the running `config` and work out the change.
pub fn plan(config: &Config, args: &ChangeArgs) -> Result<Planned, ChangeError> {
    let (ti, ci) = resolve(config, args.tree.as_deref(), &args.class)?;
    let tree = &config.trees[ti];
    let old = &tree.classes[ci as usize];
    if args.rate.is_none()
        && args.ceil.is_none()
        && args.burst.is_none()
        && args.cburst.is_none()
        && args.prio.is_none()
        && args.quantum.is_none()
    {
        return Err(ChangeError::Nothing);
    }
    let rate_of = |what: &'static str, s: &str| -> Result<Rate, ChangeError> {
        Rate::parse(s, tree.link).map_err(|source| ChangeError::Bad {
            what,
            value: s.to_string(),
            source,
        })
    };
    let mut new = old.clone();
    if let Some(r) = &args.rate {
        new.rate = rate_of("rate", r)?;
        if new.rate.bytes_per_sec() == 0 {
            return Err(ChangeError::RateZero { value: r.clone() });
        }
        new.burst = Size::from_bytes(default_burst(new.rate));
        if new.qdisc.is_some() {
            let q = new.rate.bytes_per_sec() / u64::from(tree.r2q.max(1));
            new.quantum = Size::from_bytes(q.clamp(QUANTUM_MIN, QUANTUM_MAX));
        }
    }
    if let Some(c) = &args.ceil {
        new.ceil = rate_of("ceil", c)?;
        new.cburst = Size::from_bytes(default_burst(new.ceil));
    } else if args.rate.is_some() && old.ceil == old.rate {
        // tc: ceil defaults to rate; a class that had no ceil of its own
        // follows its new rate (and ceil below rate would be refused).
        new.ceil = new.rate;
        new.cburst = Size::from_bytes(default_burst(new.ceil));
    }
    if let Some(b) = &args.burst {
        new.burst = size("burst", b)?;
    }
    if let Some(b) = &args.cburst {
        new.cburst = size("cburst", b)?;
    }
    if let Some(q) = &args.quantum {
        new.quantum = size("quantum", q)?;
        if new.quantum.bytes() == 0 || new.quantum.bytes() > i32::MAX as u64 {
            return Err(ChangeError::Quantum { value: q.clone() });
        }
    }
    if let Some(p) = args.prio {
        if p > 7 {
            return Err(ChangeError::Prio { prio: p });
        }
        new.prio = p;
    }
    if new.ceil.bytes_per_sec() < new.rate.bytes_per_sec() {
        return Err(ChangeError::CeilBelowRate {
            ceil: new.ceil,
            rate: new.rate,
        });
    }
    for (what, s) in [("burst", new.burst), ("cburst", new.cburst)] {
        if s.bytes() == 0 || s.bytes() > u64::from(u32::MAX) {
            return Err(ChangeError::Burst { what, size: s });
        }
    }
    let mut warnings = Vec::new();
    if let Some(p) = new.parent {
        let parent = &tree.classes[p as usize];
        let children: u64 = tree
            .classes
            .iter()
            .enumerate()
            .filter(|(i, c)| c.parent == Some(p) && *i as u32 != ci)
            .map(|(_, c)| c.rate.bytes_per_sec())
            .sum::<u64>()
            + new.rate.bytes_per_sec();
        if children > parent.rate.bytes_per_sec() {
            warnings.push(format!(
                "the children of {} now guarantee {} in all, above its rate {}: HTB can't keep every guarantee when all are busy",
                parent.id,
                Rate::from_bits_per_sec(children.saturating_mul(8)),
                parent.rate
            ));
        }
    }
    let bytes = |s: Size| u32::try_from(s.bytes()).unwrap_or(u32::MAX);
    let change = ClassChange {
        rate: (new.rate != old.rate).then(|| new.rate.bytes_per_sec()),
        ceil: (new.ceil != old.ceil).then(|| new.ceil.bytes_per_sec()),
        burst: (new.burst != old.burst).then(|| bytes(new.burst)),
        cburst: (new.cburst != old.cburst).then(|| bytes(new.cburst)),
        prio: (new.prio != old.prio).then_some(new.prio),
        quantum: (new.quantum != old.quantum).then(|| bytes(new.quantum)),
    };
    let mut parts = Vec::new();
    let mut diff = |name: &str, a: String, b: String| {
        if a != b {
            parts.push(format!("{name} {a} → {b}"));
        }
    };
    diff("rate", old.rate.to_string(), new.rate.to_string());
    diff("ceil", old.ceil.to_string(), new.ceil.to_string());
    diff("burst", old.burst.to_string(), new.burst.to_string());
    diff("cburst", old.cburst.to_string(), new.cburst.to_string());
    diff("prio", old.prio.to_string(), new.prio.to_string());
    diff("quantum", old.quantum.to_string(), new.quantum.to_string());
    let summary = if parts.is_empty() {
        format!("class {} (tree {}): unchanged", tree.label(ci), tree.name)
    } else {
        format!(
            "class {} (tree {}): {}",
            tree.label(ci),
            tree.name,
            parts.join(", ")
        )
    };
    Ok(Planned {
        tree: ti,
        class: ci,
        change,
        new,
        summary,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Config {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/lab.toml");
        weir_config::load(std::path::Path::new(path))
            .expect("lab.toml loads")
            .config
    }

    fn args(tree: Option<&str>, class: &str) -> ChangeArgs {
        ChangeArgs {
            tree: tree.map(str::to_string),
            class: class.to_string(),
            ..ChangeArgs::default()
        }
    }

    #[test]
    fn halving_a_rate_derives_burst_and_quantum_as_tc_does() {
        let c = lab();
        let p = plan(
            &c,
            &ChangeArgs {
                rate: Some("15mbit".into()),
                ..args(Some("up"), "1:10")
            },
        )
        .expect("valid");
        assert_eq!(p.change.rate, Some(1_875_000));
        assert_eq!(p.change.ceil, None, "ceil 60mbit was set explicitly");
        // r2q 100 in the lab: 1_875_000 / 100.
        assert_eq!(p.new.quantum.bytes(), 18_750);
        assert_eq!(p.new.burst.bytes(), default_burst(p.new.rate));
        assert!(p.summary.contains("rate 30Mbit → 15Mbit"), "{}", p.summary);
    }

    #[test]
    fn names_and_ambiguity() {
        let c = lab();
        let e = plan(
            &c,
            &ChangeArgs {
                rate: Some("1mbit".into()),
                ..args(None, "1:10")
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("say which with --tree"), "{e}");
        let p = plan(
            &c,
            &ChangeArgs {
                prio: Some(0),
                ..args(Some("down"), "high")
            },
        )
        .expect("by name");
        assert_eq!((p.tree, p.change.prio), (1, Some(0)));
        let e = plan(
            &c,
            &ChangeArgs {
                prio: Some(0),
                ..args(Some("nope"), "1:10")
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no tree \"nope\""), "{e}");
        let e = plan(
            &c,
            &ChangeArgs {
                prio: Some(0),
                ..args(Some("up"), "1:99")
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("has no class"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_what_was_expected() {
        let c = lab();
        let cases = [
            (
                ChangeArgs {
                    ceil: Some("10mbit".into()),
                    ..args(Some("up"), "1:10")
                },
                "expected ceil ≥ rate",
            ),
            (
                ChangeArgs {
                    rate: Some("fast".into()),
                    ..args(Some("up"), "1:10")
                },
                "bad rate \"fast\"",
            ),
            (
                ChangeArgs {
                    prio: Some(9),
                    ..args(Some("up"), "1:10")
                },
                "expected 0..=7",
            ),
            (
                ChangeArgs {
                    burst: Some("0".into()),
                    ..args(Some("up"), "1:10")
                },
                "out of range",
            ),
            (args(Some("up"), "1:10"), "nothing to change"),
        ];
        for (a, needle) in cases {
            let e = plan(&c, &a).unwrap_err().to_string();
            assert!(e.contains(needle), "{a:?}: {e}");
        }
    }

    #[test]
    fn oversubscribing_the_parent_is_a_warning() {
        let c = lab();
        let p = plan(
            &c,
            &ChangeArgs {
                rate: Some("60mbit".into()),
                ..args(Some("up"), "1:10")
            },
        )
        .expect("valid");
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    }
}
