//! The simulated world: tasks that load on a few of K skills, a learner and two reference models
//! with their own skill profiles, reference features from a few rollouts (some of them missing), and
//! the learner's update from the GRPO signal of each trained task.
//!
//! A world is described by a [`WorldSpec`] (a TOML, YAML or JSON file; the named worlds live in
//! `worlds/` and are compiled in) and drawn by [`World::new`] from Philox streams keyed by the seed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use bots::__private::{box_muller, exp, u01, Purpose, TaskStream};
use bots::{Features, Result};

use bots::Neighbours;

use crate::err;

/// Salt that separates the simulator's streams from the selectors' draws under the same seed.
pub(crate) const SIM_SALT: u64 = 0x5EED_51A7_0000_0001;
/// Pseudo-steps of the streams that make the world (a run's steps never reach them).
const STEP_POOL: u64 = u64::MAX;
const STEP_HELD_OUT: u64 = u64::MAX - 1;
const STEP_WEAK: u64 = u64::MAX - 2;
const STEP_STRONG: u64 = u64::MAX - 3;
const STEP_MISSING: u64 = u64::MAX - 4;
/// Pseudo-steps of the embedding streams: the basis directions (one stream per direction) and each
/// task's noise. Far from both a run's steps (counting up from 0) and the random selector's (down).
const STEP_EMBED_BASIS: u64 = 1 << 62;
const STEP_EMBED_NOISE: u64 = (1 << 62) + 1;
/// First pseudo-step of the random selector's draws (step t uses `STEP_RANDOM - t`).
pub(crate) const STEP_RANDOM: u64 = u64::MAX - 5;

/// Most skills one task loads on.
pub const MAX_LOADS: usize = 4;
/// Most skill dimensions of a world.
pub const MAX_SKILLS: usize = 64;

/// The value a missing reference eval gets. Trinity-RFT's `examples/bots/ref_eval_collect.py` starts
/// the new feature column at `0.0` for every row of the data set and overwrites only the rows found in
/// the reference eval log, so a task missing from the eval keeps a pass rate of 0.0.
pub const MISSING_FILL: f32 = 0.0;

/// How a world embeds its tasks (the `embeddings` key); see [`WorldSpec`] and [`World::new`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingMode {
    /// No embeddings: the neighbour selectors do not run.
    #[default]
    None,
    /// Each task's embedding is its own skill loadings plus its difficulty, with noise: neighbours
    /// under cosine similarity share skills and difficulty, so their pass rates predict the task's.
    Informative,
    /// The embedding sees a surface topic that pools skill j with skill j + ⌈K/2⌉ (mod K): tasks
    /// that need different skills look alike, so a task's neighbours are, half of them, tasks of
    /// another skill of the same raw difficulty.
    Misleading,
}

impl EmbeddingMode {
    /// The key's value as a world file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingMode::None => "none",
            EmbeddingMode::Informative => "informative",
            EmbeddingMode::Misleading => "misleading",
        }
    }
}

/// Out-neighbours per task of the k-NN graph of a world's embeddings (`neighbour_k`, the library's
/// default).
pub const NEIGHBOUR_K: usize = 16;
/// Cap on a task's in-degree in that graph (`neighbour_max_in`'s default, 4 · k: a hub keeps its
/// in-edges of highest similarity; docs/EVIDENCE-SOURCES.md §2.3).
pub const NEIGHBOUR_MAX_IN: usize = 4 * NEIGHBOUR_K;
/// Most embedding dimensions of a world.
pub const MAX_EMBEDDING_DIM: usize = 1024;

fn yes() -> bool {
    true
}
fn default_reference_rollouts() -> u32 {
    8
}
fn default_embedding_dim() -> usize {
    16
}
fn default_embedding_noise() -> f32 {
    0.5
}
fn default_embedding_difficulty() -> f32 {
    1.0
}

/// The parameters of a world, as a world file holds them (unknown keys are errors). Every key is
/// required except `references` (default true), the reference keys when `references = false`, and the
/// embedding keys (default: no embeddings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldSpec {
    /// Short name (what `--world` takes for the named worlds).
    pub name: String,
    /// One line on what the world is for.
    pub description: String,
    /// Tasks in the training pool.
    pub tasks: usize,
    /// Tasks in the held-out set (drawn like the pool, never trained on).
    pub held_out: usize,
    /// Training steps.
    pub steps: usize,
    /// Tasks per step (B).
    pub batch: usize,
    /// Rollouts per task (m, the GRPO group size).
    pub rollouts: u32,
    /// Each task loads on 1 to this many distinct skills (uniformly), with equal weights summing to 1.
    pub skills_per_task: usize,
    /// Task difficulty `d ~ N(difficulty_mean, difficulty_sd²)`.
    pub difficulty_mean: f32,
    pub difficulty_sd: f32,
    /// The learner's starting skill profile; its length is the number of skills K.
    pub learner: Vec<f32>,
    /// Whether the pool has reference evals (default true). Without them the pool has no features,
    /// so only selectors with rho = 0 run (`bots-explicit`, `bots-neighbours`); `weak`, `strong`,
    /// `reference_rollouts` and `missing_share` are then left out.
    #[serde(default = "yes")]
    pub references: bool,
    /// The weaker reference model's skill profile (K values; required with references).
    #[serde(default)]
    pub weak: Vec<f32>,
    /// The stronger reference model's skill profile (K values; required with references).
    #[serde(default)]
    pub strong: Vec<f32>,
    /// Rollouts behind each reference pass rate (n_ref; default 8).
    #[serde(default = "default_reference_rollouts")]
    pub reference_rollouts: u32,
    /// Share of tasks missing from each reference model's eval, independently per model; they get
    /// [`MISSING_FILL`] (default 0).
    #[serde(default)]
    pub missing_share: f32,
    /// Step size of the learner: see [`learn`].
    pub learning_rate: f32,
    /// Task embeddings: `none` (default), `informative` or `misleading` ([`EmbeddingMode`]). A task's
    /// embedding is `Σ_i w_i u_{topic(s_i)} + embedding_difficulty · z · u_K + embedding_noise · g`:
    /// `u_0..u_K` orthonormal directions (Gram–Schmidt of Gaussian draws, one set per world), `s_i`, `w_i`
    /// the task's skills and weights, `topic(j) = j` (informative) or `j mod ⌈K/2⌉` (misleading),
    /// `z = (d - difficulty_mean)/difficulty_sd` its standardised difficulty, and `g ~ N(0, I/dim)`
    /// per task (norm about 1, the norm of a one-skill topic).
    #[serde(default)]
    pub embeddings: EmbeddingMode,
    /// Embedding dimensions (default 16; at least K + 1).
    #[serde(default = "default_embedding_dim")]
    pub embedding_dim: usize,
    /// Scale of each embedding's isotropic noise, relative to a one-skill topic (default 0.5).
    #[serde(default = "default_embedding_noise")]
    pub embedding_noise: f32,
    /// Weight of the standardised-difficulty coordinate (default 1; 0 = the embedding sees topic only).
    #[serde(default = "default_embedding_difficulty")]
    pub embedding_difficulty: f32,
    /// Share of the pool, in [0, 1), held back at the start and appended to every selector's pool at
    /// step `append_at` (default 0: none): the last `round(append_share · tasks)` tasks by id
    /// ([`WorldSpec::appended`]). BOTS pools get them with `Backend::append` (their reference columns,
    /// and their neighbour rows over all the embeddings); random and the oracle start sampling them.
    #[serde(default)]
    pub append_share: f32,
    /// The step (in 1..steps) at whose start the held-back tasks join the pool (with `append_share`).
    #[serde(default)]
    pub append_at: usize,
}

