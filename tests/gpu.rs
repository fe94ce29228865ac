//! GPU tests: the CUDA backend against its CPU twin on the same seed. Without a CUDA driver (or a crate
//! built without nvcc) every test prints `SKIPPED <test>: no CUDA driver` on stderr and passes, unless
//! `BOTS_REQUIRE_GPU=1`, where that is a failure.
//!
//! Agreement expected (see `src/backend/cuda.rs`): bit for bit. Both backends draw with the same
//! `fmath` functions (`src/dist/fmath.rs`, `kernels/fmath.cuh`: only +, -, *, /, sqrt and bit
//! operations, IEEE-rounded on both, `--fmad=false`), and the update arithmetic is the same expression,
//! so keys, selections and posteriors should be identical. What is ASSUMED on real hardware and only
//! checked by these tests: that nvcc honours `-prec-div`/`-prec-sqrt` and `--fmad=false` as the PTX
//! shows (no `.approx`, no `fma`). As a safety net the comparison below tolerates, and always counts
//! and prints, near-ties and outliers:
//! - a GPU selection's order is non-increasing in the CPU score, up to `score_eps` (a near-tie may swap);
//! - every task it holds that the CPU did not select scores within `score_eps` of the CPU's k-th
//!   score, and every CPU task it lacks as well (near-ties at the boundary);
//! - a task whose Marsaglia-Tsang accept/reject test flipped would draw a wholly different sample: a
//!   rare "outlier", allowed in small numbers and always printed.
//!
//! Any nonzero count in the log means the bit-exact claim failed somewhere and must be investigated.
//!
//! Summaries go to stderr directly (not captured by libtest), so the device log shows them even when
//! every test passes; a failure prints the first offending positions with keys, alpha and beta.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bots::backend::cuda::CudaPool;
use bots::rng::{u01, Purpose, TaskStream};
use bots::select::{score_key, score_task};
use bots::{Backend, Config, CpuPool, Evidence, Features, PoolState};
use cudarc::driver::{sys, CudaContext, CudaSlice};
use half::f16;

/// GPU tests run one at a time (bounded memory, stable timing).
static GPU: Mutex<()> = Mutex::new(());

