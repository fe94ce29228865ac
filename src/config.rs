//! Hyper-parameters of BOTS, with Trinity-RFT's `bots.yaml` defaults.
//!
//! A [`Config`] loads from YAML, TOML or JSON. Trinity-RFT's key names are accepted (`m`, `lamb`,
//! `rho`, `target_reward`, `tau`, `do_sample`, `feature_keys`), and a pasted `data_selector:` (or older `task_selector:`) block
//! (with its `kwargs:` map) is read as well, so a Trinity user can reuse their config as it is.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BotsError, Result};

/// Every hyper-parameter of the algorithm (`../shared/BOTS-ALGORITHM.md`).
///
/// Deserializing fills the keys a text leaves out from [`Config::default`] (the BOTS paper's values);
/// [`Config::from_str_format`] and [`Config::load`] also read Trinity-RFT's shapes and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "ConfigKeys")]
pub struct Config {
    /// B: tasks selected per step.
    pub batch: usize,
    /// m: rollouts per task (the GRPO group size).
    pub m: u32,
    /// lambda: forgetting rate toward the prior, in [0, 1].
    pub lambda: f32,
    /// rho: weight of implicit (interpolated) evidence, in [0, 1].
    pub rho: f32,
    /// p*: target success probability, in [0, 1].
    pub target: f32,
    /// tau: selection temperature; 0 is deterministic top-k, > 0 is Gumbel-top-k sampling.
    pub tau: f32,
    /// Thompson-sample the posterior (true) or score its mean (false).
    pub do_sample: bool,
    /// gamma: smoothing of the capability estimate mu, in [0, 1].
    pub gamma: f32,
    /// Halve rho (permanently) when the interpolation misses the batch by >= 0.25 on average.
    pub adaptive_rho: bool,
    /// Seed of every random draw (Philox key).
    pub seed: u64,
    /// Constant prior Beta(prior_alpha, prior_beta) that forgetting pulls toward (reference: 1, 1).
    pub prior_alpha: f32,
    /// See `prior_alpha`.
    pub prior_beta: f32,
    /// `Some(c)`: per-task priors `1 + c·f`, `1 + c·(1-f)` from the strongest reference feature f.
    /// `None` (the reference): the constant prior above, which costs no memory.
    pub prior_strength: Option<f32>,
    /// Pool columns holding the reference models' pass rates, weakest first: K >= 1 of them (two,
    /// weaker and stronger, in the BOTS paper and Trinity-RFT; `docs/EVIDENCE-SOURCES.md`).
    pub feature_keys: Vec<String>,
    /// eta: weight of neighbour evidence in [0, 1] (docs/EVIDENCE-SOURCES.md §2): each task near the
    /// batch (in the pool's [`crate::Neighbours`] graph) gets `eta / max(1, W)` times its batch
    /// neighbours' similarity-weighted counts. 0 (the default) turns it off; > 0 needs a graph.
    #[serde(skip_serializing_if = "is_zero")]
    pub neighbour_weight: f32,
    /// How the CUDA kernels draw: [`KernelMode::Exact`] (the default: bit for bit with the CPU backend)
    /// or [`KernelMode::Fast`] (the same distributions, not the same bits; see its contract). The CPU
    /// backend draws the exact stream in either mode. Key `kernel_mode: fast`; written only when fast.
    #[serde(skip_serializing_if = "KernelMode::is_exact")]
    pub kernel_mode: KernelMode,
}

