//! `bots simulate`: compare selectors on synthetic RL-finetuning runs in named or file-defined worlds
//! (see `bots::sim`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use bots::BackendKind;
use bots::Config;
use bots_cli::chart;
use bots_cli::sim::{
    run_selector, summarize, Selector, SelectorRun, Summary, World, WorldSpec, NAMED_WORLDS, NEIGHBOUR_K, SELECTORS,
};

/// Arguments of `bots simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// Worlds to run, comma-separated: named worlds (informative, misleading, small-pool,
    /// no-references, misleading-embeddings), world
    /// files (.toml, .yaml or .json), or `all` for every named world.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    world: Vec<String>,
    /// Tasks in the pool; overrides every world's `tasks`.
    #[arg(long)]
    tasks: Option<usize>,
    /// Training steps; overrides every world's `steps` (a world that appends tasks mid-run then
    /// appends them at the same share of the run).
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
    /// Comma-separated selectors: random, bots, bots-explicit, bots-implicit, bots-neighbours,
    /// bots-combined, oracle. A world skips those it cannot run (a line under its table says why):
    /// reference evidence needs reference evals, neighbour evidence embeddings.
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
    /// Selectors this world cannot run, with the reason ([`Selector::cannot_run`]).
    skipped: Vec<(String, &'static str)>,
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
        *spec = spec.clone().with_steps(args.steps.unwrap_or(spec.steps));
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
        let mut skipped = Vec::new();
        for sel in &selectors {
            if let Some(why) = sel.cannot_run(&world) {
                skipped.push((sel.name().to_string(), why));
                bar.inc(world.spec.steps as u64);
                continue;
            }
            bar.set_message(format!("{name}: {}", sel.name()));
            let run = run_selector(&world, sel, args.backend, || bar.inc(1))
                .with_context(|| format!("world `{name}`, selector `{}`", sel.name()))?;
            runs.push(run);
        }
        results.push(WorldRuns { world, runs, skipped });
    }
    bar.finish_and_clear();
    if args.json {
        let worlds: Vec<_> = results
            .iter()
            .map(|r| {
                let w = &r.world;
                let features = w.spec.references.then(|| {
                    serde_json::json!({ "weak": w.feature_correlation(&w.weak),
                                        "strong": w.feature_correlation(&w.strong) })
                });
                let skipped: Vec<_> =
                    r.skipped.iter().map(|(name, why)| serde_json::json!({ "name": name, "reason": why })).collect();
                serde_json::json!({
                    "world": w.spec,
                    "seed": w.seed,
                    "feature_correlation": features,
                    "neighbour_correlation": w.neighbour_correlation(),
                    "selectors": summarize(&r.runs),
                    "skipped": skipped,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&serde_json::json!({ "worlds": worlds }))?);
    } else {
        for r in &results {
            print_table(&r.world, &summarize(&r.runs), &r.skipped);
        }
        println!("TTB: steps to reach random's final held-out accuracy, relative to random (- = never).");
        println!("held-out: final held-out accuracy. ETR: share of selected tasks with 0 < pass rate < 1.");
        println!("Brier: expected Brier score (p - q)² + q(1 - q) of the posterior mean p against the true pass");
        println!("rate q, over the unselected tasks that got the source's evidence, every step; shadow: the same");
        println!("batches and outcomes in a pool without implicit evidence (rho = 0, no neighbours).");
    }
    if let Some(path) = &args.plot {
        plot(path, &results).with_context(|| format!("drawing {}", path.display()))?;
        if !args.json {
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
}

fn print_table(world: &World, rows: &[Summary], skipped: &[(String, &str)]) {
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
    if s.references {
        println!(
            "features: {} rollouts, {:.0}% missing; correlation with the learner's pass rates: weak {:.2}, strong {:.2}",
            s.reference_rollouts,
            100.0 * s.missing_share,
            world.feature_correlation(&world.weak),
            world.feature_correlation(&world.strong),
        );
    } else {
        println!("features: none (no reference evals)");
    }
    if s.appended() > 0 {
        println!(
            "appended: the last {} tasks ({:.0}%) join the pool at step {}",
            s.appended(),
            100.0 * s.append_share,
            s.append_at
        );
    }
    if let Some(r) = world.neighbour_correlation() {
        println!(
            "embeddings: {}, {} dims, noise {}; pass rate vs its {} neighbours' mean: correlation {:.2}",
            s.embeddings.as_str(),
            s.embedding_dim,
            s.embedding_noise,
            NEIGHBOUR_K,
            r,
        );
    }
    println!("{:<16} {:>6} {:>9} {:>6} {:>10}", "selector", "TTB", "held-out", "ETR", "select ms");
    for r in rows {
        let ttb = r.ttb.map_or_else(|| "-".to_string(), |t| format!("{t:.2}"));
        println!("{:<16} {:>6} {:>9.3} {:>6.3} {:>10.3}", r.name, ttb, r.final_accuracy, r.etr, r.select_ms);
    }
    let mut reasons: Vec<&str> = skipped.iter().map(|(_, why)| *why).collect();
    reasons.dedup();
    for why in reasons {
        let names: Vec<&str> = skipped.iter().filter(|(_, w)| *w == why).map(|(n, _)| n.as_str()).collect();
        println!("not run: {} ({why})", names.join(", "));
    }
    if rows.iter().any(|r| !r.brier.is_empty()) {
        println!("{:<16} {:<11} {:>6} {:>7} {:>6}", "Brier", "source", "own", "shadow", "ratio");
        for r in rows {
            for b in &r.brier {
                println!("{:<16} {:<11} {:>6.3} {:>7.3} {:>6.2}", r.name, b.source, b.brier, b.shadow, b.ratio);
            }
        }
    }
    if rows.iter().any(|r| r.appended.is_some()) {
        println!("{:<16} {:<11} {:>6} {:>7} {:>6}", "appended", "source", "own", "prior", "ratio");
        for r in rows {
            if let Some(a) = &r.appended {
                println!("{:<16} {:<11} {:>6.3} {:>7.3} {:>6.2}", r.name, a.source, a.brier, a.prior, a.ratio);
            }
        }
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