/// The named worlds, compiled in from `worlds/*.toml` (in the order `--world all` runs them).
pub const NAMED_WORLDS: [(&str, &str); 5] = [
    ("informative", include_str!("../../worlds/informative.toml")),
    ("misleading", include_str!("../../worlds/misleading.toml")),
    ("small-pool", include_str!("../../worlds/small-pool.toml")),
    ("no-references", include_str!("../../worlds/no-references.toml")),
    ("misleading-embeddings", include_str!("../../worlds/misleading-embeddings.toml")),
];

impl WorldSpec {
    /// Parses a world from text in the given format (`toml`, `yaml`/`yml` or `json`) and validates it.
    pub fn from_str_format(text: &str, format: &str) -> std::result::Result<WorldSpec, String> {
        let value = bots::__private::parse_value(text, format)?;
        let spec: WorldSpec = serde_json::from_value(value).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    /// Loads a world file; the format follows the extension.
    pub fn load(path: &Path) -> Result<WorldSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| err::io(path, e))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        WorldSpec::from_str_format(&text, &ext).map_err(|m| err::parse(path, 0, m))
    }

    /// A named world (`informative`, `misleading`, `small-pool`).
    pub fn named(name: &str) -> Option<WorldSpec> {
        let (_, text) = NAMED_WORLDS.iter().find(|(n, _)| *n == name)?;
        Some(WorldSpec::from_str_format(text, "toml").expect("the named worlds are valid (tested)"))
    }

    /// A named world, or else a world file at that path.
    pub fn named_or_file(name_or_path: &str) -> Result<WorldSpec> {
        if let Some(spec) = WorldSpec::named(name_or_path) {
            return Ok(spec);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<&str> = NAMED_WORLDS.iter().map(|(n, _)| *n).collect();
            return Err(err::config(
                "world",
                format!("`{name_or_path}` is neither a named world ({}) nor an existing file", names.join(", ")),
            ));
        }
        WorldSpec::load(path)
    }

    /// Tasks held back and appended at step `append_at`: `round(append_share · tasks)`.
    pub fn appended(&self) -> usize {
        (self.append_share as f64 * self.tasks as f64).round() as usize
    }

    /// Tasks in the pool at the start (ids `0..starting_tasks()`; the rest are appended).
    pub fn starting_tasks(&self) -> usize {
        self.tasks - self.appended()
    }

    /// This world with `steps` steps; the held-back tasks are appended at the same share of the run
    /// (`append_at` scaled, at least step 1), so that `--steps` keeps a world valid.
    pub fn with_steps(self, steps: usize) -> WorldSpec {
        let append_at = if self.appended() > 0 && steps != self.steps {
            (self.append_at * steps / self.steps.max(1)).max(1)
        } else {
            self.append_at
        };
        WorldSpec { steps, append_at, ..self }
    }

    /// The number of skill dimensions K.
    pub fn skills(&self) -> usize {
        self.learner.len()
    }

    /// Checks every parameter; the error names the key and what to fix.
    pub fn validate(&self) -> Result<()> {
        let k = self.skills();
        let bad = |key: &str, reason: String| Err(err::config(key, reason));
        let most = u32::MAX as usize; // task ids are 32-bit
        if !(1..=most).contains(&self.tasks) {
            return bad("tasks", format!("must be in 1..={most}"));
        }
        if !(1..=most).contains(&self.held_out) {
            return bad("held_out", format!("must be in 1..={most} (held-out accuracy is the progress measure)"));
        }
        if self.steps == 0 {
            return bad("steps", "must be at least 1".into());
        }
        if self.batch == 0 || self.batch > self.tasks {
            return bad("batch", format!("must be in 1..={} (the pool's size), got {}", self.tasks, self.batch));
        }
        if self.rollouts == 0 || self.reference_rollouts == 0 {
            return bad("rollouts", "rollouts and reference_rollouts must be at least 1".into());
        }
        if !(1..=MAX_SKILLS).contains(&k) {
            return bad("learner", format!("needs 1 to {MAX_SKILLS} skills, got {k}"));
        }
        for (key, profile) in [("weak", &self.weak), ("strong", &self.strong)] {
            if !self.references {
                if !profile.is_empty() {
                    return bad(key, "is set but references = false: leave it out".into());
                }
            } else if profile.len() != k {
                return bad(
                    key,
                    format!("has {} skills but the learner has {k}: give one value per skill", profile.len()),
                );
            }
        }
        if let Some((key, _)) = [("learner", &self.learner), ("weak", &self.weak), ("strong", &self.strong)]
            .into_iter()
            .find(|(_, p)| p.iter().any(|v| !v.is_finite()))
        {
            return bad(key, "every skill must be a finite number".into());
        }
        if !(1..=MAX_LOADS.min(k)).contains(&self.skills_per_task) {
            return bad("skills_per_task", format!("must be in 1..={}", MAX_LOADS.min(k)));
        }
        let sd_ok = self.difficulty_sd >= 0.0 && self.difficulty_sd.is_finite();
        if !self.difficulty_mean.is_finite() || !sd_ok {
            return bad("difficulty_sd", "difficulty_mean must be finite and difficulty_sd finite and >= 0".into());
        }
        if !(0.0..=1.0).contains(&self.missing_share) {
            return bad("missing_share", format!("must be in [0, 1], got {}", self.missing_share));
        }
        if !(self.learning_rate >= 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate", format!("must be finite and >= 0, got {}", self.learning_rate));
        }
        if !(k + 1..=MAX_EMBEDDING_DIM).contains(&self.embedding_dim) {
            return bad(
                "embedding_dim",
                format!("must be in {}..={MAX_EMBEDDING_DIM} (skills + 1), got {}", k + 1, self.embedding_dim),
            );
        }
        for (key, v) in [("embedding_noise", self.embedding_noise), ("embedding_difficulty", self.embedding_difficulty)]
        {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(key, format!("must be finite and >= 0, got {v}"));
            }
        }
        if self.embeddings != EmbeddingMode::None && self.tasks <= NEIGHBOUR_K {
            return bad("tasks", format!("embeddings need more than {NEIGHBOUR_K} tasks (the neighbours of each)"));
        }
        if !(0.0..1.0).contains(&self.append_share) {
            return bad("append_share", format!("must be in [0, 1), got {}", self.append_share));
        }
        if self.appended() > 0 {
            if !(1..self.steps).contains(&self.append_at) {
                return bad(
                    "append_at",
                    format!("must be in 1..{} (a step of the run), got {}", self.steps, self.append_at),
                );
            }
            let start = self.tasks - self.appended();
            let least =
                if self.embeddings == EmbeddingMode::None { self.batch } else { self.batch.max(NEIGHBOUR_K + 1) };
            if start < least {
                return bad(
                    "append_share",
                    format!(
                        "leaves {start} tasks at the start, fewer than {least} (the batch, and the neighbours of each)"
                    ),
                );
            }
        }
        Ok(())
    }
}

