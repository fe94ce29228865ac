//! `bots replay` end to end: the real binary on tiny pools, against hand-worked numbers and against
//! the library's `CpuPool`, and its refusals of bad input.
//!
//! Hand-worked numbers use the defaults unless a config says otherwise: lambda = 0.1, m = 16,
//! gamma = 0.9, prior Beta(1, 1), and the update of the spec (§4):
//!   alpha' = 0.9·alpha + 0.1·1 + (1-rho)·s_bar + rho·n·p
//!   beta'  = 0.9·beta  + 0.1·1 + (1-rho)·f_bar + rho·n·(1-p)
//! (p = r for a batch task with n its rollouts; p = p_tilde and n = m = 16 for any other task).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bots::{Backend, Config, CpuPool, Globals};
use bots_cli::io::{load_pool, read_posterior, Posterior, ReplayLog};

use common::{bots_bin, data_dir};

const KEYS: [&str; 2] = ["qwen2.5_7b_pass_rate", "qwen3_30b_pass_rate"];

/// A temporary folder holding the pool, the log and the config of one run.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case { dir: tempfile::tempdir().unwrap() }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    /// A JSONL pool with features `(weak, strong)` per task.
    fn pool(&self, features: &[(f64, f64)]) -> PathBuf {
        let text: String = features
            .iter()
            .enumerate()
            .map(|(k, (w, s))| format!("{{\"id\": {k}, \"{}\": {w}, \"{}\": {s}}}\n", KEYS[0], KEYS[1]))
            .collect();
        self.file("pool.jsonl", &text)
    }
    /// Runs `bots replay --pool POOL --log LOG --out OUT [--config CONFIG] EXTRA...`.
    fn replay(&self, pool: &Path, log: &str, config: Option<&str>, out: &str, extra: &[&str]) -> (Output, PathBuf) {
        let log = self.file("log.jsonl", log);
        let out = self.path(out);
        let mut cmd = Command::new(bots_bin());
        cmd.arg("replay").arg("--pool").arg(pool).arg("--log").arg(&log).arg("--out").arg(&out);
        if let Some(c) = config {
            cmd.arg("--config").arg(self.file("config.json", c));
        }
        cmd.args(extra);
        (cmd.output().unwrap(), out)
    }
    /// Runs a replay that must succeed and returns the posterior it wrote.
    fn ok(&self, pool: &Path, log: &str, config: Option<&str>, extra: &[&str]) -> Posterior {
        let (out, path) = self.replay(pool, log, config, "post.jsonl", extra);
        assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
        read_posterior(&path).unwrap()
    }
    /// Runs a replay that must fail; checks no output was created and returns stderr.
    fn fails(&self, pool: &Path, log: &str, config: Option<&str>, extra: &[&str]) -> String {
        let (out, path) = self.replay(pool, log, config, "post.jsonl", extra);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "replay should have failed; stderr: {stderr}");
        assert!(!path.exists(), "no output may be written on failure");
        let leftovers: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("post"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        stderr
    }
}

fn assert_close(got: &Posterior, alpha: &[f32], beta: &[f32], mu: Option<f32>, rho: f32, step: u64) {
    let close = |a: f32, b: f32| (a - b).abs() <= 2e-5 * b.abs().max(1.0);
    assert_eq!(got.len(), alpha.len());
    for k in 0..alpha.len() {
        assert!(close(got.alpha[k], alpha[k]), "task {k}: alpha {} != {}", got.alpha[k], alpha[k]);
        assert!(close(got.beta[k], beta[k]), "task {k}: beta {} != {}", got.beta[k], beta[k]);
    }
    match (got.globals.mu, mu) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!(close(g, w), "mu {g} != {w}"),
        other => panic!("mu: {other:?}"),
    }
    assert_eq!((got.globals.rho, got.globals.step), (rho, step));
}

// ---------------------------------------------------------------------------------------------
// Hand-worked numbers

