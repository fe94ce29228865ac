//! Which pool a posterior belongs to: [`Fingerprint`].
//!
//! A posterior means something only over the pool it was learned on. A checkpoint holds everything
//! its pool's fingerprint is made of (the task count, the features and their form, the config), all
//! under its file checksum, so every checkpoint, old ones included, has one: [`Fingerprint::of`] of
//! what [`crate::checkpoint::load`] returns. [`crate::Backend::restore_checkpoint`] compares it with
//! the live pool's and refuses a checkpoint of another pool, saying what differs.

use std::fmt;
use std::hash::Hasher;

use twox_hash::XxHash3_64;

use crate::config::Config;
use crate::pool::{FeatureForm, Features};

/// The identity of a pool: what a posterior learned on it depends on.
///
/// - the task count;
/// - the reference features: their form ([`FeatureForm`]) and a 64-bit XXH3 digest of both columns'
///   little-endian bits (weak, then strong);
/// - the config keys that shape the posterior: `m`, `lambda`, `rho`, `gamma`, `adaptive_rho`,
///   `prior_alpha`, `prior_beta`, `prior_strength`.
///
/// The keys that only choose among tasks (`batch`, `target`, `tau`, `do_sample`, `seed`) and the
/// feature column names are not part of it: a run may resume with another batch size. (Resuming
/// *exactly* also needs the same `seed`: [`crate::Backend::restore_checkpoint`] returns the
/// checkpoint's config to compare.)
///
/// [`Fingerprint::id`] (also its `Display`) is 16 hex digits, stable across platforms and versions of
/// this crate: the adapters put it in their checkpoint file names.
///
/// ```
/// use bots::{Config, Features, Fingerprint};
/// let f = Features::from_f32(&[0.25, 0.5], &[0.5, 1.0])?;
/// let a = Fingerprint::of(&Config::default(), 2, Some(&f));
/// assert_eq!(a, Fingerprint::of(&Config { batch: 8, seed: 1, ..Config::default() }, 2, Some(&f)));
/// let b = Fingerprint::of(&Config { lambda: 0.2, ..Config::default() }, 2, Some(&f));
/// assert_eq!(a.difference(&b).unwrap(), "lambda = 0.1, the other has lambda = 0.2");
/// assert_eq!(a.id().len(), 16);
/// # Ok::<(), bots::BotsError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Fingerprint {
    n_tasks: u64,
    features: Option<(FeatureForm, u64)>,
    shaping: Shaping,
    /// `neighbour_weight` and the graph's digest, for a pool with neighbour evidence.
    neighbours: Option<(f32, u64)>,
}

/// The config keys that shape the posterior, by name.
#[derive(Clone, Debug, PartialEq)]
struct Shaping {
    m: u32,
    lambda: f32,
    rho: f32,
    gamma: f32,
    adaptive_rho: bool,
    prior_alpha: f32,
    prior_beta: f32,
    prior_strength: Option<f32>,
}

impl Shaping {
    fn of(c: &Config) -> Shaping {
        Shaping {
            m: c.m,
            lambda: c.lambda,
            rho: c.rho,
            gamma: c.gamma,
            adaptive_rho: c.adaptive_rho,
            prior_alpha: c.prior_alpha,
            prior_beta: c.prior_beta,
            prior_strength: c.prior_strength,
        }
    }

    /// `(name, value as the config writes it, bytes for the digest)`, in a fixed order.
    fn keys(&self) -> [(&'static str, String, Vec<u8>); 8] {
        let f = |v: f32| (format!("{v}"), v.to_bits().to_le_bytes().to_vec());
        let (lambda, rho, gamma) = (f(self.lambda), f(self.rho), f(self.gamma));
        let (pa, pb) = (f(self.prior_alpha), f(self.prior_beta));
        let ps = match self.prior_strength {
            None => ("none".to_string(), vec![0]),
            Some(v) => (format!("{v}"), [&[1u8][..], &v.to_bits().to_le_bytes()].concat()),
        };
        [
            ("m", self.m.to_string(), self.m.to_le_bytes().to_vec()),
            ("lambda", lambda.0, lambda.1),
            ("rho", rho.0, rho.1),
            ("gamma", gamma.0, gamma.1),
            ("adaptive_rho", self.adaptive_rho.to_string(), vec![self.adaptive_rho as u8]),
            ("prior_alpha", pa.0, pa.1),
            ("prior_beta", pb.0, pb.1),
            ("prior_strength", ps.0, ps.1),
        ]
    }
}

/// XXH3-64 of the feature columns' little-endian bits, weakest first (weak then strong for two).
pub(crate) fn features_digest(features: &Features) -> (FeatureForm, u64) {
    fn feed<T: bytemuck::Pod>(h: &mut XxHash3_64, col: &[T], le: impl Fn(&T) -> Vec<u8>) {
        if cfg!(target_endian = "little") {
            h.write(bytemuck::cast_slice(col));
        } else {
            for chunk in col.chunks(1 << 12) {
                h.write(&chunk.iter().flat_map(&le).collect::<Vec<u8>>());
            }
        }
    }
    let mut h = XxHash3_64::with_seed(0);
    match features {
        Features::F16 { columns } => {
            for col in columns {
                feed(&mut h, col, |v| v.to_bits().to_le_bytes().to_vec());
            }
        }
        Features::F32 { columns } => {
            for col in columns {
                feed(&mut h, col, |v| v.to_bits().to_le_bytes().to_vec());
            }
        }
    }
    (features.form(), h.finish())
}

impl Fingerprint {
    /// The fingerprint of a pool of `n_tasks` tasks with these features and config.
    pub fn of(config: &Config, n_tasks: usize, features: Option<&Features>) -> Fingerprint {
        Fingerprint::from_digest(config, n_tasks, features.map(features_digest))
    }