/// One task: up to [`MAX_LOADS`] skills with weights summing to 1 (unused slots have weight 0), and a
/// difficulty. A model with skill profile θ passes one rollout with probability
/// `sigmoid(Σ_i weight_i · θ[skill_i] - difficulty)` (a multidimensional Rasch model).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Task {
    pub skill: [u8; MAX_LOADS],
    pub weight: [f32; MAX_LOADS],
    pub difficulty: f32,
}

#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

impl Task {
    /// Draws task `k` of the stream at pseudo-step `step`: difficulty from block 0, the number of
    /// skills and which ones (a partial Fisher–Yates shuffle of 0..K) from block 1.
    fn draw(spec: &WorldSpec, seed: u64, step: u64, k: usize) -> Task {
        let stream = TaskStream::new(seed, step, k as u32);
        let w0 = stream.block(Purpose::User, 0);
        let w1 = stream.block(Purpose::User, 1);
        let difficulty = spec.difficulty_mean + spec.difficulty_sd * box_muller(w0[0], w0[1]).0;
        let n_skills = spec.skills();
        let loads = 1 + (w0[2] as usize % spec.skills_per_task);
        let mut order: Vec<u8> = (0..n_skills as u8).collect();
        let mut task = Task { skill: [0; MAX_LOADS], weight: [0.0; MAX_LOADS], difficulty };
        for i in 0..loads {
            let j = i + w1[i] as usize % (n_skills - i);
            order.swap(i, j);
            task.skill[i] = order[i];
            task.weight[i] = 1.0 / loads as f32;
        }
        task
    }

    /// The logit of one rollout's pass probability for skill profile `theta`.
    #[inline]
    pub fn logit(&self, theta: &[f32]) -> f32 {
        let mut z = -self.difficulty;
        for i in 0..MAX_LOADS {
            z += self.weight[i] * theta[self.skill[i] as usize];
        }
        z
    }

    /// The pass probability of one rollout for skill profile `theta`.
    #[inline]
    pub fn pass_rate(&self, theta: &[f32]) -> f32 {
        sigmoid(self.logit(theta))
    }
}

/// Passing rollouts out of `m` for a task of true pass rate `p`, from `stream` (purpose User).
pub(crate) fn rollouts(p: f32, m: u32, stream: &TaskStream) -> u32 {
    let mut s = 0;
    for j in 0..m {
        let w = stream.block(Purpose::User, j / 4);
        if u01(w[(j % 4) as usize]) < p {
            s += 1;
        }
    }
    s
}

/// The GRPO signal of a group of m binary outcomes with s passes: their variance `s(m-s)/m²`
/// (0 when all pass or all fail, at most 1/4). GRPO's advantages are the outcomes centred on the
/// group mean (and divided by the group's standard deviation): a group with no variance has none.
pub fn grpo_signal(successes: u32, m: u32) -> f32 {
    let (s, m) = (successes as f32, m as f32);
    s * (m - s) / (m * m)
}

