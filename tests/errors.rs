//! One error path (issue 11, part 4): the same bad batch gives the same `BotsError` variant and message
//! whether the host validation (`CpuPool::update`) or the replay-log parser finds it (that half is the
//! application's `cli/tests/replay_errors.rs`; the parser wraps it in `BotsError::InFile` with the file
//! and line). The device path (`BotsError::DeviceInput`) is checked
//! against the same host errors in `tests/gpu.rs` (on the emulated driver in CI) and in a unit test of
//! `src/error.rs`. After each error the pool's state is bit-identical to before.

use bots::{Backend, BotsError, Config, CountsProblem, CpuPool, Evidence, Features};

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

#[test]
fn nan_and_infinite_counts_have_one_message_on_the_host() {
    // JSON has no NaN or infinity, so only the host and the device see these; the device side is in
    // tests/gpu.rs. Here: the typed cause.
    let mut cpu = pool();
    let before = cpu.to_host().unwrap();
    for ev in [
        Evidence::counts(vec![4, 5], vec![f32::NAN, 1.0], vec![1.0, 1.0]),
        Evidence::counts(vec![4, 5], vec![1.0, 1.0], vec![1.0, f32::INFINITY]),
    ] {
        let e = cpu.update(&ev).unwrap_err();
        assert!(matches!(e, BotsError::InvalidCounts { problem: CountsProblem::NotFinite, .. }), "{e:?}");
        assert!(e.to_string().ends_with("are invalid: counts must be finite numbers"), "{e}");
    }
    assert_eq!(cpu.to_host().unwrap(), before);
}
