//! Validation before mutation: random valid and invalid evidence sequences against `CpuPool`.
//!
//! Every `update` either applies exactly the spec's update (§3–§4 of BOTS-ALGORITHM.md, recomputed
//! here by a naive f64 reference written from the spec, not from the library) or returns an error
//! with the state bit-identical to before. Every `select(k)` with an invalid k is an error and
//! changes nothing; a valid one returns k distinct ids in range and changes nothing either.

use bots::{Backend, Config, CpuPool, Evidence, Features, Outcomes, PoolState};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The reference, straight from the spec.

/// Spec §2: is this batch acceptable? (independent of `bots::evidence`)
fn ref_valid(ev: &Evidence, n: usize, m: u32) -> bool {
    let len = ev.tasks.len();
    if len == 0 {
        return false;
    }
    let mut seen = std::collections::HashSet::new();
    for &t in &ev.tasks {
        if t as usize >= n || !seen.insert(t) {
            return false;
        }
    }
    match &ev.outcomes {
        Outcomes::PassRates(r) => r.len() == len && r.iter().all(|r| (0.0..=1.0).contains(r)),
        Outcomes::Counts { successes, failures } => {
            successes.len() == len
                && failures.len() == len
                && successes.iter().zip(failures).all(|(&s, &f)| {
                    let (s, f) = (s as f64, f as f64);
                    s.is_finite() && f.is_finite() && s >= 0.0 && f >= 0.0 && s + f > 0.0 && s + f <= m as f64
                })
        }
    }
}

/// The expected state after one update, with a per-value absolute tolerance.
struct Expected {
    alpha: Vec<f64>,
    beta: Vec<f64>,
    tol: Vec<f64>,
    mu: Option<(f64, f64)>,
    rho: f64,
}

const U: f64 = 1.0 / (1u64 << 24) as f64; // f32 unit roundoff

