//! Fuzz harness, built on proptest because `cargo fuzz` needs a nightly toolchain and this crate
//! builds on stable only. Each target feeds random and mutated inputs to one parser and checks that it
//! never panics, and that whatever it accepts is valid and round-trips.
//!
//! - `smoke_*` tests run with every `cargo test` (a few hundred cases each).
//! - The `fuzz_*` tests are `#[ignore]`d long runs:
//!
//!   ```text
//!   BOTS_FUZZ_SECONDS=300 cargo test --test fuzz -- --ignored --nocapture fuzz_checkpoint
//!   BOTS_FUZZ_CASES=100000 cargo test --test fuzz -- --ignored --nocapture fuzz_config
//!   ```
//!
//!   `BOTS_FUZZ_CASES` is the number of cases per round (default 2000); `BOTS_FUZZ_SECONDS` keeps
//!   starting new rounds, each with a fresh seed, until that much time has passed (default: one
//!   round); `BOTS_FUZZ_SEED` picks the first round's seed (printed, with the case count, at the end).
//!   A failure prints the shrunk input and the round's seed, which reproduces it.
//!
//! Adding a target is a strategy plus a check: see [`fuzz`] and the targets below (checkpoint
//! reader, config loader, replay log parser).
//!
//! The corpus is tiny and lives in `tests/fuzz_corpus/` (three config files); checkpoint seeds are
//! generated at run time from a few pool shapes.

mod common;

use common::fuzz::{apply, fuzz, mutation, Stats};
use common::reseal;
use std::path::Path;

use bots::checkpoint;
use bots::{Backend, Config, CpuPool, Evidence, Features};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

// ---------------------------------------------------------------------------------------------
// Target: the checkpoint reader

/// Valid checkpoints of a few shapes: every flag combination, an odd N (padding), mu set and unset.
fn checkpoint_seeds() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.ckpt");
    let mut out = Vec::new();
    for (n, rho, strength, feats, steps) in [
        (1usize, 0.0f32, None, false, 0u64),
        (3, 0.0, None, true, 2),
        (5, 0.3, Some(2.0f32), true, 3),
        (2, 1.0, None, true, 1),
    ] {
        let cfg = Config { rho, prior_strength: strength, batch: 1, adaptive_rho: steps == 3, ..Default::default() };
        let f = feats.then(|| Features::from_f32(&vec![0.25; n], &vec![0.75; n]).unwrap());
        let mut pool = CpuPool::new(cfg.clone(), n, f).unwrap();
        for t in 0..steps {
            let tasks = pool.select_batch().unwrap();
            pool.update(&Evidence::pass_rates(tasks, vec![(t % 3) as f32 / 2.0])).unwrap();
        }
        pool.save_checkpoint(&path).unwrap();
        out.push(std::fs::read(&path).unwrap());
    }
    out
}

/// Loads `bytes` through the real file path; whatever is accepted must be valid and round-trip.
fn check_checkpoint_bytes(path: &Path, bytes: &[u8]) -> Result<bool, TestCaseError> {
    std::fs::write(path, bytes).unwrap();
    let header = checkpoint::read_header(path);
    match checkpoint::load(path) {
        Ok((cfg, state)) => {
            prop_assert!(header.is_ok(), "load accepted what read_header refused: {:?}", header);
            let h = header.unwrap();
            prop_assert_eq!(h.n as usize, state.len());
            prop_assert_eq!(h.step, state.globals.step);
            // Accepted means usable: a pool can be built from it and selects.
            let mut pool = CpuPool::from_state(cfg.clone(), state.clone())
                .map_err(|e| TestCaseError::fail(format!("accepted state unusable: {e}")))?;
            let k = cfg.batch.min(state.len());
            prop_assert_eq!(pool.select(k).map_err(|e| TestCaseError::fail(e.to_string()))?.len(), k);
            // And it round-trips.
            let again = path.with_extension("again");
            checkpoint::save(&again, &cfg, &state)
                .map_err(|e| TestCaseError::fail(format!("accepted state cannot be saved: {e}")))?;
            let (cfg2, state2) = checkpoint::load(&again).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(cfg2, cfg);
            prop_assert_eq!(state2, state);
            Ok(true)
        }
        Err(bots::BotsError::Checkpoint { reason, .. }) => {
            prop_assert!(!reason.is_empty());
            Ok(false)
        }
        Err(other) => Err(TestCaseError::fail(format!("expected a Checkpoint error, got {other:?}"))),
    }
}

/// Random bytes; some start with a valid magic and version so they pass the first checks.
fn random_checkpoint_bytes() -> impl Strategy<Value = Vec<u8>> {
    let body = proptest::collection::vec(any::<u8>(), 0..600);
    (0u8..3, body).prop_map(|(prefix, mut body)| {
        let mut b = Vec::new();
        if prefix >= 1 {
            b.extend_from_slice(&checkpoint::MAGIC);
        }
        if prefix >= 2 {
            b.extend_from_slice(&checkpoint::VERSION.to_le_bytes());
        }
        b.append(&mut body);
        if prefix >= 2 {
            reseal(&mut b);
        }
        b
    })
}

fn mutated_checkpoint(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let k = seeds.len();
    (0..k, proptest::collection::vec(mutation(), 1..5), any::<bool>()).prop_map(move |(i, muts, reseal_it)| {
        let mut b = seeds[i].clone();
        for m in &muts {
            apply(&mut b, m);
        }
        if reseal_it {
            reseal(&mut b);
        }
        b
    })
}