/// Writes to the process's stderr directly: libtest captures `println!`/`eprintln!` of passing tests,
/// and the one GPU log should hold every summary.
macro_rules! log {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Holds a context on device 0 for the whole test binary, so that the primary context is not torn down
/// and rebuilt (with a fresh PTX module JIT) between the many short-lived pools of a test.
static KEEP_CONTEXT: OnceLock<Arc<CudaContext>> = OnceLock::new();

fn gpu_available() -> bool {
    let ok = bots::backend::cuda_usable()
        && CudaContext::device_count().map(|c| c > 0).unwrap_or(false);
    if ok {
        KEEP_CONTEXT.get_or_init(|| CudaContext::new(0).expect("a context on device 0"));
    }
    if !ok {
        if std::env::var("BOTS_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("BOTS_REQUIRE_GPU=1 but no CUDA driver/device is usable (or the crate was built without nvcc)");
        }
        let test = std::thread::current().name().unwrap_or("?").to_string();
        log!("SKIPPED {test}: no CUDA driver (or built without nvcc): GPU checks not run");
    }
    ok
}

fn features(n: usize, seed: u64) -> Features {
    use rayon::prelude::*;
    let (w, s): (Vec<f16>, Vec<f16>) = (0..n)
        .into_par_iter()
        .map(|t| {
            let b = TaskStream::new(seed, 0, t as u32).block(Purpose::User, 7);
            let (a, c) = (u01(b[0]), u01(b[1]));
            (f16::from_f32(a.min(c)), f16::from_f32(a.max(c)))
        })
        .unzip();
    Features::F16 { weak: w, strong: s }
}

/// [`features`] with the full f32 values (not f16 values: the 8-byte form the kernels also read).
fn features_f32(n: usize, seed: u64) -> Features {
    let (w, s): (Vec<f32>, Vec<f32>) = (0..n)
        .map(|t| {
            let b = TaskStream::new(seed, 0, t as u32).block(Purpose::User, 7);
            let (a, c) = (u01(b[0]), u01(b[1]));
            (a.min(c), a.max(c))
        })
        .unzip();
    let f = Features::from_f32(&w, &s).unwrap();
    assert_eq!(f.form(), bots::FeatureForm::F32);
    f
}

/// Synthetic outcomes of `tasks` at `step`: pass rates, or counts with some groups smaller than m.
fn evidence(tasks: &[u32], step: u64, m: u32, counts: bool) -> Evidence {
    let words: Vec<[u32; 4]> = tasks.iter().map(|&t| TaskStream::new(99, step, t).block(Purpose::User, 3)).collect();
    if counts {
        let n: Vec<u32> = words.iter().map(|w| 1 + w[1] % m).collect();
        let s: Vec<f32> = words.iter().zip(&n).map(|(w, &n)| (w[0] % (n + 1)) as f32).collect();
        let f: Vec<f32> = s.iter().zip(&n).map(|(&s, &n)| n as f32 - s).collect();
        Evidence::counts(tasks.to_vec(), s, f)
    } else {
        Evidence::pass_rates(tasks.to_vec(), words.iter().map(|w| (w[0] % (m + 1)) as f32 / m as f32).collect())
    }
}

fn rel_close(a: f32, b: f32, tol: f32) -> bool {
    a == b || (a - b).abs() <= tol * a.abs().max(b.abs())
}

fn assert_states_close(cpu: &PoolState, gpu: &PoolState, tol: f32, what: &str) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: pool sizes");
    assert_eq!(cpu.globals.step, gpu.globals.step, "{what}: step (CPU vs GPU)");
    assert!(rel_close(cpu.globals.rho, gpu.globals.rho, tol), "{what}: rho CPU {} vs GPU {}", cpu.globals.rho, gpu.globals.rho);
    match (cpu.globals.mu, gpu.globals.mu) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!((a - b).abs() <= tol * a.abs().max(1.0), "{what}: mu CPU {a:e} vs GPU {b:e}"),
        (a, b) => panic!("{what}: mu CPU {a:?} vs GPU {b:?}"),
    }
    let mut worst = (0.0f32, 0usize);
    let mut bad: Vec<String> = Vec::new();
    let mut n_bad = 0usize;
    for k in 0..cpu.len() {
        let (ca, cb, ga, gb) = (cpu.alpha[k], cpu.beta[k], gpu.alpha[k], gpu.beta[k]);
        let ok = ca > 0.0 && cb > 0.0 && ga > 0.0 && gb > 0.0 && rel_close(ca, ga, tol) && rel_close(cb, gb, tol);
        if !ok {
            n_bad += 1;
            if bad.len() < 8 {
                bad.push(format!("task {k}: CPU alpha {ca:e} beta {cb:e} | GPU alpha {ga:e} beta {gb:e}"));
            }
        }
        for (x, y) in [(ca, ga), (cb, gb)] {
            let r = (x - y).abs() / x.abs().max(y.abs());
            if r > worst.0 {
                worst = (r, k);
            }
        }
    }
    assert!(n_bad == 0, "{what}: {n_bad} tasks differ beyond relative {tol:e} (or are not positive); first:\n  {}", bad.join("\n  "));
    assert!(cpu.features == gpu.features, "{what}: features differ after the round trip");
    assert!(cpu.prior == gpu.prior, "{what}: priors differ after the round trip");
    log!("{what}: worst relative posterior difference {:e} (task {})", worst.0, worst.1);
}