/// How the CUDA backend's sampling kernels compute each task's draws ([`Config::kernel_mode`]).
///
/// # Contract
///
/// - [`KernelMode::Exact`] (the default): every draw (the Beta samples of Thompson sampling and the
///   Gumbel noise of `tau > 0`) is bit for bit the CPU backend's, so a CUDA pool and a CPU pool with the
///   same config, state and evidence select the same tasks at every step and hold the same posterior.
/// - [`KernelMode::Fast`]: the CUDA kernels use fused multiply-add and the GPU's approximate
///   transcendentals, reciprocal and division (`__logf`, `__expf`, `__sincosf`, `rsqrtf`,
///   `rcp.approx`), and draw the first attempt of both Gammas of a Beta sample from one Philox block.
///   Each draw has the distribution of the exact draw (Beta(alpha, beta) for shapes from 0.01 to 10^4
///   and beyond, Beta(0.01, 0.01) included, and Gumbel(0, 1)), up to the approximations' error, which no
///   statistical test of 10^6 draws can see (Marsaglia-Tsang's acceptance is biased by at most about
///   1e-4 in probability, the functions' relative errors are about 2^-21), and the same task's draws are
///   still independent across tasks and steps and reproducible run to run on the same GPU and driver. The
///   bits differ from the CPU backend's (and may differ between GPU architectures or driver versions),
///   so selections differ from the CPU backend's, and checkpoints are comparable in distribution, not
///   bit for bit. The posterior update is the same arithmetic in both modes. Shapes should stay below
///   about 2^120 (the approximate reciprocal flushes beyond).
/// - The CPU backend ignores the mode: it always draws the exact stream, which is a valid realization
///   of the same distributions.
///
/// The mode is not part of a pool's [`crate::Fingerprint`] (it does not shape the posterior); a config
/// in exact mode serializes as it did before the key existed.
///
/// ```
/// let cfg = bots::Config::from_str_format("kernel_mode: fast\n", "yaml").unwrap();
/// assert_eq!(cfg.kernel_mode, bots::KernelMode::Fast);
/// assert_eq!(bots::Config::default().kernel_mode, bots::KernelMode::Exact);
/// assert!(!serde_json::to_string(&bots::Config::default()).unwrap().contains("kernel_mode"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelMode {
    /// Bit for bit with the CPU backend (the default).
    #[default]
    Exact,
    /// Approximate arithmetic on the GPU: the same distributions, not the same bits.
    Fast,
}

impl KernelMode {
    /// True for [`KernelMode::Exact`].
    pub fn is_exact(&self) -> bool {
        *self == KernelMode::Exact
    }

    /// The mode's name in configs and reports (`exact`, `fast`).
    pub fn name(self) -> &'static str {
        match self {
            KernelMode::Exact => "exact",
            KernelMode::Fast => "fast",
        }
    }
}

impl std::str::FromStr for KernelMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<KernelMode, String> {
        match s {
            "exact" => Ok(KernelMode::Exact),
            "fast" => Ok(KernelMode::Fast),
            _ => Err(format!("unknown kernel mode `{s}` (expected `exact` or `fast`)")),
        }
    }
}

/// Keys that are off by default are written only when set, so a config without them writes the
/// bytes it wrote before they existed (checkpoints, fingerprints).
fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch: 32,
            m: 16,
            lambda: 0.1,
            rho: 0.1,
            target: 0.5,
            tau: 0.0,
            do_sample: true,
            gamma: 0.9,
            adaptive_rho: false,
            seed: 42,
            prior_alpha: 1.0,
            prior_beta: 1.0,
            prior_strength: None,
            feature_keys: vec!["qwen2.5_7b_pass_rate".into(), "qwen3_30b_pass_rate".into()],
            neighbour_weight: 0.0,
            kernel_mode: KernelMode::Exact,
        }
    }
}

/// The keys a config text may set, each optional, with every accepted alias: one place for the key
/// names. [`ConfigKeys::over`] fills what is left out from a set of defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigKeys {
    #[serde(alias = "batch_size")]
    batch: Option<usize>,
    #[serde(alias = "rollouts")]
    m: Option<u32>,
    #[serde(alias = "lamb")]
    lambda: Option<f32>,
    rho: Option<f32>,
    #[serde(alias = "target_reward", alias = "p_star")]
    target: Option<f32>,
    tau: Option<f32>,
    do_sample: Option<bool>,
    gamma: Option<f32>,
    adaptive_rho: Option<bool>,
    seed: Option<u64>,
    prior_alpha: Option<f32>,
    prior_beta: Option<f32>,
    prior_strength: Option<f32>,
    feature_keys: Option<Vec<String>>,
    #[serde(alias = "eta")]
    neighbour_weight: Option<f32>,
    kernel_mode: Option<KernelMode>,
}

