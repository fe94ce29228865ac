//! GPU tests: the CUDA backend against its CPU twin on the same seed. Without a CUDA driver (or a crate
//! built without nvcc) every test prints `SKIPPED <test>: no CUDA driver` on stderr and passes, unless
//! `BOTS_REQUIRE_GPU=1`, where that is a failure.
//!
//! Agreement asserted: bit for bit. Both backends draw with the same `fmath` functions
//! (`src/twin/fmath.rs`, `kernels/fmath.cuh`: only +, -, *, /, sqrt and bit operations, IEEE-rounded on
//! both, `--fmad=false`), the update arithmetic is the same expression, and the batch sums use one
//! order (`evidence::batch_sum`), so every selection (its order included), alpha, beta, mu, rho and
//! step must be identical, and each backend is driven by its own selections. What is ASSUMED on real
//! hardware and only checked by these tests: that nvcc honours `-prec-div`/`-prec-sqrt` and
//! `--fmad=false` as the PTX shows (no `.approx`, no `fma` in the exact entries; only the fast ones of
//! `KernelMode::Fast` have them, which src/kernels.rs checks). `KernelMode::Fast` is checked statistically
//! instead (`fast_mode_draws_and_checkpoints`).
//!
//! `scripts/emu-driver/test.sh` runs this file on the emulated CUDA driver (`BOTS_GPU_TEST_QUICK=1`:
//! smaller pools, see [`size`]).
//!
//! Summaries go to stderr directly (not captured by libtest), so the device log shows them even when
//! every test passes; a failure prints the first offending positions with keys, alpha and beta.

use std::io::Write;
use std::sync::Mutex;

use bots::__private::{score_key, score_task};
use bots::__private::{u01, Purpose, TaskStream};
use bots::CudaPool;
use bots::{Backend, Config, CpuPool, Evidence, Features, Neighbours, PoolState};
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

fn gpu_available() -> bool {
    let ok = bots::cuda_usable() && CudaContext::device_count().map(|c| c > 0).unwrap_or(false);
    if !ok {
        if std::env::var("BOTS_REQUIRE_GPU").is_ok_and(|v| v == "1") {
            panic!("BOTS_REQUIRE_GPU=1 but no CUDA driver/device is usable (or the crate was built without nvcc)");
        }
        let test = std::thread::current().name().unwrap_or("?").to_string();
        log!("SKIPPED {test}: no CUDA driver (or built without nvcc): GPU checks not run");
    }
    ok
}

/// `BOTS_GPU_TEST_QUICK=1` (the emulated driver, scripts/emu-driver/test.sh): the same checks on smaller
/// pools and fewer steps, `quick` instead of `full`.
fn size(full: usize, quick: usize) -> usize {
    if std::env::var("BOTS_GPU_TEST_QUICK").is_ok_and(|v| v == "1") {
        quick
    } else {
        full
    }
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
    Features::F16 { columns: vec![w, s] }
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

/// The GPU's selection equals the CPU's, order included; otherwise a panic naming the first differing
/// position with both tasks' CPU scores and keys (from `state`, the state both selected from).
fn assert_same_selection(cfg: &Config, state: &PoolState, cpu: &[u32], gpu: &[u32], what: &str) {
    if cpu == gpu {
        return;
    }
    let step = state.globals.step;
    let n = state.len();
    let describe = |t: u32| {
        if t as usize >= n {
            return format!("task {t} (out of range: n = {n})");
        }
        let s = score_task(cfg, state.alpha[t as usize], state.beta[t as usize], step, t);
        format!(
            "task {t} (CPU score {s:.9e}, key {:#018x}, alpha {:e}, beta {:e})",
            score_key(s, t),
            state.alpha[t as usize],
            state.beta[t as usize]
        )
    };
    let differ = cpu.iter().zip(gpu).filter(|(c, g)| c != g).count();
    let first = cpu.iter().zip(gpu).position(|(c, g)| c != g);
    panic!(
        "{what}: selections differ: lengths CPU {} GPU {}, {differ} positions differ{}\nCPU head {:?}\nGPU head {:?}",
        cpu.len(),
        gpu.len(),
        first.map_or(String::new(), |i| format!(
            "; first at {i}: CPU {} vs GPU {}",
            describe(cpu[i]),
            describe(gpu[i])
        )),
        &cpu[..cpu.len().min(16)],
        &gpu[..gpu.len().min(16)]
    );
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
        Case {
            name: "mean",
            cfg: Config { do_sample: false, ..base.clone() },
            features: true,
            counts: true,
            f32: false,
        },
        Case {
            name: "adaptive",
            cfg: Config { rho: 0.6, adaptive_rho: true, ..base.clone() },
            features: true,
            counts: false,
            f32: false,
        },
        Case {
            name: "prior",
            cfg: Config { prior_strength: Some(4.0), tau: 0.1, ..base.clone() },
            features: true,
            counts: true,
            f32: false,
        },
        Case {
            name: "no-features",
            cfg: Config { rho: 0.0, lambda: 0.2, ..base.clone() },
            features: false,
            counts: true,
            f32: false,
        },
        Case { name: "f32-features", cfg: base.clone(), features: true, counts: false, f32: true },
        Case {
            name: "f32-prior-adaptive",
            cfg: Config { prior_strength: Some(3.0), rho: 0.6, adaptive_rho: true, ..base.clone() },
            features: true,
            counts: true,
            f32: true,
        },
        // Shapes below 1 (unselected tasks keep their prior with rho = 0): the log-space Beta and the boost.
        Case {
            name: "small-prior",
            cfg: Config { prior_alpha: 0.3, prior_beta: 0.6, rho: 0.0, ..base.clone() },
            features: false,
            counts: true,
            f32: false,
        },
    ]
}