/// Bit-for-bit equality of two states (`want`, `got`), reporting the first differing tasks instead of
/// two whole states (a `PoolState` Debug dump of 10^5 tasks would flood the one GPU log).
fn assert_states_identical(want: &PoolState, got: &PoolState, what: &str) {
    if want == got {
        return;
    }
    let mut lines = vec![format!(
        "globals want {:?} got {:?}; lengths {} / {}; priors equal: {}; features equal: {}",
        want.globals,
        got.globals,
        want.len(),
        got.len(),
        want.prior == got.prior,
        want.features == got.features
    )];
    let mut n_diff = 0;
    for k in 0..want.len().min(got.len()) {
        let (wa, wb, ga, gb) = (want.alpha[k], want.beta[k], got.alpha[k], got.beta[k]);
        if wa.to_bits() != ga.to_bits() || wb.to_bits() != gb.to_bits() {
            n_diff += 1;
            if lines.len() < 9 {
                lines.push(format!("task {k}: want alpha {wa:e} beta {wb:e} | got alpha {ga:e} beta {gb:e}"));
            }
        }
    }
    panic!("{what}: states differ ({n_diff} tasks):\n  {}", lines.join("\n  "));
}

/// How far two scores of one task may be apart when only the last bits of CUDA transcendentals differ
/// from the host libm: p_hat moves by ~1e-6 at most (alpha, beta <= ~200), the score by that / tau, and
/// a Gumbel term by a few ulp of ~16. Generous by about 10x.
fn score_eps(cfg: &Config) -> f32 {
    let inv_tau = if cfg.tau > 0.0 { 1.0 / cfg.tau } else { 1.0 };
    1e-5 * inv_tau.max(1.0) + if cfg.tau > 0.0 { 2e-5 } else { 0.0 }
}

/// The result of checking one GPU selection against the CPU's.
#[derive(Default, Clone, Copy)]
struct Agreement {
    /// Positions where the two lists hold different tasks (near-ties allowed; informational).
    differ: usize,
    /// Violations beyond `score_eps` (a sample that diverged: see the module doc).
    outliers: usize,
}

impl std::ops::AddAssign for Agreement {
    fn add_assign(&mut self, o: Agreement) {
        self.differ += o.differ;
        self.outliers += o.outliers;
    }
}

/// Checks a GPU selection against the CPU's on the CPU's scores of `state` (see the module doc) and
/// returns what differs. Hard failures (wrong length, duplicates, ids out of range, more than
/// `max_outliers` violations) panic with the first offending positions, their keys, alpha and beta.
fn compare_selection(cfg: &Config, state: &PoolState, cpu: &[u32], gpu: &[u32], what: &str, max_outliers: usize) -> Agreement {
    assert_eq!(cpu.len(), gpu.len(), "{what}: lengths CPU {} vs GPU {}", cpu.len(), gpu.len());
    let n = state.len();
    if let Some((i, &t)) = gpu.iter().enumerate().find(|(_, &t)| t as usize >= n) {
        panic!("{what}: GPU position {i} holds task {t}, out of range (n = {n}); GPU head {:?}", &gpu[..gpu.len().min(16)]);
    }
    let mut sorted = gpu.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        panic!("{what}: GPU selection holds task {} twice; GPU head {:?}", w[0], &gpu[..gpu.len().min(16)]);
    }
    let step = state.globals.step;
    let eps = score_eps(cfg);
    let score = |t: u32| score_task(cfg, state.alpha[t as usize], state.beta[t as usize], step, t);
    let describe = |t: u32| {
        let s = score(t);
        format!(
            "task {t} (CPU score {s:.9e}, key {:#018x}, alpha {:e}, beta {:e})",
            score_key(s, t),
            state.alpha[t as usize],
            state.beta[t as usize]
        )
    };
    let mut problems: Vec<String> = Vec::new();
    let mut outliers = 0usize;
    // Order: non-increasing CPU score along the GPU list.
    let gpu_scores: Vec<f32> = gpu.iter().map(|&t| score(t)).collect();
    for i in 1..gpu.len() {
        let (a, b) = (gpu_scores[i - 1], gpu_scores[i]);
        if b > a + eps {
            outliers += 1;
            if problems.len() < 8 {
                problems.push(format!("order at GPU positions {}-{i}: {} before {}", i - 1, describe(gpu[i - 1]), describe(gpu[i])));
            }
        }
    }
    // Membership: the two sets may differ only by near-ties at the k-th score.
    let threshold = score(*cpu.last().expect("k >= 1"));
    let in_cpu: std::collections::HashSet<u32> = cpu.iter().copied().collect();
    let in_gpu: std::collections::HashSet<u32> = gpu.iter().copied().collect();
    for (i, &g) in gpu.iter().enumerate() {
        if !in_cpu.contains(&g) && gpu_scores[i] < threshold - eps {
            outliers += 1;
            if problems.len() < 8 {
                problems.push(format!("GPU position {i} holds {} below the CPU k-th score {threshold:.9e}", describe(g)));
            }
        }
    }
    for (i, &c) in cpu.iter().enumerate() {
        if !in_gpu.contains(&c) && score(c) > threshold + eps {
            outliers += 1;
            if problems.len() < 8 {
                problems.push(format!("GPU lacks CPU position {i}: {} above the k-th score {threshold:.9e}", describe(c)));
            }
        }
    }
    let differ = cpu.iter().zip(gpu).filter(|(c, g)| c != g).count();
    if outliers > 0 || differ > 0 {
        let first = cpu.iter().zip(gpu).position(|(c, g)| c != g);
        log!(
            "{what}: {differ} of {} positions differ, {outliers} beyond eps {eps:e}{}",
            cpu.len(),
            first.map_or(String::new(), |i| format!("; first at {i}: CPU {} vs GPU {}", describe(cpu[i]), describe(gpu[i])))
        );
        for p in &problems {
            log!("  {what}: {p}");
        }
    }
    assert!(
        outliers <= max_outliers,
        "{what}: {outliers} violations beyond eps {eps:e} (at most {max_outliers} allowed); first:\n  {}\nCPU head {:?}\nGPU head {:?}",
        problems.join("\n  "),
        &cpu[..cpu.len().min(16)],
        &gpu[..gpu.len().min(16)]
    );
    Agreement { differ, outliers }
}

