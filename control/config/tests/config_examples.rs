//! Every example in `config/` passes `weir check` and compiles to a spec the
//! dataplane accepts.

use std::path::PathBuf;

use weir_config::{self as config, cli_check};
use weir_dataplane::shaper::Shaper;
use weir_testkit::fixture::repo_root;

fn examples() -> Vec<PathBuf> {
    let dir = repo_root().join("config");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/ exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_example_passes_check() {
    let files = examples();
    assert!(
        files.len() >= 5,
        "expected the seed examples and lab.toml: {files:?}"
    );
    for f in files {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = cli_check(&f, &mut out, &mut err);
        let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
        println!("== {}\n{out}{err}", f.display());
        assert_eq!(code, 0, "{}:\n{err}", f.display());
        assert!(out.contains("class htb"), "{out}");
    }
}

#[test]
fn every_example_compiles_to_a_shaper() {
    for f in examples() {
        let loaded = config::load(&f).unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        for t in &loaded.config.trees {
            let spec = t.shaper_spec(7);
            assert_eq!(spec.htb.classes.len(), t.classes.len());
            for (i, c) in spec.htb.classes.iter().enumerate() {
                if let Some(p) = c.parent {
                    assert!((p as usize) < i, "parents first");
                }
            }
            if let Err(e) = Shaper::new(&spec, 0) {
                panic!("{} tree {}: {e:?}", f.display(), t.name);
            }
        }
    }
}
