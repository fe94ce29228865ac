//! How often a warp of the fused kernel runs each path of the Gamma sampler (issue 23: the weights of
//! `scripts/cost-model.sh`). Runs `bots bench`'s loop on the CPU backend (its synthetic f16 features,
//! its outcomes), and at chosen steps replays, for every task, the path `sample_gamma_mt` in
//! kernels/distr.cuh takes on the task stream of that step (the same words, through the CPU twin's
//! functions), then counts per warp of 32 consecutive tasks (the kernel's lanes) whether any lane took it.
//! The Beta draw now takes each Gamma's first attempt from a block shared by both (`Purpose::First`) and
//! only then `sample_gamma_mt`'s blocks; an attempt has the same law from either, so block 1's first
//! attempt here measures the rates of the shared one (its squeeze failing, its rejection).
//!
//! `cargo run --release -p bots-cli --example warp_paths -- [TASKS] [BATCH] [STEPS]` (defaults 2^20, 10, 23: the
//! ratio k/N of 1024 in 10^8, and `bots bench`'s 3 warm-up + 20 timed steps). Prints a table per measured
//! step and, last, one JSON line for `FREQ=... scripts/cost-model.sh` (the last step's frequencies).
use bots::__private::twin::distr::gamma::{
    mt_constants, mt_exact, mt_squeeze, mt_value, sample_gamma_mt, MAX_GAMMA_BLOCKS,
};
use bots::__private::twin::distr::normal::box_muller_scaled;
use bots::__private::{u01, Purpose, TaskStream};
use bots::{BackendKind, Config, Evidence, Features};
use half::f16;

/// What one Gamma draw ran, beyond constants + block 1 + attempt 0's squeeze.
#[derive(Default, Clone, Copy)]
struct Path {
    exact0: bool,   // attempt 0 failed the squeeze (x > -1): the exact test ran
    attempt1: bool, // attempt 0 rejected: attempt 1 ran
    exact1: bool,   // attempt 1 ran its exact test
    retry: bool,    // both attempts of block 1 rejected: block 2 (Philox + Box-Muller) ran
}

/// The path of kernels/distr.cuh sample_gamma_mt (same loop, same tests, same words), and the value it
/// gives (checked against the twin's `sample_gamma_mt`, so the replay is the sampler's path).
fn gamma_path(shape: f32, st: &TaskStream, purpose: Purpose) -> (Path, f32) {
    let (d, q) = mt_constants(shape);
    let mut p = Path::default();
    for blk in 1..=MAX_GAMMA_BLOCKS {
        if blk > 1 {
            p.retry = true;
        }
        let w = st.block(purpose, blk);
        let (x0, x1) = box_muller_scaled(w[0], w[1], q);
        for (j, (x, uw)) in [(x0, w[2]), (x1, w[3])].into_iter().enumerate() {
            if blk == 1 && j == 1 {
                p.attempt1 = true;
            }
            if x <= -1.0 {
                continue;
            }
            let u = u01(uw);
            if mt_squeeze(d, x, u) {
                return (p, mt_value(d, x));
            }
            if blk == 1 && j == 0 {
                p.exact0 = true;
            }
            if blk == 1 && j == 1 {
                p.exact1 = true;
            }
            if mt_exact(d, x, u) {
                return (p, mt_value(d, x));
            }
        }
    }
    (p, d)
}

/// `bots bench`'s synthetic features (cli/src/cmd/bench.rs synthetic_features, f16 form).
fn features(n: usize, seed: u64) -> Features {
    let (weak, strong): (Vec<f16>, Vec<f16>) = (0..n)
        .map(|t| {
            let w = TaskStream::new(seed ^ 0x5eed, 0, t as u32).block(Purpose::User, 0);
            let (a, b) = (u01(w[0]), u01(w[1]));
            (f16::from_f32(a.min(b)), f16::from_f32(a.max(b)))
        })
        .unzip();
    Features::F16 { columns: vec![weak, strong] }
}