/// §3 then §4 in f64. `force_halve` picks the adaptive-rho branch when the test is too close to its
/// threshold to call (see `update_matches_reference`). Pass rates are the f32 values the trainer
/// reports; r = s / n is rounded to f32 as the library's input type is f32.
fn reference(st: &PoolState, cfg: &Config, ev: &Evidence, force_halve: Option<bool>) -> (Expected, Option<f64>, f64) {
    let n = st.len();
    let m = cfg.m as f64;
    // rows: (task, s_bar, f_bar, n_k, r)
    let rows: Vec<(usize, f64, f64, f64, f64)> = match &ev.outcomes {
        Outcomes::PassRates(r) => ev
            .tasks
            .iter()
            .zip(r)
            .map(|(&t, &r)| (t as usize, m * r as f64, m * (1.0 - r as f64), m, r as f64))
            .collect(),
        Outcomes::Counts { successes, failures } => ev
            .tasks
            .iter()
            .zip(successes.iter().zip(failures))
            .map(|(&t, (&s, &f))| {
                let (s64, f64_) = (s as f64, f as f64);
                (t as usize, s64, f64_, s64 + f64_, (s / (s + f)) as f64)
            })
            .collect(),
    };
    let g = st.globals;
    let mut rho = g.rho as f64;
    let mut p = vec![0.0f64; n];
    let mut dp = vec![0.0f64; n];
    let mut mu_out = None;
    let mut miss_out = None;
    let mut miss_tol = 0.0;
    if let Some(f) = &st.features {
        let fw = |k: usize| f.get(k).0 as f64;
        let fs = |k: usize| f.get(k).1 as f64;
        let b = rows.len() as f64;
        let mr = rows.iter().map(|r| r.4).sum::<f64>() / b;
        let mw = rows.iter().map(|r| fw(r.0)).sum::<f64>() / b;
        let ms = rows.iter().map(|r| fs(r.0)).sum::<f64>() / b;
        let d = ms - mw + 1e-6;
        let mu_est = (mr - mw) / d;
        let (mu, prev_term) = match g.mu {
            None => (mu_est, 0.0),
            Some(prev) => (
                cfg.gamma as f64 * prev as f64 + (1.0 - cfg.gamma as f64) * mu_est,
                (cfg.gamma as f64 * prev as f64).abs(),
            ),
        };
        // Error bound of the library's f32 arithmetic on mu: the cast of mu_est, the two products
        // and the sum (each <= u relative), with a factor 4 of slack over the 1 + 1 + 1 + 1 terms;
        // plus the f64 reduction (a few ulps of values <= 1, divided by d).
        let dmu = 4.0 * U * (prev_term + mu_est.abs() + mu.abs()) + 1e-15 / d.abs();
        mu_out = Some((mu, dmu));
        for k in 0..n {
            p[k] = (fw(k) + mu * (fs(k) - fw(k))).clamp(0.0, 1.0);
            // p = fw + mu·(fs - fw) in f32: the mu error times |fs - fw|, plus two roundings of
            // values of size <= 2 where unclipped.
            dp[k] = (fs(k) - fw(k)).abs() * dmu + 4.0 * U;
        }
        let miss = rows.iter().map(|r| (p[r.0] - r.4).abs()).sum::<f64>() / b;
        miss_tol = rows.iter().map(|r| dp[r.0]).fold(0.0, f64::max);
        miss_out = Some(miss);
        let halve = force_halve.unwrap_or(miss >= 0.25);
        if cfg.adaptive_rho && halve {
            rho /= 2.0;
        }
        for r in &rows {
            p[r.0] = r.4;
            dp[r.0] = 0.0;
        }
    } else {
        assert_eq!(rho, 0.0, "a pool without features has rho = 0");
    }
    let lambda = cfg.lambda as f64;
    let mut sb = vec![0.0; n];
    let mut fb = vec![0.0; n];
    let mut nk = vec![m; n];
    for r in &rows {
        sb[r.0] = r.1;
        fb[r.0] = r.2;
        nk[r.0] = r.3;
    }
    let mut e = Expected { alpha: vec![0.0; n], beta: vec![0.0; n], tol: vec![0.0; n], mu: mu_out, rho };
    for k in 0..n {
        let (a0, b0) = st.prior.get(k);
        let (a, b) = (st.alpha[k] as f64, st.beta[k] as f64);
        e.alpha[k] = (1.0 - lambda) * a + lambda * a0 as f64 + (1.0 - rho) * sb[k] + rho * nk[k] * p[k];
        e.beta[k] = (1.0 - lambda) * b + lambda * b0 as f64 + (1.0 - rho) * fb[k] + rho * nk[k] * (1.0 - p[k]);
        e.tol[k] = rho * nk[k] * dp[k];
    }
    (e, miss_out, miss_tol)
}

fn matches(after: &PoolState, e: &Expected) -> std::result::Result<(), String> {
    for k in 0..after.len() {
        for (name, got, want) in [("alpha", after.alpha[k], e.alpha[k]), ("beta", after.beta[k], e.beta[k])] {
            let tol = 1e-5 * want.abs() + e.tol[k];
            let diff = (got as f64 - want).abs();
            if diff.is_nan() || diff > tol {
                return Err(format!("{name}[{k}] = {got}, reference {want} (tolerance {tol})"));
            }
        }
    }
    if after.globals.rho as f64 != e.rho {
        return Err(format!("rho = {}, reference {}", after.globals.rho, e.rho));
    }
    match (after.globals.mu, e.mu) {
        (None, None) => {}
        (Some(got), Some((want, dmu))) => {
            let diff = (got as f64 - want).abs();
            if diff.is_nan() || diff > 1e-5 * want.abs() + dmu {
                return Err(format!("mu = {got}, reference {want} (tolerance {dmu})"));
            }
        }
        (got, want) => return Err(format!("mu = {got:?}, reference {want:?}")),
    }
    Ok(())
}

fn bits(s: &PoolState) -> (Vec<u32>, Vec<u32>, Option<u32>, u32, u64) {
    (
        s.alpha.iter().map(|v| v.to_bits()).collect(),
        s.beta.iter().map(|v| v.to_bits()).collect(),
        s.globals.mu.map(f32::to_bits),
        s.globals.rho.to_bits(),
        s.globals.step,
    )
}

// ---------------------------------------------------------------------------------------------
// Generators

#[derive(Clone, Debug)]
struct Setup {
    cfg: Config,
    n: usize,
    weak: Option<Vec<f32>>,
    strong: Vec<f32>,
}

