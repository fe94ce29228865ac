//! K reference columns (docs/EVIDENCE-SOURCES.md §1): the piecewise interpolation on hand-worked
//! numbers, K = 1 as K = 2 with a null column, checkpoints of K != 2, and the errors.
//!
//! The tests that take pools from [`devices`] run on every backend there is: the CPU always, and the
//! CUDA backend when a device is usable (`common::gpu_available`; under `BOTS_REQUIRE_GPU=1`, as
//! `scripts/emu-driver/test.sh` runs this file on the emulated driver, a missing one is a failure).
//! Every device must agree with the CPU backend bit for bit.

use crate::common;

use crate::{column, devices, DEVICE};

use bots::{checkpoint, Backend, BotsError, Config, CpuPool, Evidence, FeatureForm, Features};
use common::assert_bit_identical;

fn keys(k: usize) -> Vec<String> {
    (0..k).map(|c| format!("ref{c}")).collect()
}

fn assert_state(pool: &dyn Backend, alpha: [f64; 3], beta: [f64; 3]) {
    let s = pool.to_host().unwrap();
    for k in 0..3 {
        for (what, got, want) in [("alpha", s.alpha[k], alpha[k]), ("beta", s.beta[k], beta[k])] {
            let rel = ((got as f64) - want).abs() / want.abs();
            assert!(rel < 2e-6, "{}: task {k} {what}: got {got}, want {want}", pool.name());
        }
    }
}

/// Three tasks, three columns: f_0 = (0, 0.25, 0.5), f_1 = (0.25, 0.5, 0.75), f_2 = (0.5, 1, 1);
/// lambda = 0.1, rho = 0.1, m = 16, gamma = 0.9, prior Beta(1, 1).
///
/// Step 1: task 1 at r = 0.75. Batch ladder F = (0.25, 0.5, 1.0): R brackets segment 1, so
///   mu_est = 1 + (0.75 - 0.5)/(1.0 - 0.5 + 1e-6) = 1.499999 = mu; segment (1, 2), t = 0.499999.
///   task 1: alpha = 1 + 0.9·12 + 0.1·16·0.75 = 13, beta = 1 + 0.9·4 + 0.1·16·0.25 = 5.
///   task 0: p~ = 0.25 + t·0.25 = 0.37499975: alpha = 1.5999996, beta = 2.0000004.
///   task 2: p~ = 0.75 + t·0.25 = 0.87499975: alpha = 2.3999996, beta = 1.2000004.
/// Step 2: task 2 at r = 0.25. Ladder F = (0.5, 0.75, 1.0): R is below it, and nearer F_0, so the
///   first segment extrapolates: mu_est = (0.25 - 0.5)/(0.25 + 1e-6) = -0.999996;
///   mu = 0.9·1.499999 + 0.1·(-0.999996) = 1.2499995; segment (1, 2), t = 0.2499995.
///   task 2: alpha = 0.9·2.3999996 + 0.1 + 0.9·4 + 1.6·0.25 = 6.25999964,
///           beta = 0.9·1.2000004 + 0.1 + 0.9·12 + 1.6·0.75 = 13.18000036.
///   task 0: p~ = 0.25 + t·0.25 = 0.312499875: alpha = 2.03999944, beta = 3.00000056.
///   task 1: p~ = 0.5 + t·0.5 = 0.62499975: alpha = 12.7999996, beta = 5.2000004.
/// On every device.
#[test]
fn three_columns_interpolate_piecewise() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let f = Features::from_columns(&[&[0.0, 0.25, 0.5], &[0.25, 0.5, 0.75], &[0.5, 1.0, 1.0]]).unwrap();
    assert_eq!((f.n_columns(), f.form()), (3, FeatureForm::F16));
    let cfg = Config { feature_keys: keys(3), batch: 1, ..Config::default() };
    for (name, mut p) in devices(&cfg, 3, Some(&f), None) {
        let r = p.update(&Evidence::pass_rates(vec![1], vec![0.75])).unwrap();
        assert!((r.mu.unwrap() as f64 - 1.499999).abs() < 1e-6, "{name}: {r:?}");
        assert_state(p.as_ref(), [1.5999996, 13.0, 2.3999996], [2.0000004, 5.0, 1.2000004]);
        let r = p.update(&Evidence::pass_rates(vec![2], vec![0.25])).unwrap();
        assert!((r.mu.unwrap() as f64 - 1.2499995).abs() < 1e-6, "{name}: {r:?}");
        assert_state(p.as_ref(), [2.03999944, 12.7999996, 6.25999964], [3.00000056, 5.2000004, 13.18000036]);
    }
}

