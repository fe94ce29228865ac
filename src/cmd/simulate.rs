//! `bots simulate`: compare selectors on one synthetic RL-finetuning run (see `bots::sim`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use bots::backend::BackendKind;
use bots::sim::{run_selector, summarize, Selector, SelectorRun, SimConfig, Summary, World};
use bots::Config;

/// Arguments of `bots simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// Tasks in the pool.
    #[arg(long, default_value_t = SimConfig::default().tasks)]
    tasks: usize,
    /// Training steps.
    #[arg(long, default_value_t = SimConfig::default().steps)]
    steps: usize,
    /// Tasks per step (B); overrides the config's batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Rollouts per task (m); overrides the config's m.
    #[arg(long)]
    rollouts: Option<u32>,
    /// Seed of the world and of every selector; overrides the config's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Comma-separated selectors: random, bots, bots-explicit, bots-implicit, oracle.
    #[arg(long, value_delimiter = ',', default_value = "random,bots,bots-explicit,bots-implicit,oracle")]
    selectors: Vec<String>,
    /// Backend of the BOTS selectors: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    backend: BackendKind,
    /// BOTS hyper-parameters (YAML, TOML or JSON; Trinity-RFT keys accepted).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Draw ability and ETR over steps for every selector into this PNG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(b) = args.batch {
        config.batch = b;
    }
    if let Some(m) = args.rollouts {
        config.m = m;
    }
    if let Some(s) = args.seed {
        config.seed = s;
    }
    config.validate()?;
    let sim = SimConfig {
        tasks: args.tasks,
        steps: args.steps,
        batch: config.batch,
        rollouts: config.m,
        seed: config.seed,
        ..SimConfig::default()
    };
    if sim.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let selectors = args
        .selectors
        .iter()
        .map(|s| Selector::by_name(s.trim(), &config))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let world = World::new(sim.clone())?;

    let bar = indicatif::ProgressBar::new((sim.steps * selectors.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} steps ({eta} left)")
            .expect("static template")
            .progress_chars("=> "),
    );
    let mut runs = Vec::with_capacity(selectors.len());
    for sel in &selectors {
        bar.set_message(sel.name().to_string());
        let run = run_selector(&world, sel, args.backend, || bar.inc(1))
            .with_context(|| format!("selector `{}`", sel.name()))?;
        runs.push(run);
    }
    bar.finish_and_clear();
    let summary = summarize(&runs);
    if args.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "selectors": summary }))?);
    } else {
        print_table(&sim, &summary);
    }
    if let Some(path) = &args.plot {
        plot(path, &runs).with_context(|| format!("drawing {}", path.display()))?;
        if !args.json {
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
}

fn print_table(sim: &SimConfig, rows: &[Summary]) {
    println!(
        "{} tasks, {} steps, batch {}, {} rollouts, seed {}",
        sim.tasks, sim.steps, sim.batch, sim.rollouts, sim.seed
    );
    println!("{:<14} {:>6} {:>6} {:>14} {:>10}", "selector", "ETR", "TTB", "final ability", "select ms");
    for r in rows {
        let ttb = r.ttb.map_or_else(|| "-".to_string(), |t| format!("{t:.2}"));
        println!("{:<14} {:>6.3} {:>6} {:>14.3} {:>10.3}", r.name, r.etr, ttb, r.final_ability, r.select_ms);
    }
    println!("ETR: share of selected tasks with 0 < pass rate < 1. TTB: steps to reach random's final ability, relative to random (- = never).");
}

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");

fn plot(path: &std::path::Path, runs: &[SelectorRun]) -> Result<()> {
    use plotters::prelude::*;
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled font could not be loaded"))?;
    let root = BitMapBackend::new(path, (1100, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let steps = runs.iter().map(|r| r.etr.len()).max().unwrap_or(1);
    let (lo, hi) = runs.iter().flat_map(|r| r.ability.iter()).fold((f32::MAX, f32::MIN), |(lo, hi), &a| (lo.min(a), hi.max(a)));
    let window = (steps / 20).max(1);
    for (area, title, is_ability) in [(left, "ability", true), (right, "ETR (moving average)", false)] {
        let y = if is_ability { lo..hi.max(lo + 1e-3) } else { 0f32..1f32 };
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0..steps, y)?;
        chart.configure_mesh().x_desc("step").draw()?;
        for (i, r) in runs.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(usize, f32)> = if is_ability {
                r.ability.iter().copied().enumerate().collect()
            } else {
                (0..r.etr.len())
                    .map(|t| {
                        let from = t.saturating_sub(window - 1);
                        let w = &r.etr[from..=t];
                        (t, w.iter().sum::<f32>() / w.len() as f32)
                    })
                    .collect()
            };
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(r.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        let corner = if is_ability { SeriesLabelPosition::UpperLeft } else { SeriesLabelPosition::LowerRight };
        chart
            .configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