fn unit_f32() -> impl Strategy<Value = f32> {
    prop_oneof![(0u32..=16).prop_map(|i| i as f32 / 16.0), 0.0f32..=1.0f32]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1usize..40,
        prop_oneof![Just(0.0f32), Just(0.1), Just(0.5), Just(1.0), 0.0f32..=1.0],
        prop_oneof![Just(0.1f32), Just(0.0), Just(1.0), 0.0f32..=1.0],
        prop_oneof![Just(0.9f32), 0.0f32..=1.0],
        any::<bool>(),
        1u32..33,
        any::<bool>(),
        proptest::option::of(0.0f32..10.0),
        any::<u64>(),
    )
        .prop_flat_map(|(n, rho, lambda, gamma, adaptive, m, with_features, strength, seed)| {
            let with_features = with_features || rho > 0.0 || strength.is_some();
            let cfg = Config {
                batch: 1,
                m,
                lambda,
                rho,
                gamma,
                adaptive_rho: adaptive,
                seed,
                prior_strength: strength,
                ..Default::default()
            };
            (
                Just(cfg),
                Just(n),
                proptest::collection::vec(unit_f32(), n),
                proptest::collection::vec(unit_f32(), n),
                Just(with_features),
            )
                .prop_map(|(cfg, n, w, s, wf)| Setup { cfg, n, weak: wf.then_some(w), strong: s })
        })
}

/// A value for a pass rate or count: mostly valid, sometimes not.
fn rate() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => unit_f32(),
        1 => Just(f32::NAN),
        1 => Just(-0.0f32),
        1 => prop_oneof![Just(-1e-7f32), Just(1.0000001), Just(1.5), Just(-3.0), Just(f32::INFINITY), Just(f32::NEG_INFINITY)],
    ]
}

fn count() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => (0u32..=20).prop_map(|c| c as f32),
        1 => (0u32..=40).prop_map(|c| c as f32 * 0.5),
        1 => prop_oneof![Just(f32::NAN), Just(-1.0f32), Just(-0.0), Just(1e30), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(1e-30)],
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Select(usize),
    Update(Evidence),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    let len = 0..=(n.min(8) + 1);
    let task = prop_oneof![8 => 0..n as u32, 1 => Just(n as u32), 1 => Just(u32::MAX), 1 => any::<u32>()];
    let tasks = proptest::collection::vec(task, len);
    let distinct = proptest::sample::subsequence((0..n as u32).collect::<Vec<_>>(), 1..=n.min(8)).prop_shuffle();
    let tasks = prop_oneof![2 => tasks, 3 => distinct];
    // Length skew: 0 = matching, else one more or one fewer outcome.
    let skew = prop_oneof![8 => Just(0i32), 1 => Just(1), 1 => Just(-1)];
    prop_oneof![
        1 => (0..=n + 2).prop_map(Op::Select),
        4 => (tasks, skew.clone(), skew, any::<bool>(), proptest::collection::vec((rate(), count(), count()), 10)).prop_map(
            |(tasks, sk1, sk2, counts, vals)| {
                let l1 = (tasks.len() as i32 + sk1).max(0) as usize;
                let l2 = (tasks.len() as i32 + sk2).max(0) as usize;
                if counts {
                    let s = vals.iter().cycle().take(l1).map(|v| v.1).collect();
                    let f = vals.iter().cycle().take(l2).map(|v| v.2).collect();
                    Op::Update(Evidence::counts(tasks, s, f))
                } else {
                    Op::Update(Evidence::pass_rates(tasks, vals.iter().cycle().take(l1).map(|v| v.0).collect()))
                }
            }
        ),
    ]
}

fn scenario() -> impl Strategy<Value = (Setup, Vec<Op>)> {
    setup().prop_flat_map(|s| {
        let n = s.n;
        (Just(s), proptest::collection::vec(op(n), 1..12))
    })
}

// ---------------------------------------------------------------------------------------------

