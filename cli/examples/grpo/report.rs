//! Measuring (held-out accuracy, pass rates) and reporting (the table, the chart).

use std::path::Path;

use anyhow::Result;
use bots_cli::chart;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::model::Policy;
use crate::tasks::{correct, prompt, Task};
use crate::{Args, Run};

/// Held-out accuracy: the mean pass rate of `EVAL_SAMPLES` answers per task sampled at temperature 1
/// (pass@1; the policy's real success rate, which GRPO sharpens), with the same draws at every
/// evaluation (a fixed seed), so the curves differ only by the weights.
pub(crate) fn accuracy(policy: &Policy, tasks: &[Task], seed: u64) -> Result<f64> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xe7a1);
    let rates = pass_rates(policy, tasks, EVAL_SAMPLES, 4096, &mut rng)?;
    Ok(rates.iter().map(|&r| r as f64).sum::<f64>() / tasks.len() as f64)
}

/// Samples per held-out task in [`accuracy`].
pub(crate) const EVAL_SAMPLES: usize = 4;

/// Each task's pass rate over `k` sampled answers.
pub(crate) fn pass_rates(
    policy: &Policy,
    tasks: &[Task],
    k: usize,
    chunk: usize,
    rng: &mut StdRng,
) -> Result<Vec<f32>> {
    let mut rates = Vec::with_capacity(tasks.len());
    for part in tasks.chunks((chunk / k).max(1)) {
        let prompts: Vec<Vec<u32>> =
            part.iter().flat_map(|t| std::iter::repeat_n(prompt(t, policy.max_len), k)).collect();
        let out = policy.generate(&prompts, Some(rng))?;
        for (i, t) in part.iter().enumerate() {
            let right = out[i * k..(i + 1) * k].iter().filter(|g| correct(t, g)).count();
            rates.push(right as f32 / k as f32);
        }
    }
    Ok(rates)
}

pub(crate) fn report(args: &Args, runs: &[Run], seconds: f64) {
    println!(
        "\n{} tasks (lengths 1..={}), {} held out, {} steps, batch {}, {} rollouts, seed {}",
        args.tasks, args.max_len, args.held_out, args.steps, args.batch, args.rollouts, args.seed
    );
    println!(
        "{:<14} {:>9} {:>9} {:>6} {:>22} {:>8}",
        "selector", "acc start", "acc final", "ETR", "steps to random final", "seconds"
    );
    let random_final = runs.iter().find(|r| r.name == "random").and_then(|r| r.accuracy.last()).map(|a| a.1);
    for r in runs {
        let etr = r.etr.iter().sum::<f64>() / r.etr.len().max(1) as f64;
        let to = match random_final {
            Some(target) => r
                .steps_to(target)
                .map_or("not reached".to_string(), |s| format!("{s} ({:.2}x)", s as f64 / args.steps as f64)),
            None => "-".into(),
        };
        println!(
            "{:<14} {:>9.3} {:>9.3} {:>6.3} {:>22} {:>8.0}",
            r.name,
            r.accuracy[0].1,
            r.accuracy.last().unwrap().1,
            etr,
            to,
            r.seconds
        );
    }
    println!("total {seconds:.0} s (warm start, reference pass rates and every run)");
}

pub(crate) fn plot(path: &Path, runs: &[Run]) -> Result<()> {
    let curves = runs
        .iter()
        .map(|r| chart::Curves { name: r.name.clone(), accuracy: r.accuracy.clone(), etr: r.etr.clone() })
        .collect();
    chart::write_png(path, &[chart::Row { title: String::new(), curves }])
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// The table over seeds: per selector the final held-out accuracy (mean ± sample sd, and its range)
/// and the steps to reach that seed's random final accuracy (mean ± sd over the seeds that reached
/// it, and how many did; a seed that never reaches it counts as not reached, not as `--steps`).
pub(crate) fn seeds_report(args: &Args, seeds: &[u64], all: &[Vec<Run>]) {
    println!(
        "\n{} seeds ({}); {} tasks, {} held out, {} steps, batch {}, {} rollouts",
        seeds.len(),
        seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        args.tasks,
        args.held_out,
        args.steps,
        args.batch,
        args.rollouts
    );
    println!("{:<16} {:>16} {:>14} {:>26}", "selector", "acc final", "range", "steps to random final");
    for (i, name) in all[0].iter().map(|r| r.name.clone()).enumerate() {
        let finals: Vec<f64> = all.iter().map(|runs| runs[i].accuracy.last().unwrap().1).collect();
        let steps: Vec<f64> = all
            .iter()
            .filter_map(|runs| {
                let target = runs.iter().find(|r| r.name == "random")?.accuracy.last()?.1;
                runs[i].steps_to(target).map(|s| s as f64)
            })
            .collect();
        let (m, sd) = mean_sd(&finals);
        let lo = finals.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = finals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let to = if steps.is_empty() {
            format!("never (0/{})", seeds.len())
        } else {
            let (sm, ssd) = mean_sd(&steps);
            format!("{sm:.0} ± {ssd:.0} ({}/{})", steps.len(), seeds.len())
        };
        println!("{name:<16} {:>16} {:>14} {to:>26}", format!("{m:.3} ± {sd:.3}"), format!("{lo:.3}-{hi:.3}"));
    }
}