/// rho = 0 (explicit only), a pool without features, pass rates then counts with n_k < m.
#[test]
fn rho_zero_explicit_only_rates_then_counts() {
    let c = Case::new();
    let pool = c.file("pool.jsonl", "{\"id\": 0}\n{\"id\": 1}\n{\"id\": 2}\n");
    let step0 = "{\"step\": 0, \"tasks\": [1], \"pass_rates\": [0.25]}\n";
    // Step 0, task 1, r = 0.25: s_bar = 16·0.25 = 4, f_bar = 12.
    //   alpha = 0.9 + 0.1 + 4 = 5, beta = 1 + 12 = 13. Tasks 0, 2: 0.9 + 0.1 = 1 (rho = 0: no implicit).
    let p = c.ok(&pool, step0, Some("{\"rho\": 0}"), &["--no-features"]);
    assert_close(&p, &[1.0, 5.0, 1.0], &[1.0, 13.0, 1.0], None, 0.0, 1);

    // Step 1, counts: task 0 with 3 successes, 5 failures (n = 8 < m); task 1 with 0 / 16.
    //   task 0: alpha = 1 + 3 = 4, beta = 1 + 5 = 6
    //   task 1: alpha = 0.9·5 + 0.1 = 4.6, beta = 0.9·13 + 0.1 + 16 = 27.8
    //   task 2: 1, 1; mu stays unset without features.
    let log = format!("{step0}{{\"step\": 1, \"tasks\": [0, 1], \"successes\": [3, 0], \"failures\": [5, 16]}}\n");
    let p = c.ok(&pool, &log, Some("{\"rho\": 0}"), &["--no-features"]);
    assert_close(&p, &[4.0, 4.6, 1.0], &[6.0, 27.8, 1.0], None, 0.0, 2);
}

const POOL3: [(f64, f64); 3] = [(0.0, 0.5), (0.5, 1.0), (0.25, 0.75)];

/// rho = 1 (implicit only): mu is unset, set on the first update, then smoothed with gamma.
#[test]
fn rho_one_implicit_only_mu_set_then_smoothed() {
    let c = Case::new();
    let pool = c.pool(&POOL3);
    let step0 = "{\"step\": 0, \"tasks\": [0], \"pass_rates\": [0.25]}\n";
    // Step 0: mu_est = (0.25 - 0) / (0.5 - 0 + 1e-6) = 0.5 (0.499999); first update: mu = mu_est.
    //   p_tilde: task 1 = 0.5 + 0.5·0.5 = 0.75, task 2 = 0.25 + 0.5·0.5 = 0.5; task 0 keeps r = 0.25.
    //   rho = 1, explicit weight 0: task 0: alpha = 1 + 16·0.25 = 5, beta = 1 + 16·0.75 = 13
    //   task 1: 1 + 16·0.75 = 13, 1 + 16·0.25 = 5; task 2: 1 + 8 = 9, 9.
    let p = c.ok(&pool, step0, Some("{\"rho\": 1}"), &[]);
    assert_close(&p, &[5.0, 13.0, 9.0], &[13.0, 5.0, 9.0], Some(0.5), 1.0, 1);

    // Step 1, counts: task 1 with 3 / 5 (n = 8 < m), r = 0.375.
    //   mu_est = (0.375 - 0.5) / (1 - 0.5 + 1e-6) = -0.25; mu = 0.9·0.5 + 0.1·(-0.25) = 0.425.
    //   p_tilde: task 0 = 0.425·0.5 = 0.2125, task 2 = 0.25 + 0.425·0.5 = 0.4625.
    //   task 1 (n = 8 in the rho term): alpha = 0.9·13 + 0.1 + 8·0.375 = 14.8, beta = 0.9·5 + 0.1 + 8·0.625 = 9.6
    //   task 0: alpha = 0.9·5 + 0.1 + 16·0.2125 = 8.0, beta = 0.9·13 + 0.1 + 16·0.7875 = 24.4
    //   task 2: alpha = 0.9·9 + 0.1 + 16·0.4625 = 15.6, beta = 8.2 + 16·0.5375 = 16.8
    let log = format!("{step0}{{\"step\": 1, \"tasks\": [1], \"successes\": [3], \"failures\": [5]}}\n");
    let p = c.ok(&pool, &log, Some("{\"rho\": 1}"), &[]);
    assert_close(&p, &[8.0, 14.8, 15.6], &[24.4, 9.6, 16.8], Some(0.425), 1.0, 2);
}