impl ConfigKeys {
    fn over(self, d: Config) -> Config {
        Config {
            batch: self.batch.unwrap_or(d.batch),
            m: self.m.unwrap_or(d.m),
            lambda: self.lambda.unwrap_or(d.lambda),
            rho: self.rho.unwrap_or(d.rho),
            target: self.target.unwrap_or(d.target),
            tau: self.tau.unwrap_or(d.tau),
            do_sample: self.do_sample.unwrap_or(d.do_sample),
            gamma: self.gamma.unwrap_or(d.gamma),
            adaptive_rho: self.adaptive_rho.unwrap_or(d.adaptive_rho),
            seed: self.seed.unwrap_or(d.seed),
            prior_alpha: self.prior_alpha.unwrap_or(d.prior_alpha),
            prior_beta: self.prior_beta.unwrap_or(d.prior_beta),
            prior_strength: self.prior_strength.or(d.prior_strength),
            feature_keys: self.feature_keys.unwrap_or(d.feature_keys),
            neighbour_weight: self.neighbour_weight.unwrap_or(d.neighbour_weight),
            kernel_mode: self.kernel_mode.unwrap_or(d.kernel_mode),
        }
    }
}

impl From<ConfigKeys> for Config {
    fn from(keys: ConfigKeys) -> Config {
        keys.over(Config::default())
    }
}

/// The only Trinity-RFT `selector_type` this crate implements.
pub const TRINITY_SELECTOR: &str = "difficulty_based";

/// The names under which a Trinity-RFT taskset holds its selector block (`data_selector` since 0.6.0,
/// `task_selector` before it and still read there).
const TRINITY_BLOCK_NAMES: &[&str] = &["task_selector", "data_selector"];

/// Keys of a Trinity-RFT selector block that name the selector; each is checked.
const TRINITY_TYPE_KEYS: &[&str] = &["selector_type", "type", "name"];

type Map = serde_json::Map<String, serde_json::Value>;

impl Config {
    /// Trinity-RFT's code defaults for its `difficulty_based` selector (`DifficultyBasedSelector` and
    /// `InterpolationBetaPREstimator` in trinity-rft 0.6.0's `trinity/buffer/selector/`): what a
    /// Trinity-shaped block gets for a kwarg it leaves out, so a pasted block means what it meant there.
    /// Keys Trinity has no kwarg for (batch, gamma, seed, priors) keep [`Config::default`]'s values.
    ///
    /// ```
    /// let t = bots::Config::trinity_defaults();
    /// assert_eq!((t.lambda, t.rho, t.do_sample, t.target, t.tau, t.m), (0.2, 0.2, false, 1.0, 1.0, 16));
    /// ```
    pub fn trinity_defaults() -> Config {
        Config { m: 16, lambda: 0.2, rho: 0.2, do_sample: false, target: 1.0, tau: 1.0, ..Config::default() }
    }

    /// Checks every value; the error names the key and its allowed range.
    pub fn validate(&self) -> Result<()> {
        fn unit(key: &str, v: f32) -> Result<()> {
            if !(0.0..=1.0).contains(&v) {
                return Err(BotsError::config(key, format!("{v} is outside [0, 1]")));
            }
            Ok(())
        }
        if self.batch == 0 {
            return Err(BotsError::config("batch", "must be at least 1"));
        }
        if self.m == 0 {
            return Err(BotsError::config("m", "must be at least 1 rollout per task"));
        }
        unit("lambda", self.lambda)?;
        unit("rho", self.rho)?;
        unit("target", self.target)?;
        unit("gamma", self.gamma)?;
        unit("neighbour_weight", self.neighbour_weight)?;
        if !self.tau.is_finite() || self.tau < 0.0 {
            return Err(BotsError::config("tau", format!("{} must be a finite number >= 0", self.tau)));
        }
        for (key, v) in [("prior_alpha", self.prior_alpha), ("prior_beta", self.prior_beta)] {
            if !v.is_finite() || v <= 0.0 {
                return Err(BotsError::config(key, format!("{v} must be a finite number > 0")));
            }
        }
        if let Some(c) = self.prior_strength {
            if !c.is_finite() || c < 0.0 {
                return Err(BotsError::config("prior_strength", format!("{c} must be a finite number >= 0")));
            }
        }
        let keys = &self.feature_keys;
        if keys.is_empty() || keys.len() > crate::pool::MAX_FEATURE_COLUMNS {
            return Err(BotsError::config(
                "feature_keys",
                format!(
                    "expected 1 to {} columns (reference models, weakest first), got {}",
                    crate::pool::MAX_FEATURE_COLUMNS,
                    keys.len()
                ),
            ));
        }
        if let Some(i) = (1..keys.len()).find(|&i| keys[..i].contains(&keys[i])) {
            return Err(BotsError::config("feature_keys", format!("column `{}` is named twice", keys[i])));
        }
        Ok(())
    }