/// Runs `steps` steps of a case on both backends, each driven by its own selections; asserts every
/// selection (and extra selections of each size in `ks` every 10 steps), every report and the final
/// state identical. Returns the positions compared.
fn twin_run(case: &Case, n: usize, batch: usize, steps: usize, ks: &[usize]) -> usize {
    let cfg = Config { batch, ..case.cfg.clone() };
    let f = case.features.then(|| if case.f32 { features_f32(n, 3) } else { features(n, 3) });
    let mut cpu = CpuPool::new(cfg.clone(), n, f.clone()).unwrap();
    let mut gpu =
        CudaPool::new(cfg.clone(), n, f).unwrap_or_else(|e| panic!("{} n={n}: opening the CUDA pool: {e}", case.name));
    let what = format!("{} n={n} batch={batch}", case.name);
    let mut compared = 0;
    for step in 0..steps {
        let sel_cpu = cpu.select(batch).unwrap();
        let sel_gpu = gpu.select(batch).unwrap_or_else(|e| panic!("{what} step {step}: GPU select({batch}): {e}"));
        let state = cpu.to_host().unwrap();
        assert_same_selection(&cfg, &state, &sel_cpu, &sel_gpu, &format!("{what} step {step} k={batch}"));
        compared += batch;
        if step % 10 == 0 {
            for &k in ks.iter().filter(|&&k| (1..=n).contains(&k)) {
                let c = cpu.select(k).unwrap();
                let g = gpu.select(k).unwrap_or_else(|e| panic!("{what} step {step}: GPU select({k}): {e}"));
                assert_same_selection(&cfg, &state, &c, &g, &format!("{what} step {step} k={k}"));
                compared += k;
            }
        }
        let rc = cpu.update(&evidence(&sel_cpu, step as u64, cfg.m, case.counts)).unwrap();
        let rg = gpu
            .update(&evidence(&sel_gpu, step as u64, cfg.m, case.counts))
            .unwrap_or_else(|e| panic!("{what} step {step}: GPU update: {e}"));
        assert_eq!(rc, rg, "{what} step {step}: update reports (CPU, GPU)");
        assert_eq!(gpu.step(), (step + 1) as u64, "{what}: GPU step mirror");
    }
    assert_states_identical(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), &what);
    log!("{what}: {compared} selected positions and the final state identical");
    compared
}

#[test]
fn gpu_matches_cpu_twin_small_pools() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let t0 = std::time::Instant::now();
    let mut compared = 0;
    for case in cases() {
        for (n, batch) in [(1usize, 1usize), (2, 2), (2, 1), (1000, 32)] {
            let ks: Vec<usize> = vec![1, 2, 3, 31, 32, 33, 100, 500, 999, 1000];
            compared += twin_run(&case, n, batch, size(50, 12), &ks);
        }
    }
    log!("small pools: {compared} positions identical, {:.1} s", t0.elapsed().as_secs_f64());
}

/// Every config (tau > 0, mean mode, counts, priors, adaptive rho, no features) at 10^5 tasks.
#[test]
fn gpu_matches_cpu_twin_large_pools() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let t0 = std::time::Instant::now();
    let n = size(100_000, 20_000);
    let mut compared = 0;
    for case in cases() {
        let ks = [1usize, 255, 256, 257, 2048, 2049, 65_536, n];
        compared += twin_run(&case, n, 256, size(12, 3), &ks);
    }
    log!("{n}-task pools: {compared} positions identical, {:.1} s", t0.elapsed().as_secs_f64());
}

