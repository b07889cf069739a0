//! Subscribers at ISP scale (issue 13): how long a configuration with N
//! generated circuits takes to load and check, and to build its two trees
//! into shapers, and the memory each circuit costs.
//!
//! ```sh
//! cargo bench -p weir-bench --bench subscribers                  # 10,000 and 100,000 circuits
//! WEIR_BENCH_CIRCUITS=10000 cargo bench -p weir-bench --bench subscribers
//! ```
//!
//! Each step runs 3 times; the report gives the fastest and the slowest
//! (this VM's speed drifts, and a load is seconds, not nanoseconds, so
//! criterion's sampling is not used). Memory is the growth of the
//! process's resident set while the shapers are built and touched, per
//! circuit (both directions).
//!
//! Then the worker's share of live changes, on the download tree of N
//! circuits, idle and with 1,000 busy circuits holding 5 packets each and
//! spent tokens: the files changed (one circuit added, one removed, 1,000
//! plans changed), planned as `weir reload` plans them
//! (`weir_daemon::reload::plan` after `keep_ids`), and applied as the
//! worker applies them: the tree changed in place (`Shaper::edit`), then
//! each class change (`Htb::change_class`, one command each). The worker
//! time is the sum, and the longest single command is how long the worker
//! paused at most. For comparison, the rebuild that weir did before it
//! changed trees in place: the tree of N + 1 circuits swapped in
//! (`Shaper::migrate_into`). LibreQoS's figure (its issue #515): about
//! 0.73 ms per subscriber, seconds for 10,000.

use std::path::Path;
use std::time::Instant;

use std::collections::HashMap;

use weir_config::subscribers::Synth;
use weir_config::Tree;
use weir_daemon::reload::Plan;
use weir_dataplane::packet::Frame;
use weir_dataplane::shaper::{Shaper, TreeEdit};

/// The configuration of `config/subscribers.toml`, pointed at `dir`'s
/// generated files.
fn config(dir: &Path) -> String {
    let example = include_str!("../../config/subscribers.toml");
    let text = example.replace("subscribers/", "");
    std::fs::write(dir.join("weir.toml"), &text).expect("write the config");
    text
}

/// Resident set, bytes (from /proc/self/statm).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn run(circuits: u32) {
    let aps = (circuits / 50).max(1);
    let dir = std::env::temp_dir().join(format!("weir-bench-subscribers-{circuits}"));
    std::fs::create_dir_all(&dir).expect("make the directory");
    let g = Synth::new(circuits, aps);
    std::fs::write(dir.join("ShapedDevices.csv"), g.devices_csv()).expect("write the CSV");
    std::fs::write(dir.join("network.json"), g.network_json()).expect("write the JSON");
    config(&dir);
    let path = dir.join("weir.toml");

    let mut load = Vec::new();
    let mut build = Vec::new();
    let mut per_circuit = Vec::new();
    let mut classes = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let loaded = match weir_config::load(&path) {
            Ok(l) => l,
            Err(e) => panic!(
                "the generated configuration is refused: {:?}",
                &e[..e.len().min(3)]
            ),
        };
        load.push(t.elapsed().as_secs_f64());
        let specs: Vec<_> = loaded
            .config
            .trees
            .iter()
            .map(|t| t.shaper_spec(1))
            .collect();
        classes = loaded
            .config
            .trees
            .iter()
            .map(|t| t.classes.len())
            .sum::<usize>();
        let before = rss();
        let t = Instant::now();
        let shapers: Vec<Shaper> = specs
            .iter()
            .map(|s| Shaper::new(s, 0).expect("the core accepts a checked tree"))
            .collect();
        build.push(t.elapsed().as_secs_f64());
        per_circuit.push((rss().saturating_sub(before)) as f64 / f64::from(circuits));
        drop(shapers);
    }
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        (lo, hi)
    };
    let (l0, l1) = range(&load);
    let (b0, b1) = range(&build);
    let (m0, m1) = range(&per_circuit);
    println!(
        "subscribers {circuits:>7} circuits, {aps} APs, {classes} classes in 2 trees: load+check {:.3}-{:.3} s, build shapers {:.3}-{:.3} s, start {:.3} s; resident per circuit {:.1}-{:.1} KiB",
        l0,
        l1,
        b0,
        b1,
        l0 + b0,
        m0 / 1024.0,
        m1 / 1024.0
    );
    for busy in [0, 1000] {
        for change in [Change::AddOne, Change::RemoveOne, Change::Plans(1000)] {
            live_change(&dir, circuits, aps, busy, change);
        }
        swap_for_one_more(&dir, circuits, aps, busy);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 1442-byte UDP frame to `dst` (the download tree matches circuits by
/// destination address).
fn frame_to(dst: std::net::Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 1442];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&1428u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[198, 19, 0, 1]);
    f[30..34].copy_from_slice(&dst.octets());
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&1408u16.to_be_bytes());
    f
}

