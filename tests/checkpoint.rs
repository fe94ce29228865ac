//! Checkpoint format, resume exactness and crash safety (GitHub issue 4, CPU side).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bots::checkpoint::{self, HEADER_LEN};
use bots::{Backend, BackendKind, BotsError, Config, CpuPool, Evidence, FeatureForm, Features, PoolState};
use common::{assert_bit_identical, reseal, reseal_file_only};

// ---------------------------------------------------------------------------------------------
// Helpers

fn features(n: usize) -> Features {
    // Deterministic pseudo-random pass rates in [0, 1], weak <= strong.
    let h = |k: usize, s: u64| {
        ((k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(s) >> 40) as f32 / (1u64 << 24) as f32
    };
    let weak: Vec<f32> = (0..n).map(|k| 0.6 * h(k, 1)).collect();
    let strong: Vec<f32> = (0..n).map(|k| (weak[k] + 0.4 * h(k, 7)).min(1.0)).collect();
    let f = Features::from_f32(&weak, &strong).unwrap();
    assert_eq!(f.form(), FeatureForm::F32, "pseudo-random pass rates are not f16 values");
    f
}

/// [`features`] rounded to sixteenths: exact in f16, so stored in the 2-byte form.
fn features_f16(n: usize) -> Features {
    let f = features(n);
    let (w, s): (Vec<f32>, Vec<f32>) =
        (0..n).map(|k| f.get(k)).map(|(w, s)| ((w * 16.0).round() / 16.0, (s * 16.0).round() / 16.0)).unzip();
    let f = Features::from_f32(&w, &s).unwrap();
    assert_eq!(f.form(), FeatureForm::F16);
    f
}

/// The trainer's observation for `task` at `step`: a deterministic pass rate on the m = 16 grid
/// (or counts with a varying rollout number when `counts`).
fn evidence(tasks: Vec<u32>, step: u64, m: u32, counts: bool) -> Evidence {
    let r = |t: u32| (((t as u64 * 2_654_435_761 + step * 97) % (m as u64 + 1)) as f32) / m as f32;
    if counts {
        let n = |t: u32| 1 + ((t as u64 + step) % m as u64) as u32; // 1..=m rollouts
        let s: Vec<f32> = tasks.iter().map(|&t| (r(t) * n(t) as f32).round()).collect();
        let f: Vec<f32> = tasks.iter().zip(&s).map(|(&t, &s)| n(t) as f32 - s).collect();
        Evidence::counts(tasks, s, f)
    } else {
        let rates = tasks.iter().map(|&t| r(t)).collect();
        Evidence::pass_rates(tasks, rates)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut {
    /// After the update of step t and before the next select: an update is pending.
    AfterUpdate,
    /// After the select of step t and before its update: nothing pending.
    AfterSelect,
}

/// Runs `steps` select/update steps on backend `kind`; with `cut = Some((t, c))` the pool is
/// checkpointed at step t, dropped, and a fresh pool restored from the file continues. Returns every
/// step's selection and the final state.
#[allow(clippy::too_many_arguments)]
fn run_on(
    kind: BackendKind,
    cfg: &Config,
    n: usize,
    feats: Option<Features>,
    steps: u64,
    counts: bool,
    cut: Option<(u64, Cut)>,
    dir: &Path,
) -> (Vec<Vec<u32>>, PoolState) {
    let path = dir.join("resume.ckpt");
    let mut pool: Box<dyn Backend> = bots::open(kind, cfg.clone(), n, feats.clone()).unwrap();
    let mut selections = Vec::new();
    let reload = |pool: &mut Box<dyn Backend>, alternate: bool| {
        pool.save_checkpoint(&path).unwrap();
        if alternate {
            // A fresh pool built from scratch, then restored through the Backend trait.
            let mut fresh: Box<dyn Backend> = bots::open(kind, cfg.clone(), n, feats.clone()).unwrap();
            let saved = fresh.restore_checkpoint(&path).unwrap();
            assert_eq!(&saved, cfg);
            *pool = fresh;
        } else {
            *pool = bots::open_checkpoint(kind, &path).unwrap();
        }
    };
    for t in 0..steps {
        let tasks = pool.select_batch().unwrap();
        if cut == Some((t, Cut::AfterSelect)) {
            reload(&mut pool, false);
            // Selection does not advance the step: the restored pool picks the same batch.
            assert_eq!(pool.select_batch().unwrap(), tasks, "re-select after restore at step {t}");
        }
        selections.push(tasks.clone());
        pool.update(&evidence(tasks, t, cfg.m, counts)).unwrap();
        if cut == Some((t, Cut::AfterUpdate)) {
            reload(&mut pool, true);
        }
    }
    (selections, pool.to_host().unwrap())
}

fn check_resume(cfg: Config, n: usize, feats: Option<Features>, counts: bool) -> PoolState {
    check_resume_on(BackendKind::Cpu, cfg, n, feats, counts)
}

fn check_resume_on(kind: BackendKind, cfg: Config, n: usize, feats: Option<Features>, counts: bool) -> PoolState {
    let dir = tempfile::tempdir().unwrap();
    let (want_sel, want_state) = run_on(kind, &cfg, n, feats.clone(), 100, counts, None, dir.path());
    for cut in [
        (37, Cut::AfterUpdate),
        (37, Cut::AfterSelect),
        (0, Cut::AfterSelect),
        (0, Cut::AfterUpdate),
        (99, Cut::AfterUpdate),
    ] {
        let (sel, state) = run_on(kind, &cfg, n, feats.clone(), 100, counts, Some(cut), dir.path());
        for (t, (a, b)) in want_sel.iter().zip(&sel).enumerate() {
            assert_eq!(a, b, "{cut:?}: selection at step {t}");
        }
        assert_bit_identical(&want_state, &state, &format!("{cut:?}"));
    }
    want_state
}

// ---------------------------------------------------------------------------------------------
// Resume exactness

/// The same on the GPU: a resumed CUDA pool selects exactly what an uninterrupted one does, and a
/// state moves CPU -> checkpoint -> GPU -> checkpoint -> CPU unchanged, bit for bit.
#[test]
fn gpu_resume_is_exact_and_checkpoints_cross_backends() {
    if !common::gpu_available() {
        return;
    }
    let cuda = BackendKind::Cuda { ordinal: 0 };
    let cfg = Config { rho: 0.4, tau: 0.3, adaptive_rho: true, batch: 16, ..Config::default() };
    check_resume_on(cuda, cfg.clone(), 5000, Some(features(5000)), false);

    let dir = tempfile::tempdir().unwrap();
    let (_, cpu_state) = run_on(BackendKind::Cpu, &cfg, 5000, Some(features(5000)), 20, true, None, dir.path());
    let cpu = CpuPool::from_state(cfg.clone(), cpu_state.clone()).unwrap();
    let a = dir.path().join("cpu.ckpt");
    let b = dir.path().join("gpu.ckpt");
    cpu.save_checkpoint(&a).unwrap();
    let gpu = bots::open_checkpoint(cuda, &a).unwrap();
    assert_bit_identical(&cpu_state, &gpu.to_host().unwrap(), "CPU checkpoint read back from the GPU");
    gpu.save_checkpoint(&b).unwrap();
    let back = bots::open_checkpoint(BackendKind::Cpu, &b).unwrap();
    assert_bit_identical(&cpu_state, &back.to_host().unwrap(), "GPU checkpoint restored on the CPU");
}

#[test]
fn resume_is_exact_reference_config() {
    // bots.yaml without features needs rho = 0 (MoPPS-style).
    let cfg = Config { rho: 0.0, ..Default::default() };
    let s = check_resume(cfg, 3000, None, false);
    assert_eq!(s.globals.step, 100);
}

#[test]
fn resume_is_exact_with_features_tau_adaptive_rho() {
    let cfg = Config { rho: 0.4, tau: 0.3, adaptive_rho: true, batch: 24, ..Default::default() };
    let s = check_resume(cfg, 4000, Some(features(4000)), false);
    assert!(s.globals.mu.is_some());
    // The evidence is unrelated to the features, so the interpolation misses and rho halves: the
    // checkpoint must carry the halved rho, not the config's.
    assert!(s.globals.rho < 0.4, "adaptive rho never fired (rho = {}); the test would not cover it", s.globals.rho);
}

#[test]
fn resume_is_exact_per_task_prior_counts_posterior_mean() {
    let cfg = Config { rho: 0.2, prior_strength: Some(4.0), do_sample: false, m: 8, ..Default::default() };
    let s = check_resume(cfg, 2500, Some(features_f16(2500)), true);
    assert!(matches!(s.prior, bots::Prior::PerTask { .. }));
}

// ---------------------------------------------------------------------------------------------
// Format: round trips and refusals

/// A 3-task state with f32 features (`form` F32) or f16 ones.
fn small_state_in(form: FeatureForm) -> (Config, PoolState) {
    let cfg = Config { rho: 0.3, prior_strength: Some(2.0), batch: 2, ..Default::default() };
    let f = match form {
        FeatureForm::F32 => features(3),
        FeatureForm::F16 => features_f16(3),
    };
    let mut pool = CpuPool::new(cfg.clone(), 3, Some(f)).unwrap();
    let t = pool.select_batch().unwrap();
    pool.update(&Evidence::pass_rates(t, vec![0.25, 0.75])).unwrap();
    (cfg, pool.to_host().unwrap())
}

fn small_state() -> (Config, PoolState) {
    small_state_in(FeatureForm::F32)
}

fn expect_ckpt_err(r: bots::Result<impl std::fmt::Debug>, path: &Path, what: &str) -> String {
    match r {
        Err(BotsError::Checkpoint { path: p, reason }) => {
            assert_eq!(p, path, "{what}: error names the file");
            assert!(!reason.is_empty());
            reason
        }
        other => panic!("{what}: expected a Checkpoint error, got {other:?}"),
    }
}

#[test]
fn round_trip_every_flag_combination() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.ckpt");
    let n = 1001; // odd: exercises the f16 padding
    let (f16, f32) = (Some(FeatureForm::F16), Some(FeatureForm::F32));
    for (rho, strength, form) in [
        (0.0, None, None),
        (0.0, None, f16),
        (0.0, None, f32),
        (0.2, Some(3.0), f16),
        (0.2, Some(3.0), f32),
        (1.0, None, f32),
    ] {
        let feats = form.is_some();
        let cfg = Config { rho, prior_strength: strength, seed: 0xDEAD_BEEF_1234, ..Default::default() };
        let f = form.map(|f| if f == FeatureForm::F16 { features_f16(n) } else { features(n) });
        let mut pool = CpuPool::new(cfg.clone(), n, f).unwrap();
        let before = pool.save_checkpoint(&path);
        before.unwrap();
        let (c0, s0) = checkpoint::load(&path).unwrap();
        assert!(s0.globals.mu.is_none(), "mu unset before the first update");
        assert_eq!(c0, cfg);
        for t in 0..3 {
            let tasks = pool.select_batch().unwrap();
            pool.update(&evidence(tasks, t, cfg.m, false)).unwrap();
        }
        pool.save_checkpoint(&path).unwrap();
        let (c, s) = checkpoint::load(&path).unwrap();
        assert_eq!(c, cfg);
        assert_bit_identical(&s, &pool.to_host().unwrap(), "round trip");
        assert_eq!(s.globals.mu.is_some(), feats);
        let h = checkpoint::read_header(&path).unwrap();
        assert_eq!((h.n, h.step, h.seed, h.version), (n as u64, 3, cfg.seed, checkpoint::VERSION));
        assert_eq!(h.features, form);
        assert_eq!(s.features.as_ref().map(Features::form), form, "the loaded state keeps the form");
        assert_eq!(h.constant_prior.is_none(), strength.is_some());
        assert_eq!(h.file_len, std::fs::metadata(&path).unwrap().len());
    }
}

#[test]
fn every_bit_flip_and_truncation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ckpt");
    let bad = dir.path().join("bad.ckpt");
    for form in [FeatureForm::F32, FeatureForm::F16] {
        let (cfg, state) = small_state_in(form);
        checkpoint::save(&good, &cfg, &state).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        assert!(bytes.len() > HEADER_LEN);
        let mut refused = 0;
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                std::fs::write(&bad, &b).unwrap();
                expect_ckpt_err(checkpoint::load(&bad), &bad, &format!("byte {i} ^ {mask:#x}"));
                refused += 1;
            }
        }
        for len in 0..bytes.len() {
            std::fs::write(&bad, &bytes[..len]).unwrap();
            expect_ckpt_err(checkpoint::load(&bad), &bad, &format!("truncated to {len}"));
            expect_ckpt_err(checkpoint::read_header(&bad), &bad, &format!("header of truncated {len}"));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        std::fs::write(&bad, &longer).unwrap();
        let reason = expect_ckpt_err(checkpoint::load(&bad), &bad, "trailing byte");
        assert!(reason.contains("trailing"), "{reason}");
        assert_eq!(refused, bytes.len() * 9);
        // The original is still fine.
        assert_eq!(checkpoint::load(&good).unwrap().1, state);
    }
}