/// Runs two pools side by side (selections, counts and pass rates) and checks they agree bit for bit.
fn run_pair(a: &mut dyn Backend, b: &mut dyn Backend, steps: u32) {
    for step in 0..steps {
        let (ta, tb) = (a.select_batch().unwrap(), b.select_batch().unwrap());
        assert_eq!(ta, tb, "step {step}");
        let ev = if step % 2 == 0 {
            Evidence::pass_rates(ta.clone(), ta.iter().map(|&t| ((t + step) % 11) as f32 / 10.0).collect())
        } else {
            Evidence::counts(
                ta.clone(),
                ta.iter().map(|&t| (t % 5) as f32).collect(),
                ta.iter().map(|&t| (t % 3) as f32 + 1.0).collect(),
            )
        };
        let (ra, rb) = (a.update(&ev).unwrap(), b.update(&ev).unwrap());
        assert_eq!(ra.mu.map(f32::to_bits), rb.mu.map(f32::to_bits), "step {step}: mu");
        assert_eq!((ra.step, ra.rho.to_bits()), (rb.step, rb.rho.to_bits()), "step {step}");
        assert_eq!(ra.miss.map(f32::to_bits), rb.miss.map(f32::to_bits), "step {step}: miss");
    }
    assert_bit_identical(&a.to_host().unwrap(), &b.to_host().unwrap(), "final state");
}

/// K = 1 is K = 2 with a weaker column of zeros (a null model), bit for bit, in both forms, with
/// adaptive rho, per-task priors and Gumbel noise; on every device.
#[test]
fn one_column_is_two_with_a_null_model_below() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let n = 3000;
    for den in [16, 10] {
        let strong = column(n, den, 3);
        let zeros = vec![0.0f32; n];
        let one = Features::from_columns(&[&strong]).unwrap();
        let two = Features::from_columns(&[&zeros, &strong]).unwrap();
        assert_eq!(one.form(), two.form());
        for cfg in [
            Config { batch: 16, ..Default::default() },
            Config {
                batch: 8,
                rho: 0.6,
                adaptive_rho: true,
                prior_strength: Some(3.0),
                tau: 0.2,
                ..Default::default()
            },
        ] {
            let ones = devices(&Config { feature_keys: keys(1), ..cfg.clone() }, n, Some(&one), None);
            let twos = devices(&cfg, n, Some(&two), None);
            for ((name, mut a), (_, mut b)) in ones.into_iter().zip(twos) {
                eprintln!("{name}: K = 1 against K = 2 with a null column");
                run_pair(a.as_mut(), b.as_mut(), 25);
            }
        }
    }
}

/// K = 2 built from columns is the two-column pool of `from_f32`: the same features, the same run.
#[test]
fn two_columns_from_columns_is_from_f32() {
    let n = 2000;
    let (w, s) = (column(n, 10, 0), column(n, 10, 4));
    let (w, s): (Vec<f32>, Vec<f32>) = w.iter().zip(&s).map(|(&a, &b)| (a.min(b), a.max(b))).unzip();
    let f = Features::from_columns(&[&w, &s]).unwrap();
    assert_eq!(f, Features::from_f32(&w, &s).unwrap());
    let cfg = Config { batch: 16, adaptive_rho: true, rho: 0.5, ..Default::default() };
    run_pair(
        &mut CpuPool::new(cfg.clone(), n, Some(f.clone())).unwrap(),
        &mut CpuPool::new(cfg, n, Some(f)).unwrap(),
        5,
    );
}

