//! Criterion benches of one full BOTS step (update with a batch of evidence, then the fused
//! update + sample + select pass), reported as tasks per second.
//!
//! CPU: N from 10^4 to 10^7 (`BOTS_BENCH_MAX_N` lowers the top). CUDA rows run only where a driver
//! and a GPU are present (`cargo bench` on the GPU machine, or `.device/bin/bench-step --bench`).

use std::hint::black_box;
use std::time::Duration;

use bots::BackendKind;
use bots::{open, Backend, Config, Evidence, Features};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn features(n: usize) -> Features {
    let weak: Vec<f32> = (0..n).map(|k| ((k * 7) % 17) as f32 / 16.0).collect();
    let strong: Vec<f32> = weak.iter().map(|w| (w + 0.25).min(1.0)).collect();
    Features::from_f32(&weak, &strong).expect("valid features")
}

/// One step: update with the last selection's outcomes, then select the next batch.
fn step(pool: &mut dyn Backend, tasks: &mut Vec<u32>, k: usize) {
    let rates: Vec<f32> = tasks.iter().map(|&t| (t % 17) as f32 / 16.0).collect();
    pool.update(&Evidence::pass_rates(std::mem::take(tasks), rates)).expect("valid evidence");
    *tasks = pool.select(k).expect("valid k");
}

fn bench_backend(c: &mut Criterion, kind: BackendKind, label: &str, sizes: &[usize], ks: &[usize]) {
    let mut group = c.benchmark_group(format!("step/{label}"));
    group.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    for &n in sizes {
        for &k in ks.iter().filter(|&&k| k <= n) {
            let cfg = Config { batch: k, ..Config::default() };
            let mut pool = match open(kind, cfg, n, Some(features(n))) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("skipping {label} N={n}: {e}");
                    return;
                }
            };
            let mut tasks = pool.select(k).expect("valid k");
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new(format!("k{k}"), n), &n, |b, _| {
                b.iter(|| step(black_box(pool.as_mut()), &mut tasks, k))
            });
        }
    }
    group.finish();
}

fn max_n(default: usize) -> usize {
    std::env::var("BOTS_BENCH_MAX_N").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Run without `--bench` (`cargo test --benches`, or .device/run.sh running every test harness),
/// criterion only smoke-tests each benchmark once: keep that to the smallest pool, since the setup of a
/// 10^9-task pool alone takes tens of seconds.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn cpu(c: &mut Criterion) {
    let top = if smoke() { 10_000 } else { max_n(10_000_000) };
    let sizes: Vec<usize> = [10_000, 100_000, 1_000_000, 10_000_000].into_iter().filter(|&n| n <= top).collect();
    bench_backend(c, BackendKind::Cpu, "cpu", &sizes, &[1024]);
}

fn cuda(c: &mut Criterion) {
    if !bots::driver_present() {
        eprintln!("skipping CUDA benches: no CUDA driver");
        return;
    }
    // BOTS_BENCH_MAX_N caps the CUDA sizes too (it used to be max()-ed with 10^9, so it never did).
    let top = if smoke() { 1_000_000 } else { max_n(1_000_000_000) };
    let sizes: Vec<usize> =
        [1_000_000, 10_000_000, 100_000_000, 1_000_000_000].into_iter().filter(|&n| n <= top).collect();
    let ks: &[usize] = if smoke() { &[32] } else { &[32, 1024, 65_536] };
    bench_backend(c, BackendKind::Cuda { ordinal: 0 }, "cuda", &sizes, ks);
}

criterion_group!(benches, cpu, cuda);
criterion_main!(benches);
