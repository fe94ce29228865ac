//! Evidence sources beyond two reference models (docs/EVIDENCE-SOURCES.md): K reference columns
//! ([`references`]), neighbour evidence ([`neighbours`]) and tasks appended mid-run ([`append`]).
//!
//! One test binary for the three: a GPU run carries every test harness in one call of at most 64 MiB
//! (`scripts/stage-candle.sh`), so fewer, larger harnesses. The tests that take pools from [`devices`]
//! run on every backend there is, the CPU always and CUDA when usable (`BOTS_REQUIRE_GPU=1` makes a
//! missing one a failure), and every device must agree with the CPU bit for bit.

use std::sync::OnceLock;

use bots::{open_with, Backend, BackendKind, Config, Features, Neighbours};

#[path = "../common/mod.rs"]
mod common;

mod append;
mod neighbours;
mod references;

/// Tests with CUDA pools run one at a time (bounded device memory; the emulated driver is slow).
pub(crate) static DEVICE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A pool of `n` tasks with features `f` and graph `g` on every device: `("cpu", ..)`, then
/// `("cuda", ..)` when CUDA is usable here (the names parse as [`BackendKind`]s).
pub(crate) fn devices(
    cfg: &Config,
    n: usize,
    f: Option<&Features>,
    g: Option<&Neighbours>,
) -> Vec<(&'static str, Box<dyn Backend>)> {
    static CUDA: OnceLock<bool> = OnceLock::new();
    let mut names = vec!["cpu"];
    if *CUDA.get_or_init(common::gpu_available) {
        names.push("cuda");
    }
    names
        .into_iter()
        .map(|name| {
            let kind: BackendKind = name.parse().expect("a backend name");
            let pool = open_with(kind, cfg.clone(), n, f.cloned(), g.cloned())
                .unwrap_or_else(|e| panic!("the {name} pool: {e}"));
            (name, pool as Box<dyn Backend>)
        })
        .collect()
}

/// A column of `n` pass rates `k/den` (a deterministic spread).
pub(crate) fn column(n: usize, den: usize, shift: usize) -> Vec<f32> {
    (0..n).map(|k| ((k * 7 + shift) % (den + 1)) as f32 / den as f32).collect()
}