/// The default rho = 0.1: a batch task gets its full counts, the others rho·m·p_tilde.
#[test]
fn mixed_rho_rates_then_counts() {
    let c = Case::new();
    let pool = c.pool(&POOL3);
    // Step 0: tasks 0, 1 with r = 0.25, 1. Means: r 0.625, f_w 0.25, f_s 0.75:
    //   mu_est = (0.625 - 0.25) / (0.5 + 1e-6) = 0.75 = mu. p_tilde of task 2 = 0.25 + 0.75·0.5 = 0.625.
    //   task 0: (1-rho)·4 + rho·16·0.25 = 4 → alpha 5, beta 1 + 12 = 13; task 1: alpha 17, beta 1
    //   task 2: alpha = 1 + 0.1·16·0.625 = 2.0, beta = 1 + 0.1·16·0.375 = 1.6
    // Step 1: task 2 with 2 / 6 (n = 8), r = 0.25: mu_est = (0.25 - 0.25) / 0.5 = 0, mu = 0.9·0.75 = 0.675.
    //   p_tilde: task 0 = 0.675·0.5 = 0.3375, task 1 = 0.5 + 0.3375 = 0.8375.
    //   task 2: alpha = 0.9·2 + 0.1 + 0.9·2 + 0.1·8·0.25 = 3.9, beta = 0.9·1.6 + 0.1 + 0.9·6 + 0.1·8·0.75 = 7.54
    //   task 0: alpha = 0.9·5 + 0.1 + 1.6·0.3375 = 5.14, beta = 0.9·13 + 0.1 + 1.6·0.6625 = 12.86
    //   task 1: alpha = 0.9·17 + 0.1 + 1.6·0.8375 = 16.74, beta = 0.9·1 + 0.1 + 1.6·0.1625 = 1.26
    let log = "{\"step\": 0, \"tasks\": [0, 1], \"pass_rates\": [0.25, 1.0]}\n\
               {\"step\": 1, \"tasks\": [2], \"successes\": [2], \"failures\": [6]}\n";
    let p = c.ok(&pool, log, None, &[]);
    assert_close(&p, &[5.14, 16.74, 3.9], &[12.86, 1.26, 7.54], Some(0.675), 0.1, 2);
    // Same through a Parquet output.
    let (out, path) = c.replay(&pool, log, None, "post.parquet", &[]);
    assert!(out.status.success());
    assert_eq!(read_posterior(&path).unwrap(), p);
}

/// adaptive_rho: rho halves when the interpolation misses the batch by >= 0.25, and compounds.
#[test]
fn adaptive_rho_fires_and_compounds() {
    let c = Case::new();
    let pool = c.pool(&[(0.0, 1.0), (0.0, 1.0), (0.25, 0.75)]);
    let config = Some("{\"rho\": 0.5, \"adaptive_rho\": true}");
    // Step 0: tasks 0, 1 with r = 0, 1: mu_est = (0.5 - 0) / (1 + 1e-6) = 0.5, p_tilde = 0.5 for both,
    //   miss = (0.5 + 0.5) / 2 = 0.5 >= 0.25 → rho = 0.25, applied to this update already:
    //   task 0: alpha = 1 + 0.75·0 + 0.25·16·0 = 1, beta = 1 + 0.75·16 + 0.25·16 = 17; task 1: 17, 1
    //   task 2: p_tilde = 0.25 + 0.5·0.5 = 0.5: alpha = beta = 1 + 0.25·16·0.5 = 3 (5 without halving).
    let step0 = "{\"step\": 0, \"tasks\": [0, 1], \"pass_rates\": [0, 1]}\n";
    let p = c.ok(&pool, step0, config, &[]);
    assert_close(&p, &[1.0, 17.0, 3.0], &[17.0, 1.0, 3.0], Some(0.5), 0.25, 1);
    // Without adaptive rho nothing halves.
    let p = c.ok(&pool, step0, Some("{\"rho\": 0.5}"), &[]);
    assert_close(&p, &[1.0, 17.0, 5.0], &[17.0, 1.0, 5.0], Some(0.5), 0.5, 1);

    // Step 1: the reverse outcomes: mu_est = 0.5, mu = 0.5, miss = 0.5 again → rho = 0.125.
    //   task 0 (r = 1): alpha = 0.9·1 + 0.1 + 16 = 17, beta = 0.9·17 + 0.1 = 15.4; task 1: 15.4, 17
    //   task 2: alpha = beta = 0.9·3 + 0.1 + 0.125·16·0.5 = 3.8
    let log = format!("{step0}{{\"step\": 1, \"tasks\": [0, 1], \"pass_rates\": [1, 0]}}\n");
    let p = c.ok(&pool, &log, config, &[]);
    assert_close(&p, &[17.0, 15.4, 3.8], &[15.4, 17.0, 3.8], Some(0.5), 0.125, 2);

    // A batch the interpolation fits (task 2 alone, r = p_tilde = 0.5) leaves rho alone.
    let log = format!("{step0}{{\"step\": 1, \"tasks\": [2], \"pass_rates\": [0.5]}}\n");
    let p = c.ok(&pool, &log, config, &[]);
    assert_eq!(p.globals.rho, 0.25);
}

