//! A synthetic RL-finetuning loop for comparing task selectors before spending GPU weeks.
//!
//! # The learner model
//! - Task k has a latent difficulty `d_k ~ N(0, difficulty_sd²)`; a model of ability θ passes one
//!   rollout of it with probability `sigmoid(θ - d_k)` (a Rasch / 1-PL item-response model).
//! - The learner starts at ability `theta0`. Each step the selector picks B tasks, each gets m
//!   Bernoulli rollouts, and only tasks with some but not all rollouts passing give GRPO a non-zero
//!   advantage. The learner's ability grows with the share of such informative tasks:
//!   `θ_{t+1} = θ_t + learning_rate · (informative tasks / B)`.
//! - Reference features are what a weaker (`theta_weak`) and a stronger (`theta_strong`) model scored
//!   on each task: pass rates of `reference_rollouts` Bernoulli rollouts at their abilities.
//! - All randomness is Philox keyed by the seed, so every selector faces the same pool, the same
//!   features, and the same rollout coin flips for the same (step, task) (common random numbers).
//!
//! Metrics: ETR (share of selected tasks with a pass rate strictly between 0 and 1, over the whole
//! run), TTB (steps to reach the random selector's final ability, relative to random's step count),
//! final ability, and selection + update time per step.

use std::time::Instant;

use crate::backend::{open, Backend, BackendKind};
use crate::config::Config;
use crate::dist::box_muller;
use crate::error::{BotsError, Result};
use crate::evidence::Evidence;
use crate::pool::Features;
use crate::rng::{u01, Purpose, TaskStream};
use crate::select::{score_key, select_top_k};

/// Salt that separates the simulator's streams from the selectors' draws under the same seed.
const SIM_SALT: u64 = 0x5EED_51A7_0000_0001;
/// Pseudo-steps of the streams that make the pool (never reached by a run).
const STEP_DIFFICULTY: u64 = u64::MAX;
const STEP_WEAK: u64 = u64::MAX - 1;
const STEP_STRONG: u64 = u64::MAX - 2;
const STEP_RANDOM: u64 = u64::MAX - 3;

/// Parameters of the simulated world.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub tasks: usize,
    pub steps: usize,
    pub batch: usize,
    pub rollouts: u32,
    pub seed: u64,
    pub difficulty_sd: f32,
    pub theta0: f32,
    pub theta_weak: f32,
    pub theta_strong: f32,
    pub reference_rollouts: u32,
    pub learning_rate: f32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tasks: 100_000,
            steps: 500,
            batch: 32,
            rollouts: 16,
            seed: 42,
            difficulty_sd: 6.0,
            theta0: 0.0,
            theta_weak: -1.0,
            theta_strong: 2.0,
            reference_rollouts: 16,
            learning_rate: 0.005,
        }
    }
}

/// A task selector to compare.
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    /// Uniform without replacement.
    Random,
    /// BOTS with the given config (on the chosen backend).
    Bots { name: String, config: Config },
    /// The tasks whose true pass rate at the current ability is nearest the target (an upper bound).
    Oracle { target: f32 },
}

impl Selector {
    /// The selector's display name.
    pub fn name(&self) -> &str {
        match self {
            Selector::Random => "random",
            Selector::Bots { name, .. } => name,
            Selector::Oracle { .. } => "oracle",
        }
    }

    /// A selector by name: `random`, `bots`, `bots-explicit` (rho = 0), `bots-implicit` (rho = 1),
    /// `oracle`; BOTS variants start from `base` with the batch and m of the simulation.
    pub fn by_name(name: &str, base: &Config) -> std::result::Result<Selector, String> {
        let bots = |name: &str, rho: f32| Selector::Bots { name: name.into(), config: Config { rho, ..base.clone() } };
        match name {
            "random" => Ok(Selector::Random),
            "bots" => Ok(bots("bots", base.rho)),
            "bots-explicit" => Ok(bots("bots-explicit", 0.0)),
            "bots-implicit" => Ok(bots("bots-implicit", 1.0)),
            "oracle" => Ok(Selector::Oracle { target: base.target }),
            other => Err(format!(
                "unknown selector `{other}`: choose from random, bots, bots-explicit, bots-implicit, oracle"
            )),
        }
    }
}