fn load_down(dir: &Path, circuits: u32, aps: u32) -> Tree {
    let g = Synth::new(circuits, aps);
    std::fs::write(dir.join("ShapedDevices.csv"), g.devices_csv()).expect("write the CSV");
    std::fs::write(dir.join("network.json"), g.network_json()).expect("write the JSON");
    let loaded =
        weir_config::load(&dir.join("weir.toml")).expect("the generated configuration loads");
    loaded.config.tree("down").expect("tree down").clone()
}

#[derive(Clone, Copy, Debug)]
enum Change {
    AddOne,
    RemoveOne,
    /// This many circuits' plans changed (spread over the file).
    Plans(u32),
}

/// The ShapedDevices.csv of `circuits` circuits with `change` made.
fn changed_csv(circuits: u32, aps: u32, change: Change) -> String {
    match change {
        Change::AddOne => Synth::new(circuits + 1, aps).devices_csv(),
        Change::RemoveOne => {
            let gone = format!("c{},", circuits / 2);
            Synth::new(circuits, aps)
                .devices_csv()
                .lines()
                .filter(|l| !l.starts_with(&gone))
                .map(|l| format!("{l}\n"))
                .collect()
        }
        Change::Plans(n) => {
            let every = (circuits / n).max(1);
            Synth::new(circuits, aps)
                .devices_csv()
                .lines()
                .enumerate()
                .map(|(row, l)| {
                    // Row 0 is the header; circuit i is row i + 1. A
                    // changed plan: every rate cell one tier up, by
                    // doubling the min and max columns (8 to 11).
                    let i = row as u32;
                    if row == 0 || !(i - 1).is_multiple_of(every) || (i - 1) / every >= n {
                        return format!("{l}\n");
                    }
                    let mut cells: Vec<String> = l.split(',').map(str::to_string).collect();
                    for c in &mut cells[8..12] {
                        let v: f64 = c.parse().expect("a rate cell");
                        *c = format!("{}", v * 2.0);
                    }
                    format!("{}\n", cells.join(","))
                })
                .collect()
        }
    }
}

/// The packets a shaper of `tree` holds, and its busy circuits' spent
/// tokens: 10 packets into each busy circuit at t = 0, 5 of them sent.
fn busy_shaper(tree: &Tree, busy: &[Vec<u8>]) -> Shaper {
    let mut s = Shaper::new(&tree.shaper_spec(1), 0).expect("builds");
    let mut addr = 0;
    for _ in 0..10 {
        for f in busy {
            addr += 1;
            s.enqueue(Frame { addr, len: 1442 }, f, 0);
        }
    }
    for _ in 0..busy.len() * 5 {
        let _ = s.dequeue(1_000_000);
    }
    s
}

fn busy_frames(circuits: u32, aps: u32, busy: u32) -> Vec<Vec<u8>> {
    let g = Synth::new(circuits, aps);
    let stride = (circuits / busy.max(1)).max(1);
    (0..circuits.min(busy))
        .map(|i| frame_to(g.address(i * stride).expect("in range")))
        .collect()
}