// ---------------------------------------------------------------------------------------------
// The CLI agrees with the library

fn library_posterior(pool_path: &Path, log_path: &Path, config: Config) -> Posterior {
    let pool = load_pool(pool_path, Some(&KEYS)).unwrap();
    let mut lib = CpuPool::new(config, pool.len, pool.features).unwrap();
    for step in ReplayLog::open(log_path, 0).unwrap() {
        lib.update(&step.unwrap().evidence).unwrap();
    }
    Posterior::from_state(&lib.to_host().unwrap())
}

#[test]
fn cli_matches_cpu_pool_on_the_sample_data() {
    let data = data_dir();
    let log = data.join("sample_log.jsonl");
    let want = library_posterior(&data.join("sample_pool.jsonl"), &log, Config::default());
    assert_eq!(want.globals.step, 4);
    assert!(want.globals.mu.is_some());
    let c = Case::new();
    for pool in ["sample_pool.jsonl", "sample_pool.parquet"] {
        for out in ["post.jsonl", "post.parquet"] {
            let got = replay_cli("cpu", &data.join(pool), &log, &c.path(out));
            // Bit for bit: the same update code, and files that round-trip f32 exactly.
            assert_eq!(got, want, "{pool} -> {out}");
        }
    }
}

/// `bots replay --backend cuda` writes exactly what the CPU library does, on the sample data (skipped,
/// saying so, without a CUDA driver; a failure under `BOTS_REQUIRE_GPU=1`).
#[test]
fn cuda_replay_matches_the_cpu_bit_for_bit() {
    if !common::gpu_available() {
        return;
    }
    let data = data_dir();
    let log = data.join("sample_log.jsonl");
    let want = library_posterior(&data.join("sample_pool.jsonl"), &log, Config::default());
    let c = Case::new();
    assert_eq!(replay_cli("cuda", &data.join("sample_pool.jsonl"), &log, &c.path("post.jsonl")), want);
}

/// `bots replay --backend BACKEND --pool POOL --log LOG --out OUT`, which must succeed; what it wrote.
fn replay_cli(backend: &str, pool: &Path, log: &Path, out: &Path) -> Posterior {
    let run = Command::new(bots_bin())
        .args(["replay", "--backend", backend, "--pool"])
        .arg(pool)
        .arg("--log")
        .arg(log)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    read_posterior(out).unwrap()
}

