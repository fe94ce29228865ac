//! Evidence sources beyond two reference models (docs/EVIDENCE-SOURCES.md): K reference columns
//! ([`references`]), neighbour evidence ([`neighbours`]) and tasks appended mid-run ([`append`]).
//!
//! One test binary for the three: a GPU run carries every test harness in one call of at most 64 MiB
//! (`scripts/stage-candle.sh`), so fewer, larger harnesses. Each module's tests that take pools from
//! its `devices` run on every backend there is, the CPU always and CUDA when usable
//! (`BOTS_REQUIRE_GPU=1` makes a missing one a failure), and every device must agree with the CPU bit
//! for bit.

#[path = "../common/mod.rs"]
mod common;

mod append;
mod neighbours;
mod references;

/// Tests with CUDA pools run one at a time (bounded device memory; the emulated driver is slow).
pub(crate) static DEVICE: std::sync::Mutex<()> = std::sync::Mutex::new(());
