//! Fuzz target of the replay log parser (`bots_cli::io::ReplayLog`), with the harness of the library's
//! `tests/fuzz.rs` (see there for the knobs):
//!
//! ```text
//! BOTS_FUZZ_SECONDS=300 cargo test --test replay_log_fuzz -- --ignored --nocapture
//! ```

#[path = "../../tests/common/fuzz.rs"]
mod fuzz_harness;

use bots::{Backend, Config, CpuPool};
use fuzz_harness::{apply, fuzz, mutation, Stats};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const LOG_CORPUS: &str = include_str!("../../data/sample_log.jsonl");
const LOG_TASKS: usize = 1000;

/// JSONL made of log-ish tokens.
fn log_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\n".to_string()),
        Just("\"step\": ".to_string()),
        Just("\"tasks\": ".to_string()),
        Just("\"pass_rates\": ".to_string()),
        Just("\"successes\": ".to_string()),
        Just("\"failures\": ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(", ".to_string()),
        Just("null".to_string()),
        Just("\"NaN\"".to_string()),
        Just("1e999".to_string()),
        Just("-0".to_string()),
        Just("0.5".to_string()),
        (0u64..3).prop_map(|v| v.to_string()),
        (0u32..1100).prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        ".{0,3}",
    ];
    proptest::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

fn mutated_log() -> impl Strategy<Value = String> {
    proptest::collection::vec(mutation(), 1..4).prop_map(|muts| {
        let mut b = LOG_CORPUS.as_bytes().to_vec();
        for m in &muts {
            apply(&mut b, m);
        }
        String::from_utf8_lossy(&b).into_owned()
    })
}

/// The parser never panics, and every step it accepts (checked against a pool of LOG_TASKS tasks
/// and m = 16) is consecutive and is accepted by the backend's own validation.
fn check_log(text: &str) -> Result<(), TestCaseError> {
    let log = bots_cli::io::ReplayLog::from_reader(std::io::Cursor::new(text.as_bytes()), "fuzz.jsonl", 0)
        .check_against(LOG_TASKS, 16);
    let config = Config { rho: 0.0, ..Config::default() };
    let mut pool = CpuPool::new(config, LOG_TASKS, None).unwrap();
    for (expect, step) in log.enumerate() {
        let Ok(step) = step else { break };
        prop_assert_eq!(step.step, expect as u64);
        if let Err(e) = pool.update(&step.evidence) {
            return Err(TestCaseError::fail(format!("the parser accepted evidence the backend refused: {e}")));
        }
    }
    Ok(())
}

fn replay_log_target(default_cases: u32) -> (Stats, Stats) {
    assert!(check_log(LOG_CORPUS).is_ok());
    let tokens = fuzz("replay_log_tokens", default_cases, log_text(), |t| check_log(&t));
    let mutated = fuzz("replay_log_mutated", default_cases, mutated_log(), |t| check_log(&t));
    (tokens, mutated)
}

#[test]
fn smoke_replay_log_parser() {
    let (a, b) = replay_log_target(300);
    assert!(a.cases >= 300 && b.cases >= 300);
}

#[test]
#[ignore = "long fuzz run: BOTS_FUZZ_SECONDS=300 cargo test --test replay_log_fuzz -- --ignored --nocapture"]
fn fuzz_replay_log_parser() {
    let (a, b) = replay_log_target(2000);
    assert!(a.cases > 0 && b.cases > 0);
}