#[test]
fn cli_matches_cpu_pool_with_a_config_file_and_feature_override() {
    let c = Case::new();
    let pool = c.file(
        "pool.jsonl",
        &(0..50)
            .map(|k| format!("{{\"w\": {}, \"s\": {}}}\n", (k % 7) as f64 / 16.0, (8 + k % 9) as f64 / 16.0))
            .collect::<String>(),
    );
    let log: String = (0..6)
        .map(|t| {
            let tasks: Vec<String> = (0..5).map(|i| ((t * 7 + i * 3) % 50).to_string()).collect();
            if t % 2 == 0 {
                format!(
                    "{{\"step\": {t}, \"tasks\": [{}], \"pass_rates\": [0, 0.25, 0.5, 0.9375, 1]}}\n",
                    tasks.join(",")
                )
            } else {
                format!(
                    "{{\"step\": {t}, \"tasks\": [{}], \"successes\": [1,2,3,0,7], \"failures\": [3,2,1,7,0]}}\n",
                    tasks.join(",")
                )
            }
        })
        .collect();
    let config = "{\"task_selector\": {\"selector_type\": \"difficulty_based\", \"kwargs\": {\"m\": 8, \"lamb\": 0.2, \"rho\": 0.3, \"adaptive_rho\": true}}}";
    let got = c.ok(&pool, &log, Some(config), &["--features", "w,s"]);
    let cfg = Config {
        m: 8,
        lambda: 0.2,
        rho: 0.3,
        adaptive_rho: true,
        feature_keys: vec!["w".into(), "s".into()],
        ..Default::default()
    };
    let loaded = load_pool(&pool, Some(&["w", "s"])).unwrap();
    let mut lib = CpuPool::new(cfg, loaded.len, loaded.features).unwrap();
    for step in ReplayLog::open(&c.path("log.jsonl"), 0).unwrap() {
        lib.update(&step.unwrap().evidence).unwrap();
    }
    let want = Posterior::from_state(&lib.to_host().unwrap());
    assert_eq!(got, want);
    assert_eq!(got.globals, Globals { step: 6, ..want.globals });
}

// ---------------------------------------------------------------------------------------------
// Bad input: non-zero exit, a message naming the line / task, and no output file

/// A pool of K = 1 and K = 3 reference columns (`--features a,b,c`, JSONL) replays as the library's
/// `CpuPool` with those columns, on the CPU and, where CUDA is usable, on it too (bit for bit).
#[test]
fn k_reference_columns_replay_on_every_backend() {
    let c = Case::new();
    let pool = c.file(
        "pool.jsonl",
        &(0..60)
            .map(|k| {
                let a = (k % 5) as f64 / 16.0;
                format!("{{\"a\": {a}, \"b\": {}, \"c\": {}}}\n", a + (k % 3) as f64 / 16.0, a + 0.5)
            })
            .collect::<String>(),
    );
    let log: String = (0..6)
        .map(|t| {
            let tasks: Vec<String> = (0..4).map(|i| ((t * 11 + i * 7) % 60).to_string()).collect();
            format!(
                "{{\"step\": {t}, \"tasks\": [{}], \"pass_rates\": [0, 0.25, {}, 1]}}\n",
                tasks.join(","),
                t as f64 / 8.0
            )
        })
        .collect();
    for keys in [&["a", "b", "c"][..], &["b"]] {
        let spec = keys.join(",");
        let cfg = Config { rho: 0.3, feature_keys: keys.iter().map(|k| k.to_string()).collect(), ..Default::default() };
        let loaded = load_pool(&pool, Some(keys)).unwrap();
        assert_eq!(loaded.features.as_ref().unwrap().n_columns(), keys.len());
        let mut lib = CpuPool::new(cfg, loaded.len, loaded.features).unwrap();
        let config = "{\"rho\": 0.3}";
        for step in ReplayLog::open(&c.file("log.jsonl", &log), 0).unwrap() {
            lib.update(&step.unwrap().evidence).unwrap();
        }
        let want = Posterior::from_state(&lib.to_host().unwrap());
        assert_eq!(c.ok(&pool, &log, Some(config), &["--features", &spec]), want, "{spec} on the CPU");
        if common::gpu_available() {
            let got = c.ok(&pool, &log, Some(config), &["--features", &spec, "--backend", "cuda"]);
            assert_eq!(got, want, "{spec} on CUDA");
        }
    }
}