/// Violations allowed in one comparison of `k` positions. One diverged task can cost up to three (the
/// order before and after it, and membership); plus one per 20 000 positions for whole-pool sorts at
/// 10^6 (assumed divergence rate ~1e-6 per task per step, so generous). A real bug breaks far more.
fn outlier_budget(k: usize) -> usize {
    4 + k / 20_000
}

struct Case {
    name: &'static str,
    cfg: Config,
    features: bool,
    counts: bool,
    /// Features in the f32 form (else f16).
    f32: bool,
}

fn cases() -> Vec<Case> {
    let base = Config { seed: 7, ..Default::default() };
    vec![
        Case { name: "default", cfg: base.clone(), features: true, counts: false, f32: false },
        Case { name: "tau", cfg: Config { tau: 0.3, ..base.clone() }, features: true, counts: false, f32: false },
        Case { name: "mean", cfg: Config { do_sample: false, ..base.clone() }, features: true, counts: true, f32: false },
        Case { name: "adaptive", cfg: Config { rho: 0.6, adaptive_rho: true, ..base.clone() }, features: true, counts: false, f32: false },
        Case { name: "prior", cfg: Config { prior_strength: Some(4.0), tau: 0.1, ..base.clone() }, features: true, counts: true, f32: false },
        Case { name: "no-features", cfg: Config { rho: 0.0, lambda: 0.2, ..base.clone() }, features: false, counts: true, f32: false },
        Case { name: "f32-features", cfg: base.clone(), features: true, counts: false, f32: true },
        Case { name: "f32-prior-adaptive", cfg: Config { prior_strength: Some(3.0), rho: 0.6, adaptive_rho: true, ..base.clone() }, features: true, counts: true, f32: true },
    ]
}

