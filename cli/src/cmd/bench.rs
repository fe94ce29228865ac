//! `bots bench`: times full steps (select + update) on a backend.
//!
//! Byte model (what `gbps` divides by): the bytes one step must move per task, whatever the backend:
//! read and write alpha and beta (16 bytes), read the two features (4 as f16, 8 as f32 with
//! `--f32-features`) and, with per-task priors, read alpha0 and beta0 (8); so 20 bytes/task for the
//! default pool with features. Scratch traffic
//! (the CUDA backend's 2-byte digit cache, written and read once) and the batch itself are not counted,
//! so the figure is a lower bound on the bandwidth actually used.

use std::time::Instant;

use anyhow::Context;
use bots::__private::{u01, Purpose, TaskStream};
use bots::{BackendKind, Config, Evidence, FeatureForm, Features, KernelMode};
use half::f16;

/// Arguments of `bots bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Backend: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    backend: String,
    /// Tasks in the pool.
    #[arg(long, default_value_t = 1_000_000)]
    tasks: usize,
    /// Tasks selected (and updated) per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed steps (after the warm-up).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Seed of the pool's Philox streams and of the synthetic features and outcomes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// CUDA only: time the device-resident trainer verbs (`select_into` + `update_from_device_rates`,
    /// with the selected tasks' outcomes already on the device, one synchronization at the end) instead
    /// of the host verbs (`select` + `update`, which copy and synchronize every step).
    #[arg(long)]
    device_verbs: bool,
    /// Store the synthetic features as f32 (8 bytes/task, the form of non-dyadic pass rates such as
    /// k/10) instead of f16 (4 bytes/task).
    #[arg(long)]
    f32_features: bool,
    /// CUDA only, with `--device-verbs`: capture one whole step (`select_into` +
    /// `update_from_device_rates`) in a CUDA graph after the warm-up and time its replays.
    #[arg(long, requires = "device_verbs")]
    graph: bool,
    /// CUDA only: instead of steps, time a device-to-device copy that moves the same bytes one step
    /// must move (half of them read, half written): the roofline yardstick for `gbps`. No pool is built;
    /// the row's backend is `cuda-copy` (and its verbs `copy`), never `cuda`.
    #[arg(long, conflicts_with_all = ["device_verbs", "graph"])]
    yardstick: bool,
    /// The CUDA kernels' mode (`Config::kernel_mode`): `exact` (bit for bit with the CPU backend) or
    /// `fast` (FMA and the approximate transcendentals: the same distributions, not the same bits). The
    /// CPU backend draws the exact stream either way. Rows say the mode (`kernel_mode`).
    #[arg(long, default_value = "exact")]
    kernel_mode: KernelMode,
}