    /// Parses a config from text in the given format ("yaml", "toml" or "json") and validates it.
    ///
    /// Three shapes are read:
    /// - a flat map of this crate's keys (Trinity's names accepted as aliases); keys left out take
    ///   [`Config::default`], the BOTS paper's values; unknown keys are errors;
    /// - a Trinity-RFT selector block, pasted as it is (`task_selector:` or `data_selector:` holding
    ///   `selector_type: difficulty_based`, `feature_keys`, `seed`, `kwargs`), or its contents alone;
    /// - a whole Trinity-RFT config file: the block is found under `buffer.explorer_input.taskset` or
    ///   `.tasksets`, `buffer.batch_size` gives `batch`, and every other section is ignored.
    ///
    /// In the two Trinity shapes a key left out takes [`Config::trinity_defaults`], as it would there.
    pub fn from_str_format(text: &str, format: &str) -> std::result::Result<Config, String> {
        let serde_json::Value::Object(mut top) = parse_value(text, format)? else {
            return Err("the config must be a map of keys to values".into());
        };
        let (keys, defaults) = if top.contains_key("buffer") {
            (trinity_file(top)?, Config::trinity_defaults())
        } else if let Some(&name) = TRINITY_BLOCK_NAMES.iter().find(|b| top.contains_key(**b)) {
            if let Some(other) = top.keys().find(|k| *k != name) {
                return Err(format!(
                    "`{other}` beside `{name}`: put it inside the block (or its `kwargs`) or remove it"
                ));
            }
            let block = top.remove(name).expect("the key just found");
            (trinity_block(name, block)?, Config::trinity_defaults())
        } else if TRINITY_TYPE_KEYS.iter().chain(["kwargs"].iter()).any(|k| top.contains_key(*k)) {
            (trinity_block("the selector block", serde_json::Value::Object(top))?, Config::trinity_defaults())
        } else {
            (top, Config::default())
        };
        let keys = serde_json::Value::Object(keys);
        let keys = ConfigKeys::deserialize(&keys).map_err(|e| naming_the_key(&keys, e))?;
        let cfg = keys.over(defaults);
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Loads a config file; the format follows the extension (`.yaml`/`.yml`, `.toml`, `.json`).
    /// See [`Config::from_str_format`] for the shapes it reads.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("bots.yaml");
    /// std::fs::write(&path, "task_selector:\n  selector_type: difficulty_based\n  kwargs: {m: 8, target_reward: 0.4}\n").unwrap();
    /// let cfg = bots::Config::load(&path).unwrap();
    /// assert_eq!((cfg.m, cfg.target), (8, 0.4));
    /// assert_eq!(cfg.lambda, 0.2); // left out: Trinity-RFT's default for `lamb`
    /// ```
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| BotsError::io(path, e))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        Config::from_str_format(&text, &ext).map_err(|m| BotsError::parse(path, 0, m))
    }
}

/// serde's message for a key of the wrong type or an unknown variant (`unknown variant `fastest`,
/// expected `exact` or `fast``) does not say which key: the first key that fails alone is named.
fn naming_the_key(keys: &serde_json::Value, e: serde_json::Error) -> String {
    for (k, v) in keys.as_object().into_iter().flatten() {
        let one = serde_json::Value::Object(Map::from_iter([(k.clone(), v.clone())]));
        if let Err(e) = ConfigKeys::deserialize(&one) {
            return format!("`{k}`: {e}");
        }
    }
    e.to_string()
}

/// Parses YAML, TOML or JSON text (by `format`: "yaml"/"yml", "toml", "json") into one value tree, so
/// every file the crate reads (configs, simulator worlds) accepts the same three formats.
pub fn parse_value(text: &str, format: &str) -> std::result::Result<serde_json::Value, String> {
    Ok(match format {
        "yaml" | "yml" => serde_yaml::from_str(text).map_err(|e| e.to_string())?,
        "toml" => toml::from_str(text).map_err(|e| e.to_string())?,
        "json" => serde_json::from_str(text).map_err(|e| e.to_string())?,
        other => return Err(format!("unknown file format `{other}`: use .yaml, .yml, .toml or .json")),
    })
}