#[test]
fn wrong_magic_version_flags_and_sizes_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ckpt");
    let bad = dir.path().join("bad.ckpt");
    let (cfg, state) = small_state();
    checkpoint::save(&good, &cfg, &state).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let case = |edit: &dyn Fn(&mut Vec<u8>), expect: &str| {
        let mut b = bytes.clone();
        edit(&mut b);
        std::fs::write(&bad, &b).unwrap();
        let reason = expect_ckpt_err(checkpoint::load(&bad), &bad, expect);
        assert!(reason.contains(expect), "expected `{expect}` in: {reason}");
        // The CLI-facing Display names the file too.
        let shown = checkpoint::load(&bad).unwrap_err().to_string();
        assert!(shown.contains("bad.ckpt"), "{shown}");
    };
    case(&|b| b[0..8].copy_from_slice(b"NOTACKPT"), "not a BOTS checkpoint");
    case(
        &|b| {
            b[8..12].copy_from_slice(&4u32.to_le_bytes());
            reseal(b)
        },
        "unsupported checkpoint version 4",
    );
    // f32 features are a version 2 feature: a version 1 header with FEATURES_F32 is refused.
    assert_ne!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()) & checkpoint::FLAG_FEATURES_F32, 0);
    case(
        &|b| {
            b[8..12].copy_from_slice(&1u32.to_le_bytes());
            reseal(b)
        },
        "unknown flag bits 0x8 in a version 1 header",
    );
    // FEATURES_F32 without FEATURES.
    case(
        &|b| {
            let f = u32::from_le_bytes(b[12..16].try_into().unwrap()) & !checkpoint::FLAG_FEATURES;
            b[12..16].copy_from_slice(&f.to_le_bytes());
            reseal(b)
        },
        "FEATURES_F32 without FEATURES",
    );
    case(
        &|b| {
            b[8..12].copy_from_slice(&0u32.to_le_bytes());
            reseal(b)
        },
        "unsupported checkpoint version 0",
    );
    case(
        &|b| {
            b[12..16].copy_from_slice(&0x100u32.to_le_bytes());
            reseal(b)
        },
        "unknown flag bits",
    );
    // An absurd N must be refused from the file length alone; allocating 2^32 * 20 bytes would abort.
    case(
        &|b| {
            b[16..24].copy_from_slice(&(u32::MAX as u64).to_le_bytes());
            reseal(b)
        },
        "implies",
    );
    case(
        &|b| {
            b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
            reseal(b)
        },
        "N = 18446744073709551615",
    );
    case(
        &|b| {
            b[16..24].copy_from_slice(&0u64.to_le_bytes());
            reseal(b)
        },
        "N = 0",
    );
    case(
        &|b| {
            b[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
            reseal_file_only(b)
        },
        "over the",
    );
    // A sealed file whose content is invalid: NaN alpha, seed disagreeing with the config, mu = inf.
    let alpha_off = HEADER_LEN + (u32::from_le_bytes(bytes[56..60].try_into().unwrap()) as usize).div_ceil(8) * 8;
    case(
        &|b| {
            b[alpha_off..alpha_off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            reseal(b)
        },
        "stored state is invalid",
    );
    case(
        &|b| {
            b[alpha_off..alpha_off + 4].copy_from_slice(&(-1.0f32).to_le_bytes());
            reseal(b)
        },
        "stored state is invalid",
    );
    case(
        &|b| {
            b[32..40].copy_from_slice(&7u64.to_le_bytes());
            reseal(b)
        },
        "seed",
    );
    case(
        &|b| {
            b[40..44].copy_from_slice(&f32::INFINITY.to_le_bytes());
            reseal(b)
        },
        "mu",
    );
    // weak[0] of N = 3, f32: before weak[1..3], strong (12 bytes) and the CRC (the payload, 72 bytes,
    // needs no padding).
    let feat_off = bytes.len() - 4 - 12 - 12;
    let Some(Features::F32 { columns }) = &state.features else { panic!("f32 features expected") };
    assert_eq!(bytes[feat_off..feat_off + 4], columns[0][0].to_le_bytes());
    case(
        &|b| {
            b[feat_off..feat_off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            reseal(b)
        },
        "feature",
    );
    case(
        &|b| {
            b[feat_off..feat_off + 4].copy_from_slice(&1.5f32.to_le_bytes());
            reseal(b)
        },
        "feature",
    );
    case(
        &|b| {
            b[44..48].copy_from_slice(&2.0f32.to_le_bytes());
            reseal(b)
        },
        "rho",
    );
    case(
        &|b| {
            let e = b.len() - 4;
            b[e] ^= 1
        },
        "checksum mismatch",
    );
    case(&|b| b[HEADER_LEN - 3] ^= 1, "header checksum mismatch");
    // Version 3's header words: K (feature columns), k_nn and the reserved bytes.
    case(
        &|b| {
            b[61] ^= 1;
            reseal(b)
        },
        "K = 258 feature columns",
    );
    case(
        &|b| {
            b[60..64].copy_from_slice(&3u32.to_le_bytes());
            reseal(b)
        },
        "implies",
    );
    case(
        &|b| {
            b[64..68].copy_from_slice(&8u32.to_le_bytes());
            reseal(b)
        },
        "implies", // a graph of 8 neighbours per task needs 64 more bytes per task
    );
    case(
        &|b| {
            b[64..68].copy_from_slice(&65u32.to_le_bytes());
            reseal(b)
        },
        "k_nn = 65 neighbours per task; at most 64",
    );
    case(
        &|b| {
            b[72] = 1;
            reseal(b)
        },
        "reserved header bytes",
    );
}

#[test]
fn restore_into_a_pool_of_another_size_or_from_a_bad_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.ckpt");
    let cfg = Config { rho: 0.0, ..Default::default() };
    let small = CpuPool::new(cfg.clone(), 50, None).unwrap();
    small.save_checkpoint(&path).unwrap();
    let mut big = CpuPool::new(cfg.clone(), 60, None).unwrap();
    let t = big.select_batch().unwrap();
    big.update(&evidence(t, 0, cfg.m, false)).unwrap();
    let before = big.to_host().unwrap();
    let reason = expect_ckpt_err(big.restore_checkpoint(&path), &path, "N mismatch");
    assert!(reason.contains("belongs to another pool: it has 50 tasks, this pool has 60"), "{reason}");
    assert!(reason.contains("50") && reason.contains("60"), "{reason}");
    assert_bit_identical(&before, &big.to_host().unwrap(), "after refused restore");
    // The trait-level restore refuses a state of another size too.
    assert!(big.restore(small.to_host().unwrap()).is_err());
    // A damaged file of the right size: refused, pool untouched.
    let right = CpuPool::new(cfg.clone(), 60, None).unwrap();
    right.save_checkpoint(&path).unwrap();
    let mut b = std::fs::read(&path).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&path, &b).unwrap();
    expect_ckpt_err(big.restore_checkpoint(&path), &path, "damaged");
    assert_bit_identical(&before, &big.to_host().unwrap(), "after damaged restore");
    // A missing file is an I/O error naming the path.
    let missing = dir.path().join("missing.ckpt");
    let err = checkpoint::load(&missing).unwrap_err();
    assert!(matches!(err, BotsError::Io { .. }) && err.to_string().contains("missing.ckpt"), "{err}");
}

