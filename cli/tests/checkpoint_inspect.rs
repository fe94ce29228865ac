//! `bots checkpoint inspect`: the header, the posterior's statistics, and damage explained.

mod common;

use std::process::Command;

use bots::checkpoint;
use bots::{Backend, Config, CpuPool, Evidence, Features, PoolState};

/// Three tasks with f32 features and a per-task prior, one update applied.
fn small_state() -> (Config, PoolState) {
    let cfg = Config { rho: 0.3, prior_strength: Some(2.0), batch: 2, ..Default::default() };
    let weak = [0.1f32, 0.3337, 0.5];
    let strong = [0.6f32, 0.71, 0.9];
    let f = Features::from_f32(&weak, &strong).unwrap();
    assert_eq!(f.form(), bots::FeatureForm::F32, "values that are not f16 keep the 4-byte form");
    let mut pool = CpuPool::new(cfg.clone(), 3, Some(f)).unwrap();
    let t = pool.select_batch().unwrap();
    pool.update(&Evidence::pass_rates(t, vec![0.25, 0.75])).unwrap();
    (cfg, pool.to_host().unwrap())
}

#[test]
fn cli_inspect_prints_header_and_stats_and_explains_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.ckpt");
    let (cfg, state) = small_state();
    checkpoint::save(&path, &cfg, &state).unwrap();
    let bin = common::bots_bin();
    let out = Command::new(&bin).args(["checkpoint", "inspect", "--json"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["header"]["n"], 3);
    // The pool it belongs to: the live pool's fingerprint (what restore compares and adapters name files by).
    let fp = bots::Fingerprint::of(&cfg, 3, state.features.as_ref()).id();
    assert_eq!(v["fingerprint"], fp.as_str());
    assert_eq!(v["header"]["step"], 1);
    assert_eq!(v["header"]["version"], 3);
    assert_eq!(v["header"]["feature_columns"], 2);
    assert_eq!(v["header"]["features"], "f32");
    assert_eq!(v["header"]["config"]["rho"].as_f64().unwrap() as f32, 0.3);
    let amax = state.alpha.iter().cloned().fold(f32::MIN, f32::max) as f64;
    assert_eq!(v["alpha"]["max"].as_f64().unwrap(), amax);
    let ess_min = state.alpha.iter().zip(&state.beta).map(|(a, b)| *a as f64 + *b as f64).fold(f64::MAX, f64::min);
    assert_eq!(v["effective_sample_size"]["min"].as_f64().unwrap(), ess_min);

    let out = Command::new(&bin).args(["checkpoint", "inspect"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in &[
        "version      3",
        "tasks (N)    3",
        &format!("fingerprint  {fp}"),
        "step         1",
        "posterior mean",
        "alpha+beta (ESS)",
        "prior        per task",
        "features-f32, mu-set]",
        "features     F32 (8 bytes per task, 2 columns)",
        "neighbours   none",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }

    let mut b = std::fs::read(&path).unwrap();
    let last = b.len() - 10;
    b[last] ^= 4;
    std::fs::write(&path, &b).unwrap();
    let out = Command::new(&bin).args(["checkpoint", "inspect"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checksum mismatch") && err.contains("cli.ckpt"), "{err}");
}

/// A checkpoint with a neighbour graph: its k, edges and eta are shown, and the fingerprint covers it.
#[test]
fn cli_inspect_shows_the_neighbour_graph() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.ckpt");
    let g =
        bots::Neighbours::from_lists(3, 2, vec![1, 2, 0, u32::MAX, 0, 1], vec![0.5, 0.25, 1.0, 0.0, 0.5, 0.5]).unwrap();
    let cfg = Config { rho: 0.0, neighbour_weight: 0.75, batch: 1, ..Default::default() };
    let pool = CpuPool::with_neighbours(cfg.clone(), 3, None, Some(g)).unwrap();
    pool.save_checkpoint(&path).unwrap();
    let out = Command::new(common::bots_bin()).args(["checkpoint", "inspect"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("neighbours   k = 2, 5 edges, neighbour_weight 0.75"), "{text}");
    assert!(text.contains(&format!("fingerprint  {}", pool.fingerprint())), "{text}");
}
