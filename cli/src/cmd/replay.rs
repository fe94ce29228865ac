//! `bots replay`: rebuild a posterior from a pool file and a JSONL log of observed outcomes.
//!
//! The steps, each its own function: load the config and the pool and open the backend (or, with
//! `--resume`, open the backend from a checkpoint, whose config and features it carries; the log then
//! starts at its step), apply the log, write the output (and with `--checkpoint`, the final state as a
//! checkpoint). The output files are created only when everything succeeded, so a log replayed in two
//! halves through a checkpoint gives exactly the output of the whole log replayed at once.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bots::{Backend, BackendKind, Config};
use bots_cli::io::{load_pool, replay, write_posterior, LoadedPool, ReplaySummary};

/// Arguments of `bots replay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The task pool: `.jsonl` or `.parquet`, one row per task; task ids are 0-based row order.
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub pool: Option<PathBuf>,
    /// Continue from a checkpoint (written by `--checkpoint`) instead of a fresh pool: its config,
    /// features and step are used, and the log must start at that step.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pool", "config", "features", "no_features", "embeddings"])]
    pub resume: Option<PathBuf>,
    /// Also write the final state as a checkpoint (`bots checkpoint inspect` reads it).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// The replay log: JSONL, one step a line, e.g. {"step": 0, "tasks": [3, 17], "pass_rates": [0.25, 1.0]}
    /// or with "successes"/"failures" counts instead of "pass_rates".
    #[arg(long, value_name = "FILE")]
    pub log: PathBuf,
    /// Where to write the posterior: `.jsonl` or `.parquet`. Written only if the whole replay succeeds.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Hyper-parameters (`.yaml`/`.yml`, `.toml` or `.json`; Trinity-RFT's keys are accepted).
    /// Default: Trinity-RFT's bots.yaml values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The pool's reference pass-rate columns, weakest first: `WEAK,STRONG`, or K >= 1 names
    /// `REF0,REF1,...` (overrides the config's feature_keys).
    #[arg(long, value_name = "WEAK,STRONG", conflicts_with = "no_features")]
    pub features: Option<String>,
    /// Load the pool without reference features (only with rho = 0 and no prior_strength).
    #[arg(long)]
    pub no_features: bool,
    /// The pool's column of task embeddings (an array of numbers per row): the pool gets the exact
    /// cosine k-nearest-neighbour graph over them, and with `neighbour_weight` (eta) > 0 in the config
    /// each batch's outcomes become evidence for its neighbours (docs/EVIDENCE-SOURCES.md §2).
    #[arg(long, value_name = "COLUMN")]
    pub embeddings: Option<String>,
    /// Out-neighbours per task of the graph built from --embeddings (1 to 64).
    #[arg(long, default_value_t = 16, value_name = "K")]
    pub neighbour_k: usize,
    /// Drop neighbours less similar than this (cosine; edges need > 0 in any case).
    #[arg(long, default_value_t = 0.0, value_name = "COS")]
    pub neighbour_min_similarity: f32,
    /// Cap on how many tasks may list one task as a neighbour (its in-degree; bounds a step's
    /// cost at batch · cap). Default: 4 · K.
    #[arg(long, value_name = "N")]
    pub neighbour_max_in: Option<usize>,
    /// Backend: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu", value_name = "cpu|cuda")]
    pub backend: String,
}