/// k above one block (k = 3000, padded to 4096): the multi-launch bitonic sort (`bitonic_step`), through
/// both the host verb and `select_into`.
#[test]
fn multi_launch_bitonic_sort() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let k = 3000;
    let cfg = Config { batch: k, tau: 0.05, seed: 11, ..Default::default() };
    let n = size(100_000, 12_000);
    let f = features(n, 12);
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(f.clone())).unwrap();
    let mut gpu = CudaPool::new(cfg.clone(), n, Some(f)).unwrap();
    assert_eq!(gpu.k_capacity(), k, "k must be within the pool's capacity to use the device sort");
    let mut out = gpu.stream().alloc_zeros::<u32>(k).unwrap();
    for step in 0..2u64 {
        let state = cpu.to_host().unwrap();
        let c = cpu.select(k).unwrap();
        let g = gpu.select(k).unwrap();
        assert_same_selection(&cfg, &state, &c, &g, &format!("bitonic k={k} step {step}"));
        gpu.select_into(k, &mut out).unwrap();
        assert_eq!(gpu.stream().clone_dtoh(&out).unwrap(), c, "select_into k={k} step {step}");
        let ev = evidence(&c, step, cfg.m, true);
        assert_eq!(cpu.update(&ev).unwrap(), gpu.update(&ev).unwrap());
    }
    assert_states_identical(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), "bitonic");
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

/// `device` is [`bots::BotsError::DeviceInput`] wrapping the variant and message of `host`, the error the
/// host validation gives for the same batch.
fn assert_device_error_is(device: &bots::BotsError, host: &bots::BotsError, what: &str) {
    let bots::BotsError::DeviceInput(cause) = device else { panic!("{what}: not a device input error: {device}") };
    assert_eq!(std::mem::discriminant(&**cause), std::mem::discriminant(host), "{what}: {device} vs host {host}");
    assert_eq!(cause.to_string(), host.to_string(), "{what}: device and host messages differ");
    assert_eq!(device.cause().to_string(), host.to_string(), "{what}");
    assert!(
        device.to_string().starts_with(&host.to_string()) && device.to_string().contains("state was left unchanged"),
        "{what}: {device}"
    );
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
        // Several faults: the one `validate_batch`'s rule names, whatever order the threads run in (the
        // emulated driver shuffles it on every launch).
        ("two repeated tasks", vec![9, 3, 7, 3, 9, 9], vec![1.0; 6], vec![1.0; 6]),
        ("repeats, then a bad count", vec![7, 8, 7, 8, 5], vec![1.0, 1.0, 1.0, 1.0, -1.0], vec![1.0; 5]),
        ("a bad count on a repeat", vec![7, 8, 7], vec![1.0, 1.0, f32::NAN], vec![1.0; 3]),
        ("repeats, then out of range", vec![2, 2, 1000, 4, 4], vec![1.0; 5], vec![1.0; 5]),
        ("two bad rows", vec![6, 1001, 6, 5], vec![m, 1.0, 1.0, 1.0], vec![1.0; 4]),
    ];
    // The same batches through the host validation (a CPU pool of the same size and m): the device's
    // error wraps the same variant with the same message.
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(features(n, 2))).unwrap();
    for (what, t, s, f) in bad {
        let host = cpu.update(&Evidence::counts(t.clone(), s.clone(), f.clone())).unwrap_err();
        let (t, s, f) = (upload(&gpu, &t), upload(&gpu, &s), upload(&gpu, &f));
        for _ in 0..3 {
            gpu.update_from_device(&t, &s, &f).unwrap();
            let err = gpu.sync().unwrap_err();
            assert_device_error_is(&err, &host, what);
            println!("{what}: {err}");
            assert_states_identical(&before, &gpu.to_host().unwrap(), &format!("{what}: state changed"));
            assert_eq!(gpu.step(), before.globals.step, "{what}: step mirror not resynced");
        }
    }
    // Pass rates out of [0, 1], and the error reported by to_host as well.
    for r in [1.5f32, -0.25, f32::NAN] {
        let host = cpu.update(&Evidence::pass_rates(vec![3, 4], vec![0.5, r])).unwrap_err();
        let (t, rr) = (upload(&gpu, &[3u32, 4]), upload(&gpu, &[0.5f32, r]));
        gpu.update_from_device_rates(&t, &rr).unwrap();
        let err = gpu.to_host().unwrap_err();
        assert_device_error_is(&err, &host, &format!("rate {r}"));
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
    assert_states_identical(&cpu.to_host().unwrap(), &after, "after bad+good");
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
    assert_same_selection(&cfg, &cpu.to_host().unwrap(), &c, &g, "restored");
}