/// Runs `steps` steps of a case on both backends; returns (positions compared, agreement).
fn twin_run(case: &Case, n: usize, batch: usize, steps: usize, ks: &[usize]) -> (usize, Agreement) {
    let cfg = Config { batch, ..case.cfg.clone() };
    let f = case.features.then(|| if case.f32 { features_f32(n, 3) } else { features(n, 3) });
    let mut cpu = CpuPool::new(cfg.clone(), n, f.clone()).unwrap();
    let mut gpu = CudaPool::new(cfg.clone(), n, f).unwrap_or_else(|e| panic!("{} n={n}: opening the CUDA pool: {e}", case.name));
    let what = format!("{} n={n} batch={batch}", case.name);
    let (mut compared, mut agree) = (0, Agreement::default());
    for step in 0..steps {
        let sel_cpu = cpu.select(batch).unwrap();
        let sel_gpu = gpu.select(batch).unwrap_or_else(|e| panic!("{what} step {step}: GPU select({batch}): {e}"));
        let state = cpu.to_host().unwrap();
        let w = format!("{what} step {step} k={batch}");
        agree += compare_selection(&cfg, &state, &sel_cpu, &sel_gpu, &w, outlier_budget(batch));
        compared += batch;
        if step % 10 == 0 {
            for &k in ks.iter().filter(|&&k| (1..=n).contains(&k)) {
                let c = cpu.select(k).unwrap();
                let g = gpu.select(k).unwrap_or_else(|e| panic!("{what} step {step}: GPU select({k}): {e}"));
                agree += compare_selection(&cfg, &state, &c, &g, &format!("{what} step {step} k={k}"), outlier_budget(k));
                compared += k;
            }
        }
        // The CPU's selection drives both updates, so the two states stay comparable.
        let ev = evidence(&sel_cpu, step as u64, cfg.m, case.counts);
        let rc = cpu.update(&ev).unwrap();
        let rg = gpu.update(&ev).unwrap_or_else(|e| panic!("{what} step {step}: GPU update: {e}"));
        assert_eq!(rc.step, rg.step, "{what} step {step}: report step CPU vs GPU");
        assert!(rel_close(rc.rho, rg.rho, 1e-6), "{what} step {step}: report rho CPU {} vs GPU {}", rc.rho, rg.rho);
        match (rc.mu, rg.mu) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{what} step {step}: report mu CPU {a:e} vs GPU {b:e}"),
            (a, b) => panic!("{what} step {step}: report mu CPU {a:?} vs GPU {b:?}"),
        }
        assert_eq!(gpu.step(), (step + 1) as u64, "{what}: GPU step mirror");
    }
    assert_states_close(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), 1e-5, &what);
    log!("{what}: {} of {compared} selected positions differ (near-ties), {} outliers", agree.differ, agree.outliers);
    (compared, agree)
}

#[test]
fn gpu_matches_cpu_twin_small_pools() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let t0 = std::time::Instant::now();
    let (mut compared, mut agree) = (0, Agreement::default());
    for case in cases() {
        for (n, batch) in [(1usize, 1usize), (2, 2), (2, 1), (1000, 32)] {
            let ks: Vec<usize> = vec![1, 2, 3, 31, 32, 33, 100, 500, 999, 1000];
            let (c, a) = twin_run(&case, n, batch, 50, &ks);
            compared += c;
            agree += a;
        }
    }
    log!("small pools: {} of {compared} positions differ, {} outliers, {:.1} s", agree.differ, agree.outliers, t0.elapsed().as_secs_f64());
    assert!(agree.outliers <= 4 + compared / 10_000, "{} outliers in {compared} positions", agree.outliers);
}

#[test]
fn gpu_matches_cpu_twin_million() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let t0 = std::time::Instant::now();
    let (mut compared, mut agree) = (0, Agreement::default());
    for case in cases().into_iter().filter(|c| ["default", "mean", "tau", "f32-features"].contains(&c.name)) {
        let ks = [1usize, 255, 256, 257, 2048, 2049, 65_536, 1_000_000];
        let (c, a) = twin_run(&case, 1_000_000, 256, 12, &ks);
        compared += c;
        agree += a;
    }
    log!("10^6 pools: {} of {compared} positions differ, {} outliers, {:.1} s", agree.differ, agree.outliers, t0.elapsed().as_secs_f64());
    assert!(agree.outliers <= 4 + compared / 10_000, "{} outliers in {compared} positions", agree.outliers);
}