/// A pool with an embedding column (`--embeddings e`, eta > 0 in the config) replays as the library's
/// `CpuPool` with the graph `Neighbours::from_embeddings` builds (in-degree capped at 4·k), on the CPU
/// and, where CUDA is usable, on it too; and the flags refuse what cannot work.
#[test]
fn embeddings_replay_with_neighbour_evidence() {
    let c = Case::new();
    let emb = |k: usize| [(k % 4) as f64 + 0.1 * (k % 7) as f64, ((k / 4) % 3) as f64 - 0.5, 1.0];
    let pool = c.file(
        "pool.jsonl",
        &(0..80)
            .map(|k| {
                let e = emb(k);
                format!("{{\"e\": [{}, {}, {}], \"w\": 0.25, \"s\": 0.75}}\n", e[0], e[1], e[2])
            })
            .collect::<String>(),
    );
    let log: String = (0..5)
        .map(|t| {
            let tasks: Vec<String> = (0..4).map(|i| ((t * 13 + i * 5) % 80).to_string()).collect();
            format!("{{\"step\": {t}, \"tasks\": [{}], \"pass_rates\": [0, 0.25, 0.5, 1]}}\n", tasks.join(","))
        })
        .collect();
    let values: Vec<f32> = (0..80).flat_map(|k| emb(k).map(|v| v as f32)).collect();
    let graph = bots::Neighbours::from_embeddings(&values, 3, 5, 0.0).unwrap().cap_in_degree(20);
    let cfg = Config { rho: 0.0, neighbour_weight: 0.5, ..Default::default() };
    let mut lib = CpuPool::with_neighbours(cfg, 80, None, Some(graph)).unwrap();
    for step in ReplayLog::open(&c.file("log.jsonl", &log), 0).unwrap() {
        lib.update(&step.unwrap().evidence).unwrap();
    }
    let want = Posterior::from_state(&lib.to_host().unwrap());
    let config = Some("{\"rho\": 0, \"neighbour_weight\": 0.5}");
    let args = ["--no-features", "--embeddings", "e", "--neighbour-k", "5"];
    assert_eq!(c.ok(&pool, &log, config, &args), want, "on the CPU");
    if common::gpu_available() {
        assert_eq!(c.ok(&pool, &log, config, &[&args[..], &["--backend", "cuda"]].concat()), want, "on CUDA");
    }
    // Neighbour evidence reached tasks outside the log's batches.
    let logged: std::collections::HashSet<usize> =
        (0..5).flat_map(|t| (0..4).map(move |i| (t * 13 + i * 5) % 80)).collect();
    assert!((0..80).any(|k| !logged.contains(&k) && want.alpha[k] > 1.0), "{:?}", want.alpha);
    for (config, extra, words) in [
        (config, &["--no-features"][..], "give the pool's embedding column with --embeddings"),
        (Some("{\"rho\": 0}"), &args[..], "needs neighbour_weight (eta) > 0"),
        (config, &["--no-features", "--embeddings", "w"][..], "expected an array of numbers"),
        (config, &["--no-features", "--embeddings", "e", "--neighbour-k", "65"][..], "neighbour_k"),
    ] {
        let (out, path) = c.replay(&pool, &log, config, "bad.jsonl", extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(words), "{words}: {err}");
        assert!(!path.exists());
    }
}

const GOOD0: &str = "{\"step\": 0, \"tasks\": [0, 1], \"pass_rates\": [0.5, 0.5]}\n";

fn bad_log(line2: &str, want: &[&str]) {
    let c = Case::new();
    let pool = c.pool(&POOL3);
    let err = c.fails(&pool, &format!("{GOOD0}{line2}\n"), None, &[]);
    assert!(err.contains("log.jsonl:2:"), "the message must name the line: {err}");
    for w in want {
        assert!(err.contains(w), "expected `{w}` in: {err}");
    }
}

#[test]
fn unknown_task_id() {
    bad_log("{\"step\": 1, \"tasks\": [0, 3], \"pass_rates\": [0.5, 0.5]}", &["task id 3", "out of range"]);
}

#[test]
fn duplicate_task_in_one_step() {
    bad_log(
        "{\"step\": 1, \"tasks\": [2, 2], \"pass_rates\": [0.5, 0.5]}",
        &["task 2 appears more than once in one batch"],
    );
}

#[test]
fn pass_rate_out_of_range_or_nan() {
    bad_log("{\"step\": 1, \"tasks\": [1], \"pass_rates\": [1.5]}", &["task 1", "pass rate 1.5"]);
    bad_log("{\"step\": 1, \"tasks\": [1], \"pass_rates\": [\"NaN\"]}", &["task 1", "NaN"]);
    bad_log("{\"step\": 1, \"tasks\": [1], \"pass_rates\": [null]}", &["task 1", "null"]);
}