/// A step captured in a CUDA graph and replayed matches the same steps run eagerly, bit for bit, with
/// cudarc's event tracking left on (its default): the device verbs keep its bookkeeping out of the
/// capture, so the buffers the graph used work eagerly afterwards (no CUDA_ERROR_CAPTURED_EVENT), and
/// the pools' own streams (not the legacy NULL stream) can be captured at all.
#[test]
fn cuda_graph_replay_matches_eager() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let cfg = Config { batch: 32, tau: 0.2, ..Default::default() };
    let n = size(100_000, 5_000);
    let f = features(n, 4);
    let mut eager = CudaPool::on_device(0, cfg.clone(), n, Some(f.clone())).unwrap();
    let mut graphed = CudaPool::on_device(0, cfg.clone(), n, Some(f)).unwrap();
    let (sa, sb) = (eager.stream().clone(), graphed.stream().clone());
    assert!(sb.context().is_managing_stream_synchronization(), "the test must run with event tracking on");
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
    // The same buffers, eagerly, after the graph.
    for (p, out, r) in [(&mut eager, &mut out_a, &ra), (&mut graphed, &mut out_b, &rb)] {
        p.select_into(32, out).unwrap();
        p.update_from_device_rates(out, r).unwrap();
        p.sync().unwrap();
    }
    let (ha, hb) = (eager.to_host().unwrap(), graphed.to_host().unwrap());
    assert_eq!(ha.globals.step, 2 + steps as u64);
    assert_states_identical(&ha, &hb, "graph replay diverged from the eager steps");
    assert_eq!(sa.clone_dtoh(&out_a).unwrap(), sb.clone_dtoh(&out_b).unwrap());
    sb.synchronize().unwrap();
    // The host verbs agree with the CPU twin from the same state.
    let mut cpu = CpuPool::from_state(cfg.clone(), ha.clone()).unwrap();
    let c = cpu.select(32).unwrap();
    let g = eager.select(32).unwrap();
    assert_same_selection(&cfg, &cpu.to_host().unwrap(), &c, &g, "after graph");
}

/// Neighbour evidence in a captured step (docs/EVIDENCE-SOURCES.md §4): a graph of select + device update
/// on a pool with a neighbour graph, replayed, matches the same steps run eagerly and the CPU backend's
/// host verbs, bit for bit (the neighbour kernels' grids never depend on a count read back).
#[test]
fn cuda_graph_replay_with_neighbours() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let n = size(50_000, 3_000);
    let cfg = Config { batch: 32, tau: 0.2, neighbour_weight: 0.6, ..Default::default() };
    let f = features(n, 6);
    // Row t: t + 1, t + 7 and t + 100..149 (mod n), weights 0.9, 0.5, 0.3: distinct, never t.
    let ids: Vec<u32> =
        (0..n).flat_map(|t| [(t + 1) % n, (t + 7) % n, (t + 100 + t % 50) % n].map(|j| j as u32)).collect();
    let w: Vec<f32> = (0..n).flat_map(|_| [0.9, 0.5, 0.3]).collect();
    let g = Neighbours::from_lists(n, 3, ids, w).unwrap();
    let mut eager = CudaPool::on_device_with(0, cfg.clone(), n, Some(f.clone()), Some(g.clone())).unwrap();
    let mut graphed = CudaPool::on_device_with(0, cfg.clone(), n, Some(f.clone()), Some(g.clone())).unwrap();
    let mut cpu = CpuPool::with_neighbours(cfg.clone(), n, Some(f), Some(g.clone())).unwrap();
    let (sa, sb) = (eager.stream().clone(), graphed.stream().clone());
    let rates: Vec<f32> = (0..32).map(|i| (i % 17) as f32 / 16.0).collect();
    let (ra, rb) = (sa.clone_htod(&rates).unwrap(), sb.clone_htod(&rates).unwrap());
    let mut out_a = sa.alloc_zeros::<u32>(32).unwrap();
    let mut out_b = sb.alloc_zeros::<u32>(32).unwrap();
    let cpu_step = |cpu: &mut CpuPool| {
        let t = cpu.select(32).unwrap();
        cpu.update(&Evidence::pass_rates(t, rates.clone())).unwrap();
    };
    for (p, out, r) in [(&mut eager, &mut out_a, &ra), (&mut graphed, &mut out_b, &rb)] {
        p.select_into(32, out).unwrap();
        p.update_from_device_rates(out, r).unwrap();
    }
    cpu_step(&mut cpu);
    sb.synchronize().unwrap();
    sb.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
    graphed.select_into(32, &mut out_b).unwrap();
    graphed.update_from_device_rates(&out_b, &rb).unwrap();
    let graph = sb.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().expect("a captured graph");
    let steps = 5;
    for _ in 0..steps {
        eager.select_into(32, &mut out_a).unwrap();
        eager.update_from_device_rates(&out_a, &ra).unwrap();
        graph.launch().unwrap();
        cpu_step(&mut cpu);
    }
    eager.sync().unwrap();
    graphed.sync().unwrap();
    let (ha, hb, hc) = (eager.to_host().unwrap(), graphed.to_host().unwrap(), cpu.to_host().unwrap());
    assert_eq!(ha.globals.step, 1 + steps as u64);
    assert_eq!(ha.neighbours.as_ref(), Some(&g));
    assert_states_identical(&ha, &hb, "neighbours: graph replay diverged from the eager steps");
    assert_states_identical(&hc, &ha, "neighbours: the CUDA pool diverged from the CPU");
    assert_eq!(eager.fingerprint(), cpu.fingerprint());
}