/// Pools of K = 1, 3 and 5 columns (f16 and f32) checkpoint and resume exactly; the header says K.
#[test]
fn k_columns_checkpoint_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.ckpt");
    let n = 1500;
    for (k, den) in [(1, 16), (3, 16), (3, 10), (5, 10)] {
        let cols: Vec<Vec<f32>> = (0..k).map(|c| column(n, den, 2 * c)).collect();
        let refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
        let f = Features::from_columns(&refs).unwrap();
        let cfg = Config { batch: 16, feature_keys: keys(k), prior_strength: Some(2.0), ..Default::default() };
        let mut pool = CpuPool::new(cfg.clone(), n, Some(f.clone())).unwrap();
        for step in 0..4u32 {
            let t = pool.select_batch().unwrap();
            let r = t.iter().map(|&t| ((t + step) % 9) as f32 / 8.0).collect();
            pool.update(&Evidence::pass_rates(t, r)).unwrap();
        }
        pool.save_checkpoint(&path).unwrap();
        let h = checkpoint::read_header(&path).unwrap();
        assert_eq!((h.version, h.feature_columns), (checkpoint::VERSION, k), "K = {k}");
        let (c, s) = checkpoint::load(&path).unwrap();
        assert_eq!(c, cfg);
        assert_eq!(s.features.as_ref(), Some(&f));
        let want = pool.to_host().unwrap();
        assert_bit_identical(&s, &want, &format!("K = {k}"));
        run_pair(&mut CpuPool::from_state(c, s).unwrap(), &mut pool, 4);
    }
}

/// Bad column sets are errors that name the problem, and a refused restore leaves the pool as it was.
#[test]
fn bad_columns_are_refused() {
    let n = 10;
    let c = column(n, 8, 0);
    let short = column(n - 1, 8, 0);
    assert!(matches!(Features::from_columns(&[]), Err(BotsError::LengthMismatch { got: 0, .. })));
    let err = Features::from_columns(&[&c, &c, &short]).unwrap_err();
    assert!(matches!(err, BotsError::LengthMismatch { expected: 10, got: 9, .. }), "{err}");
    assert!(err.to_string().contains("column 2"), "{err}");
    let mut bad = c.clone();
    bad[4] = 1.5;
    let err = Features::from_columns(&[&c, &c, &bad]).unwrap_err();
    assert!(matches!(err, BotsError::InvalidFeature { task: 4, .. }), "{err}");
    // The features must have one column per feature_keys entry.
    let three = Features::from_columns(&[&c, &c, &c]).unwrap();
    let err = CpuPool::new(Config::default(), n, Some(three.clone())).unwrap_err();
    assert!(matches!(err, BotsError::LengthMismatch { expected: 2, got: 3, .. }), "{err}");
    assert!(err.to_string().contains("feature_keys"), "{err}");
    // A restore of a three-column state into a two-column pool is refused; the pool is unchanged.
    let mut pool =
        CpuPool::new(Config { batch: 2, ..Default::default() }, n, Some(Features::from_f32(&c, &c).unwrap())).unwrap();
    let t = pool.select_batch().unwrap();
    pool.update(&Evidence::pass_rates(t, vec![0.5, 0.25])).unwrap();
    let before = pool.to_host().unwrap();
    let other = CpuPool::new(Config { feature_keys: keys(3), ..Default::default() }, n, Some(three)).unwrap();
    let err = pool.restore(other.to_host().unwrap()).unwrap_err();
    assert!(matches!(err, BotsError::LengthMismatch { expected: 2, got: 3, .. }), "{err}");
    assert_bit_identical(&pool.to_host().unwrap(), &before, "after the refused restore");
    assert_eq!(pool.to_host().unwrap().features, before.features);
}

/// Column `c` of `n` tasks, rising with c (weakest first): `min(den, k % (den/2) + c·(1 + k % 3)) / den`,
/// multiples of 1/den (f16 values for den = 16, not for den = 10).
fn ladder_column(n: usize, den: usize, c: usize) -> Vec<f32> {
    (0..n).map(|k| (k % (den / 2) + c * (1 + k % 3)).min(den) as f32 / den as f32).collect()
}

