//! The update of BOTS-ALGORITHM.md §3–§4 on hand-worked numbers, through the public API.
//!
//! Pool of three tasks with features (f_w, f_s): task 0 (0.25, 0.75), task 1 (0, 0.5),
//! task 2 (0.5, 1). Unless a test says otherwise: lambda = 0.1, rho = 0.1, m = 16, gamma = 0.9,
//! constant prior Beta(1, 1).

use bots::{Backend, Config, CpuPool, Evidence, Features};

fn pool(config: Config) -> CpuPool {
    let f = Features::from_f32(&[0.25, 0.0, 0.5], &[0.75, 0.5, 1.0]).unwrap();
    CpuPool::new(config, 3, Some(f)).unwrap()
}

fn assert_state(pool: &CpuPool, alpha: [f64; 3], beta: [f64; 3]) {
    let s = pool.to_host().unwrap();
    for k in 0..3 {
        for (what, got, want) in [("alpha", s.alpha[k], alpha[k]), ("beta", s.beta[k], beta[k])] {
            let rel = ((got as f64) - want).abs() / want.abs();
            assert!(rel < 2e-6, "task {k} {what}: got {got}, want {want}");
        }
    }
}

/// Step 1: task 0 observed at r = 0.5.
///   mu_est = (0.5 - 0.25) / (0.75 - 0.25 + 1e-6) = 0.499999; first update, so mu = mu_est.
///   task 0: alpha = 0.9·1 + 0.1·1 + 0.9·(16·0.5) + 0.1·16·0.5 = 1 + 7.2 + 0.8 = 9; beta likewise 9.
///   task 1: p~ = 0 + mu·0.5 = 0.2499995: alpha = 1 + 1.6·0.2499995 = 1.3999992,
///           beta = 1 + 1.6·0.7500005 = 2.2000008.
///   task 2: p~ = 0.5 + mu·0.5 = 0.7499995: alpha = 2.1999992, beta = 1.4000008.
/// Step 2: task 1 observed as counts s = 3, f = 5 (n = 8 < m): r = 0.375.
///   mu_est = 0.375 / (0.5 + 1e-6) = 0.7499985; mu = 0.9·0.499999 + 0.1·0.7499985 = 0.52499895.
///   task 1: alpha = 0.9·1.3999992 + 0.1 + 0.9·3 + 0.1·8·0.375 = 4.35999928;
///           beta  = 0.9·2.2000008 + 0.1 + 0.9·5 + 0.1·8·0.625 = 7.08000072.
///   task 0: p~ = 0.25 + mu·0.5 = 0.512499475: alpha = 8.1 + 0.1 + 1.6·0.512499475 = 9.01999916,
///           beta = 8.2 + 1.6·0.487500525 = 8.98000084.
///   task 2: p~ = 0.762499475: alpha = 0.9·2.1999992 + 0.1 + 1.6·0.762499475 = 3.29999844,
///           beta = 0.9·1.4000008 + 0.1 + 1.6·0.237500525 = 1.74000156.
#[test]
fn two_steps_with_pass_rates_then_counts() {
    let mut p = pool(Config::default());
    let r = p.update(&Evidence::pass_rates(vec![0], vec![0.5])).unwrap();
    assert!((r.mu.unwrap() as f64 - 0.499999).abs() < 1e-6);
    assert_state(&p, [9.0, 1.3999992, 2.1999992], [9.0, 2.2000008, 1.4000008]);
    let r = p.update(&Evidence::counts(vec![1], vec![3.0], vec![5.0])).unwrap();
    assert!((r.mu.unwrap() as f64 - 0.52499895).abs() < 1e-6);
    assert_eq!(r.step, 2);
    assert_state(&p, [9.01999916, 4.35999928, 3.29999844], [8.98000084, 7.08000072, 1.74000156]);
}

/// rho = 0 (explicit only, MoPPS-like): step 1 task 0 at r = 0.5 -> (9, 9), others stay at the
/// prior (0.9·1 + 0.1·1 = 1). Step 2 task 1 at r = 1: task 1 = (1 + 16, 1 + 0) = (17, 1); task 0
/// forgets: 0.9·9 + 0.1 = 8.2 for both.
#[test]
fn rho_zero_is_explicit_only() {
    let mut p = pool(Config { rho: 0.0, ..Config::default() });
    p.update(&Evidence::pass_rates(vec![0], vec![0.5])).unwrap();
    assert_state(&p, [9.0, 1.0, 1.0], [9.0, 1.0, 1.0]);
    p.update(&Evidence::pass_rates(vec![1], vec![1.0])).unwrap();
    assert_state(&p, [8.2, 17.0, 1.0], [8.2, 1.0, 1.0]);
}