/// A device batch larger than a graph pool's neighbour buffers take (`max(config.batch, k_capacity)`)
/// is refused before any launch; the host `update` grows them, and then the device verbs take it too.
#[test]
fn device_batches_beyond_the_neighbour_capacity_are_refused() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let g = Neighbours::from_lists(10, 1, (0..10).map(|t| (t + 1) % 10).collect(), vec![0.5; 10]).unwrap();
    let cfg = Config { rho: 0.0, neighbour_weight: 0.5, batch: 2, ..Default::default() };
    let mut pool = CudaPool::on_device_with(0, cfg, 10, None, Some(g)).unwrap();
    let s = pool.stream().clone();
    let (t, r) = (s.clone_htod(&[1u32, 2, 3]).unwrap(), s.clone_htod(&[0.5f32; 3]).unwrap());
    let err = pool.update_from_device_rates(&t, &r).unwrap_err().to_string();
    assert!(err.contains("neighbour buffers"), "{err}");
    assert_eq!(pool.sync().unwrap().step, 0);
    pool.update(&Evidence::pass_rates(vec![4, 5, 6], vec![0.5; 3])).unwrap();
    pool.update_from_device_rates(&t, &r).unwrap();
    assert_eq!(pool.sync().unwrap().step, 2);
}

/// A graph of an update alone, captured after a select consumed the pending update, replayed twice:
/// the second replay must first apply the update the first one left pending (the flush is always in the
/// graph), as the CPU does with the same two updates.
#[test]
fn update_only_graph_replayed_twice() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let cfg = Config { batch: 16, ..Default::default() };
    let n = 3000;
    let f = features(n, 8);
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(f.clone())).unwrap();
    let ctx = CudaContext::new(0).unwrap();
    let mut gpu = CudaPool::with_capacity(ctx.new_stream().unwrap(), cfg.clone(), n, Some(f), 16).unwrap();
    let t = cpu.select(16).unwrap();
    assert_eq!(gpu.select(16).unwrap(), t);
    let ev = evidence(&t, 0, cfg.m, false);
    cpu.update(&ev).unwrap();
    gpu.update(&ev).unwrap();
    let t = cpu.select(16).unwrap();
    assert_eq!(gpu.select(16).unwrap(), t, "the select that consumes the pending update");
    let ev = evidence(&t, 1, cfg.m, false);
    let bots::Outcomes::PassRates(r) = &ev.outcomes else { unreachable!() };
    let s = gpu.stream().clone();
    let (dt, dr) = (s.clone_htod(&t).unwrap(), s.clone_htod(r).unwrap());
    s.synchronize().unwrap();
    s.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL).unwrap();
    gpu.update_from_device_rates(&dt, &dr).unwrap();
    let graph = s.end_capture(sys::CUgraphInstantiate_flags(0)).unwrap().expect("a captured graph");
    graph.launch().unwrap();
    graph.launch().unwrap();
    cpu.update(&ev).unwrap();
    cpu.update(&ev).unwrap();
    gpu.sync().unwrap();
    assert_states_identical(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), "update-only graph replayed twice");
}