fn live_change(dir: &Path, circuits: u32, aps: u32, busy: u32, change: Change) {
    let g = Synth::new(circuits, aps);
    std::fs::write(dir.join("ShapedDevices.csv"), g.devices_csv()).expect("write the CSV");
    std::fs::write(dir.join("network.json"), g.network_json()).expect("write the JSON");
    let cfg = dir.join("weir.toml");
    let old = weir_config::load(&cfg).expect("loads").config;
    std::fs::write(
        dir.join("ShapedDevices.csv"),
        changed_csv(circuits, aps, change),
    )
    .expect("write the changed CSV");
    let t = Instant::now();
    let mut new = weir_config::load(&cfg)
        .expect("the changed files load")
        .config;
    weir_config::subscribers::keep_ids(&old, &mut new);
    let plan = weir_daemon::reload::plan(&old, &new);
    let planned = t.elapsed();
    let Plan::Apply {
        steps,
        edits,
        rebuilds,
    } = plan
    else {
        panic!("{change:?}: the reload is refused");
    };
    assert!(rebuilds.is_empty(), "{change:?}: {rebuilds:?}");
    let ti = old
        .trees
        .iter()
        .position(|t| t.name == "down")
        .expect("down");
    let edit = edits.iter().find(|e| e.tree_index == ti);
    let busy = busy_frames(circuits, aps, busy);
    let mut worker = Vec::new();
    let mut longest = Vec::new();
    let mut queued = 0;
    let mut changes = 0;
    for _ in 0..3 {
        let mut s = busy_shaper(&old.trees[ti], &busy);
        queued = s.counters().queued;
        let mut commands = Vec::new();
        let prepared = edit.map(|e| {
            let spec = e.after.shaper_spec(1);
            TreeEdit::new(&spec, e.remove.clone(), e.added).expect("the edit builds")
        });
        if let Some(te) = prepared {
            let t = Instant::now();
            s.edit(te, 1_000_000)
                .expect("the tree takes the edit in place");
            commands.push(t.elapsed());
        }
        let tree_steps = steps
            .iter()
            .chain(edit.iter().flat_map(|e| e.steps.iter()))
            .filter(|st| st.tree_index == ti);
        changes = 0;
        for st in tree_steps {
            let t = Instant::now();
            s.htb_mut()
                .change_class(st.class, &st.change, 1_000_000)
                .expect("a valid change");
            commands.push(t.elapsed());
            changes += 1;
        }
        let kept = s.counters().queued;
        let removed = s.take_drops().count() as u64;
        assert_eq!(
            kept + removed,
            queued,
            "{change:?}: every packet kept or counted"
        );
        worker.push(commands.iter().sum::<std::time::Duration>().as_secs_f64());
        longest.push(
            commands
                .iter()
                .max()
                .copied()
                .unwrap_or_default()
                .as_secs_f64(),
        );
    }
    let lo = worker.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = worker.iter().copied().fold(0.0, f64::max);
    let top = longest.iter().copied().fold(0.0, f64::max);
    println!(
        "subscribers {circuits:>7} circuits: {change:?}, {queued} packets queued in {} circuits: planned in {:.1} ms; worker {:.3}-{:.3} ms ({} in place, {changes} class changes), longest command {:.3} ms",
        busy.len(),
        planned.as_secs_f64() * 1e3,
        lo * 1e3,
        hi * 1e3,
        if edit.is_some() { "tree changed" } else { "nothing" },
        top * 1e3,
    );
}

fn swap_for_one_more(dir: &Path, circuits: u32, aps: u32, busy: u32) {
    let old_tree = load_down(dir, circuits, aps);
    let new_tree = load_down(dir, circuits + 1, aps);
    let by_id: HashMap<_, u32> = new_tree
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i as u32))
        .collect();
    let map: Vec<Option<u32>> = old_tree
        .classes
        .iter()
        .map(|c| by_id.get(&c.id).copied())
        .collect();
    let busy = busy_frames(circuits, aps, busy);
    let mut took = Vec::new();
    let mut queued = 0;
    for _ in 0..3 {
        let mut old = busy_shaper(&old_tree, &busy);
        queued = old.counters().queued;
        let next = Shaper::new(&new_tree.shaper_spec(1), 0).expect("builds");
        let t = Instant::now();
        let new = old.migrate_into(next, &map, 1_000_000);
        took.push(t.elapsed().as_secs_f64());
        assert_eq!(new.counters().queued, queued, "every queued packet kept");
        drop(new);
    }
    let lo = took.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = took.iter().copied().fold(0.0, f64::max);
    println!(
        "subscribers {circuits:>7} circuits: one circuit added by a rebuild instead (migrate_into, {queued} packets queued in {} circuits): {:.3}-{:.3} ms",
        busy.len(),
        lo * 1e3,
        hi * 1e3
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used here.
    let sizes: Vec<u32> = match std::env::var("WEIR_BENCH_CIRCUITS") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => vec![10_000, 100_000],
    };
    for n in sizes {
        run(n);
    }
}
