//! Hyper-parameters of BOTS, with Trinity-RFT's `bots.yaml` defaults.
//!
//! A [`Config`] loads from YAML, TOML or JSON. Trinity-RFT's key names are accepted (`m`, `lamb`,
//! `rho`, `target_reward`, `tau`, `do_sample`, `feature_keys`), and a pasted `task_selector:` block
//! (with its `kwargs:` map) is read as well, so a Trinity user can reuse their config as it is.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BotsError, Result};

/// Every hyper-parameter of the algorithm (`../shared/BOTS-ALGORITHM.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// B: tasks selected per step.
    #[serde(alias = "batch_size")]
    pub batch: usize,
    /// m: rollouts per task (the GRPO group size).
    #[serde(alias = "rollouts")]
    pub m: u32,
    /// lambda: forgetting rate toward the prior, in [0, 1].
    #[serde(alias = "lamb")]
    pub lambda: f32,
    /// rho: weight of implicit (interpolated) evidence, in [0, 1].
    pub rho: f32,
    /// p*: target success probability, in [0, 1].
    #[serde(alias = "target_reward", alias = "p_star")]
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
    /// `Some(c)`: per-task priors `1 + c·f`, `1 + c·(1-f)` from the strong reference feature f.
    /// `None` (the reference): the constant prior above, which costs no memory.
    pub prior_strength: Option<f32>,
    /// Pool columns holding the weaker and the stronger reference model's pass rates, in that order.
    pub feature_keys: Vec<String>,
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
        }
    }
}

/// Keys of Trinity-RFT's `task_selector` block that carry no BOTS hyper-parameter and are ignored.
const TRINITY_IGNORED: &[&str] = &["selector_type", "type", "name"];

impl Config {
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
        if self.feature_keys.len() != 2 {
            return Err(BotsError::config(
                "feature_keys",
                format!(
                    "expected exactly 2 columns (weaker model, stronger model), got {}",
                    self.feature_keys.len()
                ),
            ));
        }
        Ok(())
    }

    /// Parses a config from text in the given format ("yaml", "toml" or "json") and validates it.
    pub fn from_str_format(text: &str, format: &str) -> std::result::Result<Config, String> {
        let flat = Config::parse_keys(text, format)?;
        let cfg: Config = serde_json::from_value(flat).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Parses config text ("yaml", "toml" or "json") into the flat map of keys `from_str_format`
    /// deserializes (Trinity's `task_selector`/`kwargs` nesting flattened), without checking the keys:
    /// for callers that take out keys of their own first (the Python adapters).
    pub fn parse_keys(text: &str, format: &str) -> std::result::Result<serde_json::Value, String> {
        let value: serde_json::Value = match format {
            "yaml" | "yml" => serde_yaml::from_str(text).map_err(|e| e.to_string())?,
            "toml" => toml::from_str(text).map_err(|e| e.to_string())?,
            "json" => serde_json::from_str(text).map_err(|e| e.to_string())?,
            other => return Err(format!("unknown config format `{other}`: use .yaml, .yml, .toml or .json")),
        };
        flatten_trinity(value)
    }

    /// Loads a config file; the format follows the extension (`.yaml`/`.yml`, `.toml`, `.json`).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("bots.yaml");
    /// std::fs::write(&path, "task_selector:\n  kwargs: {m: 8, lamb: 0.2, target_reward: 0.4}\n").unwrap();
    /// let cfg = bots::Config::load(&path).unwrap();
    /// assert_eq!((cfg.m, cfg.lambda, cfg.target), (8, 0.2, 0.4));
    /// ```
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| BotsError::io(path, e))?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        Config::from_str_format(&text, &ext).map_err(|m| BotsError::parse(path, 0, m))
    }
}

/// Accepts a flat map, or Trinity's nesting (`task_selector: {feature_keys, kwargs: {...}}`), and
/// returns the flat map of our keys.
fn flatten_trinity(value: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{Map, Value};
    let Value::Object(mut top) = value else {
        return Err("the config must be a map of keys to values".into());
    };
    if let Some(inner) = top.remove("task_selector") {
        if !top.is_empty() {
            let keys: Vec<_> = top.keys().cloned().collect();
            return Err(format!("keys {keys:?} beside `task_selector`: put them inside it or remove them"));
        }
        let Value::Object(inner) = inner else { return Err("`task_selector` must be a map".into()) };
        top = inner;
    }
    let mut flat = Map::new();
    for (k, v) in top {
        if k == "kwargs" {
            let Value::Object(kw) = v else { return Err("`kwargs` must be a map".into()) };
            for (k2, v2) in kw {
                flat.insert(k2, v2);
            }
        } else if !TRINITY_IGNORED.contains(&k.as_str()) {
            flat.insert(k, v);
        }
    }
    Ok(Value::Object(flat))
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
            ("feature_keys: [a, b, c]", "feature_keys"),
            ("prior_strength: -1", "prior_strength"),
        ] {
            let err = Config::from_str_format(text, "yaml").unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
        let err = Config::from_str_format("lamda: 0.1", "yaml").unwrap_err();
        assert!(err.contains("lamda"), "{err}");
        assert!(Config::from_str_format("m: 4", "ini").is_err());
    }
}