/// Issue 21: a checkpoint is restored only into its own pool. Every part of the fingerprint (task
/// count, features, feature form, each posterior-shaping key) refuses, names what differs and leaves
/// the pool bit for bit as it was; selection keys (batch, seed, tau, target) may differ. On every
/// backend this machine has.
fn restore_refuses_a_checkpoint_of_another_pool_on(kind: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.ckpt");
    let n = 40;
    let cfg = Config { rho: 0.3, batch: 8, ..Config::default() };
    let mut pool = bots::open(kind, cfg.clone(), n, Some(features(n))).unwrap();
    let t = pool.select_batch().unwrap();
    pool.update(&evidence(t, 0, cfg.m, false)).unwrap();
    let before = pool.to_host().unwrap();
    let mut nudged = features(n);
    if let Features::F32 { columns } = &mut nudged {
        columns[0][17] = (columns[0][17] + 0.001).min(1.0);
    }
    let cases: Vec<(&str, Config, usize, Option<Features>, &str)> = vec![
        ("task count", cfg.clone(), n + 1, Some(features(n + 1)), "it has 41 tasks, this pool has 40"),
        ("no features", Config { rho: 0.0, ..cfg.clone() }, n, None, "it has no features, this pool has f32 features"),
        ("feature form", cfg.clone(), n, Some(features_f16(n)), "it has f16 features, this pool has f32 features"),
        ("one feature value", cfg.clone(), n, Some(nudged), "this pool has features with digest"),
        (
            "lambda",
            Config { lambda: 0.2, ..cfg.clone() },
            n,
            Some(features(n)),
            "lambda = 0.2, this pool has lambda = 0.1",
        ),
        ("m", Config { m: 8, ..cfg.clone() }, n, Some(features(n)), "m = 8, this pool has m = 16"),
        ("rho", Config { rho: 0.1, ..cfg.clone() }, n, Some(features(n)), "rho = 0.1, this pool has rho = 0.3"),
        ("prior", Config { prior_strength: Some(2.0), ..cfg.clone() }, n, Some(features(n)), "prior_strength = 2"),
    ];
    for (what, c, size, feats, words) in cases {
        CpuPool::new(c, size, feats).unwrap().save_checkpoint(&path).unwrap();
        let reason = expect_ckpt_err(pool.restore_checkpoint(&path), &path, what);
        assert!(reason.contains("belongs to another pool") && reason.contains(words), "{what}: {reason}");
        assert_bit_identical(&before, &pool.to_host().unwrap(), what);
        assert_eq!(pool.fingerprint(), bots::Fingerprint::of(&cfg, n, Some(&features(n))), "{what}");
    }
    // The same pool with other selection keys: restored, and the checkpoint's config handed back.
    let other_keys = Config { batch: 4, seed: 7, tau: 0.5, target: 0.3, ..cfg.clone() };
    let mut writer = CpuPool::new(other_keys.clone(), n, Some(features(n))).unwrap();
    let t = writer.select_batch().unwrap();
    writer.update(&evidence(t, 3, cfg.m, false)).unwrap();
    writer.save_checkpoint(&path).unwrap();
    assert_eq!(pool.restore_checkpoint(&path).unwrap(), other_keys);
    assert_bit_identical(&writer.to_host().unwrap(), &pool.to_host().unwrap(), "restored");
    assert_eq!(pool.config(), &cfg, "the pool keeps its own config");
}

