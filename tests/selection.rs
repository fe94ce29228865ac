//! Selection (BOTS-ALGORITHM.md §1) through the public API: exact top-k of the Thompson samples,
//! Gumbel-top-k against sequential softmax sampling, posterior-mean mode, and determinism.

use bots::__private::score_task;
use bots::{Backend, Config, CpuPool, Evidence, Features, PoolState};

fn features(n: usize) -> Features {
    let weak: Vec<f32> = (0..n).map(|k| ((k * 7) % 17) as f32 / 32.0).collect();
    let strong: Vec<f32> = weak.iter().map(|w| (w + 0.4).min(1.0)).collect();
    Features::from_f32(&weak, &strong).unwrap()
}

/// A pool that has seen a few steps of evidence, so tasks have varied posteriors.
fn trained_pool(config: Config, n: usize, steps: usize) -> CpuPool {
    let mut p = CpuPool::new(config, n, Some(features(n))).unwrap();
    for t in 0..steps {
        let tasks = p.select_batch().unwrap();
        let rates = tasks.iter().map(|&k| ((k as usize + t) % 5) as f32 / 4.0).collect();
        p.update(&Evidence::pass_rates(tasks, rates)).unwrap();
    }
    p
}

/// The backend's selection equals a full sort of the same samples (score desc, index asc), for many
/// k, with and without a pending update, tau = 0 and tau > 0.
#[test]
fn select_equals_full_sort_of_the_samples() {
    for tau in [0.0, 0.3] {
        let n = 5000;
        let cfg = Config { batch: 64, tau, ..Config::default() };
        let mut p = trained_pool(cfg.clone(), n, 7);
        for k in [1, 2, 63, 64, 1000, n] {
            let got = p.select(k).unwrap();
            // to_host brings the pending update in, exactly as the fused pass did.
            let s = p.to_host().unwrap();
            let score = |t: usize| score_task(&cfg, s.alpha[t], s.beta[t], s.globals.step, t as u32);
            let mut all: Vec<usize> = (0..n).collect();
            all.sort_by(|&a, &b| score(b).partial_cmp(&score(a)).unwrap().then(a.cmp(&b)));
            let want: Vec<u32> = all[..k].iter().map(|&t| t as u32).collect();
            assert_eq!(got, want, "tau {tau} k {k}");
        }
    }
}

/// Selecting twice at one step gives the same tasks; the result does not depend on the number of
/// threads.
#[test]
fn deterministic_across_calls_and_thread_counts() {
    let n = 300_000;
    let cfg = Config { batch: 32, ..Config::default() };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            let mut p = trained_pool(cfg.clone(), n, 3);
            let a = p.select(32).unwrap();
            let b = p.select(32).unwrap();
            assert_eq!(a, b);
            (a, p.to_host().unwrap())
        })
    };
    let (sel1, st1) = run(1);
    let (sel3, st3) = run(3);
    assert_eq!(sel1, sel3);
    assert_eq!(st1, st3);
}

/// do_sample = false scores the posterior mean: the tasks whose mean is nearest p* win, ties by id.
#[test]
fn posterior_mean_mode() {
    let cfg = Config { do_sample: false, rho: 0.0, batch: 3, ..Config::default() };
    let mut p = CpuPool::new(cfg, 6, None).unwrap();
    let mut s = p.to_host().unwrap();
    // means: 0.9, 0.55, 0.2, 0.45, 0.5 (exact), 0.55
    s.alpha = vec![9.0, 5.5, 2.0, 4.5, 5.0, 5.5];
    s.beta = vec![1.0, 4.5, 8.0, 5.5, 5.0, 4.5];
    p.restore(s).unwrap();
    assert_eq!(p.select(3).unwrap(), vec![4, 1, 3]);
    assert_eq!(p.select(4).unwrap(), vec![4, 1, 3, 5]);
}

/// Gumbel-top-k with temperature tau draws without replacement with probabilities softmax(s/tau):
/// the ordered pair (first, second) of k = 2 has probability p_i · p_j / (1 - p_i). Five tasks with
/// posterior means 0.5, 0.4, 0.3, 0.2, 0.9 (scores 0, -0.1, -0.2, -0.3, -0.4) at tau = 0.1, over
/// 20 000 steps; chi-square over the ordered pairs with expected count >= 5 (the rest pooled), against
/// the 0.1% critical value of its degrees of freedom.
#[test]
fn gumbel_top_k_matches_sequential_softmax() {
    let cfg = Config { do_sample: false, rho: 0.0, tau: 0.1, batch: 2, seed: 1234, ..Config::default() };
    let means = [0.5f64, 0.4, 0.3, 0.2, 0.9];
    let base = CpuPool::new(cfg.clone(), 5, None).unwrap().to_host().unwrap();
    let state = |step: u64| PoolState {
        alpha: means.iter().map(|&m| (10.0 * m) as f32).collect(),
        beta: means.iter().map(|&m| (10.0 * (1.0 - m)) as f32).collect(),
        globals: bots::Globals { step, ..base.globals },
        ..base.clone()
    };
    let mut p = CpuPool::new(cfg.clone(), 5, None).unwrap();
    let trials = 20_000u64;
    let mut counts = [[0u64; 5]; 5];
    for t in 0..trials {
        p.restore(state(t)).unwrap();
        let sel = p.select(2).unwrap();
        counts[sel[0] as usize][sel[1] as usize] += 1;
    }
    let logits: Vec<f64> = means.iter().map(|m| -(0.5 - m).abs() / 0.1).collect();
    let z: f64 = logits.iter().map(|l| l.exp()).sum();
    let prob: Vec<f64> = logits.iter().map(|l| l.exp() / z).collect();
    let (mut chi2, mut cells, mut pooled_obs, mut pooled_exp) = (0.0, 0usize, 0.0, 0.0);
    for i in 0..5 {
        for j in 0..5 {
            if i == j {
                assert_eq!(counts[i][j], 0);
                continue;
            }
            let e = trials as f64 * prob[i] * prob[j] / (1.0 - prob[i]);
            let o = counts[i][j] as f64;
            if e >= 5.0 {
                chi2 += (o - e).powi(2) / e;
                cells += 1;
            } else {
                pooled_obs += o;
                pooled_exp += e;
            }
        }
    }
    if pooled_exp > 0.0 {
        chi2 += (pooled_obs - pooled_exp).powi(2) / pooled_exp;
        cells += 1;
    }
    // 0.1% critical values of chi-square for df = cells - 1 (tables): df 18 -> 42.31, 19 -> 43.82, 20 -> 45.31.
    let crit = match cells - 1 {
        18 => 42.31,
        19 => 43.82,
        20 => 45.31,
        df => panic!("unexpected df {df}"),
    };
    assert!(chi2 < crit, "chi2 = {chi2} over {cells} cells, counts {counts:?}");
}