/// The learner's update from one trained task: every skill the task loads on moves by
/// `learning_rate · weight · signal`; no other skill moves.
pub fn learn(theta: &mut [f32], task: &Task, signal: f32, learning_rate: f32) {
    for i in 0..MAX_LOADS {
        if task.weight[i] > 0.0 {
            theta[task.skill[i] as usize] += learning_rate * task.weight[i] * signal;
        }
    }
}

/// Whether task k is missing from reference model `which`'s eval (0 = weak, 1 = strong).
fn is_missing(spec: &WorldSpec, salted_seed: u64, k: usize, which: usize) -> bool {
    u01(TaskStream::new(salted_seed, STEP_MISSING, k as u32).block(Purpose::User, 0)[which]) < spec.missing_share
}

/// `dim` standard normal values from `stream` (Box–Muller on its blocks, two values per pair of words).
fn gaussian(stream: &TaskStream, dim: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(dim + 3);
    for b in 0..dim.div_ceil(4) {
        let w = stream.block(Purpose::User, b as u32);
        let (z0, z1) = box_muller(w[0], w[1]);
        let (z2, z3) = box_muller(w[2], w[3]);
        v.extend([z0, z1, z2, z3]);
    }
    v.truncate(dim);
    v
}

/// K + 1 orthonormal directions of the embedding space (Gram–Schmidt of Gaussian draws): one per
/// skill's topic, the last for difficulty.
fn embedding_basis(spec: &WorldSpec, salted_seed: u64) -> Vec<Vec<f32>> {
    let dim = spec.embedding_dim;
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(spec.skills() + 1);
    for j in 0..=spec.skills() {
        let mut v: Vec<f64> = gaussian(&TaskStream::new(salted_seed, STEP_EMBED_BASIS, j as u32), dim)
            .iter()
            .map(|&x| x as f64)
            .collect();
        for u in &basis {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= norm);
        basis.push(v);
    }
    basis.into_iter().map(|v| v.into_iter().map(|a| a as f32).collect()).collect()
}

/// The embeddings of the pool's tasks, row-major (`embedding_dim` per task); empty without embeddings.
/// See [`WorldSpec::embeddings`] for the model.
fn embed(spec: &WorldSpec, salted_seed: u64, pool: &[Task]) -> Vec<f32> {
    let topics = match spec.embeddings {
        EmbeddingMode::None => return Vec::new(),
        EmbeddingMode::Informative => spec.skills(),
        EmbeddingMode::Misleading => spec.skills().div_ceil(2),
    };
    let dim = spec.embedding_dim;
    let basis = embedding_basis(spec, salted_seed);
    let noise_scale = spec.embedding_noise / (dim as f32).sqrt();
    let mut out = Vec::with_capacity(pool.len() * dim);
    for (k, task) in pool.iter().enumerate() {
        let z =
            if spec.difficulty_sd > 0.0 { (task.difficulty - spec.difficulty_mean) / spec.difficulty_sd } else { 0.0 };
        let mut e: Vec<f32> = gaussian(&TaskStream::new(salted_seed, STEP_EMBED_NOISE, k as u32), dim)
            .into_iter()
            .map(|g| noise_scale * g)
            .collect();
        for i in 0..MAX_LOADS {
            if task.weight[i] > 0.0 {
                let topic = &basis[task.skill[i] as usize % topics];
                e.iter_mut().zip(topic).for_each(|(a, u)| *a += task.weight[i] * u);
            }
        }
        let scale = spec.embedding_difficulty * z;
        e.iter_mut().zip(&basis[spec.skills()]).for_each(|(a, u)| *a += scale * u);
        out.extend(e);
    }
    out
}

/// A drawn world: the training pool, the held-out set, the reference features and the embeddings.
#[derive(Clone, Debug)]
pub struct World {
    pub spec: WorldSpec,
    pub seed: u64,
    pub pool: Vec<Task>,
    pub held_out: Vec<Task>,
    /// The weaker reference's pass rate on each pool task (`reference_rollouts` rollouts, or
    /// [`MISSING_FILL`] where missing); empty without references.
    pub weak: Vec<f32>,
    /// The stronger reference's pass rate on each pool task; empty without references.
    pub strong: Vec<f32>,
    /// The pool's task embeddings, row-major (`embedding_dim` per task); empty without embeddings.
    pub embeddings: Vec<f32>,
    /// The exact cosine k-NN graph of the starting pool's embeddings ([`NEIGHBOUR_K`] per task, edges
    /// of similarity above 0, in-degree capped at [`NEIGHBOUR_MAX_IN`]); `None` without embeddings.
    pub neighbours: Option<Neighbours>,
    /// The appended tasks' out-neighbour rows (`appended · NEIGHBOUR_K` ids and weights, as
    /// `NewTasks::with_neighbours` takes them): `Neighbours::knn_rows` over every task's embedding,
    /// with the new edges capped so that no task's in-degree passes [`NEIGHBOUR_MAX_IN`] (the new
    /// edges of lowest similarity go; old rows cannot change). `None` without embeddings or appends.
    pub appended_neighbours: Option<(Vec<u32>, Vec<f32>)>,
}

