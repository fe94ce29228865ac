//! `bots simulate`: compare selectors on synthetic RL-finetuning runs in named or file-defined worlds
//! (see `bots::sim`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use bots::BackendKind;
use bots::Config;
use bots_cli::chart;
use bots_cli::sim::{
    run_selector, summarize, Selector, SelectorRun, Summary, World, WorldSpec, NAMED_WORLDS, SELECTORS,
};

/// Arguments of `bots simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// Worlds to run, comma-separated: named worlds (informative, misleading, small-pool), world
    /// files (.toml, .yaml or .json), or `all` for every named world.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    world: Vec<String>,
    /// Tasks in the pool; overrides every world's `tasks`.
    #[arg(long)]
    tasks: Option<usize>,
    /// Training steps; overrides every world's `steps`.
    #[arg(long)]
    steps: Option<usize>,
    /// Tasks per step (B); overrides every world's `batch` (and the config's).
    #[arg(long)]
    batch: Option<usize>,
    /// Rollouts per task (m); overrides every world's `rollouts` (and the config's m).
    #[arg(long)]
    rollouts: Option<u32>,
    /// Seed of the worlds and of every selector; overrides the config's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Comma-separated selectors: random, bots, bots-explicit, bots-implicit, oracle.
    #[arg(long, value_delimiter = ',', default_values_t = SELECTORS.map(String::from))]
    selectors: Vec<String>,
    /// Backend of the BOTS selectors: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
    /// BOTS hyper-parameters (YAML, TOML or JSON; Trinity-RFT keys accepted). Its batch and m are
    /// replaced by the world's.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Draw held-out accuracy and ETR over steps, one row per world, into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON instead of the tables.
    #[arg(long)]
    json: bool,
}

/// One world's runs.
struct WorldRuns {
    world: World,
    runs: Vec<SelectorRun>,
}

pub fn run(args: Args) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(s) = args.seed {
        config.seed = s;
    }
    let mut specs = Vec::new();
    for name in args.world.iter().map(|w| w.trim()) {
        if name == "all" {
            specs.extend(NAMED_WORLDS.iter().map(|(n, _)| WorldSpec::named(n).expect("named world")));
        } else {
            specs.push(WorldSpec::named_or_file(name)?);
        }
    }
    for spec in &mut specs {
        spec.tasks = args.tasks.unwrap_or(spec.tasks);
        spec.steps = args.steps.unwrap_or(spec.steps);
        spec.batch = args.batch.unwrap_or(spec.batch);
        spec.rollouts = args.rollouts.unwrap_or(spec.rollouts);
        spec.validate().with_context(|| format!("world `{}`", spec.name))?;
    }
    let selectors = args
        .selectors
        .iter()
        .map(|s| Selector::by_name(s.trim(), &config))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    config.validate()?;

    let total: usize = specs.iter().map(|s| s.steps * selectors.len()).sum();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>28} [{bar:40}] {pos}/{len} steps ({eta} left)")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut results = Vec::with_capacity(specs.len());
    for spec in specs {
        let name = spec.name.clone();
        let world = World::new(spec, config.seed).with_context(|| format!("world `{name}`"))?;
        let mut runs = Vec::with_capacity(selectors.len());
        for sel in &selectors {
            bar.set_message(format!("{name}: {}", sel.name()));
            let run = run_selector(&world, sel, args.backend, || bar.inc(1))
                .with_context(|| format!("world `{name}`, selector `{}`", sel.name()))?;
            runs.push(run);
        }
        results.push(WorldRuns { world, runs });
    }
    bar.finish_and_clear();
    if args.json {
        let worlds: Vec<_> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "world": r.world.spec,
                    "seed": r.world.seed,
                    "feature_correlation": { "weak": r.world.feature_correlation(&r.world.weak),
                                             "strong": r.world.feature_correlation(&r.world.strong) },
                    "selectors": summarize(&r.runs),
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&serde_json::json!({ "worlds": worlds }))?);
    } else {
        for r in &results {
            print_table(&r.world, &summarize(&r.runs));
        }
        println!("TTB: steps to reach random's final held-out accuracy, relative to random (- = never).");
        println!("held-out: final held-out accuracy. ETR: share of selected tasks with 0 < pass rate < 1.");
    }
    if let Some(path) = &args.plot {
        plot(path, &results).with_context(|| format!("drawing {}", path.display()))?;
        if !args.json {
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
}

fn print_table(world: &World, rows: &[Summary]) {
    let s = &world.spec;
    println!("world `{}`: {}", s.name, s.description);
    println!(
        "{} tasks ({} held out), {} skills, {} steps, batch {}, {} rollouts, seed {}",
        s.tasks,
        s.held_out,
        s.skills(),
        s.steps,
        s.batch,
        s.rollouts,
        world.seed,
    );
    println!(
        "features: {} rollouts, {:.0}% missing; correlation with the learner's pass rates: weak {:.2}, strong {:.2}",
        s.reference_rollouts,
        100.0 * s.missing_share,
        world.feature_correlation(&world.weak),
        world.feature_correlation(&world.strong),
    );
    println!("{:<14} {:>6} {:>9} {:>6} {:>10}", "selector", "TTB", "held-out", "ETR", "select ms");
    for r in rows {
        let ttb = r.ttb.map_or_else(|| "-".to_string(), |t| format!("{t:.2}"));
        println!("{:<14} {:>6} {:>9.3} {:>6.3} {:>10.3}", r.name, ttb, r.final_accuracy, r.etr, r.select_ms);
    }
    println!();
}

fn plot(path: &std::path::Path, results: &[WorldRuns]) -> Result<()> {
    let rows: Vec<chart::Row> = results
        .iter()
        .map(|r| chart::Row {
            title: r.world.spec.name.clone(),
            curves: r
                .runs
                .iter()
                .map(|run| chart::Curves {
                    name: run.name.clone(),
                    accuracy: run.accuracy.iter().map(|&a| a as f64).enumerate().collect(),
                    etr: run.etr.iter().map(|&e| e as f64).collect(),
                })
                .collect(),
        })
        .collect();
    chart::write_png(path, &rows)
}