/// The raw verbs given the legacy NULL stream (PyTorch's default stream, as the Python package passes
/// it): the pool's kernels run on its own stream, after the inputs written on the legacy stream (not
/// synchronized here), and the legacy stream waits for them; so the host verbs (`sync`, `to_host`,
/// which read on the pool's own stream) see every update, and a read on the legacy stream sees the
/// selection. On the emulated driver a stream runs only when waited for: without the fences `sync`
/// reads the step before the update, every time.
#[test]
fn raw_verbs_on_the_legacy_stream_are_fenced() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let cfg = Config { batch: 16, ..Default::default() };
    let n = size(100_000, 3000);
    let f = features(n, 12);
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(f.clone())).unwrap();
    let mut gpu = CudaPool::on_device(0, cfg.clone(), n, Some(f)).unwrap();
    assert!(gpu.caller_stream().is_none(), "a pool of its own stream fences only raw verbs' streams");
    let legacy = gpu.stream().context().default_stream();
    for step in 0..3 {
        let t = cpu.select(16).unwrap();
        let out = legacy.alloc_zeros::<u32>(16).unwrap();
        let out_ptr = cudarc::driver::DevicePtr::device_ptr(&out, &legacy).0;
        // SAFETY: `out` holds 16 u32 of the pool's context; the legacy stream is live.
        unsafe { gpu.select_into_raw(16, out_ptr, legacy.cu_stream()) }.unwrap();
        assert_eq!(legacy.clone_dtoh(&out).unwrap(), t, "step {step}: the selection read on the legacy stream");
        let ev = evidence(&t, step, cfg.m, false);
        let bots::Outcomes::PassRates(r) = &ev.outcomes else { unreachable!() };
        let (dt, dr) = (legacy.clone_htod(&t).unwrap(), legacy.clone_htod(r).unwrap());
        let (tp, rp) = (
            cudarc::driver::DevicePtr::device_ptr(&dt, &legacy).0,
            cudarc::driver::DevicePtr::device_ptr(&dr, &legacy).0,
        );
        // SAFETY: 16 task ids and 16 rates of the pool's context, written on the legacy stream.
        unsafe { gpu.update_raw(tp, bots::RawOutcomes::PassRates(rp), 16, legacy.cu_stream()) }.unwrap();
        cpu.update(&ev).unwrap();
        assert_eq!(gpu.sync().unwrap().step, step + 1, "step {step}: sync on the pool's stream saw the update");
    }
    assert_states_identical(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), "raw verbs on the legacy stream");
}

/// A pool built on the per-thread default stream (candle's `Device::new_cuda`), moved to another thread
/// for every step (it is `Send`) and synchronized on this one: it runs on a stream of its own, fenced
/// with the calling thread's per-thread stream, so every thread sees its work. On the emulated driver
/// each thread's per-thread stream is its own queue, as on a GPU: a pool that launched on the handle
/// itself would leave this thread's `sync` reading the step before the spawned thread's update.
#[test]
fn per_thread_stream_pool_is_ordered_from_any_thread() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let cfg = Config { batch: 16, ..Default::default() };
    let n = size(100_000, 3000);
    let f = features(n, 13);
    let ctx = CudaContext::new(0).unwrap();
    let mut gpu = CudaPool::with_capacity(ctx.per_thread_stream(), cfg.clone(), n, Some(f.clone()), 16).unwrap();
    assert!(gpu.caller_stream().is_some(), "the per-thread handle is fenced with, not run on");
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(f)).unwrap();
    for step in 0..4u64 {
        let m = cfg.m;
        (gpu, cpu) = std::thread::spawn(move || {
            let pt = gpu.stream().context().per_thread_stream();
            let t = cpu.select(16).unwrap();
            let mut out = pt.alloc_zeros::<u32>(16).unwrap();
            gpu.select_into(16, &mut out).unwrap();
            assert_eq!(pt.clone_dtoh(&out).unwrap(), t, "step {step}: selection read on this thread's stream");
            let ev = evidence(&t, step, m, true);
            let bots::Outcomes::Counts { successes, failures } = &ev.outcomes else { unreachable!() };
            let (dt, ds, df) =
                (pt.clone_htod(&t).unwrap(), pt.clone_htod(successes).unwrap(), pt.clone_htod(failures).unwrap());
            gpu.update_from_device(&dt, &ds, &df).unwrap();
            cpu.update(&ev).unwrap();
            (gpu, cpu)
        })
        .join()
        .unwrap();
        assert_eq!(gpu.sync().unwrap().step, step + 1, "step {step}: this thread sees the other thread's update");
    }
    assert_states_identical(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), "per-thread stream, four threads");
}