fn check_scenario(setup: &Setup, ops: &[Op]) -> std::result::Result<(usize, usize), TestCaseError> {
    let feats = setup.weak.as_ref().map(|w| {
        // weak <= strong is not required by the spec; keep arbitrary pairs.
        Features::from_f32(w, &setup.strong).unwrap()
    });
    let mut pool = CpuPool::new(setup.cfg.clone(), setup.n, feats).unwrap();
    let (mut applied, mut refused) = (0, 0);
    for op in ops {
        let before = pool.to_host().unwrap();
        let shadow = pool.clone();
        match op {
            Op::Select(k) => {
                let r = pool.select(*k);
                let after = pool.to_host().unwrap();
                prop_assert_eq!(bits(&after), bits(&before), "select({}) changed the state", k);
                if *k == 0 || *k > setup.n {
                    prop_assert!(matches!(r, Err(bots::BotsError::InvalidK { .. })), "select({}) = {:?}", k, r);
                    refused += 1;
                } else {
                    let got = r.map_err(|e| TestCaseError::fail(format!("select({k}): {e}")))?;
                    prop_assert_eq!(got.len(), *k);
                    let mut d = got.clone();
                    d.sort_unstable();
                    d.dedup();
                    prop_assert_eq!(d.len(), *k, "duplicate ids");
                    prop_assert!(got.iter().all(|&t| (t as usize) < setup.n));
                }
            }
            Op::Update(ev) => {
                let valid = ref_valid(ev, setup.n, setup.cfg.m);
                let r = pool.update(ev);
                let after = pool.to_host().unwrap();
                if valid {
                    prop_assert!(r.is_ok(), "valid evidence {:?} refused: {:?}", ev, r);
                    prop_assert_eq!(after.globals.step, before.globals.step + 1);
                    let (e, miss, miss_tol) = reference(&before, &setup.cfg, ev, None);
                    let mut res = matches(&after, &e);
                    if res.is_err() && setup.cfg.adaptive_rho {
                        // Only acceptable where the adaptive-rho test sits within its rounding
                        // error of the threshold; then the other branch must match.
                        if let Some(miss) = miss {
                            if (miss - 0.25).abs() <= miss_tol + 1e-12 {
                                let (e2, _, _) = reference(&before, &setup.cfg, ev, Some(miss < 0.25));
                                res = matches(&after, &e2);
                            }
                        }
                    }
                    if let Err(msg) = res {
                        return Err(TestCaseError::fail(format!("{msg}\nevidence {ev:?}\nconfig {:?}", setup.cfg)));
                    }
                    // The report agrees with the state.
                    let rep = r.unwrap();
                    prop_assert_eq!(rep.step, after.globals.step);
                    prop_assert_eq!(rep.rho.to_bits(), after.globals.rho.to_bits());
                    applied += 1;
                } else {
                    prop_assert!(r.is_err(), "invalid evidence {:?} accepted", ev);
                    prop_assert_eq!(bits(&after), bits(&before), "refused update changed the state");
                    // Not only the host view: the next selection is the one the untouched pool makes.
                    let mut a = pool.clone();
                    let mut b = shadow;
                    prop_assert_eq!(a.select(1).unwrap(), b.select(1).unwrap());
                    refused += 1;
                }
            }
        }
    }
    Ok((applied, refused))
}

fn cases() -> u32 {
    std::env::var("BOTS_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

proptest! {
    // BOTS_PROPTEST_CASES=100000 for a long run.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_call_applies_the_spec_or_changes_nothing((setup, ops) in scenario()) {
        check_scenario(&setup, &ops)?;
    }
}

/// The generators reach both outcomes often (a property test that never refuses, or never applies,
/// would prove little).
#[test]
fn generators_cover_valid_and_invalid_batches() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut applied, mut refused) = (0, 0);
    for _ in 0..300 {
        let (setup, ops) = scenario().new_tree(&mut runner).unwrap().current();
        let (a, r) = check_scenario(&setup, &ops).unwrap();
        applied += a;
        refused += r;
    }
    assert!(applied > 200 && refused > 200, "applied {applied}, refused {refused}");
}