impl World {
    /// Draws the world of `spec` under `seed`.
    pub fn new(spec: WorldSpec, seed: u64) -> Result<World> {
        spec.validate()?;
        let salted = seed ^ SIM_SALT;
        let pool: Vec<Task> = (0..spec.tasks).map(|k| Task::draw(&spec, salted, STEP_POOL, k)).collect();
        let held_out: Vec<Task> = (0..spec.held_out).map(|k| Task::draw(&spec, salted, STEP_HELD_OUT, k)).collect();
        let reference = |profile: &[f32], step: u64, which: usize| -> Vec<f32> {
            let m = spec.reference_rollouts;
            pool.iter()
                .enumerate()
                .map(|(k, task)| {
                    if is_missing(&spec, salted, k, which) {
                        MISSING_FILL
                    } else {
                        let stream = TaskStream::new(salted, step, k as u32);
                        rollouts(task.pass_rate(profile), m, &stream) as f32 / m as f32
                    }
                })
                .collect()
        };
        let (weak, strong) = if spec.references {
            (reference(&spec.weak, STEP_WEAK, 0), reference(&spec.strong, STEP_STRONG, 1))
        } else {
            (Vec::new(), Vec::new())
        };
        let embeddings = embed(&spec, salted, &pool);
        let (dim, start) = (spec.embedding_dim, spec.starting_tasks());
        let (neighbours, appended_neighbours) = if embeddings.is_empty() {
            (None, None)
        } else {
            let graph = Neighbours::from_embeddings(&embeddings[..start * dim], dim, NEIGHBOUR_K, 0.0)?;
            let graph = graph.cap_in_degree(NEIGHBOUR_MAX_IN);
            let rows = if start < spec.tasks {
                let (ids, w) = Neighbours::knn_rows(&embeddings, dim, NEIGHBOUR_K, 0.0, start..spec.tasks)?;
                Some(cap_new_edges(&graph, spec.tasks, ids, w))
            } else {
                None
            };
            (Some(graph), rows)
        };
        Ok(World { spec, seed, pool, held_out, weak, strong, embeddings, neighbours, appended_neighbours })
    }

    /// The starting pool's features as the library takes them; `None` without references.
    pub fn features(&self) -> Result<Option<Features>> {
        self.features_of(0..self.spec.starting_tasks())
    }