/// The simulated pool: difficulties and reference features.
#[derive(Clone, Debug)]
pub struct World {
    pub config: SimConfig,
    pub difficulty: Vec<f32>,
    pub weak: Vec<f32>,
    pub strong: Vec<f32>,
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Passing rollouts out of `m` for a task of true pass rate `p`, from `stream` (purpose User).
fn rollouts(p: f32, m: u32, stream: &TaskStream) -> u32 {
    let mut s = 0;
    for j in 0..m {
        let w = stream.block(Purpose::User, j / 4);
        if u01(w[(j % 4) as usize]) < p {
            s += 1;
        }
    }
    s
}

impl World {
    /// Draws the pool of `config.tasks` tasks.
    pub fn new(config: SimConfig) -> Result<World> {
        if config.tasks == 0 {
            return Err(BotsError::Empty("the simulated pool (--tasks 0)"));
        }
        if config.batch == 0 || config.batch > config.tasks {
            return Err(BotsError::InvalidK { k: config.batch, len: config.tasks });
        }
        if config.rollouts == 0 || config.reference_rollouts == 0 {
            return Err(BotsError::config("rollouts", "must be at least 1"));
        }
        let seed = config.seed ^ SIM_SALT;
        let n = config.tasks;
        let difficulty: Vec<f32> = (0..n)
            .map(|k| {
                let w = TaskStream::new(seed, STEP_DIFFICULTY, k as u32).block(Purpose::User, 0);
                box_muller(w[0], w[1]).0 * config.difficulty_sd
            })
            .collect();
        let reference = |theta: f32, step: u64| -> Vec<f32> {
            let m = config.reference_rollouts;
            (0..n)
                .map(|k| {
                    let p = sigmoid(theta - difficulty[k]);
                    rollouts(p, m, &TaskStream::new(seed, step, k as u32)) as f32 / m as f32
                })
                .collect()
        };
        let weak = reference(config.theta_weak, STEP_WEAK);
        let strong = reference(config.theta_strong, STEP_STRONG);
        Ok(World { config, difficulty, weak, strong })
    }

    /// The features as the library takes them.
    pub fn features(&self) -> Result<Features> {
        Features::from_f32(&self.weak, &self.strong)
    }

    /// True pass rate of task k at ability theta.
    pub fn pass_rate(&self, theta: f32, k: usize) -> f32 {
        sigmoid(theta - self.difficulty[k])
    }
}

/// What one selector did over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectorRun {
    pub name: String,
    /// Ability after each step (length steps + 1, starting at theta0).
    pub ability: Vec<f32>,
    /// Share of informative tasks in each step's batch.
    pub etr: Vec<f32>,
    /// Mean wall time of selection + update per step, in milliseconds.
    pub select_ms: f64,
}

impl SelectorRun {
    /// ETR over the whole run.
    pub fn mean_etr(&self) -> f64 {
        self.etr.iter().map(|&e| e as f64).sum::<f64>() / self.etr.len().max(1) as f64
    }
    /// Final ability.
    pub fn final_ability(&self) -> f32 {
        *self.ability.last().unwrap_or(&f32::NAN)
    }
    /// First step at which the ability reaches `level`, if it does.
    pub fn steps_to(&self, level: f32) -> Option<usize> {
        self.ability.iter().position(|&a| a >= level)
    }
}