/// 10^8 tasks (on the emulated driver 1.1 x 10^6: still more than the 2^20 keys of the candidate
/// buffer, so the tied pool below takes the path that re-reads the pool for a bin that overflows it).
#[test]
fn hundred_million_tasks() {
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let t0 = std::time::Instant::now();
    let n = size(100_000_000, 1_100_000);
    let cfg = Config { batch: 64, ..Default::default() };
    let f = features(n, 6);
    let mut gpu = CudaPool::new(cfg.clone(), n, Some(f.clone())).unwrap();
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(f)).unwrap();
    log!("{n} tasks: pools ready after {:.1} s", t0.elapsed().as_secs_f64());
    for step in 0..3u64 {
        let state = cpu.to_host().unwrap();
        let c = cpu.select(64).unwrap();
        let g = gpu.select(64).unwrap();
        assert_same_selection(&cfg, &state, &c, &g, &format!("{n} tasks step {step}"));
        let ev = evidence(&g, step, cfg.m, false);
        assert_eq!(cpu.update(&ev).unwrap(), gpu.update(&ev).unwrap(), "{n} tasks step {step}: reports");
    }
    log!("{n} tasks: 3 steps identical, {:.1} s so far", t0.elapsed().as_secs_f64());
    // A mean-mode pass over the same pool: all scores tie at first, so the radix select resolves the
    // whole pool by task id (the bin is larger than the candidate buffer).
    let mcfg = Config { do_sample: false, rho: 0.0, batch: 64, ..Default::default() };
    let mut tied = CudaPool::new(mcfg.clone(), n, None).unwrap();
    let got = tied.select(64).unwrap();
    assert_eq!(got, (0..64).collect::<Vec<u32>>(), "tied pool of {n}: ties must resolve to the lowest task ids");
    assert_eq!(got, CpuPool::new(mcfg, n, None).unwrap().select(64).unwrap());
    drop(tied);
    assert_states_identical(&cpu.to_host().unwrap(), &gpu.to_host().unwrap(), &format!("{n} tasks"));
    log!("{n} tasks: done after {:.1} s", t0.elapsed().as_secs_f64());
}