#[test]
fn each_kind_of_invalid_batch_is_refused_without_change() {
    let cfg = Config { rho: 0.3, adaptive_rho: true, m: 8, ..Default::default() };
    let n = 10;
    let f = Features::from_f32(&[0.2; 10], &[0.7; 10]).unwrap();
    let mut pool = CpuPool::new(cfg, n, Some(f)).unwrap();
    pool.update(&Evidence::pass_rates(vec![1, 2], vec![0.5, 0.25])).unwrap();
    let before = bits(&pool.to_host().unwrap());
    use bots::BotsError as E;
    type Case = (Evidence, fn(&E) -> bool);
    let cases: Vec<Case> = vec![
        (Evidence::pass_rates(vec![], vec![]), |e| matches!(e, E::Empty(_))),
        (Evidence::pass_rates(vec![10], vec![0.5]), |e| matches!(e, E::TaskOutOfRange { .. })),
        (Evidence::pass_rates(vec![u32::MAX], vec![0.5]), |e| matches!(e, E::TaskOutOfRange { .. })),
        (Evidence::pass_rates(vec![3, 4, 3], vec![0.5; 3]), |e| matches!(e, E::DuplicateTask { task: 3 })),
        (Evidence::pass_rates(vec![3], vec![f32::NAN]), |e| matches!(e, E::InvalidPassRate { .. })),
        (Evidence::pass_rates(vec![3], vec![1.01]), |e| matches!(e, E::InvalidPassRate { .. })),
        (Evidence::pass_rates(vec![3], vec![-0.01]), |e| matches!(e, E::InvalidPassRate { .. })),
        (Evidence::pass_rates(vec![3, 4], vec![0.5]), |e| matches!(e, E::LengthMismatch { .. })),
        (Evidence::pass_rates(vec![3], vec![0.5, 0.5]), |e| matches!(e, E::LengthMismatch { .. })),
        (Evidence::counts(vec![3], vec![-1.0], vec![2.0]), |e| matches!(e, E::InvalidCounts { .. })),
        (Evidence::counts(vec![3], vec![f32::NAN], vec![2.0]), |e| matches!(e, E::InvalidCounts { .. })),
        (Evidence::counts(vec![3], vec![1.0], vec![f32::INFINITY]), |e| matches!(e, E::InvalidCounts { .. })),
        (Evidence::counts(vec![3], vec![5.0], vec![4.0]), |e| matches!(e, E::InvalidCounts { .. })),
        (Evidence::counts(vec![3], vec![0.0], vec![0.0]), |e| matches!(e, E::InvalidCounts { .. })),
        (Evidence::counts(vec![3, 4], vec![1.0, 1.0], vec![1.0]), |e| matches!(e, E::LengthMismatch { .. })),
        // A bad row after good ones: nothing of the good rows may be applied.
        (Evidence::pass_rates(vec![5, 6, 7], vec![0.5, 0.5, 2.0]), |e| matches!(e, E::InvalidPassRate { task: 7, .. })),
        // Several faults, one reported by `validate_batch`'s rule (the device's too): the first row with a
        // range or outcome error, else the smallest repeated id.
        (Evidence::pass_rates(vec![6, 2, 6, 2], vec![0.5; 4]), |e| matches!(e, E::DuplicateTask { task: 2 })),
        (Evidence::pass_rates(vec![6, 6, 9, 10], vec![0.5; 4]), |e| matches!(e, E::TaskOutOfRange { position: 3, .. })),
        (Evidence::pass_rates(vec![6, 6, 9], vec![0.5, 0.5, 2.0]), |e| matches!(e, E::InvalidPassRate { task: 9, .. })),
        (Evidence::pass_rates(vec![6, 6], vec![0.5, f32::NAN]), |e| matches!(e, E::InvalidPassRate { task: 6, .. })),
        (Evidence::counts(vec![4, 10, 3], vec![9.0, 1.0, 1.0], vec![0.0; 3]), |e| {
            matches!(e, E::InvalidCounts { task: 4, problem: bots::CountsProblem::TooMany { m: 8 }, .. })
        }),
    ];
    for (ev, is_right_error) in cases {
        let err = pool.update(&ev).unwrap_err();
        assert!(is_right_error(&err), "{ev:?}: {err}");
        assert_eq!(bits(&pool.to_host().unwrap()), before, "{ev:?} changed the state");
    }
    for k in [0, n + 1, usize::MAX] {
        assert!(matches!(pool.select(k), Err(E::InvalidK { .. })), "k = {k}");
        assert_eq!(bits(&pool.to_host().unwrap()), before);
    }
}