/// rho = 1 (implicit only, DOTS-like): the observed task gets 1·16·r = 8 (its observation replaces
/// the prediction), task 1 gets 16·p~ with p~ = 0.2499995: alpha = 1 + 3.999992 = 4.999992,
/// beta = 1 + 16·0.7500005 = 13.000008; task 2: p~ = 0.7499995: alpha = 12.999992, beta = 5.000008.
#[test]
fn rho_one_is_implicit_only() {
    let mut p = pool(Config { rho: 1.0, ..Config::default() });
    p.update(&Evidence::pass_rates(vec![0], vec![0.5])).unwrap();
    assert_state(&p, [9.0, 4.999992, 12.999992], [9.0, 13.000008, 5.000008]);
}

/// Batch {0: r = 1, 1: r = 0}: mean r = 0.5, mean f_w = 0.125, mean f_s = 0.625,
/// mu = 0.375 / 0.500001 = 0.7499985. Predictions before the overwrite: p~0 = 0.62499925,
/// p~1 = 0.37499925, so the miss is (0.37500075 + 0.37499925)/2 = 0.375 >= 0.25 and adaptive rho
/// halves rho to 0.05, already for this update:
///   task 0: alpha = 1 + 0.95·16 + 0.05·16·1 = 17, beta = 1;
///   task 1: alpha = 1, beta = 17;
///   task 2: p~ = 0.87499925: alpha = 1 + 0.8·0.87499925 = 1.6999994, beta = 1 + 0.8·0.12500075 = 1.1000006.
/// Without adaptive rho, task 2 gets alpha = 1 + 1.6·0.87499925 = 2.3999988 and rho stays 0.1.
#[test]
fn adaptive_rho_halves_and_applies_at_once() {
    let ev = Evidence::pass_rates(vec![0, 1], vec![1.0, 0.0]);
    let mut p = pool(Config { adaptive_rho: true, ..Config::default() });
    let r = p.update(&ev).unwrap();
    assert_eq!(r.rho, 0.05);
    assert!((r.miss.unwrap() - 0.375).abs() < 1e-6);
    assert_state(&p, [17.0, 1.0, 1.6999994], [1.0, 17.0, 1.1000006]);
    // It compounds: the same batch again halves it once more.
    assert_eq!(p.update(&ev).unwrap().rho, 0.025);

    let mut p = pool(Config::default());
    assert_eq!(p.update(&ev).unwrap().rho, 0.1);
    let s = p.to_host().unwrap();
    assert!((s.alpha[2] as f64 - 2.3999988).abs() < 1e-5);
}

/// Per-task priors from the strong feature with c = 4: task 0 (f_s = 0.75) starts at and forgets
/// toward (1 + 3, 1 + 1) = (4, 2). With rho = 0 and no evidence for task 0 it stays there; after one
/// explicit step (r = 0) on task 0: alpha = 0.9·4 + 0.1·4 = 4, beta = 0.9·2 + 0.1·2 + 16 = 18.
#[test]
fn per_task_priors() {
    let mut p = pool(Config { rho: 0.0, prior_strength: Some(4.0), ..Config::default() });
    let s = p.to_host().unwrap();
    assert_eq!((s.alpha[0], s.beta[0]), (4.0, 2.0));
    assert_eq!((s.alpha[1], s.beta[1]), (3.0, 3.0));
    p.update(&Evidence::pass_rates(vec![1], vec![1.0])).unwrap();
    assert_state(&p, [4.0, 0.9 * 3.0 + 0.3 + 16.0, 5.0], [2.0, 3.0, 1.0]);
    p.update(&Evidence::pass_rates(vec![0], vec![0.0])).unwrap();
    let s = p.to_host().unwrap();
    assert!((s.alpha[0] - 4.0).abs() < 1e-6 && (s.beta[0] - 18.0).abs() < 1e-5, "{:?}", (s.alpha[0], s.beta[0]));
}

/// A batch that fails validation changes nothing, whatever position the bad row is in.
#[test]
fn bad_batches_leave_the_state_unchanged() {
    let mut p = pool(Config::default());
    p.update(&Evidence::pass_rates(vec![0], vec![0.5])).unwrap();
    let before = p.to_host().unwrap();
    let bad = [
        Evidence::pass_rates(vec![1, 3], vec![0.5, 0.5]),
        Evidence::pass_rates(vec![1, 1], vec![0.5, 0.5]),
        Evidence::pass_rates(vec![1, 2], vec![0.5, 1.5]),
        Evidence::pass_rates(vec![1, 2], vec![0.5, f32::NAN]),
        Evidence::pass_rates(vec![1, 2], vec![0.5]),
        Evidence::pass_rates(vec![], vec![]),
        Evidence::counts(vec![1, 2], vec![1.0, -1.0], vec![1.0, 1.0]),
        Evidence::counts(vec![1, 2], vec![1.0, 10.0], vec![1.0, 7.0]),
        Evidence::counts(vec![1], vec![0.0], vec![0.0]),
        Evidence::counts(vec![1], vec![f32::NAN], vec![1.0]),
    ];
    for ev in &bad {
        let err = p.update(ev).unwrap_err();
        assert!(!err.to_string().is_empty());
        assert_eq!(p.to_host().unwrap(), before, "{ev:?} changed the state");
        assert_eq!(p.step(), 1);
    }
    for k in [0, 4] {
        assert!(p.select(k).is_err());
    }
}
