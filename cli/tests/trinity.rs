//! `bots replay` against Trinity-RFT's own selector code (trinity-rft 0.6.0,
//! `DifficultyBasedSelector.feedback` -> `InterpolationBetaPREstimator.update`): runs
//! `tests/trinity/compare_replay.py`, which fails on any task whose alpha or beta differs by more
//! than 1e-4 relative, on pools with non-dyadic reference pass rates, count- and pass-rate-form logs,
//! and configs including adaptive rho firing, rho 0 and 1.
//!
//! Needs a python with numpy and trinity-rft (`scripts/trinity-venv.sh` makes `.venv-trinity/`), or
//! `BOTS_TRINITY_PYTHON` naming one. Without it the test prints why on stderr and skips, unless
//! `BOTS_REQUIRE_TRINITY=1` (set by `.ci/run`), where it fails instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn trinity_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BOTS_TRINITY_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-trinity/bin/python");
    venv.exists().then_some(venv)
}

#[test]
fn replay_agrees_with_trinity_rft_on_non_dyadic_features() {
    let Some(python) = trinity_python() else {
        let why = "no Trinity-RFT venv: run scripts/trinity-venv.sh or set BOTS_TRINITY_PYTHON";
        if std::env::var("BOTS_REQUIRE_TRINITY").is_ok_and(|v| v == "1") {
            panic!("BOTS_REQUIRE_TRINITY=1 but {why}");
        }
        eprintln!("SKIPPED: {why}");
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/trinity/compare_replay.py");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&python)
        .arg(&script)
        .arg(common::bots_bin())
        .arg(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bots replay differs from Trinity-RFT (see above)");
    assert!(stdout.contains("OK: bots replay agrees with Trinity-RFT 0.6.0 on every task"), "{stdout}");
}