/// Bytes per task one step must read and write (see the module doc).
pub fn bytes_per_task(features: Option<FeatureForm>, per_task_prior: bool) -> u64 {
    16 + features.map_or(0, |f| f.bytes_per_task() as u64) + if per_task_prior { 8 } else { 0 }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let kind: BackendKind = args.backend.parse().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(args.tasks >= 1, "--tasks must be at least 1");
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    anyhow::ensure!((1..=args.tasks).contains(&args.batch), "--batch must be in 1..=--tasks");
    let config = Config { batch: args.batch, seed: args.seed, kernel_mode: args.kernel_mode, ..Default::default() };
    let t_setup = Instant::now();
    if args.yardstick {
        let BackendKind::Cuda { ordinal } = kind else { anyhow::bail!("--yardstick needs --backend cuda") };
        return yardstick(ordinal, &args);
    }
    let features = synthetic_features(args.tasks, args.seed, args.f32_features);
    if args.device_verbs {
        let BackendKind::Cuda { ordinal } = kind else { anyhow::bail!("--device-verbs needs --backend cuda") };
        let pool = bots::CudaPool::on_device(ordinal, config.clone(), args.tasks, Some(features))
            .context("opening the pool")?;
        let setup = t_setup.elapsed().as_secs_f64();
        return device_loop(pool, &args, setup);
    }
    let mut pool = bots::open(kind, config.clone(), args.tasks, Some(features)).context("opening the pool")?;
    let setup = t_setup.elapsed().as_secs_f64();
    let m = config.m;
    let mut step = |i: usize| -> anyhow::Result<()> {
        let tasks = pool.select_batch()?;
        let rates = tasks
            .iter()
            .map(|&t| {
                let w = TaskStream::new(args.seed, i as u64, t).block(Purpose::User, 1);
                (w[0] % (m + 1)) as f32 / m as f32
            })
            .collect();
        pool.update(&Evidence::pass_rates(tasks, rates))?;
        Ok(())
    };
    for i in 0..args.warmup {
        step(i)?;
    }
    let t0 = Instant::now();
    for i in 0..args.steps {
        step(args.warmup + i)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    report(&args, &pool.name(), secs, setup)
}

/// Synthetic reference features (the weak model below the strong one, both in [0, 1]), made in
/// parallel and straight to the chosen form: at 10^9 tasks a serial loop would take most of a
/// device-run budget.
fn synthetic_features(n: usize, seed: u64, f32_form: bool) -> Features {
    use rayon::prelude::*;
    let pair = |t: usize| {
        let w = TaskStream::new(seed ^ 0x5eed, 0, t as u32).block(Purpose::User, 0);
        let (a, b) = (u01(w[0]), u01(w[1]));
        (a.min(b), a.max(b))
    };
    if f32_form {
        let (weak, strong): (Vec<f32>, Vec<f32>) = (0..n).into_par_iter().map(pair).unzip();
        Features::F32 { columns: vec![weak, strong] }
    } else {
        let (weak, strong): (Vec<f16>, Vec<f16>) =
            (0..n).into_par_iter().map(pair).map(|(a, b)| (f16::from_f32(a), f16::from_f32(b))).unzip();
        Features::F16 { columns: vec![weak, strong] }
    }
}

/// The device-resident loop: no host round trip inside the timed steps.
fn device_loop(mut pool: bots::CudaPool, args: &Args, setup: f64) -> anyhow::Result<()> {
    use bots::Backend;
    let k = args.batch;
    let stream = pool.stream().clone();
    let rates: Vec<f32> = (0..k).map(|i| (i % 17) as f32 / 16.0).collect();
    let rates = stream.clone_htod(&rates).context("uploading outcomes")?;
    let mut out = stream.alloc_zeros::<u32>(k).context("allocating the selection")?;
    for _ in 0..args.warmup {
        pool.select_into(k, &mut out)?;
        pool.update_from_device_rates(&out, &rates)?;
    }
    pool.sync()?;
    if args.graph {
        use cudarc::driver::sys;
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .context("beginning the stream capture")?;
        let captured = pool.select_into(k, &mut out).and_then(|()| pool.update_from_device_rates(&out, &rates));
        // End the capture whatever happened, so the stream is usable again before any error is returned.
        let graph = stream.end_capture(sys::CUgraphInstantiate_flags(0)).context("ending the stream capture")?;
        captured.context("capturing a step")?;
        let graph = graph.context("the capture recorded no graph")?;
        graph.launch().context("replaying the graph (warm-up)")?;
        stream.synchronize().context("synchronizing")?;
        let t0 = Instant::now();
        for _ in 0..args.steps {
            graph.launch().context("replaying the graph")?;
        }
        stream.synchronize().context("synchronizing")?;
        let secs = t0.elapsed().as_secs_f64();
        return report(args, &pool.name(), secs, setup);
    }
    let t0 = Instant::now();
    for _ in 0..args.steps {
        pool.select_into(k, &mut out)?;
        pool.update_from_device_rates(&out, &rates)?;
    }
    pool.sync()?;
    let secs = t0.elapsed().as_secs_f64();
    report(args, &pool.name(), secs, setup)
}

/// The roofline yardstick: a device-to-device copy of half the bytes a step moves (so the copy reads
/// and writes the step's bytes in all), timed like the steps. The device is opened through a one-task
/// pool, so the same checks (driver, PTX) and errors apply.
fn yardstick(ordinal: usize, args: &Args) -> anyhow::Result<()> {
    use bots::Backend;
    let t_setup = Instant::now();
    // rho = 0: a pool without reference features.
    let config = Config { batch: 1, seed: args.seed, rho: 0.0, ..Default::default() };
    let pool = bots::CudaPool::on_device(ordinal, config, 1, None).context("opening the device")?;
    let stream = pool.stream().clone();
    let form = if args.f32_features { FeatureForm::F32 } else { FeatureForm::F16 };
    let half = (bytes_per_task(Some(form), false) as usize * args.tasks).div_ceil(2);
    let src = stream.alloc_zeros::<u8>(half).context("allocating the copy's source")?;
    let mut dst = stream.alloc_zeros::<u8>(half).context("allocating the copy's destination")?;
    let setup = t_setup.elapsed().as_secs_f64();
    for _ in 0..args.warmup {
        stream.memcpy_dtod(&src, &mut dst).context("copying")?;
    }
    stream.synchronize().context("synchronizing")?;
    let t0 = Instant::now();
    for _ in 0..args.steps {
        stream.memcpy_dtod(&src, &mut dst).context("copying")?;
    }
    stream.synchronize().context("synchronizing")?;
    let secs = t0.elapsed().as_secs_f64();
    report(args, &pool.name(), secs, setup)
}

fn report(args: &Args, name: &str, secs: f64, setup: f64) -> anyhow::Result<()> {
    let ms = secs * 1e3 / args.steps as f64;
    let form = if args.f32_features { FeatureForm::F32 } else { FeatureForm::F16 };
    let bytes = bytes_per_task(Some(form), false) as f64 * args.tasks as f64;
    let gbps = bytes / (ms * 1e-3) / 1e9;
    let (mut backend, device) = match name.split_once(':') {
        Some((b, d)) => (b.to_string(), d.to_string()),
        None => (name.to_string(), cpu_name()),
    };
    // The yardstick is a copy, not a step: its backend says so, so that no reader (or script) taking
    // the fastest `cuda` row at a size takes the copy.
    if args.yardstick {
        backend.push_str("-copy");
    }
    if args.json {
        // Written by hand to keep the documented key order.
        let s = |v: &str| serde_json::Value::from(v).to_string();
        println!(
            "{{\"backend\":{},\"device\":{},\"tasks\":{},\"batch\":{},\"ms_per_step\":{},\"gbps\":{},\"verbs\":{},\"setup_s\":{},\"features\":{},\"kernel_mode\":{}}}",
            s(&backend),
            s(&device),
            args.tasks,
            args.batch,
            serde_json::Value::from(ms),
            serde_json::Value::from(gbps),
            s(verbs(args)),
            serde_json::Value::from((setup * 1e3).round() / 1e3),
            s(if args.f32_features { "f32" } else { "f16" }),
            s(args.kernel_mode.name())
        );
    } else {
        println!(
            "{backend} ({device}): {} tasks, batch {}, {} steps: {ms:.3} ms/step, {gbps:.2} GB/s effective \
             ({} bytes/task/step: alpha, beta read+write, {:?} features read); {} verbs; {} kernels; setup {setup:.1} s",
            args.tasks,
            args.batch,
            args.steps,
            bytes_per_task(Some(form), false),
            form,
            verbs(args),
            args.kernel_mode.name()
        );
    }
    Ok(())
}

/// The `verbs` column: what was timed (`copy` is the yardstick, not a step).
fn verbs(args: &Args) -> &'static str {
    match (args.yardstick, args.graph, args.device_verbs) {
        (true, _, _) => "copy",
        (_, true, _) => "graph",
        (_, _, true) => "device",
        _ => "host",
    }
}

fn cpu_name() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string()))
    });
    let threads = rayon::current_num_threads();
    format!("{} x{threads}", model.unwrap_or_else(|| "cpu".into()))
}