#[test]
fn select_is_idempotent_and_k_is_checked() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let cfg = Config { batch: 16, ..Default::default() };
    let mut gpu = CudaPool::new(cfg.clone(), 5000, Some(features(5000, 1))).unwrap();
    let a = gpu.select(16).unwrap();
    let ev = evidence(&a, 0, cfg.m, false);
    gpu.update(&ev).unwrap();
    let b = gpu.select(16).unwrap();
    assert_eq!(b, gpu.select(16).unwrap(), "select twice at one step");
    assert!(matches!(gpu.select(0), Err(bots::BotsError::InvalidK { .. })));
    assert!(matches!(gpu.select(5001), Err(bots::BotsError::InvalidK { .. })));
    let mut out = gpu.stream().alloc_zeros::<u32>(16).unwrap();
    assert!(gpu.select_into(17, &mut out).is_err(), "k above the output length");
    gpu.select_into(16, &mut out).unwrap();
    assert_eq!(gpu.stream().clone_dtoh(&out).unwrap(), b);
}

fn upload<T: cudarc::driver::DeviceRepr>(pool: &CudaPool, v: &[T]) -> CudaSlice<T> {
    pool.stream().clone_htod(v).unwrap()
}

#[test]
fn invalid_device_input_leaves_state_unchanged() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let cfg = Config { batch: 8, adaptive_rho: true, rho: 0.5, ..Default::default() };
    let n = 1000;
    let mut gpu = CudaPool::new(cfg.clone(), n, Some(features(n, 2))).unwrap();
    for step in 0..3 {
        let t = gpu.select(8).unwrap();
        gpu.update(&evidence(&t, step, cfg.m, false)).unwrap();
    }
    let before = gpu.to_host().unwrap();
    let m = cfg.m as f32;
    type Bad = (&'static str, Vec<u32>, Vec<f32>, Vec<f32>);
    let bad: Vec<Bad> = vec![
        ("out of range", vec![1, 1000, 3], vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 1.0]),
        ("far out of range", vec![u32::MAX, 2], vec![1.0, 1.0], vec![1.0, 1.0]),
        ("NaN count", vec![4, 5], vec![f32::NAN, 1.0], vec![1.0, 1.0]),
        ("infinite count", vec![4, 5], vec![1.0, 1.0], vec![f32::INFINITY, 1.0]),
        ("negative count", vec![4, 5], vec![1.0, -1.0], vec![1.0, 1.0]),
        ("empty group", vec![4, 5], vec![0.0, 1.0], vec![0.0, 1.0]),
        ("too many rollouts", vec![4, 5], vec![m, 1.0], vec![1.0, 1.0]),
        ("duplicate", vec![7, 8, 7], vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 1.0]),
    ];
    for (what, t, s, f) in bad {
        let (t, s, f) = (upload(&gpu, &t), upload(&gpu, &s), upload(&gpu, &f));
        gpu.update_from_device(&t, &s, &f).unwrap();
        let err = gpu.sync().unwrap_err();
        assert!(matches!(err, bots::BotsError::DeviceInput(_)), "{what}: {err}");
        println!("{what}: {err}");
        assert_states_identical(&before, &gpu.to_host().unwrap(), &format!("{what}: state changed"));
        assert_eq!(gpu.step(), before.globals.step, "{what}: step mirror not resynced");
    }
    // Pass rates out of [0, 1], and the error reported by to_host as well.
    for r in [1.5f32, -0.25, f32::NAN] {
        let (t, rr) = (upload(&gpu, &[3u32, 4]), upload(&gpu, &[0.5f32, r]));
        gpu.update_from_device_rates(&t, &rr).unwrap();
        let err = gpu.to_host().unwrap_err();
        assert!(matches!(err, bots::BotsError::DeviceInput(_)), "rate {r}: {err}");
        assert_states_identical(&before, &gpu.to_host().unwrap(), &format!("rate {r}: state changed"));
    }
    // A bad batch followed by a good one before any sync: the good one applies, the error is reported.
    let (t, s, f) = (upload(&gpu, &[9u32, 9]), upload(&gpu, &[1.0f32, 1.0]), upload(&gpu, &[1.0f32, 1.0]));
    gpu.update_from_device(&t, &s, &f).unwrap();
    let (t, s, f) = (upload(&gpu, &[9u32, 10]), upload(&gpu, &[1.0f32, 1.0]), upload(&gpu, &[1.0f32, 1.0]));
    gpu.update_from_device(&t, &s, &f).unwrap();
    assert!(gpu.sync().is_err());
    let after = gpu.to_host().unwrap();
    assert_eq!(after.globals.step, before.globals.step + 1);
    // The same good batch on the CPU twin from `before` gives the same state.
    let mut cpu = CpuPool::from_state(cfg.clone(), before.clone()).unwrap();
    cpu.update(&Evidence::counts(vec![9, 10], vec![1.0, 1.0], vec![1.0, 1.0])).unwrap();
    assert_states_close(&cpu.to_host().unwrap(), &after, 1e-5, "after bad+good");
    // And the duplicate bitmap was cleaned: the same tasks are accepted again.
    gpu.update(&Evidence::counts(vec![9, 10], vec![1.0, 1.0], vec![1.0, 1.0])).unwrap();
}