#[test]
fn restore_refuses_a_checkpoint_of_another_pool() {
    restore_refuses_a_checkpoint_of_another_pool_on(BackendKind::Cpu);
    if common::gpu_available() {
        restore_refuses_a_checkpoint_of_another_pool_on(BackendKind::Cuda { ordinal: 0 });
    }
}

/// Library bug found while writing the checkpoint reader: `CpuPool::from_state` and
/// `Backend::restore` accepted a non-finite mu and NaN / out-of-range features, and the next update
/// then turned the whole posterior into NaN. Both are refused now.
#[test]
fn restore_refuses_non_finite_mu_and_bad_features() {
    let (cfg, state) = small_state();
    for mu in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut s = state.clone();
        s.globals.mu = Some(mu);
        assert!(CpuPool::from_state(cfg.clone(), s.clone()).is_err(), "mu = {mu}");
        let mut pool = CpuPool::from_state(cfg.clone(), state.clone()).unwrap();
        assert!(pool.restore(s).is_err(), "restore with mu = {mu}");
        assert_bit_identical(&pool.to_host().unwrap(), &state, "refused restore");
    }
    let (cfg16, state16) = small_state_in(FeatureForm::F16);
    for v in [f32::NAN, 1.5, -0.25] {
        let mut s = state.clone();
        let Some(Features::F32 { columns }) = s.features.as_mut() else { panic!("f32 features expected") };
        columns[1][1] = v;
        let err = CpuPool::from_state(cfg.clone(), s).unwrap_err();
        assert!(matches!(err, BotsError::InvalidFeature { task: 1, .. }), "{err}");
        let mut s = state16.clone();
        let Some(Features::F16 { columns }) = s.features.as_mut() else { panic!("f16 features expected") };
        columns[1][1] = half::f16::from_f32(v);
        let err = CpuPool::from_state(cfg16.clone(), s).unwrap_err();
        assert!(matches!(err, BotsError::InvalidFeature { task: 1, .. }), "{err}");
    }
}