    /// The features of tasks `range` (the appended tasks' for `NewTasks::with_features`).
    pub fn features_of(&self, range: std::ops::Range<usize>) -> Result<Option<Features>> {
        if self.spec.references {
            Features::from_f32(&self.weak[range.clone()], &self.strong[range]).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Pearson correlation, over the pool, between each task's starting pass rate for the learner and
    /// the similarity-weighted mean of its neighbours' (what neighbour evidence can tell); `None`
    /// without embeddings.
    pub fn neighbour_correlation(&self) -> Option<f64> {
        let graph = self.neighbours.as_ref()?;
        let learner: Vec<f32> = self.pool.iter().map(|t| t.pass_rate(&self.spec.learner)).collect();
        let learner = &learner[..graph.len()];
        let mean: Vec<f32> = (0..graph.len())
            .map(|i| {
                let (ids, w) = graph.row(i);
                let (mut sw, mut sp) = (0.0f32, 0.0f32);
                for (&j, &wj) in ids.iter().zip(w) {
                    if j != Neighbours::NONE {
                        sw += wj;
                        sp += wj * learner[j as usize];
                    }
                }
                if sw > 0.0 {
                    sp / sw
                } else {
                    0.5
                }
            })
            .collect();
        Some(pearson(learner, &mean))
    }

    /// Held-out accuracy of skill profile `theta`: the mean pass probability over the held-out set.
    pub fn held_out_accuracy(&self, theta: &[f32]) -> f32 {
        let sum: f64 = self.held_out.iter().map(|t| t.pass_rate(theta) as f64).sum();
        (sum / self.held_out.len() as f64) as f32
    }

    /// Pearson correlation, over the pool, between a reference feature column and the learner's
    /// starting pass rates: how much the features tell about the learner.
    pub fn feature_correlation(&self, feature: &[f32]) -> f64 {
        let learner: Vec<f32> = self.pool.iter().map(|t| t.pass_rate(&self.spec.learner)).collect();
        pearson(feature, &learner)
    }
}

/// Drops the new rows' edges (of the tasks appended after `graph`'s, `total` tasks in all) that
/// would take a task's in-degree past [`NEIGHBOUR_MAX_IN`], lowest similarity first (ties: the later
/// edge), and packs each row's kept edges to its front. Old rows keep all their edges.
fn cap_new_edges(graph: &Neighbours, total: usize, ids: Vec<u32>, weights: Vec<f32>) -> (Vec<u32>, Vec<f32>) {
    let k = graph.k();
    let mut in_degree: Vec<usize> =
        (0..total).map(|b| if b < graph.len() { graph.reverse(b).len() } else { 0 }).collect();
    let mut cells: Vec<usize> = (0..ids.len()).filter(|&c| ids[c] != Neighbours::NONE).collect();
    cells.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    let mut keep = vec![false; ids.len()];
    for c in cells {
        let target = ids[c] as usize;
        if in_degree[target] < NEIGHBOUR_MAX_IN {
            in_degree[target] += 1;
            keep[c] = true;
        }
    }
    let (mut out_ids, mut out_w) = (vec![Neighbours::NONE; ids.len()], vec![0.0f32; ids.len()]);
    for r in 0..ids.len() / k {
        let kept = (r * k..(r + 1) * k).filter(|&c| keep[c]);
        for (s, c) in kept.enumerate() {
            out_ids[r * k + s] = ids[c];
            out_w[r * k + s] = weights[c];
        }
    }
    (out_ids, out_w)
}

/// Pearson correlation of two equally long columns (0 where either is constant).
pub fn pearson(x: &[f32], y: &[f32]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    let mean = |v: &[f32]| v.iter().map(|&a| a as f64).sum::<f64>() / n;
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (dx, dy) = (a as f64 - mx, b as f64 - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shrunk(name: &str, tasks: usize) -> WorldSpec {
        WorldSpec { tasks, ..WorldSpec::named(name).unwrap() }
    }

    #[test]
    fn named_worlds_load_and_are_what_they_say() {
        // The shipped files (embedded in NAMED_WORLDS at compile time) written to a folder of this test:
        // the binary may run where no checkout is (the GPU machine runs copies of the test harnesses).
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in NAMED_WORLDS {
            let spec = WorldSpec::named(name).unwrap();
            assert_eq!(spec.name, name);
            let file = dir.path().join(format!("{name}.toml"));
            std::fs::write(&file, text).unwrap();
            assert_eq!(WorldSpec::load(&file).unwrap(), spec);
            assert_eq!(WorldSpec::named_or_file(file.to_str().unwrap()).unwrap(), spec);
        }
        assert_eq!(WorldSpec::named("small-pool").unwrap().tasks, 1000);
    }

    #[test]
    fn bad_world_files_say_what_to_fix() {
        let text = include_str!("../../worlds/informative.toml");
        let err = WorldSpec::from_str_format(&format!("{text}\nbogus = 1\n"), "toml").unwrap_err();
        assert!(err.contains("bogus"), "{err}");
        let short = text.replace("weak    = [-0.5, -1.0, -1.5, 0.0, -2.0, -1.0, -0.5, -1.5]", "weak = [0.0]");
        let err = WorldSpec::from_str_format(&short, "toml").unwrap_err();
        assert!(err.contains("`weak`") && err.contains("one value per skill"), "{err}");
        let err = WorldSpec::from_str_format(&text.replace("missing_share = 0.0", "missing_share = 1.5"), "toml")
            .unwrap_err();
        assert!(err.contains("missing_share"), "{err}");
        let err = WorldSpec::named_or_file("no-such-world").unwrap_err().to_string();
        assert!(err.contains("informative, misleading, small-pool"), "{err}");
        assert!(World::new(WorldSpec { batch: 2000, ..shrunk("informative", 1000) }, 1).is_err());
        assert!(WorldSpec { held_out: 0, ..shrunk("informative", 1000) }.validate().is_err());
        assert!(WorldSpec { skills_per_task: 5, ..shrunk("informative", 1000) }.validate().is_err());
        let nan = WorldSpec { learner: vec![f32::NAN; 8], ..shrunk("informative", 1000) };
        assert!(nan.validate().unwrap_err().to_string().contains("`learner`"));
    }

    #[test]
    fn world_is_deterministic_and_tasks_are_well_formed() {
        let spec = shrunk("informative", 3000);
        let a = World::new(spec.clone(), 42).unwrap();
        let b = World::new(spec.clone(), 42).unwrap();
        assert_eq!((&a.pool, &a.held_out, &a.weak, &a.strong), (&b.pool, &b.held_out, &b.weak, &b.strong));
        let c = World::new(spec.clone(), 43).unwrap();
        assert_ne!(a.pool, c.pool);
        assert_ne!(a.pool[..100], a.held_out[..100], "the held-out set is its own draw");
        for t in a.pool.iter().chain(&a.held_out) {
            let loads = t.weight.iter().filter(|&&w| w > 0.0).count();
            assert!((1..=spec.skills_per_task).contains(&loads), "{t:?}");
            assert!((t.weight.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{t:?}");
            let mut skills = t.skill[..loads].to_vec();
            skills.sort();
            skills.dedup();
            assert_eq!(skills.len(), loads, "distinct skills: {t:?}");
            assert!(skills.iter().all(|&j| (j as usize) < spec.skills()));
        }
        // Features are pass rates of `reference_rollouts` rollouts.
        let n = spec.reference_rollouts as f32;
        assert!(a.weak.iter().chain(&a.strong).all(|&f| (0.0..=1.0).contains(&f) && (f * n).fract() == 0.0));
    }

    /// A missing reference eval is filled with 0.0 as `ref_eval_collect.py` does; every other task
    /// keeps the value it has when nothing is missing, and the number missing is Binomial(n, share).
    #[test]
    fn missing_reference_evals_are_filled_with_zero() {
        let full = WorldSpec { missing_share: 0.0, ..shrunk("informative", 20_000) };
        let holed = WorldSpec { missing_share: 0.3, ..full.clone() };
        let (a, b) = (World::new(full.clone(), 5).unwrap(), World::new(holed.clone(), 5).unwrap());
        let salted = 5 ^ SIM_SALT;
        for (which, (fa, fb)) in [(&a.weak, &b.weak), (&a.strong, &b.strong)].into_iter().enumerate() {
            let mut missing = 0usize;
            for k in 0..full.tasks {
                if is_missing(&holed, salted, k, which) {
                    missing += 1;
                    assert_eq!(fb[k], MISSING_FILL);
                } else {
                    assert_eq!(fb[k], fa[k], "task {k}");
                }
            }
            let (n, p) = (full.tasks as f64, holed.missing_share as f64);
            let sd = (n * p * (1.0 - p)).sqrt();
            assert!((missing as f64 - n * p).abs() < 5.0 * sd, "{missing} missing of {n}");
        }
        assert_eq!(MISSING_FILL, 0.0);
    }

    #[test]
    fn learning_moves_only_the_skills_a_task_loads_on() {
        assert_eq!(grpo_signal(0, 16), 0.0);
        assert_eq!(grpo_signal(16, 16), 0.0);
        assert_eq!(grpo_signal(8, 16), 0.25);
        assert_eq!(grpo_signal(4, 16), 4.0 * 12.0 / 256.0);
        let task = Task { skill: [1, 3, 0, 0], weight: [0.5, 0.5, 0.0, 0.0], difficulty: 0.0 };
        let before = vec![0.25f32, -1.0, 2.0, 0.5, 3.0];
        let mut theta = before.clone();
        learn(&mut theta, &task, grpo_signal(8, 16), 0.1);
        for j in 0..before.len() {
            if j == 1 || j == 3 {
                assert_eq!(theta[j], before[j] + 0.1 * 0.5 * 0.25, "skill {j}");
            } else {
                assert_eq!(theta[j].to_bits(), before[j].to_bits(), "skill {j} moved");
            }
        }
        // No signal (all rollouts passed or all failed): nothing moves.
        let mut same = before.clone();
        learn(&mut same, &task, grpo_signal(16, 16), 0.1);
        assert_eq!(same, before);
        // Every drawn task of a world: only its skills move.
        let world = World::new(shrunk("informative", 500), 3).unwrap();
        for t in &world.pool {
            let mut th = world.spec.learner.clone();
            learn(&mut th, t, 0.25, 1.0);
            for (j, (after, before)) in th.iter().zip(&world.spec.learner).enumerate() {
                let loaded = t.skill.iter().zip(&t.weight).any(|(&s, &w)| s as usize == j && w > 0.0);
                assert_eq!(after != before, loaded, "{t:?}, skill {j}");
            }
        }
    }

    /// Embeddings come from their own streams: turning them on changes neither the pool, nor the
    /// held-out set, nor the features. Informative embeddings give neighbours of the task's pass rate;
    /// misleading ones much less so (half of a task's neighbours need another skill).
    #[test]
    fn embeddings_are_deterministic_and_separate_from_the_world() {
        let plain = WorldSpec { embeddings: EmbeddingMode::None, ..shrunk("small-pool", 2000) };
        let embedded = WorldSpec { embeddings: EmbeddingMode::Informative, ..plain.clone() };
        let (a, b) = (World::new(plain.clone(), 3).unwrap(), World::new(embedded.clone(), 3).unwrap());
        assert_eq!((&a.pool, &a.held_out, &a.weak, &a.strong), (&b.pool, &b.held_out, &b.weak, &b.strong));
        assert!(a.embeddings.is_empty() && a.neighbours.is_none() && a.neighbour_correlation().is_none());
        assert_eq!(b.embeddings.len(), 2000 * embedded.embedding_dim);
        assert!(b.embeddings.iter().all(|v| v.is_finite()));
        let again = World::new(embedded.clone(), 3).unwrap();
        assert_eq!((&b.embeddings, &b.neighbours), (&again.embeddings, &again.neighbours));
        let graph = b.neighbours.as_ref().unwrap();
        assert_eq!((graph.len(), graph.k()), (2000, NEIGHBOUR_K));
        assert!((0..2000).all(|i| graph.reverse(i).len() <= NEIGHBOUR_MAX_IN));
        let informative = World::new(shrunk("no-references", 4000), 42).unwrap();
        let misleading = World::new(shrunk("misleading-embeddings", 4000), 42).unwrap();
        let (ri, rm) = (informative.neighbour_correlation().unwrap(), misleading.neighbour_correlation().unwrap());
        assert!(ri > 0.9 && rm < 0.5, "informative {ri}, misleading {rm}");
        // Noise only: a task's neighbours say nothing about it.
        let noise = WorldSpec { embedding_noise: 50.0, ..shrunk("no-references", 4000) };
        let r = World::new(noise, 42).unwrap().neighbour_correlation().unwrap();
        assert!(r.abs() < 0.2, "{r}");
        // The basis is orthonormal.
        let basis = embedding_basis(&embedded, 3);
        for (i, u) in basis.iter().enumerate() {
            for (j, v) in basis.iter().enumerate() {
                let dot: f32 = u.iter().zip(v).map(|(a, b)| a * b).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5, "{i} {j} {dot}");
            }
        }
    }

    /// A world that appends tasks: the starting pool's graph and features cover the first tasks; the
    /// appended rows are the k-NN rows over all embeddings less the edges that would pass the
    /// in-degree cap; `with_steps` keeps `append_at` at the same share of the run; bad keys say so.
    #[test]
    fn appended_tasks_have_capped_rows_and_validate() {
        let spec = shrunk("no-references", 2000);
        let (start, extra) = (spec.starting_tasks(), spec.appended());
        assert_eq!((start, extra), (1800, 200));
        let w = World::new(spec.clone(), 4).unwrap();
        let graph = w.neighbours.clone().unwrap();
        assert_eq!(graph.len(), start);
        let (ids, weights) = w.appended_neighbours.clone().unwrap();
        assert_eq!((ids.len(), weights.len()), (extra * NEIGHBOUR_K, extra * NEIGHBOUR_K));
        let (raw, _) = Neighbours::knn_rows(&w.embeddings, spec.embedding_dim, NEIGHBOUR_K, 0.0, start..2000).unwrap();
        for r in 0..extra {
            // Each kept row is its k-NN row less some edges, in the same order.
            let row = &ids[r * NEIGHBOUR_K..(r + 1) * NEIGHBOUR_K];
            let kept: Vec<u32> = row.iter().copied().filter(|&j| j != Neighbours::NONE).collect();
            let mut it = raw[r * NEIGHBOUR_K..(r + 1) * NEIGHBOUR_K].iter();
            assert!(kept.iter().all(|j| it.any(|x| x == j)), "row {r}");
        }
        let mut grown = graph.clone();
        grown.append(extra, &ids, &weights).unwrap();
        assert!((0..2000).all(|b| grown.reverse(b).len() <= NEIGHBOUR_MAX_IN));
        assert!(grown.edges() > graph.edges() + extra * NEIGHBOUR_K / 2);
        // A hub: 80 old tasks each pointing at the next 16 (in-degree 16 each), then 60 new tasks
        // pointing at task 0 (weight rising with the id) and at one of tasks 1..=40: 76 in-edges of task 0 would
        // pass the cap of 64, so the 12 new edges of lowest weight go, and their rows close up.
        let k = NEIGHBOUR_K;
        let old_ids: Vec<u32> = (0..80u32).flat_map(|i| (1..=k as u32).map(move |d| (i + d) % 80)).collect();
        let old = Neighbours::from_lists(80, k, old_ids, vec![0.5; 80 * k]).unwrap();
        let (mut new_ids, mut new_w) = (vec![Neighbours::NONE; 60 * k], vec![0.0f32; 60 * k]);
        for r in 0..60 {
            new_ids[r * k..r * k + 2].copy_from_slice(&[0, 1 + r as u32 % 40]);
            new_w[r * k..r * k + 2].copy_from_slice(&[0.3 + 0.01 * r as f32, 0.2]);
        }
        let (ids2, w2) = cap_new_edges(&old, 140, new_ids, new_w);
        let to_zero: Vec<usize> = (0..60).filter(|&r| ids2[r * k] == 0).collect();
        assert_eq!(to_zero, (12..60).collect::<Vec<_>>());
        assert!((0..12).all(|r| ids2[r * k] == 1 + r as u32 && w2[r * k] == 0.2 && ids2[r * k + 1] == Neighbours::NONE));
        let mut hub = old.clone();
        hub.append(60, &ids2, &w2).unwrap();
        assert_eq!((hub.reverse(0).len(), hub.reverse(1).len()), (NEIGHBOUR_MAX_IN, 16 + 2));
        assert_eq!(hub.edges(), old.edges() + 2 * 60 - 12);
        let w_ref =
            World::new(WorldSpec { references: true, weak: vec![0.0; 8], strong: vec![1.0; 8], ..spec.clone() }, 4)
                .unwrap();
        assert_eq!(w_ref.features().unwrap().unwrap().len(), start);
        assert_eq!(w_ref.features_of(start..2000).unwrap().unwrap().len(), extra);
        assert_eq!(spec.clone().with_steps(100).append_at, 50);
        assert_eq!(spec.clone().with_steps(1000).append_at, 500);
        assert_eq!(spec.clone().with_steps(2).append_at, 1);
        let bad = |s: WorldSpec| s.validate().unwrap_err().to_string();
        assert!(bad(WorldSpec { append_share: 1.0, ..spec.clone() }).contains("append_share"));
        assert!(bad(WorldSpec { append_at: 0, ..spec.clone() }).contains("append_at"));
        assert!(bad(WorldSpec { append_at: spec.steps, ..spec.clone() }).contains("append_at"));
        assert!(bad(WorldSpec { append_share: 0.99, ..spec.clone() }).contains("append_share"));
        // Without a share nothing is appended and append_at is not looked at.
        let none = WorldSpec { append_share: 0.0, append_at: 0, ..spec };
        none.validate().unwrap();
        assert!(World::new(none, 4).unwrap().appended_neighbours.is_none());
    }

    #[test]
    fn worlds_without_references_or_with_embeddings_validate() {
        let none = WorldSpec::named("no-references").unwrap();
        assert!(!none.references && none.weak.is_empty() && none.strong.is_empty());
        let w = World::new(WorldSpec { tasks: 500, ..none.clone() }, 1).unwrap();
        assert!(w.weak.is_empty() && w.features().unwrap().is_none());
        let err = WorldSpec { weak: vec![0.0; 8], ..none.clone() }.validate().unwrap_err().to_string();
        assert!(err.contains("`weak`") && err.contains("references = false"), "{err}");
        let err = WorldSpec { references: true, ..none.clone() }.validate().unwrap_err().to_string();
        assert!(err.contains("one value per skill"), "{err}");
        let err = WorldSpec { embedding_dim: 8, ..none.clone() }.validate().unwrap_err().to_string();
        assert!(err.contains("embedding_dim"), "{err}");
        let err = WorldSpec { embedding_noise: -1.0, ..none.clone() }.validate().unwrap_err().to_string();
        assert!(err.contains("embedding_noise"), "{err}");
        let err = WorldSpec::from_str_format(
            &include_str!("../../worlds/no-references.toml").replace("\"informative\"", "\"bogus\""),
            "toml",
        )
        .unwrap_err();
        assert!(err.contains("bogus"), "{err}");
        // The files of the first three worlds have no embedding keys (informative, misleading) or
        // some: the defaults fill the rest.
        let inf = WorldSpec::named("informative").unwrap();
        assert_eq!((inf.references, inf.embeddings, inf.embedding_dim), (true, EmbeddingMode::None, 16));
        assert_eq!(WorldSpec::named("small-pool").unwrap().embeddings, EmbeddingMode::Informative);
    }

    /// The worlds differ as designed. The logits of one task for two profiles differ by the profiles'
    /// difference on its skills, so (one skill per task, d ~ N(mean, sd²), skill groups of equal size):
    /// - informative: each reference is the learner's profile plus a constant, so over the pool the
    ///   reference and learner logits correlate exactly (1, up to rounding);
    /// - misleading: the learner sits at ±3 and the references at the mean ∓3 on the two groups, so
    ///   cov = sd² - 9 = -5 and var = sd² + 9 = 13: the logits correlate at -5/13; sampling sd of a
    ///   correlation over n tasks is about (1 - r²)/√n.
    ///   The features (monotone in the logit, plus rollout noise and missing evals) then correlate
    ///   negatively with the learner's pass rates.
    #[test]
    fn worlds_differ_as_designed() {
        let logit_corr = |w: &World, profile: &[f32]| {
            let a: Vec<f32> = w.pool.iter().map(|t| t.logit(&w.spec.learner)).collect();
            let b: Vec<f32> = w.pool.iter().map(|t| t.logit(profile)).collect();
            pearson(&a, &b)
        };
        let inf = World::new(shrunk("informative", 20_000), 42).unwrap();
        for profile in [&inf.spec.weak, &inf.spec.strong] {
            assert!(logit_corr(&inf, profile) > 1.0 - 1e-6);
        }
        let mis = World::new(shrunk("misleading", 20_000), 42).unwrap();
        let spec = &mis.spec;
        assert_eq!(spec.skills_per_task, 1);
        let sd2 = (spec.difficulty_sd as f64).powi(2);
        let expected = (sd2 - 9.0) / (sd2 + 9.0);
        let tolerance = 5.0 * (1.0 - expected * expected) / (spec.tasks as f64).sqrt();
        for profile in [&spec.weak, &spec.strong] {
            let r = logit_corr(&mis, profile);
            assert!((r - expected).abs() < tolerance, "logit correlation {r}, expected {expected} ± {tolerance}");
        }
        assert!(mis.feature_correlation(&mis.weak) < 0.0 && mis.feature_correlation(&mis.strong) < 0.0);
        // Informative features track the learner much better than misleading ones.
        assert!(inf.feature_correlation(&inf.strong) > 0.5);
        assert!(inf.feature_correlation(&inf.weak) > 0.5);
    }
}