/// Step `step`'s outcomes for `tasks`: pass rates on even steps, counts on odd ones, both rising with
/// the step and wrapping (so mu walks up the ladder, past its top, and back below its bottom).
fn ladder_evidence(tasks: &[u32], step: u32) -> Evidence {
    let level = |t: u32| (t % 3 + step) % 17;
    if step.is_multiple_of(2) {
        Evidence::pass_rates(tasks.to_vec(), tasks.iter().map(|&t| level(t) as f32 / 16.0).collect())
    } else {
        let s: Vec<f32> = tasks.iter().map(|&t| level(t) as f32).collect();
        Evidence::counts(tasks.to_vec(), s.clone(), s.iter().map(|s| 16.0 - s).collect())
    }
}

/// K = 1, 2, 3 and 5 columns, f16 and f32 forms, three configs (Thompson sampling, adaptive rho with
/// per-task priors and Gumbel noise, mean mode): every device agrees with the CPU backend bit for bit
/// (every selection, every report's mu, rho and miss, and the final alpha, beta, mu, rho and features),
/// and mu visits several segments of the ladder.
#[test]
fn k_columns_agree_on_every_device() {
    let _d = DEVICE.lock().unwrap_or_else(|e| e.into_inner());
    let n = 700;
    let steps = 24u32;
    for k in [1usize, 2, 3, 5] {
        for den in [16, 10] {
            let cols: Vec<Vec<f32>> = (0..k).map(|c| ladder_column(n, den, c + (k == 1) as usize)).collect();
            let refs: Vec<&[f32]> = cols.iter().map(Vec::as_slice).collect();
            let f = Features::from_columns(&refs).unwrap();
            assert_eq!(f.form(), if den == 16 { FeatureForm::F16 } else { FeatureForm::F32 }, "K = {k}, den {den}");
            let base = Config { feature_keys: keys(k), batch: 24, gamma: 0.5, ..Default::default() };
            let cfgs = [
                base.clone(),
                Config { rho: 0.6, adaptive_rho: true, prior_strength: Some(3.0), tau: 0.2, ..base.clone() },
                Config { do_sample: false, rho: 0.3, gamma: 0.0, ..base.clone() },
            ];
            for (ci, cfg) in cfgs.iter().enumerate() {
                let what = format!("K = {k}, den {den}, config {ci}");
                let mut pools = devices(cfg, n, Some(&f), None);
                let mut segments = std::collections::BTreeSet::new();
                for step in 0..steps {
                    let mut first: Option<(Vec<u32>, bots::UpdateReport)> = None;
                    for (name, pool) in pools.iter_mut() {
                        let sel = pool.select_batch().unwrap_or_else(|e| panic!("{what} {name}: select: {e}"));
                        let extra = pool.select(n / 2 + step as usize).unwrap();
                        let r = pool
                            .update(&ladder_evidence(&sel, step))
                            .unwrap_or_else(|e| panic!("{what} {name}: update: {e}"));
                        // Where mu is on the rungs 0, ..., K - 1: below, between two, above.
                        segments.insert((r.mu.unwrap().floor() as i64).clamp(-1, k as i64));
                        match &first {
                            None => first = Some((sel.iter().chain(&extra).copied().collect(), r)),
                            Some((s0, r0)) => {
                                let s: Vec<u32> = sel.iter().chain(&extra).copied().collect();
                                assert_eq!(&s, s0, "{what} step {step}: {name} selected other tasks than the CPU");
                                assert_eq!(
                                    (r.step, r.mu.map(f32::to_bits), r.rho.to_bits(), r.miss.map(f32::to_bits)),
                                    (r0.step, r0.mu.map(f32::to_bits), r0.rho.to_bits(), r0.miss.map(f32::to_bits)),
                                    "{what} step {step}: {name}'s report differs from the CPU's"
                                );
                            }
                        }
                    }
                }
                let want = pools[0].1.to_host().unwrap();
                for (name, pool) in &pools[1..] {
                    let got = pool.to_host().unwrap();
                    assert_bit_identical(&want, &got, &format!("{what}: {name} final state"));
                    assert!(got.features == want.features, "{what}: {name}'s features differ from the CPU's");
                }
                if k >= 3 {
                    assert!(segments.len() >= 4, "{what}: mu stayed on few segments: {segments:?}");
                }
            }
        }
    }
}
