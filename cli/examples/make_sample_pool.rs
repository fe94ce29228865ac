//! Generates the sample pool and replay log shipped in `data/`:
//!
//! * `sample_pool.jsonl`, `sample_pool.parquet`: 1000 tasks with columns `id`, `qwen2.5_7b_pass_rate`
//!   (weaker model) and `qwen3_30b_pass_rate` (stronger model), pass rates in multiples of 1/16, the
//!   weaker model at most as good as the stronger one on about 90% of the tasks.
//! * `sample_log.jsonl`: 4 steps of 32 tasks, the tasks BOTS (default config) selects at each step,
//!   with simulated outcomes: steps 0 and 2 as `pass_rates`, steps 1 and 3 as `successes`/`failures`
//!   counts (some tasks with fewer than m = 16 rollouts).
//!
//! Deterministic (its own SplitMix64, no dependence on a library's generator):
//!
//! ```text
//! cargo run --example make_sample_pool            # writes data/
//! cargo run --example make_sample_pool -- OUT_DIR
//! ```

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bots::{Backend, Config, CpuPool, Evidence, Features};
use parquet::basic::{Repetition, Type as PhysicalType};
use parquet::data_type::{DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

const N: usize = 1000;
const M: u32 = 16;

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Number of successes in `n` Bernoulli(p) trials.
    fn binomial(&mut self, n: u32, p: f64) -> u32 {
        (0..n).filter(|_| self.unit() < p).count() as u32
    }
}

/// Sixteenths: the observed pass rate of 16 rollouts.
fn rate(rng: &mut SplitMix, p: f64) -> f64 {
    rng.binomial(M, p) as f64 / M as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "data".into()));
    std::fs::create_dir_all(&out)?;
    let mut rng = SplitMix(2510_26374);

    // Latent difficulty: a task's true pass rate for the strong model, spread over [0, 1] with
    // extra mass at both ends (as in GURU: many tasks all-pass or all-fail).
    let mut truth = Vec::with_capacity(N);
    let (mut weak, mut strong) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for _ in 0..N {
        let u = rng.unit();
        let p_strong = if u < 0.15 {
            0.0
        } else if u < 0.3 {
            1.0
        } else {
            rng.unit()
        };
        // The weak model solves a fraction of what the strong one does; on ~10% of tasks it is better.
        let p_weak = if rng.unit() < 0.1 { (p_strong + 0.3 * rng.unit()).min(1.0) } else { p_strong * rng.unit() };
        strong.push(rate(&mut rng, p_strong));
        weak.push(rate(&mut rng, p_weak));
        truth.push(0.5 * (p_weak + p_strong));
    }

    // JSONL pool.
    let mut w = String::new();
    for k in 0..N {
        writeln!(w, "{{\"id\": {k}, \"qwen2.5_7b_pass_rate\": {}, \"qwen3_30b_pass_rate\": {}}}", weak[k], strong[k])?;
    }
    bots_cli::io::write_bytes_atomic(&out.join("sample_pool.jsonl"), w.as_bytes())?;

    // Parquet pool, the same rows.
    write_parquet(&out.join("sample_pool.parquet"), &weak, &strong)?;

    // Replay log: what BOTS with the default config selects, and simulated outcomes of the policy
    // (its true pass rate is the mean of the two reference models' on each task).
    let w32: Vec<f32> = weak.iter().map(|&v| v as f32).collect();
    let s32: Vec<f32> = strong.iter().map(|&v| v as f32).collect();
    let mut pool = CpuPool::new(Config::default(), N, Some(Features::from_f32(&w32, &s32)?))?;
    let mut log = String::new();
    for step in 0..4u64 {
        let tasks = pool.select_batch()?;
        let ids = tasks.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let evidence = if step % 2 == 0 {
            let rates: Vec<f32> = tasks.iter().map(|&t| rate(&mut rng, truth[t as usize]) as f32).collect();
            let shown = rates.iter().map(f32::to_string).collect::<Vec<_>>().join(", ");
            writeln!(log, "{{\"step\": {step}, \"tasks\": [{ids}], \"pass_rates\": [{shown}]}}")?;
            Evidence::pass_rates(tasks, rates)
        } else {
            // Every fourth task lost some rollouts (n_k < m).
            let (mut s, mut f) = (Vec::new(), Vec::new());
            for (i, &t) in tasks.iter().enumerate() {
                let n = if i % 4 == 3 { M - 1 - (rng.next() % 8) as u32 } else { M };
                let succ = rng.binomial(n, truth[t as usize]);
                s.push(succ as f32);
                f.push((n - succ) as f32);
            }
            let show = |v: &[f32]| v.iter().map(f32::to_string).collect::<Vec<_>>().join(", ");
            writeln!(
                log,
                "{{\"step\": {step}, \"tasks\": [{ids}], \"successes\": [{}], \"failures\": [{}]}}",
                show(&s),
                show(&f)
            )?;
            Evidence::counts(tasks, s, f)
        };
        pool.update(&evidence)?;
    }
    bots_cli::io::write_bytes_atomic(&out.join("sample_log.jsonl"), log.as_bytes())?;
    println!("wrote {N} tasks and 4 logged steps to {}", out.display());
    Ok(())
}

fn write_parquet(path: &Path, weak: &[f64], strong: &[f64]) -> Result<(), Box<dyn std::error::Error>> {
    let field = |name: &str, t| {
        Type::primitive_type_builder(name, t).with_repetition(Repetition::REQUIRED).build().map(Arc::new)
    };
    let fields = vec![
        field("id", PhysicalType::INT64)?,
        field("qwen2.5_7b_pass_rate", PhysicalType::DOUBLE)?,
        field("qwen3_30b_pass_rate", PhysicalType::DOUBLE)?,
    ];
    let schema = Arc::new(Type::group_type_builder("pool").with_fields(fields).build()?);
    let mut buf = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut buf, schema, Arc::new(WriterProperties::builder().build()))?;
    let mut group = writer.next_row_group()?;
    let ids: Vec<i64> = (0..weak.len() as i64).collect();
    let mut col = group.next_column()?.ok_or("no id column")?;
    col.typed::<Int64Type>().write_batch(&ids, None, None)?;
    col.close()?;
    for values in [weak, strong] {
        let mut col = group.next_column()?.ok_or("no feature column")?;
        col.typed::<DoubleType>().write_batch(values, None, None)?;
        col.close()?;
    }
    group.close()?;
    writer.close()?;
    bots_cli::io::write_bytes_atomic(path, &buf)?;
    Ok(())
}