    /// From a features digest already computed ([`features_digest`]): pools keep theirs.
    pub(crate) fn from_digest(config: &Config, n_tasks: usize, features: Option<(FeatureForm, u64)>) -> Fingerprint {
        Fingerprint { n_tasks: n_tasks as u64, features, shaping: Shaping::of(config), neighbours: None }
    }

    /// The fingerprint of a pool's whole host state: [`Fingerprint::of`] plus its neighbour graph
    /// (and `neighbour_weight`) where it has one.
    pub fn of_state(config: &Config, state: &crate::PoolState) -> Fingerprint {
        Fingerprint::of(config, state.len(), state.features.as_ref()).with_neighbours(config, state.neighbours.as_ref())
    }

    /// Adds a neighbour graph: its digest (k, ids and weights) and `neighbour_weight` become part of
    /// the identity. Without a graph the fingerprint (and its id) is as before neighbours existed.
    pub fn with_neighbours(self, config: &Config, graph: Option<&crate::Neighbours>) -> Fingerprint {
        Fingerprint { neighbours: graph.map(|g| (config.neighbour_weight, g.digest())), ..self }
    }

    /// [`Fingerprint::with_neighbours`] from a graph digest already computed ([`crate::Neighbours`]'
    /// `digest`): pools keep theirs.
    pub(crate) fn with_neighbour_digest(self, config: &Config, digest: Option<u64>) -> Fingerprint {
        Fingerprint { neighbours: digest.map(|d| (config.neighbour_weight, d)), ..self }
    }

    /// Number of tasks.
    pub fn n_tasks(&self) -> u64 {
        self.n_tasks
    }

    /// The features' form and digest, or `None` for a pool without features.
    pub fn features(&self) -> Option<(FeatureForm, u64)> {
        self.features
    }

    /// 16 lowercase hex digits: XXH3-64 of everything above, in a fixed byte layout.
    pub fn id(&self) -> String {
        let mut h = XxHash3_64::with_seed(0);
        h.write(b"bots-fingerprint-1");
        h.write(&self.n_tasks.to_le_bytes());
        match self.features {
            None => h.write(&[0]),
            Some((form, digest)) => {
                h.write(&[if form == FeatureForm::F16 { 1 } else { 2 }]);
                h.write(&digest.to_le_bytes());
            }
        }
        for (name, _, bytes) in self.shaping.keys() {
            h.write(name.as_bytes());
            h.write(&bytes);
        }
        if let Some((eta, digest)) = self.neighbours {
            h.write(b"neighbours");
            h.write(&eta.to_bits().to_le_bytes());
            h.write(&digest.to_le_bytes());
        }
        format!("{:016x}", h.finish())
    }