#[test]
fn counts_negative_or_over_m() {
    bad_log("{\"step\": 1, \"tasks\": [2], \"successes\": [-1], \"failures\": [4]}", &["task 2", "negative"]);
    bad_log("{\"step\": 1, \"tasks\": [2], \"successes\": [10], \"failures\": [7]}", &["task 2", "exceeds m = 16"]);
}

#[test]
fn non_consecutive_steps() {
    bad_log("{\"step\": 3, \"tasks\": [2], \"pass_rates\": [0.5]}", &["step 3", "expected step 1"]);
    let c = Case::new();
    let pool = c.pool(&POOL3);
    let err = c.fails(&pool, "\n{\"step\": 1, \"tasks\": [2], \"pass_rates\": [0.5]}\n", None, &[]);
    assert!(err.contains("log.jsonl:2:") && err.contains("pool is at step 0"), "{err}");
}

#[test]
fn malformed_lines() {
    bad_log(
        "{\"step\": 1, \"tasks\": [2], \"pass_rates\": [0.5], \"successes\": [1], \"failures\": [1]}",
        &["not both"],
    );
    bad_log("{\"step\": 1, \"tasks\": [2], \"pass_rates\": [0.5], \"note\": 1}", &["unknown field `note`"]);
    bad_log("{\"step\": 1, \"tasks\": [2.5], \"pass_rates\": [0.5]}", &["`tasks[0]`", "integer"]);
    bad_log("{\"step\": 1, \"tasks\": [1, 2], \"pass_rates\": [0.5]}", &["1 values for 2 tasks"]);
    bad_log("{\"step\": 1, \"tasks\": [1]", &["invalid JSON"]);
}

#[test]
fn an_existing_output_survives_a_failed_replay() {
    let c = Case::new();
    let pool = c.pool(&POOL3);
    let out = c.file("post.jsonl", "precious\n");
    let (o, _) = c.replay(
        &pool,
        &format!("{GOOD0}{{\"step\": 1, \"tasks\": [9], \"pass_rates\": [0.5]}}\n"),
        None,
        "post.jsonl",
        &[],
    );
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(out).unwrap(), "precious\n");
}

#[test]
fn missing_feature_column() {
    let c = Case::new();
    let pool =
        c.file("pool.jsonl", &format!("{{\"{}\": 0.5, \"{}\": 0.5}}\n{{\"{}\": 0.5}}\n", KEYS[0], KEYS[1], KEYS[0]));
    let err = c.fails(&pool, GOOD0, None, &[]);
    assert!(err.contains("pool.jsonl:2:") && err.contains("`qwen3_30b_pass_rate` is missing"), "{err}");
    let err = c.fails(&pool, GOOD0, None, &["--features", "qwen2.5_7b_pass_rate,other"]);
    assert!(err.contains("pool.jsonl:1:") && err.contains("`other` is missing"), "{err}");
}

#[test]
fn nan_or_null_feature_names_its_row() {
    let c = Case::new();
    let row = |w: &str| format!("{{\"{}\": {w}, \"{}\": 0.5}}\n", KEYS[0], KEYS[1]);
    let pool = c.file("pool.jsonl", &format!("{}{}{}", row("0.25"), row("0.25"), row("\"NaN\"")));
    let err = c.fails(&pool, GOOD0, None, &[]);
    assert!(err.contains("pool.jsonl:3:") && err.contains("qwen2.5_7b_pass_rate") && err.contains("NaN"), "{err}");
    let pool = c.file("pool.jsonl", &format!("{}{}", row("0.25"), row("null")));
    let err = c.fails(&pool, GOOD0, None, &[]);
    assert!(err.contains("pool.jsonl:2:") && err.contains("missing value"), "{err}");

    // Parquet: a float NaN at row 2 (task 2).
    let pq = c.path("pool.parquet");
    write_parquet_pool(&pq, &[0.25, 0.25, f64::NAN, 0.5], &[0.5; 4]);
    let err = c.fails(&pq, GOOD0, None, &[]);
    assert!(err.contains("pool.parquet") && err.contains("row 2") && err.contains("NaN"), "{err}");
}