/// A whole Trinity-RFT config: the one `difficulty_based` selector block among the tasksets under
/// `buffer.explorer_input`, with `buffer.batch_size` as `batch` unless the block sets it.
fn trinity_file(mut top: Map) -> std::result::Result<Map, String> {
    use serde_json::Value;
    let Some(Value::Object(mut buffer)) = top.remove("buffer") else {
        return Err("`buffer` must be a map (a Trinity-RFT config)".into());
    };
    let Some(Value::Object(mut input)) = buffer.remove("explorer_input") else {
        return Err("no `buffer.explorer_input` map: a Trinity-RFT config keeps the task selector under \
                    buffer.explorer_input.taskset (or .tasksets)"
            .into());
    };
    let mut tasksets: Vec<(String, Map)> = Vec::new();
    if let Some(t) = input.remove("taskset").filter(|t| !t.is_null()) {
        let Value::Object(t) = t else { return Err("`buffer.explorer_input.taskset` must be a map".into()) };
        tasksets.push(("buffer.explorer_input.taskset".into(), t));
    }
    match input.remove("tasksets") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, t) in list.into_iter().enumerate() {
                let Value::Object(t) = t else {
                    return Err(format!("`buffer.explorer_input.tasksets[{i}]` must be a map"));
                };
                tasksets.push((format!("buffer.explorer_input.tasksets[{i}]"), t));
            }
        }
        Some(_) => return Err("`buffer.explorer_input.tasksets` must be a list".into()),
    }
    let mut blocks = Vec::new();
    for (at, mut t) in tasksets {
        let found: Vec<(String, Value)> = TRINITY_BLOCK_NAMES
            .iter()
            .filter_map(|b| t.remove(*b).filter(|v| !v.is_null()).map(|v| (b.to_string(), v)))
            .collect();
        match found.len() {
            0 => {}
            1 => blocks.push((format!("{at}.{}", found[0].0), found.into_iter().next().expect("one").1)),
            _ => return Err(format!("{at} has both `task_selector` and `data_selector`: keep one")),
        }
    }
    // Tasksets on Trinity's default (sequential) order carry no BOTS block: only an explicit
    // `difficulty_based` one is ours, unless there is a single block (which is then checked).
    if blocks.len() > 1 {
        blocks.retain(|(_, b)| {
            TRINITY_TYPE_KEYS.iter().any(|k| b.get(*k).and_then(Value::as_str) == Some(TRINITY_SELECTOR))
        });
    }
    let (at, block) = match blocks.len() {
        1 => blocks.pop().expect("one"),
        0 => {
            return Err("no `task_selector` or `data_selector` block with `selector_type: difficulty_based` under \
                        buffer.explorer_input.taskset or .tasksets"
                .into())
        }
        n => {
            let at: Vec<_> = blocks.iter().map(|(a, _)| a.as_str()).collect();
            return Err(format!(
                "{n} `difficulty_based` selector blocks ({}): one pool per config, keep one",
                at.join(", ")
            ));
        }
    };
    let mut keys = trinity_block(&at, block)?;
    if !keys.contains_key("batch") && !keys.contains_key("batch_size") {
        if let Some(b) = buffer.remove("batch_size") {
            keys.insert("batch".into(), b);
        }
    }
    Ok(keys)
}

