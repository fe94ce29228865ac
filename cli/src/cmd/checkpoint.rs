//! `bots checkpoint`.

use anyhow::Context;
use bots::checkpoint;
use serde::Serialize;

/// Checkpoint verbs.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a checkpoint's header and summary statistics (verifies the whole file).
    Inspect {
        file: std::path::PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// min / mean / max of one per-task quantity.
#[derive(Serialize)]
struct Summary {
    min: f64,
    mean: f64,
    max: f64,
}

fn summarize(values: impl Iterator<Item = f64>) -> Summary {
    let (mut min, mut max, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0u64);
    for v in values {
        min = min.min(v);
        max = max.max(v);
        sum += v;
        n += 1;
    }
    Summary { min, mean: if n > 0 { sum / n as f64 } else { f64::NAN }, max }
}

#[derive(Serialize)]
struct Report {
    file: String,
    header: checkpoint::Header,
    /// The pool it belongs to (`bots::Fingerprint::id`): the adapters put it in file names.
    fingerprint: String,
    alpha: Summary,
    beta: Summary,
    posterior_mean: Summary,
    effective_sample_size: Summary,
    /// Edges of the stored neighbour graph (`None` without one).
    neighbours: Option<usize>,
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Inspect { file, json } => {
            let header = checkpoint::read_header(&file).context("reading the checkpoint header")?;
            let (config, state) = checkpoint::load(&file).context("verifying the checkpoint")?;
            let fingerprint = bots::Fingerprint::of_state(&config, &state).id();
            let pairs = || state.alpha.iter().zip(&state.beta).map(|(&a, &b)| (a as f64, b as f64));
            let report = Report {
                file: file.display().to_string(),
                alpha: summarize(pairs().map(|(a, _)| a)),
                beta: summarize(pairs().map(|(_, b)| b)),
                posterior_mean: summarize(pairs().map(|(a, b)| a / (a + b))),
                effective_sample_size: summarize(pairs().map(|(a, b)| a + b)),
                neighbours: state.neighbours.as_ref().map(bots::Neighbours::edges),
                header,
                fingerprint,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_text(&report)?;
            }
            Ok(())
        }
    }
}

fn print_text(r: &Report) -> anyhow::Result<()> {
    let h = &r.header;
    println!("checkpoint   {}", r.file);
    println!("version      {}", h.version);
    println!("bytes        {}", h.file_len);
    println!("checksums    ok");
    println!("tasks (N)    {}", h.n);
    println!("fingerprint  {}", r.fingerprint);
    let mut flags = Vec::new();
    if h.flags & checkpoint::FLAG_PER_TASK_PRIOR != 0 {
        flags.push("per-task-prior");
    }
    if h.flags & checkpoint::FLAG_FEATURES != 0 {
        flags.push("features");
    }
    if h.flags & checkpoint::FLAG_FEATURES_F32 != 0 {
        flags.push("features-f32");
    }
    if h.flags & checkpoint::FLAG_MU_SET != 0 {
        flags.push("mu-set");
    }
    println!("flags        {:#x} [{}]", h.flags, flags.join(", "));
    println!("step         {}", h.step);
    println!("seed         {}", h.seed);
    match h.mu {
        Some(mu) => println!("mu           {mu}"),
        None => println!("mu           unset"),
    }
    println!("rho          {}", h.rho);
    match h.constant_prior {
        Some((a0, b0)) => println!("prior        constant Beta({a0}, {b0})"),
        None => println!("prior        per task"),
    }
    match h.features {
        Some(form) => println!(
            "features     {form:?} ({} bytes per task, {} columns)",
            form.bytes_per_task() / 2 * h.feature_columns,
            h.feature_columns
        ),
        None => println!("features     none"),
    }
    match (h.neighbour_k, &r.neighbours) {
        (0, _) => println!("neighbours   none"),
        (k, Some(edges)) => {
            println!("neighbours   k = {k}, {edges} edges, neighbour_weight {}", h.config.neighbour_weight)
        }
        (k, None) => println!("neighbours   k = {k}"),
    }
    println!("config       {}", serde_json::to_string(&h.config)?);
    println!("{:<22} {:>14} {:>14} {:>14}", "", "min", "mean", "max");
    for (name, s) in [
        ("alpha", &r.alpha),
        ("beta", &r.beta),
        ("posterior mean", &r.posterior_mean),
        ("alpha+beta (ESS)", &r.effective_sample_size),
    ] {
        println!("{name:<22} {:>14.6} {:>14.6} {:>14.6}", s.min, s.mean, s.max);
    }
    Ok(())
}