#[test]
fn restore_round_trips() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let cfg = Config { batch: 4, prior_strength: Some(2.0), ..Default::default() };
    let mut cpu = CpuPool::new(cfg.clone(), 300, Some(features_f32(300, 5))).unwrap();
    for step in 0..5 {
        let t = cpu.select(4).unwrap();
        cpu.update(&evidence(&t, step, cfg.m, true)).unwrap();
    }
    let state = cpu.to_host().unwrap();
    let mut gpu = CudaPool::new(cfg.clone(), 300, Some(features(300, 5))).unwrap();
    gpu.restore(state.clone()).unwrap();
    assert_states_identical(&state, &gpu.to_host().unwrap(), "restore then to_host");
    assert_eq!(gpu.step(), 5);
    let (c, g) = (cpu.select(4).unwrap(), gpu.select(4).unwrap());
    compare_selection(&cfg, &cpu.to_host().unwrap(), &c, &g, "restored", 3);
}

#[test]
fn cuda_graph_replay_matches_eager() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let ctx = CudaContext::new(0).unwrap();
    // Graph capture must not see cudarc's cross-stream event bookkeeping.
    unsafe { ctx.disable_event_tracking() };
    let cfg = Config { batch: 32, tau: 0.2, ..Default::default() };
    let n = 100_000;
    let make = || -> (Arc<cudarc::driver::CudaStream>, CudaPool) {
        let s = ctx.new_stream().unwrap();
        let p = CudaPool::with_capacity(s.clone(), cfg.clone(), n, Some(features(n, 4)), 32).unwrap();
        (s, p)
    };
    let (sa, mut eager) = make();
    let (sb, mut graphed) = make();
    let rates: Vec<f32> = (0..32).map(|i| (i % 17) as f32 / 16.0).collect();
    let (ra, rb) = (sa.clone_htod(&rates).unwrap(), sb.clone_htod(&rates).unwrap());
    let mut out_a = sa.alloc_zeros::<u32>(32).unwrap();
    let mut out_b = sb.alloc_zeros::<u32>(32).unwrap();
    // One eager step on both, so the captured step starts from a pending update.
    for (p, out, r) in [(&mut eager, &mut out_a, &ra), (&mut graphed, &mut out_b, &rb)] {
        p.select_into(32, out).unwrap();
        p.update_from_device_rates(out, r).unwrap();
    }
    sb.synchronize().unwrap();
    sb.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
    graphed.select_into(32, &mut out_b).unwrap();
    graphed.update_from_device_rates(&out_b, &rb).unwrap();
    let graph = sb.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().expect("a captured graph");
    let steps = 6;
    for _ in 0..steps {
        eager.select_into(32, &mut out_a).unwrap();
        eager.update_from_device_rates(&out_a, &ra).unwrap();
        graph.launch().unwrap();
    }
    let (ha, hb) = (eager.to_host().unwrap(), graphed.to_host().unwrap());
    assert_eq!(ha.globals.step, 1 + steps as u64);
    assert_states_identical(&ha, &hb, "graph replay diverged from the eager steps");
    assert_eq!(sa.clone_dtoh(&out_a).unwrap(), sb.clone_dtoh(&out_b).unwrap());
    // The host verbs agree with the CPU twin from the same state.
    let mut cpu = CpuPool::from_state(cfg.clone(), ha.clone()).unwrap();
    let c = cpu.select(32).unwrap();
    let g = eager.select(32).unwrap();
    compare_selection(&cfg, &cpu.to_host().unwrap(), &c, &g, "after graph", 3);
}