/// Per-lane and per-warp rates of each path, per Gamma draw: a lane rate over all draws, and the rate
/// that some lane of a warp took the path in a given draw (alpha, beta: averaged).
fn measure(alpha: &[f32], beta: &[f32], seed: u64, step: u64) -> Vec<(&'static str, f64, f64)> {
    let n = alpha.len();
    let names = ["exact0", "attempt1", "exact1", "retry", "log_space"];
    let (mut lane, mut warp) = ([0u64; 5], [0u64; 5]);
    let mut warps = 0u64;
    for base in (0..n).step_by(32) {
        let mut any = [[false; 5]; 2];
        for k in base..(base + 32).min(n) {
            let st = TaskStream::new(seed, step, k as u32);
            let log = alpha[k] < 1.0 || beta[k] < 1.0;
            for (draw, (shape, purpose)) in
                [(alpha[k], Purpose::GammaAlpha), (beta[k], Purpose::GammaBeta)].into_iter().enumerate()
            {
                let (p, g) = gamma_path(shape, &st, purpose);
                if k % 61 == 0 {
                    assert_eq!(g.to_bits(), sample_gamma_mt(shape, &st, purpose).to_bits(), "replay != twin, task {k}");
                }
                for (i, f) in [p.exact0, p.attempt1, p.exact1, p.retry, log].into_iter().enumerate() {
                    lane[i] += f as u64;
                    any[draw][i] |= f;
                }
            }
        }
        for draw in any {
            for (i, f) in draw.into_iter().enumerate() {
                warp[i] += f as u64;
            }
        }
        warps += 2;
    }
    names
        .iter()
        .enumerate()
        .map(|(i, &name)| (name, lane[i] as f64 / (2 * n) as f64, warp[i] as f64 / warps as f64))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, k, steps) = (arg(1, 1 << 20), arg(2, 10), arg(3, 23));
    let config = Config { batch: k, ..Default::default() };
    let seed = config.seed;
    let m = config.m;
    let mut pool = bots::open(BackendKind::Cpu, config, n, Some(features(n, seed)))?;
    let checkpoints = [1usize, 3, steps];
    let mut last = Vec::new();
    println!(
        "tasks {n}, batch {k}; per Gamma draw: the lane rate, and the rate that some lane of a warp of 32 took it"
    );
    for i in 0..=steps {
        if checkpoints.contains(&i) {
            let s = pool.to_host()?;
            let (amin, amax) = s.alpha.iter().fold((f32::MAX, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
            let (bmin, bmax) = s.beta.iter().fold((f32::MAX, 0f32), |(a, b), &x| (a.min(x), b.max(x)));
            last = measure(&s.alpha, &s.beta, seed, pool.step());
            println!("step {} (alpha {amin:.3}..{amax:.3}, beta {bmin:.3}..{bmax:.3}):", pool.step());
            for (name, l, w) in &last {
                println!("  {name:10} lane {l:.5}  warp {w:.4}");
            }
        }
        if i == steps {
            break;
        }
        // bots bench's step: select, then pass rates from the User stream.
        let tasks = pool.select_batch()?;
        let rates = tasks
            .iter()
            .map(|&t| {
                let w = TaskStream::new(seed, i as u64, t).block(Purpose::User, 1);
                (w[0] % (m + 1)) as f32 / m as f32
            })
            .collect();
        pool.update(&Evidence::pass_rates(tasks, rates))?;
    }
    // For the cost model (scripts/cost_model.py FREQ_DEFAULTS): per-warp chances per Gamma draw; the
    // log-space one is per warp and task (both draws), so it is counted in each draw and is the same.
    let get = |name: &str| last.iter().find(|(n, _, _)| *n == name).map(|(_, _, w)| *w).unwrap_or(0.0);
    println!(
        "{{\"source\": \"examples/warp_paths.rs: {n} tasks, batch {k}, after {steps} steps of bots bench's loop\", \"warp_exact\": {:.6}, \"warp_attempt1\": {:.6}, \"warp_exact1\": {:.6}, \"warp_retry\": {:.6}, \"warp_log_space\": {:.6}}}",
        get("exact0"),
        get("attempt1"),
        get("exact1"),
        get("retry"),
        get("log_space")
    );
    Ok(())
}