fn checkpoint_target(default_cases: u32) -> (Stats, Stats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.ckpt");
    let random = fuzz("checkpoint_random_bytes", default_cases, random_checkpoint_bytes(), |b| {
        check_checkpoint_bytes(&path, &b).map(|_| ())
    });
    let seeds = checkpoint_seeds();
    for s in &seeds {
        assert!(check_checkpoint_bytes(&path, s).unwrap(), "seed checkpoints load");
    }
    let mutated = fuzz("checkpoint_mutated", default_cases, mutated_checkpoint(seeds), |b| {
        check_checkpoint_bytes(&path, &b).map(|_| ())
    });
    (random, mutated)
}

// ---------------------------------------------------------------------------------------------
// Target: the config loader (YAML, TOML, JSON)

const CORPUS: [(&str, &str); 3] = [
    ("yaml", include_str!("fuzz_corpus/trinity.yaml")),
    ("toml", include_str!("fuzz_corpus/flat.toml")),
    ("json", include_str!("fuzz_corpus/flat.json")),
];

/// Text made of config-ish tokens, so the parsers get past their first byte.
fn config_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("task_selector:".to_string()),
        Just("kwargs:".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("m: ".to_string()),
        Just("lamb = ".to_string()),
        Just("\"rho\": ".to_string()),
        Just("batch".to_string()),
        Just("feature_keys".to_string()),
        Just("prior_strength".to_string()),
        Just("seed".to_string()),
        Just("tau".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("=".to_string()),
        Just("- ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!binary ".to_string()),
        Just("<<: ".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just(".nan".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("1e999".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("0x10".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("[[t]]".to_string()),
        Just("'''".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        "[a-z_]{1,8}",
        ".{0,4}",
    ];
    proptest::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

fn mutated_config() -> impl Strategy<Value = (usize, String)> {
    (0..CORPUS.len(), proptest::collection::vec(mutation(), 1..4)).prop_map(|(i, muts)| {
        let mut b = CORPUS[i].1.as_bytes().to_vec();
        for m in &muts {
            apply(&mut b, m);
        }
        (i, String::from_utf8_lossy(&b).into_owned())
    })
}

/// Deep nesting: recursion limits must turn into errors, not stack overflows.
fn nested_config() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(("[", "]")),
            Just(("{\"a\":", "}")),
            Just(("a: ", "")),
            Just(("- ", "")),
            Just(("a = [", "]"))
        ],
        1usize..3000,
    )
        .prop_map(|((open, close), depth)| format!("{}1{}", open.repeat(depth), close.repeat(depth)))
}

/// Whatever the loader accepts is a valid config that survives a JSON round trip.
fn check_config(text: &str) -> Result<(), TestCaseError> {
    for format in ["yaml", "toml", "json"] {
        if let Ok(cfg) = bots::Config::from_str_format(text, format) {
            prop_assert!(cfg.validate().is_ok(), "accepted an invalid config: {:?}", cfg);
            let json = serde_json::to_string(&cfg).unwrap();
            let back = bots::Config::from_str_format(&json, "json").map_err(TestCaseError::fail)?;
            prop_assert_eq!(back, cfg);
        }
    }
    Ok(())
}

fn config_target(default_cases: u32) -> (Stats, Stats, Stats) {
    for (format, text) in CORPUS {
        assert!(bots::Config::from_str_format(text, format).is_ok(), "corpus {format} loads");
    }
    let tokens = fuzz("config_tokens", default_cases, config_text(), |t| check_config(&t));
    let mutated = fuzz("config_mutated", default_cases, mutated_config(), |(_, t)| check_config(&t));
    let nested = fuzz("config_nested", default_cases / 10 + 1, nested_config(), |t| check_config(&t));
    (tokens, mutated, nested)
}

// ---------------------------------------------------------------------------------------------
// Always-run smoke versions

#[test]
fn smoke_checkpoint_reader() {
    let (a, b) = checkpoint_target(200);
    assert!(a.cases >= 200 && b.cases >= 200);
}

#[test]
fn smoke_config_loader() {
    let (a, b, c) = config_target(300);
    assert!(a.cases >= 300 && b.cases >= 300 && c.cases >= 31);
}

/// The mutation strategy reaches past the checksums into validation: some resealed mutants are
/// refused by validation and some are accepted (e.g. a changed alpha value), so both branches of
/// `check_checkpoint_bytes` run.
#[test]
fn smoke_mutations_reach_validation() {
    use proptest::strategy::ValueTree;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ckpt");
    let mut runner = TestRunner::deterministic();
    let strat = mutated_checkpoint(checkpoint_seeds());
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..2000 {
        let b = strat.new_tree(&mut runner).unwrap().current();
        if check_checkpoint_bytes(&path, &b).unwrap() {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(accepted > 20 && refused > 20, "accepted {accepted}, refused {refused}");
}

// ---------------------------------------------------------------------------------------------
// Long runs (ignored by default)

#[test]
#[ignore = "long fuzz run: BOTS_FUZZ_SECONDS=300 cargo test --test fuzz -- --ignored --nocapture"]
fn fuzz_checkpoint_reader() {
    let (a, b) = checkpoint_target(2000);
    assert!(a.cases > 0 && b.cases > 0);
}

#[test]
#[ignore = "long fuzz run: BOTS_FUZZ_SECONDS=300 cargo test --test fuzz -- --ignored --nocapture"]
fn fuzz_config_loader() {
    let (a, b, c) = config_target(2000);
    assert!(a.cases > 0 && b.cases > 0 && c.cases > 0);
}