#[test]
fn empty_pool() {
    let c = Case::new();
    let pool = c.file("pool.jsonl", "\n");
    let err = c.fails(&pool, GOOD0, None, &[]);
    assert!(err.contains("pool.jsonl") && err.contains("empty"), "{err}");
    let err = c.fails(&pool, GOOD0, Some("{\"rho\": 0}"), &["--no-features"]);
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn other_refusals() {
    let c = Case::new();
    let pool = c.pool(&POOL3);
    // A pool without features needs rho = 0.
    let err = c.fails(&pool, GOOD0, None, &["--no-features"]);
    assert!(err.contains("rho = 0"), "{err}");
    // Without PTX or a CUDA driver the CUDA backend is refused before any output (on a GPU machine it
    // would run, so the check is skipped there).
    let cuda_usable = bots::cuda_usable();
    if !cuda_usable {
        let err = c.fails(&pool, GOOD0, None, &["--backend", "cuda"]);
        assert!(err.to_lowercase().contains("cuda"), "{err}");
    }
    let err = c.fails(&pool, GOOD0, None, &["--backend", "tpu"]);
    assert!(err.contains("unknown backend"), "{err}");
    let err = c.fails(&pool, GOOD0, Some("{\"rho\": 2}"), &[]);
    assert!(err.contains("rho"), "{err}");
    let err = c.fails(&pool, GOOD0, None, &["--features", "w,,s"]);
    assert!(err.contains("WEAK,STRONG"), "{err}");
    let err = c.fails(&pool, GOOD0, None, &["--features", "w,w"]);
    assert!(err.contains("feature_keys"), "{err}");
    // An output format that cannot be written is refused up front.
    let (o, out) = c.replay(&pool, GOOD0, None, "post.csv", &[]);
    assert!(!o.status.success() && !out.exists());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown file format"));
}

/// A pool Parquet file with DOUBLE feature columns (nullable, no nulls).
fn write_parquet_pool(path: &Path, weak: &[f64], strong: &[f64]) {
    use parquet::basic::{Repetition, Type as PhysicalType};
    use parquet::data_type::DoubleType;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;
    let field = |name: &str| {
        Arc::new(
            Type::primitive_type_builder(name, PhysicalType::DOUBLE)
                .with_repetition(Repetition::OPTIONAL)
                .build()
                .unwrap(),
        )
    };
    let schema =
        Arc::new(Type::group_type_builder("pool").with_fields(vec![field(KEYS[0]), field(KEYS[1])]).build().unwrap());
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut g = w.next_row_group().unwrap();
    for values in [weak, strong] {
        let mut col = g.next_column().unwrap().unwrap();
        let defs = vec![1i16; values.len()];
        col.typed::<DoubleType>().write_batch(values, Some(&defs), None).unwrap();
        col.close().unwrap();
    }
    g.close().unwrap();
    w.close().unwrap();
}

/// The shipped sample pool: the JSONL and Parquet files hold the same 1000 tasks, in sixteenths,
/// with the weaker model at most as good as the stronger one on most tasks.
#[test]
fn sample_pool_files_agree() {
    let data = data_dir();
    let jsonl = load_pool(&data.join("sample_pool.jsonl"), Some(&KEYS)).unwrap();
    let parquet = load_pool(&data.join("sample_pool.parquet"), Some(&KEYS)).unwrap();
    assert_eq!(jsonl, parquet);
    assert_eq!(jsonl.len, 1000);
    let f = jsonl.features.unwrap();
    let mut weak_le_strong = 0;
    for k in 0..f.len() {
        let (w, s) = f.get(k);
        assert_eq!((w * 16.0).fract(), 0.0, "task {k}: {w} is not a multiple of 1/16");
        assert_eq!((s * 16.0).fract(), 0.0, "task {k}: {s} is not a multiple of 1/16");
        weak_le_strong += (w <= s) as usize;
    }
    assert!(weak_le_strong >= 850, "weak <= strong on only {weak_le_strong} of 1000 tasks");
    let steps: Vec<_> = ReplayLog::open(&data.join("sample_log.jsonl"), 0)
        .unwrap()
        .check_against(1000, 16)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(steps.len(), 4);
    assert!(steps.iter().any(|s| matches!(s.evidence.outcomes, bots::Outcomes::PassRates(_))));
    assert!(steps.iter().any(|s| matches!(s.evidence.outcomes, bots::Outcomes::Counts { .. })));
}
