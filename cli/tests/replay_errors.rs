//! One error path (issue 11, part 4): the same bad batch gives the same `BotsError` variant and message
//! whether the host validation (`CpuPool::update`) or the replay-log parser finds it; the parser wraps it
//! in `BotsError::InFile` with the file and line. The device path (`BotsError::DeviceInput`) is checked
//! against the same host errors in `tests/gpu.rs` (on the emulated driver in CI) and in a unit test of
//! `src/error.rs`. After each error the pool's state is bit-identical to before.

use bots::{Backend, BotsError, Config, CountsProblem, CpuPool, Evidence, Features};
use bots_cli::io::replay_log::replay_from;
use bots_cli::io::ReplayLog;

const N: usize = 20;

fn pool() -> CpuPool {
    let w: Vec<f32> = (0..N).map(|i| i as f32 / N as f32).collect();
    let s: Vec<f32> = w.iter().map(|x| (x + 0.1).min(1.0)).collect();
    let mut pool =
        CpuPool::new(Config { batch: 4, ..Default::default() }, N, Some(Features::from_f32(&w, &s).unwrap())).unwrap();
    let t = pool.select_batch().unwrap();
    pool.update(&Evidence::pass_rates(t, vec![0.25, 0.5, 0.75, 1.0])).unwrap();
    pool
}

fn json_numbers(v: &[f32]) -> String {
    v.iter().map(f32::to_string).collect::<Vec<_>>().join(", ")
}

/// The batch as one replay-log line at `step`.
fn log_line(ev: &Evidence, step: u64) -> String {
    let tasks = ev.tasks.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    match &ev.outcomes {
        bots::Outcomes::PassRates(r) => {
            format!("{{\"step\": {step}, \"tasks\": [{tasks}], \"pass_rates\": [{}]}}", json_numbers(r))
        }
        bots::Outcomes::Counts { successes, failures } => format!(
            "{{\"step\": {step}, \"tasks\": [{tasks}], \"successes\": [{}], \"failures\": [{}]}}",
            json_numbers(successes),
            json_numbers(failures)
        ),
    }
}

#[test]
fn host_validation_and_replay_parser_give_one_variant_and_message() {
    let m = Config::default().m as f32;
    type Want = fn(&BotsError) -> bool;
    let cases: Vec<(Evidence, Want)> = vec![
        (Evidence::pass_rates(vec![1, 20, 3], vec![0.5; 3]), |e| {
            matches!(e, BotsError::TaskOutOfRange { task: 20, position: 1, len: N })
        }),
        (Evidence::pass_rates(vec![u32::MAX], vec![0.5]), |e| {
            matches!(e, BotsError::TaskOutOfRange { position: 0, .. })
        }),
        (Evidence::pass_rates(vec![7, 8, 7], vec![0.5; 3]), |e| matches!(e, BotsError::DuplicateTask { task: 7 })),
        (Evidence::pass_rates(vec![3, 4], vec![0.5, 1.5]), |e| matches!(e, BotsError::InvalidPassRate { task: 4, .. })),
        (Evidence::pass_rates(vec![3, 4], vec![-0.25, 0.5]), |e| {
            matches!(e, BotsError::InvalidPassRate { task: 3, .. })
        }),
        (Evidence::counts(vec![4, 5], vec![1.0, -1.0], vec![1.0, 1.0]), |e| {
            matches!(e, BotsError::InvalidCounts { task: 5, problem: CountsProblem::Negative, .. })
        }),
        (Evidence::counts(vec![4, 5], vec![0.0, 1.0], vec![0.0, 1.0]), |e| {
            matches!(e, BotsError::InvalidCounts { task: 4, problem: CountsProblem::NoRollouts, .. })
        }),
        (Evidence::counts(vec![4, 5], vec![m, 1.0], vec![1.0, 1.0]), |e| {
            matches!(e, BotsError::InvalidCounts { task: 4, problem: CountsProblem::TooMany { m: 16 }, .. })
        }),
    ];
    for (ev, want) in cases {
        let mut cpu = pool();
        let before = cpu.to_host().unwrap();
        let host = cpu.update(&ev).unwrap_err();
        assert!(want(&host), "host: {host:?}");
        assert_eq!(cpu.to_host().unwrap(), before, "{host}: the state changed");

        // The same batch as line 2 of a log, after a good line.
        let step = cpu.step();
        let good = Evidence::pass_rates(vec![0, 1], vec![0.5, 0.5]);
        let text = format!("{}\n{}\n", log_line(&good, step), log_line(&ev, step + 1));
        let mut replayed = pool();
        let err = replay_from(&mut replayed, ReplayLog::from_reader(text.as_bytes(), "log.jsonl", step)).unwrap_err();
        let BotsError::InFile { line: 2, cause, .. } = &err else { panic!("not a line error: {err:?}") };
        assert!(want(cause), "parser: {cause:?}");
        assert_eq!(std::mem::discriminant(&**cause), std::mem::discriminant(&host));
        assert_eq!(cause.to_string(), host.to_string(), "parser and host messages differ");
        assert_eq!(err.to_string(), format!("log.jsonl:2: {host}"));
        assert!(want(err.cause()));
        // The good line was applied, the bad one not.
        let mut direct = pool();
        direct.update(&good).unwrap();
        assert_eq!(replayed.to_host().unwrap(), direct.to_host().unwrap(), "{err}: the bad line changed the state");
    }
}