#[test]
fn save_refuses_an_invalid_state_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.ckpt");
    let cfg = Config { rho: 0.0, ..Default::default() };
    let mut s = PoolState::new(&cfg, 4, None).unwrap();
    s.alpha[2] = f32::NAN;
    assert!(checkpoint::save(&path, &cfg, &s).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file, no temp file left");
}

// ---------------------------------------------------------------------------------------------
// Crash safety: a writer SIGKILLed mid-write leaves the previous checkpoint in place.

const CHILD_ENV: &str = "BOTS_TEST_CRASH_CHILD";

fn crash_states() -> (Config, PoolState, PoolState) {
    let cfg = Config { rho: 0.1, ..Default::default() };
    let n = 200_000;
    let mut pool = CpuPool::new(cfg.clone(), n, Some(features(n))).unwrap();
    let old = pool.to_host().unwrap();
    for t in 0..5 {
        let tasks = pool.select_batch().unwrap();
        pool.update(&evidence(tasks, t, cfg.m, false)).unwrap();
    }
    (cfg, old, pool.to_host().unwrap())
}

#[test]
fn writer_killed_mid_write_leaves_the_old_checkpoint() {
    if let Ok(target) = std::env::var(CHILD_ENV) {
        // Child role: start overwriting the checkpoint with the new state and stop part way.
        let (cfg, _, new) = crash_states();
        let mut hook = || {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "BOTS-CHILD-PAUSED").unwrap();
            out.flush().unwrap();
            loop {
                std::thread::park();
            }
        };
        checkpoint::save_pausing(Path::new(&target), &cfg, &new, 1000, &mut hook).unwrap();
        unreachable!("the parent kills this process while the hook blocks");
    }
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pool.ckpt");
    let (cfg, old, new) = crash_states();
    checkpoint::save(&target, &cfg, &old).unwrap();
    let full_len = std::fs::metadata(&target).unwrap().len();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_killed_mid_write_leaves_the_old_checkpoint", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &target)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let paused = lines.any(|l| l.map(|l| l.contains("BOTS-CHILD-PAUSED")).unwrap_or(false));
    assert!(paused, "child never reached the pause point");

    // Mid-write: a partial temporary file exists beside the untouched target.
    let temps: Vec<PathBuf> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p != &target).collect();
    assert_eq!(temps.len(), 1, "{temps:?}");
    let tmp = &temps[0];
    let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(".pool.ckpt.") && name.ends_with(".tmp"), "{name}");
    let partial = std::fs::metadata(tmp).unwrap().len();
    assert!(partial > HEADER_LEN as u64 && partial < full_len, "partial {partial} of {full_len}");

    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "child was killed, not finished: {status:?}");

    // The target still holds the old checkpoint, verified end to end.
    let (c, s) = checkpoint::load(&target).unwrap();
    assert_eq!(c, cfg);
    assert_bit_identical(&s, &old, "old checkpoint after the crash");
    assert_eq!(checkpoint::read_header(&target).unwrap().step, 0);
    // The leftover partial file is never mistaken for a checkpoint.
    let reason = expect_ckpt_err(checkpoint::load(tmp), tmp, "partial temp file");
    assert!(reason.contains("truncated"), "{reason}");
    // A later save succeeds and replaces the old state.
    checkpoint::save(&target, &cfg, &new).unwrap();
    assert_bit_identical(&checkpoint::load(&target).unwrap().1, &new, "after a later save");
}

/// Version 1 (f16 features, the layout before f32 features existed) and version 2 files (a 64-byte
/// header, two columns) still load, bit for bit: the same payload as this build writes for the state.
#[test]
fn version_1_and_2_files_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.ckpt");
    for (version, form) in [(1, FeatureForm::F16), (2, FeatureForm::F16), (2, FeatureForm::F32)] {
        let (cfg, state) = small_state_in(form);
        checkpoint::save(&path, &cfg, &state).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), checkpoint::VERSION);
        std::fs::write(&path, common::as_version(&b, version)).unwrap();
        let h = checkpoint::read_header(&path).unwrap();
        assert_eq!((h.version, h.features, h.feature_columns), (version, Some(form), 2));
        let (c, s) = checkpoint::load(&path).unwrap();
        assert_eq!(c, cfg);
        assert_bit_identical(&s, &state, &format!("version {version}"));
        // Resumes exactly like the state it holds.
        let mut a = CpuPool::from_state(cfg.clone(), s).unwrap();
        let mut o = CpuPool::from_state(cfg, state).unwrap();
        assert_eq!(a.select_batch().unwrap(), o.select_batch().unwrap());
    }
}