pub fn run(args: Args) -> Result<()> {
    let kind: BackendKind = args.backend.parse().map_err(anyhow::Error::msg)?;
    // Refuse a bad output path before any work is done.
    bots_cli::io::Format::of(&args.out)?;
    let mut backend = match (&args.resume, &args.pool) {
        (Some(ckpt), _) => {
            bots::open_checkpoint(kind, ckpt).with_context(|| format!("cannot resume from {}", ckpt.display()))?
        }
        (None, Some(pool_path)) => {
            let config = load_config(args.config.as_deref(), args.features.as_deref())?;
            let pool = read_pool(pool_path, &config, args.no_features)?;
            let n = pool.len;
            let graph = read_graph(pool_path, &args, &config)?;
            bots::open_with(kind, config, n, pool.features, graph)
                .with_context(|| format!("cannot open a pool of {n} tasks from {}", pool_path.display()))?
        }
        (None, None) => bail!("give the pool with --pool FILE, or a checkpoint with --resume FILE"),
    };
    let n = backend.len();
    let summary = apply_log(backend.as_mut(), &args.log)?;
    write_output(backend.as_ref(), &args.out)?;
    if let Some(ckpt) = &args.checkpoint {
        backend.save_checkpoint(ckpt).with_context(|| format!("cannot write the checkpoint {}", ckpt.display()))?;
    }
    let mu = summary.last.and_then(|r| r.mu).map_or("unset".to_string(), |m| m.to_string());
    eprintln!(
        "replayed {} steps on {} tasks ({}): step {}, mu {mu}, rho {}; wrote {}",
        summary.steps,
        n,
        backend.name(),
        backend.step(),
        summary.last.map_or(backend.config().rho, |r| r.rho),
        args.out.display()
    );
    Ok(())
}

/// The config file (or the defaults), with `--features WEAK,STRONG` (or any 1 to 64 names) applied.
pub fn load_config(path: Option<&Path>, features: Option<&str>) -> Result<Config> {
    let mut config = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(spec) = features {
        let keys: Vec<String> = spec.split(',').map(|k| k.trim().to_string()).collect();
        if keys.iter().any(String::is_empty) {
            bail!("--features expects column names, weakest first: WEAK,STRONG or REF0,REF1,... (got {spec:?})");
        }
        config.feature_keys = keys;
        config.validate()?;
    }
    Ok(config)
}

/// The neighbour graph over the pool's `--embeddings` column, if given (and `neighbour_weight` > 0).
pub fn read_graph(path: &Path, args: &Args, config: &Config) -> Result<Option<bots::Neighbours>> {
    let Some(key) = &args.embeddings else {
        if config.neighbour_weight > 0.0 {
            bail!(
                "the config has neighbour_weight = {}: give the pool's embedding column with --embeddings COLUMN",
                config.neighbour_weight
            );
        }
        return Ok(None);
    };
    if config.neighbour_weight == 0.0 {
        bail!("--embeddings builds a neighbour graph, which needs neighbour_weight (eta) > 0 in the config");
    }
    let e = bots_cli::io::load_embeddings(path, key)?;
    let k = args.neighbour_k;
    let g = bots::Neighbours::from_embeddings(&e.values, e.dim, k, args.neighbour_min_similarity)
        .with_context(|| format!("cannot build the neighbour graph from column `{key}` of {}", path.display()))?;
    Ok(Some(g.cap_in_degree(args.neighbour_max_in.unwrap_or(4 * k))))
}

/// Loads the pool with the config's feature columns, or without features.
pub fn read_pool(path: &Path, config: &Config, no_features: bool) -> Result<LoadedPool> {
    if no_features {
        if config.rho > 0.0 {
            bail!(
                "--no-features needs rho = 0 (the config has rho = {}): implicit evidence needs reference features",
                config.rho
            );
        }
        if config.prior_strength.is_some() {
            bail!("--no-features cannot be used with prior_strength: per-task priors need reference features");
        }
        return Ok(load_pool(path, None)?);
    }
    let keys: Vec<&str> = config.feature_keys.iter().map(String::as_str).collect();
    let pool = load_pool(path, Some(&keys)).map_err(|e| {
        let hint = if config.rho == 0.0 && config.prior_strength.is_none() {
            " (with rho = 0 a pool needs no features: pass --no-features)"
        } else {
            " (choose the columns with --features WEAK,STRONG, weakest first)"
        };
        anyhow::Error::new(e).context(format!("cannot load the pool{hint}"))
    })?;
    Ok(pool)
}

/// Applies every logged step, in order, starting at the backend's current step.
pub fn apply_log(backend: &mut dyn Backend, log: &Path) -> Result<ReplaySummary> {
    replay(backend, log).context("replay stopped; no output was written")
}

/// Writes the backend's posterior, atomically.
pub fn write_output(backend: &dyn Backend, out: &Path) -> Result<()> {
    let state = backend.to_host()?;
    write_posterior(out, &state).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