    /// `None` when `other` is the same pool; otherwise the first difference, in words, this one's
    /// value first (`"1000 tasks, the other has 999"`).
    pub fn difference(&self, other: &Fingerprint) -> Option<String> {
        if self.n_tasks != other.n_tasks {
            return Some(format!("{} tasks, the other has {}", self.n_tasks, other.n_tasks));
        }
        let form = |f: Option<(FeatureForm, u64)>| match f {
            None => "no features".to_string(),
            Some((FeatureForm::F16, _)) => "f16 features".to_string(),
            Some((FeatureForm::F32, _)) => "f32 features".to_string(),
        };
        match (self.features, other.features) {
            (a, b) if a.map(|x| x.0) != b.map(|x| x.0) => {
                return Some(format!("{}, the other has {}", form(a), form(b)));
            }
            (Some((_, a)), Some((_, b))) if a != b => {
                return Some(format!("features with digest {a:016x}, the other has features with digest {b:016x}"));
            }
            _ => {}
        }
        let (mine, theirs) = (self.shaping.keys(), other.shaping.keys());
        if let Some((a, b)) = mine.iter().zip(&theirs).find(|(a, b)| a.2 != b.2) {
            return Some(format!("{} = {}, the other has {} = {}", a.0, a.1, b.0, b.1));
        }
        match (self.neighbours, other.neighbours) {
            (a, b) if a == b => None,
            (None, _) => Some("no neighbour graph, the other has one".into()),
            (_, None) => Some("a neighbour graph, the other has none".into()),
            (Some((ea, _)), Some((eb, _))) if ea.to_bits() != eb.to_bits() => {
                Some(format!("neighbour_weight = {ea}, the other has neighbour_weight = {eb}"))
            }
            (Some((_, a)), Some((_, b))) => {
                Some(format!("a neighbour graph with digest {a:016x}, the other has one with digest {b:016x}"))
            }
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(w: &[f32], s: &[f32]) -> Features {
        Features::from_f32(w, s).unwrap()
    }

    #[test]
    fn each_part_changes_the_fingerprint_and_is_named() {
        let c = Config::default();
        let f = feats(&[0.25, 0.5, 0.75], &[0.5, 0.75, 1.0]);
        let base = Fingerprint::of(&c, 3, Some(&f));
        let cases: Vec<(Fingerprint, &str)> = vec![
            (Fingerprint::of(&c, 4, None), "3 tasks, the other has 4"),
            (Fingerprint::of(&c, 3, None), "f16 features, the other has no features"),
            (
                Fingerprint::of(&c, 3, Some(&feats(&[0.25, 0.5, 0.7], &[0.5, 0.75, 1.0]))),
                "f16 features, the other has f32 features",
            ),
            (
                Fingerprint::of(&c, 3, Some(&feats(&[0.25, 0.5, 0.5], &[0.5, 0.75, 1.0]))),
                "the other has features with digest",
            ),
            (Fingerprint::of(&Config { m: 8, ..c.clone() }, 3, Some(&f)), "m = 16, the other has m = 8"),
            (Fingerprint::of(&Config { rho: 0.0, ..c.clone() }, 3, Some(&f)), "rho = 0.1, the other has rho = 0"),
            (Fingerprint::of(&Config { gamma: 0.5, ..c.clone() }, 3, Some(&f)), "gamma = 0.9"),
            (Fingerprint::of(&Config { adaptive_rho: true, ..c.clone() }, 3, Some(&f)), "adaptive_rho = false"),
            (Fingerprint::of(&Config { prior_alpha: 2.0, ..c.clone() }, 3, Some(&f)), "prior_alpha = 1"),
            (Fingerprint::of(&Config { prior_beta: 2.0, ..c.clone() }, 3, Some(&f)), "prior_beta = 1"),
            (Fingerprint::of(&Config { prior_strength: Some(4.0), ..c.clone() }, 3, Some(&f)), "prior_strength = none"),
        ];
        let mut ids = vec![base.id()];
        for (other, words) in &cases {
            let diff = base.difference(other).expect("a different pool");
            assert!(diff.contains(words), "{diff:?} should contain {words:?}");
            ids.push(other.id());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), cases.len() + 1, "every case has its own id");
    }

    #[test]
    fn selection_keys_and_column_names_are_not_part_of_it() {
        let c = Config::default();
        let other = Config {
            batch: 7,
            target: 0.3,
            tau: 1.0,
            do_sample: false,
            seed: 9,
            feature_keys: vec!["a".into(), "b".into()],
            ..c.clone()
        };
        let f = feats(&[0.25], &[0.5]);
        assert_eq!(Fingerprint::of(&c, 1, Some(&f)), Fingerprint::of(&other, 1, Some(&f)));
        assert_eq!(Fingerprint::of(&c, 1, Some(&f)).difference(&Fingerprint::of(&other, 1, Some(&f))), None);
    }

    #[test]
    fn the_id_is_pinned() {
        // The id is in file names: a change of layout must be deliberate (bump "bots-fingerprint-1").
        let f = feats(&[0.25, 0.5], &[0.5, 1.0]);
        assert_eq!(Fingerprint::of(&Config::default(), 2, Some(&f)).id(), PINNED);
    }
    const PINNED: &str = "e3014e8918215aba";

    #[test]
    fn a_neighbour_graph_is_part_of_it() {
        let c = Config { rho: 0.0, neighbour_weight: 0.5, ..Config::default() };
        let g = |w: f32| crate::Neighbours::from_lists(2, 1, vec![1, 0], vec![w, 0.5]).unwrap();
        let base = Fingerprint::of(&c, 2, None).with_neighbours(&c, Some(&g(0.5)));
        assert_ne!(base.id(), Fingerprint::of(&c, 2, None).id());
        let other = Fingerprint::of(&c, 2, None).with_neighbours(&c, Some(&g(0.25)));
        assert!(base.difference(&other).unwrap().contains("neighbour graph with digest"));
        let c2 = Config { neighbour_weight: 0.25, ..c.clone() };
        let other = Fingerprint::of(&c2, 2, None).with_neighbours(&c2, Some(&g(0.5)));
        assert_eq!(base.difference(&other).unwrap(), "neighbour_weight = 0.5, the other has neighbour_weight = 0.25");
        assert!(base.difference(&Fingerprint::of(&c, 2, None)).unwrap().contains("the other has none"));
        // Without a graph, neighbour_weight = 0 leaves the id as it was.
        assert_eq!(
            Fingerprint::of(&Config::default(), 2, None).with_neighbours(&Config::default(), None).id(),
            Fingerprint::of(&Config::default(), 2, None).id()
        );
    }
}