/// A Trinity-RFT selector block (`DataSelectorConfig`): checks that it names `difficulty_based`, and
/// returns its keys and its `kwargs` as one flat map (a key in both places is an error).
fn trinity_block(at: &str, block: serde_json::Value) -> std::result::Result<Map, String> {
    use serde_json::Value;
    let Value::Object(block) = block else { return Err(format!("`{at}` must be a map")) };
    let mut flat = Map::new();
    let mut named = false;
    for (k, v) in block {
        if TRINITY_TYPE_KEYS.contains(&k.as_str()) {
            if v.as_str() != Some(TRINITY_SELECTOR) {
                return Err(format!(
                    "{at}: `{k}: {v}` is not supported: this crate implements Trinity-RFT's `{TRINITY_SELECTOR}` \
                     selector only (set `selector_type: {TRINITY_SELECTOR}`)"
                ));
            }
            named = true;
        } else if k == "kwargs" {
            let Value::Object(kw) = v else { return Err(format!("{at}: `kwargs` must be a map")) };
            for (k2, v2) in kw {
                if flat.insert(k2.clone(), v2).is_some() {
                    return Err(format!("{at}: `{k2}` is set both in the block and in its `kwargs`: keep one"));
                }
            }
        } else if flat.insert(k.clone(), v).is_some() {
            return Err(format!("{at}: `{k}` is set both in the block and in its `kwargs`: keep one"));
        }
    }
    if !named {
        return Err(format!(
            "{at}: no `selector_type`: Trinity-RFT would use its default `sequential` selector here; \
             set `selector_type: {TRINITY_SELECTOR}`"
        ));
    }
    Ok(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_bots_yaml() {
        let c = Config::default();
        assert_eq!((c.batch, c.m, c.lambda, c.rho, c.target, c.tau), (32, 16, 0.1, 0.1, 0.5, 0.0));
        assert!(c.do_sample && !c.adaptive_rho);
        assert_eq!(c.gamma, 0.9);
        c.validate().unwrap();
    }

    #[test]
    fn kernel_mode_is_written_only_when_fast() {
        let exact = serde_json::to_string(&Config::default()).unwrap();
        assert!(!exact.contains("kernel_mode"), "{exact}");
        let fast = Config { kernel_mode: KernelMode::Fast, ..Config::default() };
        let text = serde_json::to_string(&fast).unwrap();
        assert!(text.contains("\"kernel_mode\":\"fast\""), "{text}");
        assert_eq!(Config::from_str_format(&text, "json").unwrap(), fast);
        assert_eq!(Config::from_str_format("kernel_mode: exact", "yaml").unwrap(), Config::default());
        assert!(Config::from_str_format("kernel_mode: quick", "yaml").is_err());
        assert_eq!("fast".parse::<KernelMode>(), Ok(KernelMode::Fast));
        assert_eq!(KernelMode::Fast.name().parse::<KernelMode>(), Ok(KernelMode::Fast));
        assert!("FAST".parse::<KernelMode>().is_err());
    }

    #[test]
    fn trinity_kwargs_block_loads() {
        let yaml = "task_selector:\n  selector_type: difficulty_based\n  feature_keys: [a, b]\n  kwargs:\n    m: 8\n    lamb: 0.2\n    rho: 0.3\n    target_reward: 0.6\n    tau: 0.5\n    do_sample: false\n";
        let c = Config::from_str_format(yaml, "yaml").unwrap();
        assert_eq!(c.m, 8);
        assert_eq!(c.lambda, 0.2);
        assert_eq!(c.rho, 0.3);
        assert_eq!(c.target, 0.6);
        assert_eq!(c.tau, 0.5);
        assert!(!c.do_sample);
        assert_eq!(c.feature_keys, vec!["a", "b"]);
    }

    #[test]
    fn trinity_block_takes_trinity_defaults_flat_keeps_the_papers() {
        for text in [
            "task_selector:\n  selector_type: difficulty_based\n",
            "data_selector:\n  selector_type: difficulty_based\n  kwargs: {}\n",
            "selector_type: difficulty_based\nkwargs: {}\n",
        ] {
            let c = Config::from_str_format(text, "yaml").unwrap();
            assert_eq!(c, Config::trinity_defaults(), "{text}");
        }
        // Trinity's code defaults, not the paper's (selector.py: lamb 0.2, rho 0.2, do_sample false,
        // target_reward 1.0, tau 1.0, m 16).
        let t = Config::trinity_defaults();
        assert_eq!((t.lambda, t.rho, t.do_sample, t.target, t.tau, t.m), (0.2, 0.2, false, 1.0, 1.0, 16));
        assert_eq!(Config::from_str_format("seed: 42", "yaml").unwrap(), Config { seed: 42, ..Config::default() });
        assert_eq!(Config::from_str_format("{}", "json").unwrap(), Config::default());
        // A kwarg set in the block overrides only itself.
        let c = Config::from_str_format(
            "task_selector:\n  selector_type: difficulty_based\n  seed: 7\n  kwargs: {lamb: 0.1}\n",
            "yaml",
        )
        .unwrap();
        assert_eq!(c, Config { lambda: 0.1, seed: 7, ..Config::trinity_defaults() });
    }

    #[test]
    fn whole_trinity_file_finds_its_block() {
        let text = include_str!("../tests/fixtures/trinity_full.yaml");
        let c = Config::from_str_format(text, "yaml").unwrap();
        assert_eq!((c.batch, c.m, c.lambda, c.rho, c.target, c.tau, c.do_sample), (32, 16, 0.1, 0.1, 0.5, 0.0, true));
        assert_eq!(c.feature_keys, vec!["qwen2.5_7b_pass_rate", "qwen3_30b_pass_rate"]);
        // `tasksets` (a list): the one difficulty_based block among sequential ones is used; buffer.batch_size
        // gives the batch.
        let text = "buffer:\n  batch_size: 8\n  explorer_input:\n    tasksets:\n    - name: a\n      data_selector: {selector_type: sequential}\n    - name: b\n      data_selector:\n        selector_type: difficulty_based\n        kwargs: {rho: 0.5}\n";
        let c = Config::from_str_format(text, "yaml").unwrap();
        assert_eq!(c, Config { batch: 8, rho: 0.5, ..Config::trinity_defaults() });
        // The same as JSON.
        let json = r#"{"buffer": {"explorer_input": {"taskset": {"task_selector": {"selector_type": "difficulty_based", "kwargs": {"tau": 0}}}}}}"#;
        assert_eq!(Config::from_str_format(json, "json").unwrap(), Config { tau: 0.0, ..Config::trinity_defaults() });
    }

    #[test]
    fn trinity_shapes_are_checked_not_dropped() {
        for (text, needle) in [
            ("task_selector:\n  selector_type: sequential\n", "difficulty_based"),
            ("task_selector:\n  selector_type: difficulty_based\n  type: random\n", "type"),
            ("task_selector:\n  name: shuffle\n  selector_type: difficulty_based\n", "name"),
            ("task_selector:\n  kwargs: {lamb: 0.1}\n", "selector_type"),
            ("task_selector:\n  selector_type: difficulty_based\n  kwargs: {lamda: 0.1}\n", "lamda"),
            ("task_selector:\n  selector_type: difficulty_based\n  rho: 0.1\n  kwargs: {rho: 0.2}\n", "rho"),
            ("task_selector:\n  selector_type: difficulty_based\nrho: 0.1\n", "beside"),
            ("buffer:\n  batch_size: 4\n", "explorer_input"),
            ("buffer:\n  explorer_input:\n    taskset: {name: a}\n", "difficulty_based"),
            (
                "buffer:\n  explorer_input:\n    tasksets:\n    - {task_selector: {selector_type: difficulty_based}}\n    - {task_selector: {selector_type: difficulty_based}}\n",
                "keep one",
            ),
            ("buffer:\n  explorer_input:\n    taskset: {task_selector: {selector_type: difficulty_based, kwargs: {lamb: 3}}}\n", "lambda"),
        ] {
            let err = Config::from_str_format(text, "yaml").unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn toml_and_json_load() {
        let c = Config::from_str_format("batch = 4\nlambda = 0.5\nseed = 7\n", "toml").unwrap();
        assert_eq!((c.batch, c.lambda, c.seed), (4, 0.5, 7));
        let c = Config::from_str_format(r#"{"rho": 1.0, "adaptive_rho": true}"#, "json").unwrap();
        assert_eq!(c.rho, 1.0);
        assert!(c.adaptive_rho);
    }

    #[test]
    fn invalid_values_are_errors_naming_the_key() {
        for (text, key) in [
            ("lamb: 1.5", "lambda"),
            ("m: 0", "m"),
            ("tau: -1", "tau"),
            ("rho: -0.1", "rho"),
            ("target_reward: 2", "target"),
            ("batch: 0", "batch"),
            ("feature_keys: []", "feature_keys"),
            ("feature_keys: [a, b, a]", "feature_keys"),
            ("prior_strength: -1", "prior_strength"),
        ] {
            let err = Config::from_str_format(text, "yaml").unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
        // K = 1 and K = 3 reference columns are valid (docs/EVIDENCE-SOURCES.md).
        for keys in ["[a]", "[a, b, c]"] {
            assert!(Config::from_str_format(&format!("feature_keys: {keys}"), "yaml").is_ok(), "{keys}");
        }
        // Wrong types and unknown variants name their key too.
        for (text, key) in [("kernel_mode: fastest", "`kernel_mode`"), ("m: many", "`m`"), ("seed: -1", "`seed`")] {
            let err = Config::from_str_format(text, "yaml").unwrap_err();
            assert!(err.starts_with(key), "{text}: {err}");
        }
        let err = Config::from_str_format("lamda: 0.1", "yaml").unwrap_err();
        assert!(err.contains("lamda"), "{err}");
        assert!(Config::from_str_format("m: 4", "ini").is_err());
    }
}