/// `KernelMode::Fast` on the device: the draws' distribution, read back through the selection order.
///
/// One pool of G groups of M tasks, group g with the posterior Beta(a_g, b_g) (shapes 0.01 to 10^4,
/// Beta(0.01, 0.01) included), plus R reference tasks with posterior Beta(c x_r, c (1 - x_r)), c = 10^10,
/// whose draws sit at x_r within s_r = sqrt(x_r (1 - x_r) / c) (at most 5e-6). With target 0 and tau 0 the
/// score is -p_hat, so `select(n)` (the whole pool, in score order) ranks every task by its draw: the
/// group-g tasks ranked before reference r are those with p_hat < p_hat_r, a Binomial(M, F_g(x_r + e)) count
/// (F_g the Beta CDF, e the reference's own N(0, s_r^2) noise). Each count must be within 5 standard
/// deviations of M F_g(x_r), the variance M F (1 - F) plus (M f_g(x_r) s_r)^2 for the reference's noise
/// (f_g the density), plus 1 for the count's discreteness. The ranking must hold n distinct ids < n, and
/// so must a selection of k = 64 (also with Gumbel noise, tau > 0). Then the checkpoint: a fast pool saved
/// and restored (into a new fast pool, and into the CPU backend, whose fingerprint ignores the mode)
/// keeps its config (`kernel_mode: fast`) and state bit for bit, and the restored fast pool selects what
/// the saved one selects (fast draws are reproducible on one device).
#[test]
fn fast_mode_draws_and_checkpoints() {
    use statrs::distribution::{Beta, Continuous, ContinuousCDF};
    let _g = GPU.lock().unwrap_or_else(|e| e.into_inner());
    if !gpu_available() {
        return;
    }
    let groups: [(f32, f32); 6] = [(0.01, 0.01), (0.1, 10.0), (1.0, 1.0), (2.5, 7.0), (30.0, 3.0), (1e4, 1e4)];
    let refs =
        [1e-4, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.495, 0.4975, 0.5, 0.5025, 0.505, 0.6, 0.7, 0.8, 0.9, 0.99, 0.9999];
    let c = 1e10f64;
    let m = size(1 << 15, 1000);
    let n = groups.len() * m + refs.len();
    let cfg =
        Config { batch: n, rho: 0.0, target: 0.0, tau: 0.0, kernel_mode: bots::KernelMode::Fast, ..Default::default() };
    let mut gpu = CudaPool::new(cfg.clone(), n, None).unwrap();
    let mut state = gpu.to_host().unwrap();
    // Tasks interleaved (task t: group t % G for the first G M), the references last.
    for t in 0..groups.len() * m {
        (state.alpha[t], state.beta[t]) = groups[t % groups.len()];
    }
    for (r, &x) in refs.iter().enumerate() {
        let t = groups.len() * m + r;
        (state.alpha[t], state.beta[t]) = ((c * x) as f32, (c * (1.0 - x)) as f32);
    }
    gpu.restore(state).unwrap();
    let ranking = gpu.select(n).unwrap();
    let mut seen = vec![false; n];
    for &t in &ranking {
        assert!(
            (t as usize) < n && !std::mem::replace(&mut seen[t as usize], true),
            "fast ranking: task {t} repeated or out of range"
        );
    }
    assert_eq!(ranking.len(), n);
    let mut before = vec![0usize; groups.len()];
    let mut counts = vec![vec![0usize; refs.len()]; groups.len()];
    for &t in &ranking {
        let t = t as usize;
        if t < groups.len() * m {
            before[t % groups.len()] += 1;
        } else {
            for (g, b) in before.iter().enumerate() {
                counts[g][t - groups.len() * m] = *b;
            }
        }
    }
    let mut worst = 0.0f64;
    for (g, &(a, b)) in groups.iter().enumerate() {
        let dist = Beta::new(a as f64, b as f64).unwrap();
        for (r, &x) in refs.iter().enumerate() {
            let (f, dens) = (dist.cdf(x), dist.pdf(x));
            let s_r = (x * (1.0 - x) / c).sqrt();
            let mf = m as f64;
            let sd = (mf * f * (1.0 - f) + (mf * dens * s_r).powi(2)).sqrt();
            let dev = (counts[g][r] as f64 - mf * f).abs();
            worst = worst.max(dev / (sd + 1e-12));
            assert!(
                dev <= 5.0 * sd + 1.0,
                "fast Beta({a}, {b}): {} of {m} draws below {x}, expected {:.1} (5 sd = {:.1})",
                counts[g][r],
                mf * f,
                5.0 * sd
            );
        }
    }
    log!(
        "fast mode: {} groups x {m} draws against {} reference points, worst deviation {worst:.2} sd",
        groups.len(),
        refs.len()
    );
    // k = 64 selections, with and without Gumbel noise, after updates (the pending update path).
    for tau in [0.0f32, 0.3] {
        let cfg = Config { batch: 64, tau, kernel_mode: bots::KernelMode::Fast, ..Default::default() };
        let n = 5000;
        let mut pool = CudaPool::new(cfg.clone(), n, Some(features(n, 4))).unwrap();
        for step in 0..4 {
            let sel = pool.select(64).unwrap();
            let mut ids = sel.clone();
            ids.sort_unstable();
            ids.dedup();
            assert!(ids.len() == 64 && ids.iter().all(|&t| (t as usize) < n), "fast tau {tau} step {step}: {sel:?}");
            pool.update(&evidence(&sel, step, cfg.m, false)).unwrap();
        }
        // Checkpoints: the config (with its mode) and the state round-trip; draws are reproducible.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fast.ckpt");
        pool.save_checkpoint(&path).unwrap();
        let (saved_cfg, saved) = bots::checkpoint::load(&path).unwrap();
        assert_eq!(saved_cfg, cfg, "the checkpoint keeps kernel_mode: fast");
        assert_states_identical(&pool.to_host().unwrap(), &saved, "fast checkpoint");
        let mut back = CudaPool::new(cfg.clone(), n, Some(features(n, 4))).unwrap();
        assert_eq!(back.restore_checkpoint(&path).unwrap(), cfg);
        assert_states_identical(&saved, &back.to_host().unwrap(), "fast checkpoint restored");
        assert_eq!(
            back.select(64).unwrap(),
            pool.select(64).unwrap(),
            "fast tau {tau}: restored pool selects the same"
        );
        let mut cpu =
            CpuPool::new(Config { kernel_mode: bots::KernelMode::Exact, ..cfg }, n, Some(features(n, 4))).unwrap();
        cpu.restore_checkpoint(&path).unwrap();
        assert_states_identical(&saved, &cpu.to_host().unwrap(), "fast checkpoint into the CPU backend");
    }
}

/// The comparison itself, on the CPU alone (runs everywhere): identical lists pass, and a list with one
/// task replaced or the order reversed fails.
#[test]
fn assert_same_selection_checks_itself_on_the_cpu() {
    let cfg = Config { seed: 3, batch: 40, ..Default::default() };
    let n = 2000;
    let mut cpu = CpuPool::new(cfg.clone(), n, Some(features(n, 9))).unwrap();
    let sel = cpu.select(40).unwrap();
    let state = cpu.to_host().unwrap();
    assert_same_selection(&cfg, &state, &sel, &sel, "self");
    let mut bad = sel.clone();
    bad[7] = (0..n as u32).find(|t| !sel.contains(t)).unwrap();
    let r = std::panic::catch_unwind(|| {
        assert_same_selection(&cfg, &state, &sel, &bad, "CPU-only self-check, expected to fail: one task")
    });
    assert!(r.is_err(), "a different task must fail");
    let rev: Vec<u32> = sel.iter().rev().copied().collect();
    let r = std::panic::catch_unwind(|| {
        assert_same_selection(&cfg, &state, &sel, &rev, "CPU-only self-check, expected to fail: reversed")
    });
    assert!(r.is_err(), "a reversed selection must fail");
}