/// Runs one selector over the world. `on_step` is called after each step (for progress bars).
pub fn run_selector(
    world: &World,
    selector: &Selector,
    backend: BackendKind,
    mut on_step: impl FnMut(),
) -> Result<SelectorRun> {
    let c = &world.config;
    let (n, b, m) = (c.tasks, c.batch, c.rollouts);
    let seed = c.seed ^ SIM_SALT;
    let mut pool: Option<Box<dyn Backend>> = match selector {
        Selector::Bots { config, .. } => {
            let cfg = Config { batch: b, m, ..config.clone() };
            Some(open(backend, cfg, n, Some(world.features()?))?)
        }
        _ => None,
    };
    let mut theta = c.theta0;
    let mut ability = vec![theta];
    let mut etr = Vec::with_capacity(c.steps);
    let mut busy = 0.0f64;
    for t in 0..c.steps {
        let started = Instant::now();
        let tasks: Vec<u32> = match (selector, pool.as_mut()) {
            (Selector::Random, _) => select_top_k(n, b, |k| {
                let w = TaskStream::new(seed, STEP_RANDOM - 1 - t as u64, k as u32).block(Purpose::User, 0);
                ((w[0] as u64) << 32) | (!(k as u32)) as u64
            }),
            (Selector::Oracle { target }, _) => {
                select_top_k(n, b, |k| score_key(-(target - world.pass_rate(theta, k)).abs(), k as u32))
            }
            (Selector::Bots { .. }, Some(pool)) => pool.select(b)?,
            (Selector::Bots { .. }, None) => unreachable!("a BOTS selector always has a pool"),
        };
        let mut selection_time = started.elapsed().as_secs_f64();
        let successes: Vec<u32> = tasks
            .iter()
            .map(|&k| rollouts(world.pass_rate(theta, k as usize), m, &TaskStream::new(seed, t as u64, k)))
            .collect();
        let informative = successes.iter().filter(|&&s| s > 0 && s < m).count();
        if let Some(pool) = pool.as_mut() {
            let started = Instant::now();
            let s: Vec<f32> = successes.iter().map(|&s| s as f32).collect();
            let f: Vec<f32> = successes.iter().map(|&s| (m - s) as f32).collect();
            pool.update(&Evidence::counts(tasks, s, f))?;
            selection_time += started.elapsed().as_secs_f64();
        }
        busy += selection_time;
        let share = informative as f32 / b as f32;
        theta += c.learning_rate * share;
        ability.push(theta);
        etr.push(share);
        on_step();
    }
    Ok(SelectorRun {
        name: selector.name().to_string(),
        ability,
        etr,
        select_ms: 1e3 * busy / c.steps.max(1) as f64,
    })
}

/// Summary row of one selector.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Summary {
    pub name: String,
    pub etr: f64,
    /// Steps to reach random's final ability relative to random's steps; `None` if never reached or
    /// if random was not run.
    pub ttb: Option<f64>,
    pub final_ability: f32,
    pub select_ms: f64,
}

/// Summaries of a set of runs; TTB is relative to the run named `random`, if present.
pub fn summarize(runs: &[SelectorRun]) -> Vec<Summary> {
    let random = runs.iter().find(|r| r.name == "random");
    runs.iter()
        .map(|r| {
            let ttb = random.and_then(|base| {
                let target = base.final_ability();
                let base_steps = base.steps_to(target)?;
                let steps = r.steps_to(target)?;
                Some(steps as f64 / base_steps.max(1) as f64)
            });
            Summary { name: r.name.clone(), etr: r.mean_etr(), ttb, final_ability: r.final_ability(), select_ms: r.select_ms }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SimConfig {
        SimConfig { tasks: 3000, steps: 120, ..SimConfig::default() }
    }

    #[test]
    fn world_is_deterministic_and_features_are_rollout_rates() {
        let a = World::new(small()).unwrap();
        let b = World::new(small()).unwrap();
        assert_eq!(a.difficulty, b.difficulty);
        assert_eq!(a.weak, b.weak);
        assert!(a.weak.iter().chain(&a.strong).all(|&f| (0.0..=1.0).contains(&f) && (f * 16.0).fract() == 0.0));
        // The stronger reference passes more on average (2 + 1 ability units stronger).
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean(&a.strong) > mean(&a.weak) + 0.1);
    }

    /// The claim of the paper on this world: BOTS's ETR well above random's and TTB below 1. Random's
    /// ETR here is the pool's share of informative tasks (about 0.4 with sd 3); BOTS must beat it by a
    /// margin far outside the binomial noise of 120·32 selections (sd < 0.01).
    #[test]
    fn bots_beats_random() {
        let world = World::new(small()).unwrap();
        let base = Config { batch: 32, m: 16, ..Config::default() };
        let run = |name: &str| {
            run_selector(&world, &Selector::by_name(name, &base).unwrap(), BackendKind::Cpu, || {}).unwrap()
        };
        let runs = vec![run("random"), run("bots"), run("oracle")];
        let s = summarize(&runs);
        assert!(s[1].etr > s[0].etr + 0.2, "{s:?}");
        assert!(s[2].etr >= s[1].etr - 0.05, "{s:?}");
        assert!(s[1].ttb.unwrap() < 1.0, "{s:?}");
        assert_eq!(s[0].ttb, Some(1.0));
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(World::new(SimConfig { tasks: 0, ..small() }).is_err());
        assert!(World::new(SimConfig { batch: 5000, ..small() }).is_err());
        assert!(Selector::by_name("bogus", &Config::default()).is_err());
    }
}
