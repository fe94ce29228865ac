//! The fuzz harness shared by the fuzz targets (`tests/fuzz.rs`; the application's
//! `cli/tests/replay_log_fuzz.rs` includes this file): rounds of proptest cases, and byte mutations of
//! a valid input.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// What one target did.
#[derive(Debug)]
pub struct Stats {
    pub cases: u64,
    pub rounds: u64,
    pub elapsed: Duration,
}

pub fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// Runs `check` on values of `strategy`: rounds of `cases` cases (env `BOTS_FUZZ_CASES` overrides),
/// until `BOTS_FUZZ_SECONDS` have passed (only one round when unset). Panics (failing the test) on
/// the first input that panics or fails a check, after shrinking it.
pub fn fuzz<S: Strategy>(
    name: &str,
    default_cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Stats {
    let cases = env_u64("BOTS_FUZZ_CASES").map(|c| c as u32).unwrap_or(default_cases);
    let budget = Duration::from_secs(env_u64("BOTS_FUZZ_SECONDS").unwrap_or(0));
    let first_seed = env_u64("BOTS_FUZZ_SEED").unwrap_or(0xB075);
    let start = Instant::now();
    let mut stats = Stats { cases: 0, rounds: 0, elapsed: Duration::ZERO };
    loop {
        let seed = first_seed.wrapping_add(stats.rounds);
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        seed_bytes[8..16].copy_from_slice(&(name.len() as u64).to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        let config = RunConfig { cases, failure_persistence: None, max_shrink_iters: 4096, ..RunConfig::default() };
        let mut runner = TestRunner::new_with_rng(config, rng);
        if let Err(e) = runner.run(&strategy, &check) {
            panic!("fuzz target `{name}` failed in round {} (BOTS_FUZZ_SEED={seed}): {e}", stats.rounds);
        }
        stats.rounds += 1;
        stats.cases += cases as u64;
        if start.elapsed() >= budget {
            break;
        }
    }
    stats.elapsed = start.elapsed();
    eprintln!(
        "fuzz {name}: {} cases in {} rounds, {:.1} s, 0 failures (first seed {first_seed})",
        stats.cases,
        stats.rounds,
        stats.elapsed.as_secs_f64()
    );
    stats
}

/// One edit of a valid input's bytes.
#[derive(Clone, Debug)]
pub enum Mutation {
    Flip {
        at: usize,
        mask: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    /// Overwrites 4 bytes with an interesting little-endian word (0, 1, -1, u32::MAX, NaN, ...).
    Word {
        at: usize,
        word: u32,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    let word = prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(u32::MAX),
        Just(0x7FC0_0000), // NaN
        Just(0x7F80_0000), // inf
        Just(0xBF80_0000), // -1.0
        Just(0x8000_0000), // -0.0
        any::<u32>()
    ];
    prop_oneof![
        4 => (at, 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        2 => (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        3 => (at, word).prop_map(|(at, word)| Mutation::Word { at, word }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => (at, proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (at, 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

pub fn apply(b: &mut Vec<u8>, m: &Mutation) {
    let n = b.len().max(1);
    match m {
        Mutation::Flip { at, mask } if !b.is_empty() => b[at % n] ^= mask,
        Mutation::Set { at, byte } if !b.is_empty() => b[at % n] = *byte,
        Mutation::Word { at, word } if b.len() >= 4 => {
            // Mostly at 4-aligned offsets, where the header fields and f32 arrays are.
            let o = (at % (b.len() - 3)) & !3;
            b[o..o + 4].copy_from_slice(&word.to_le_bytes());
        }
        Mutation::Truncate { len } => b.truncate(len % n),
        Mutation::Insert { at, bytes } => {
            let o = at % (b.len() + 1);
            b.splice(o..o, bytes.iter().copied());
        }
        Mutation::Remove { at, len } if !b.is_empty() => {
            let o = at % b.len();
            let e = (o + len).min(b.len());
            b.drain(o..e);
        }
        _ => {}
    }
}