#[test]
fn hundred_million_tasks() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let t0 = std::time::Instant::now();
    let n = 100_000_000;
    let cfg = Config { batch: 64, ..Default::default() };
    let f = features(n, 6);
    let mut gpu = CudaPool::new(cfg.clone(), n, Some(f.clone())).unwrap();
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(f)).unwrap();
    log!("1e8: pools ready after {:.1} s", t0.elapsed().as_secs_f64());
    let mut agree = Agreement::default();
    for step in 0..3u64 {
        let c = cpu.select(64).unwrap();
        let g = gpu.select(64).unwrap();
        agree += compare_selection(&cfg, &cpu.to_host().unwrap(), &c, &g, &format!("1e8 step {step}"), 3);
        let ev = evidence(&c, step, cfg.m, false);
        cpu.update(&ev).unwrap();
        gpu.update(&ev).unwrap();
    }
    log!("1e8: {} of 192 positions differ, {} outliers, {:.1} s so far", agree.differ, agree.outliers, t0.elapsed().as_secs_f64());
    // A mean-mode pass over the same pool: all scores tie at first, so the radix select resolves the
    // whole pool by task id (the bin is larger than the candidate buffer).
    let mcfg = Config { do_sample: false, rho: 0.0, batch: 64, ..Default::default() };
    let mut tied = CudaPool::new(mcfg, n, None).unwrap();
    let got = tied.select(64).unwrap();
    assert_eq!(got, (0..64).collect::<Vec<u32>>(), "1e8 tied pool: ties must resolve to the lowest task ids");
    drop(tied);
    assert_states_close(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), 1e-5, "1e8");
    log!("1e8: done after {:.1} s", t0.elapsed().as_secs_f64());
}

/// The comparison itself, on the CPU alone (runs everywhere): identical lists agree, tied scores may
/// differ anywhere, and a clearly wrong selection fails with its diagnostics.
#[test]
fn compare_selection_checks_itself_on_the_cpu() {
    let cfg = Config { seed: 3, batch: 40, ..Default::default() };
    let n = 2000;
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(features(n, 9))).unwrap();
    let sel = cpu.select(40).unwrap();
    let state = cpu.to_host().unwrap();
    let a = compare_selection(&cfg, &state, &sel, &sel, "self", 0);
    assert_eq!((a.differ, a.outliers), (0, 0));
    // All scores tie in mean mode on a fresh pool: any 40 tasks in any order agree.
    let mcfg = Config { do_sample: false, rho: 0.0, ..cfg.clone() };
    let tied = PoolState::new(&mcfg, n, None).unwrap();
    let other: Vec<u32> = (0..40).rev().map(|t| t * 7).collect();
    let a = compare_selection(&mcfg, &tied, &(0..40).collect::<Vec<u32>>(), &other, "CPU-only self-check, expected: tied", 0);
    assert_eq!(a.outliers, 0);
    assert!(a.differ > 0);
    // The worst task in place of the best: a violation, so a budget of 0 fails.
    let worst = (0..n as u32)
        .min_by(|&x, &y| {
            let s = |t: u32| score_task(&cfg, state.alpha[t as usize], state.beta[t as usize], state.globals.step, t);
            s(x).total_cmp(&s(y))
        })
        .unwrap();
    let mut bad = sel.clone();
    bad[0] = worst;
    let r = std::panic::catch_unwind(|| compare_selection(&cfg, &state, &sel, &bad, "CPU-only self-check, expected to fail: wrong", 0));
    assert!(r.is_err(), "a wrong selection must fail");
    // Reversed order: many order violations.
    let rev: Vec<u32> = sel.iter().rev().copied().collect();
    let r = std::panic::catch_unwind(|| compare_selection(&cfg, &state, &sel, &rev, "CPU-only self-check, expected to fail: reversed", 3));
    assert!(r.is_err(), "a reversed selection must fail");
}
